//! Email verification at sign-up: the link mailed to the address a team signs up with, its
//! confirm page, "Resend the link" in the banner of every page of an unverified account, and
//! the check that keeps a team whose Admin is unverified from live tasks and invitations.
//!
//! The link verifies on POST from its confirm page, not on GET: mail scanners and link
//! previews fetch links in messages, and a GET that verified would let them prove an address
//! on behalf of whoever typed it.

use std::time::Duration;

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_core::{
    verification::{self, Gated, Refusal, LINK_TTL_MS},
    AuditAction, Email, Scope,
};
use tessera_store::{NewAuditEvent, NewMail, NewVerificationLink, Store, StoreError};

use crate::{
    crypto::{random_token, token_digest},
    ratelimit::{self, Limit},
    state::AppState,
    ttl::TtlMap,
    web::{
        format_time, redirect_with_flash, redirect_with_warning, render, ClientIp, CsrfToken, Form,
        Layout, Path, SignedIn, Viewer, WebResult,
    },
};

/// How long a team's verified state is remembered for live task creation (the API's hottest
/// write). Verifying on this replica applies at once; on another replica within this.
pub const VERIFIED_TEAMS_TTL: Duration = Duration::from_secs(5);

/// Whether teams' Admins are verified, remembered for a moment.
pub struct VerifiedTeams(TtlMap<bool>);

impl Default for VerifiedTeams {
    fn default() -> Self {
        Self(TtlMap::new(VERIFIED_TEAMS_TTL))
    }
}

impl VerifiedTeams {
    /// Whether the scope's team may do `gated`: `Ok(Err(refusal))` says why not.
    pub async fn check(
        &self,
        store: &Store,
        scope: &Scope,
        gated: Gated,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let verified = self
            .0
            .get_or_load(scope.team_id(), store.team_admin_verified(scope))
            .await?;
        Ok(verification::check(gated, verified))
    }

    /// Drops what is remembered of `team_id`, after its Admin verified or it closed.
    pub fn forget(&self, team_id: &str) {
        self.0.forget(team_id);
    }
}

/// A new verification link: the digest to store, its expiry, and the URL for its mail (the
/// raw token exists only inside that sealed mail).
pub(crate) struct FreshLink {
    pub token_hash: String,
    pub expires_at: i64,
    pub url: String,
}

pub(crate) fn fresh_link(state: &AppState) -> FreshLink {
    let token = random_token();
    FreshLink {
        token_hash: token_digest(&token),
        expires_at: tessera_store::now_ms() + LINK_TTL_MS,
        url: state.config.link(&format!("/verify-email/{token}")),
    }
}

impl FreshLink {
    /// The link as the store takes it, with the mail that carries it.
    pub(crate) fn with_mail<'a>(&'a self, mail: &'a NewMail) -> NewVerificationLink<'a> {
        NewVerificationLink {
            token_hash: &self.token_hash,
            expires_at: self.expires_at,
            mail,
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ResendInput {
    #[serde(default)]
    back: String,
}

/// "Resend the link": a new link to the signed-in account's address (the previous one stops
/// working), at most [`Limit::VerificationResendPerUser`] an hour; back to the page it was
/// asked from, saying when it was sent.
pub(super) async fn resend(
    State(state): State<AppState>,
    who: SignedIn,
    Form(input): Form<ResendInput>,
) -> WebResult<Response> {
    let back =
        crate::web::local_path(&input.back).unwrap_or_else(|| super::home_path(&who).to_owned());
    if who.user.owns_address() {
        return Ok(redirect_with_flash(
            &back,
            &format!("{} is verified already.", who.user.email),
        ));
    }
    if let Err(wait) =
        ratelimit::take(&state, Limit::VerificationResendPerUser, &who.user.id).await?
    {
        return Ok(redirect_with_warning(
            &back,
            &format!(
                "No new link sent: at most {} an hour. Try again in {wait}, or use the most recent link we sent.",
                Limit::VerificationResendPerUser.max()
            ),
        ));
    }
    let email = Email::parse(&who.user.email)
        .map_err(|e| crate::web::WebError::Internal(anyhow::anyhow!(e.0)))?;
    let link = fresh_link(&state);
    let team_name = who.team_name.clone().unwrap_or_default();
    let mail =
        crate::mail::email_verification(&state, &email, &team_name, &link.url, link.expires_at);
    let sent = state
        .store
        .resend_verification(&who.user.id, &link.with_mail(&mail))
        .await?;
    if !sent {
        return Ok(redirect_with_flash(
            &back,
            &format!("{} is verified already.", who.user.email),
        ));
    }
    state.wake(crate::state::Wrote::Mail);
    Ok(redirect_with_flash(
        &back,
        &format!(
            "We sent a new verification link to {} at {}. Earlier links no longer work.",
            who.user.email,
            format_time(tessera_store::now_ms())
        ),
    ))
}

#[derive(Template)]
#[template(path = "email_verify.html")]
struct VerifyPage {
    layout: Layout,
    token: String,
    /// The account the link verifies, while it is usable.
    pending: Option<PendingView>,
    /// The address just verified (the page after the POST, for a browser not signed in as it).
    verified: Option<String>,
}

struct PendingView {
    email: String,
    team_name: String,
    signed_up: String,
}

/// Verification tokens are 43 URL-safe characters; anything else is not one.
fn plausible(token: &str) -> bool {
    token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn verify_layout(csrf: &CsrfToken, viewer: Option<&SignedIn>) -> Layout {
    match viewer {
        Some(who) => Layout::signed_in("Verify your email address", who, ""),
        None => Layout::anonymous("Verify your email address", csrf, None),
    }
}

fn unusable(csrf: &CsrfToken, viewer: Option<&SignedIn>) -> Response {
    render(
        StatusCode::NOT_FOUND,
        &VerifyPage {
            layout: verify_layout(csrf, viewer),
            token: String::new(),
            pending: None,
            verified: None,
        },
    )
}

async fn pending(
    state: &AppState,
    token: &str,
) -> WebResult<Option<tessera_store::PendingVerification>> {
    if !plausible(token) {
        return Ok(None);
    }
    Ok(state
        .store
        .pending_verification(&token_digest(token), tessera_store::now_ms())
        .await?)
}

/// The confirm page a link opens: which address, for which team, signed up when.
pub(super) async fn confirm_form(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let Some(found) = pending(&state, &token).await? else {
        return Ok(unusable(&csrf, viewer.as_ref()));
    };
    Ok(render(
        StatusCode::OK,
        &VerifyPage {
            layout: verify_layout(&csrf, viewer.as_ref()),
            token,
            pending: Some(PendingView {
                email: found.email,
                team_name: found.team_name.unwrap_or_default(),
                signed_up: format_time(found.account_created_at),
            }),
            verified: None,
        },
    ))
}

/// Verifies the address (once), audited as `user.email_verified`.
pub(super) async fn confirm(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    csrf: CsrfToken,
    ip: ClientIp,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let Some(found) = pending(&state, &token).await? else {
        return Ok(unusable(&csrf, viewer.as_ref()));
    };
    let event = NewAuditEvent {
        actor_user_id: Some(found.user_id.clone()),
        actor: found.email.clone(),
        action: AuditAction::UserEmailVerified,
        target: found.email.clone(),
        detail: "address verified by the link mailed to it".into(),
        ip: ip.0.clone(),
    };
    let Some(user) = state
        .store
        .verify_email(&token_digest(&token), tessera_store::now_ms(), &event)
        .await?
    else {
        return Ok(unusable(&csrf, viewer.as_ref()));
    };
    if let Some(team_id) = &user.team_id {
        state.verified_teams.forget(team_id);
    }
    let message = format!(
        "{} is verified. Your team can now create live tasks and invite people.",
        user.email
    );
    match viewer.as_ref().filter(|who| who.user.id == user.id) {
        Some(who) => Ok(redirect_with_flash(super::home_path(who), &message)),
        None => Ok(render(
            StatusCode::OK,
            &VerifyPage {
                layout: verify_layout(&csrf, viewer.as_ref()),
                token: String::new(),
                pending: None,
                verified: Some(message),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::plausible;

    #[test]
    fn only_token_shaped_paths_are_looked_up() {
        assert!(plausible("AbC-_123"));
        assert!(!plausible("../etc"));
        assert!(!plausible(&"a".repeat(65)));
    }
}
