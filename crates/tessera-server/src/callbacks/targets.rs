//! Where a team may send callbacks. Web URLs go through the outbound guard when sent; email
//! addresses must be the team's own (a member's, or one verified by a link mailed to it)
//! and are capped per team and hour, so Tessera is nobody's mail relay.

use tessera_core::{Email, Scope};

use crate::{
    api::wire::{ApiError, ApiResult},
    ratelimit,
    state::AppState,
};

const HOUR_MS: i64 = 3_600_000;

/// A callback target: an absolute http(s) URL or an email address.
pub fn check_callback(raw: &str) -> ApiResult<String> {
    let raw = raw.trim();
    if raw.contains('@') && !raw.contains("://") {
        return Ok(tessera_core::Email::parse(raw)?.to_string());
    }
    tessera_core::team::parse_callback_url(raw)?.ok_or_else(|| {
        ApiError::bad_request("callback_url must be an absolute http(s) URL or an email address.")
    })
}

/// Checks a callback target of the scope's team (a task's `callback_url`, a batch's
/// `callback`, a test send) and returns it normalised. An email address takes one unit of the team's
/// hourly email budget: 429 with `Retry-After` when it is used up.
pub async fn check_target(state: &AppState, scope: &Scope, raw: &str) -> ApiResult<String> {
    let target = check_callback(raw)?;
    if target.contains("://") {
        return Ok(target);
    }
    let email = Email::parse(&target)?;
    if !state.store.callback_email_allowed(scope, &email).await? {
        return Err(ApiError::bad_request(format!(
            "{email} is not a callback address of your team. Email callbacks go to your teammates' own addresses and to addresses a Manager verified on the Team details page."
        )));
    }
    let max = state.config.team_callback_emails_per_hour;
    if max > 0 {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let taken =
            ratelimit::take_configured(state, "callback-email:team", scope.team_id(), max, HOUR_MS)
                .await
                .map_err(|_| ApiError::internal("rate limit"))?;
        if let Err(wait_ms) = taken {
            let secs = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1);
            return Err(ApiError::too_many(
                format!("Your team sent its {max} email callbacks for this hour; try again in {secs} s or use a web callback URL."),
                secs,
            ));
        }
    }
    Ok(email.to_string())
}
