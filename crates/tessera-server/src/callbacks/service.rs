//! The rules of callbacks on the dashboard, apart from the pages that show them: the state
//! filter, the team's hourly budget of test sends and redeliveries, redelivery, the test
//! callback sent while the person waits, and adding a callback email address.

use axum::http::StatusCode;
use serde_json::json;
use tessera_core::{status::DeliveryStatus, AuditAction, Email, Invalid, Scope};
use tessera_store::{Delivery, DeliveryKind, DeliveryOutcome, NewCallbackEmail, NewDelivery};

use super::{targets, worker};
use crate::{
    audit,
    crypto::{random_token, token_digest},
    mail,
    ratelimit::{self, Limit},
    state::{AppState, Wrote},
    web::{ClientIp, SignedIn, WebResult},
};

/// The list's state filter: empty is every state; an unknown word is refused with the words
/// the filter takes.
pub fn parse_state(raw: Option<String>) -> Result<Option<DeliveryStatus>, String> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => DeliveryStatus::from_word(&s).map(Some).ok_or_else(|| {
            let words: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!(
                "\"{s}\" is not a callback state; the filter \"state\" takes {}.",
                words.join(", ")
            )
        }),
    }
}

/// Takes a unit of the team's hourly budget of test sends and redeliveries; the refusal in
/// words when it is used up.
async fn take_send_budget(state: &AppState, scope: &Scope) -> WebResult<Result<(), String>> {
    Ok(
        ratelimit::take(state, Limit::CallbackSendsPerTeam, scope.team_id())
            .await?
            .map(|_| ())
            .map_err(|wait| {
                format!(
                "Your team sent {} test callbacks and redeliveries this hour; try again in {wait}.",
                Limit::CallbackSendsPerTeam.max()
            )
            }),
    )
}

/// How a redelivery request ended.
pub enum Redelivery {
    /// Queued again, due now: the worker was woken.
    Queued,
    /// The team's budget is used up (the message says until when).
    OverBudget(String),
    /// The delivery is still pending: nothing to redeliver yet.
    StillPending,
    /// No such delivery in the scope.
    NotFound,
}

/// Sends one of the scope's finished deliveries again (same `webhook-id`), within the team's
/// budget, with an audit entry.
pub async fn redeliver(
    state: &AppState,
    scope: &Scope,
    who: &SignedIn,
    ip: &ClientIp,
    id: &str,
) -> WebResult<Redelivery> {
    if let Err(message) = take_send_budget(state, scope).await? {
        return Ok(Redelivery::OverBudget(message));
    }
    let delivery = match state.store.redeliver(scope, id).await {
        Ok(delivery) => delivery,
        Err(tessera_store::StoreError::InvalidState(_)) => return Ok(Redelivery::StillPending),
        Err(tessera_store::StoreError::NotFound) => return Ok(Redelivery::NotFound),
        Err(err) => return Err(err.into()),
    };
    let event = audit::event(
        who,
        ip,
        AuditAction::CallbackRedelivered,
        delivery.id.as_str(),
        format!("{} mode, to {}", scope.mode(), delivery.target),
    );
    state.store.record_audit(scope, &event).await?;
    state.wake(Wrote::Callbacks);
    Ok(Redelivery::Queued)
}

/// How a request to stop retrying a delivery ended.
pub enum RetryCancel {
    /// Canceled: the delivery is failed and is not sent again.
    Canceled,
    /// It already succeeded or failed: nothing left to cancel.
    Finished,
    /// No such delivery in the scope.
    NotFound,
}

/// Stops the retries of one of the scope's pending deliveries (a receiver that will never
/// answer, or a callback nobody wants any more), with an audit entry. Nothing is sent, so it
/// takes nothing from the send budget.
pub async fn cancel_retries(
    state: &AppState,
    scope: &Scope,
    who: &SignedIn,
    ip: &ClientIp,
    id: &str,
) -> WebResult<RetryCancel> {
    let reason = format!("retries canceled by {}", who.user.email);
    let delivery = match state
        .store
        .cancel_delivery_retries(scope, id, &reason)
        .await
    {
        Ok(delivery) => delivery,
        Err(tessera_store::StoreError::InvalidState(_)) => return Ok(RetryCancel::Finished),
        Err(tessera_store::StoreError::NotFound) => return Ok(RetryCancel::NotFound),
        Err(err) => return Err(err.into()),
    };
    let event = audit::event(
        who,
        ip,
        AuditAction::CallbackRetriesCanceled,
        delivery.id.as_str(),
        format!(
            "{} mode, to {}, after {} attempt{}",
            scope.mode(),
            delivery.target,
            delivery.attempts,
            if delivery.attempts == 1 { "" } else { "s" }
        ),
    );
    state.store.record_audit(scope, &event).await?;
    Ok(RetryCancel::Canceled)
}

/// A test callback as sent: the delivery recorded for it and its one attempt.
pub struct TestSent {
    pub delivery: Delivery,
    pub outcome: DeliveryOutcome,
}

/// A test send refused before anything was sent: the status to answer with and why.
pub type Refused = (StatusCode, String);

/// The target of a test send, checked: the budget first (a refused send must not use a unit
/// of the email budget), then the length, then what the target may be.
async fn test_target(
    state: &AppState,
    scope: &Scope,
    raw: &str,
) -> WebResult<Result<String, Refused>> {
    let bad = |message: String| Err((StatusCode::BAD_REQUEST, message));
    if let Err(message) = take_send_budget(state, scope).await? {
        return Ok(Err((StatusCode::TOO_MANY_REQUESTS, message)));
    }
    if raw.len() > tessera_core::team::MAX_URL_LEN {
        return Ok(bad(format!(
            "The URL must be at most {} characters.",
            tessera_core::team::MAX_URL_LEN
        )));
    }
    if raw.is_empty() {
        return Ok(bad(
            "Enter the URL (or email address) to send a test callback to.".to_owned(),
        ));
    }
    Ok(targets::check_target(state, scope, raw)
        .await
        .map_err(|e| (e.status, e.message)))
}

/// The sample body of a test callback, shaped like a task callback.
fn test_payload() -> serde_json::Value {
    json!({
        "test": true,
        "message": "A test callback from Tessera: your receiver is reachable and can check the headers.",
        "task_id": "000000000000000000000000",
        "task": {"task_id": "000000000000000000000000", "status": "completed", "type": "categorization", "is_test": true},
        "response": {"category": "example"},
    })
}

/// Sends a sample callback to `raw` (a URL or email address) at once: sent like a real one
/// (same code, headers and signature), tried once and never retried, recorded as a test
/// delivery with its one attempt so it shows in the list. An email target is handed to the
/// mail outbox, which sends it on its own schedule.
pub async fn send_test(
    state: &AppState,
    scope: &Scope,
    who: &SignedIn,
    ip: &ClientIp,
    raw: &str,
) -> WebResult<Result<TestSent, Refused>> {
    let target = match test_target(state, scope, raw).await? {
        Ok(target) => target,
        Err(refused) => return Ok(Err(refused)),
    };
    let lease = worker::lease_for(state.config.callback_timeout);
    let new = NewDelivery {
        kind: DeliveryKind::Test,
        batch_id: None,
        target,
        payload: test_payload().to_string(),
    };
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
    let delivery = state
        .store
        .start_delivery_now(scope, &new, lease_ms)
        .await?;
    let event = audit::event(
        who,
        ip,
        AuditAction::CallbackTestSent,
        delivery.id.as_str(),
        format!("{} mode, to {}", scope.mode(), delivery.target),
    );
    state.store.record_audit(scope, &event).await?;
    let outcome = worker::send_test_now(state, delivery.clone()).await;
    // This request holds the lease `start_delivery_now` took, as a worker would.
    state
        .store
        .cross_tenant()
        .finish_deliveries(std::slice::from_ref(&outcome))
        .await?;
    Ok(Ok(TestSent { delivery, outcome }))
}

/// How long a confirmation link works.
const LINK_TTL_MS: i64 = 7 * 86_400_000;

/// Adds a callback address to the scope's team (or sends a fresh link for a pending one):
/// the mail with the confirmation link and the audit entry are committed with it, and the
/// mail worker is woken. Each link is a mail to an address the team chose, so links are
/// bounded per team and per address (a pending one gets a new link at most every ten
/// minutes). The address added, or why not, in words for the form.
pub async fn add_callback_email(
    state: &AppState,
    scope: &Scope,
    who: &SignedIn,
    ip: &ClientIp,
    raw: &str,
) -> WebResult<Result<Email, String>> {
    let email = match Email::parse(raw) {
        Ok(email) => email,
        Err(Invalid(message)) => return Ok(Err(message)),
    };
    let per_team = Limit::CallbackEmailConfirmationsPerTeam;
    if let Err(wait) = ratelimit::take(state, per_team, scope.team_id()).await? {
        return Ok(Err(format!(
            "Your team sent many confirmation links recently; try again in {wait}."
        )));
    }
    let per_address = Limit::CallbackEmailConfirmationsPerAddress;
    if let Err(wait) = ratelimit::take(state, per_address, email.normalized()).await? {
        return Ok(Err(format!(
            "A confirmation link was sent to {email} recently; try again in {wait}."
        )));
    }
    let team = state.store.get_team(scope).await?;
    let token = random_token();
    let expires_at = tessera_store::now_ms() + LINK_TTL_MS;
    let link = state
        .config
        .link(&format!("/callbacks/emails/verify/{token}"));
    let new = NewCallbackEmail {
        email: email.clone(),
        added_by: Some(who.user.id.clone()),
        token_hash: token_digest(&token),
        token_expires_at: expires_at,
        mail: mail::callback_email_verification(state, &team.name, &email, &link, expires_at),
        event: audit::event(
            who,
            ip,
            AuditAction::CallbackEmailAdded,
            email.as_str(),
            "confirmation link sent".into(),
        ),
    };
    match state.store.add_callback_email(scope, &new).await {
        Ok(_) => {
            state.wake(Wrote::Mail);
            Ok(Ok(email))
        }
        Err(tessera_store::StoreError::Conflict(message)) => Ok(Err(message)),
        Err(tessera_store::StoreError::Unique(constraint)) => Ok(Err(constraint.to_string())),
        Err(err) => Err(err.into()),
    }
}
