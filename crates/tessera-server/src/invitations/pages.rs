//! The dashboard's invitation actions on the team page: invite, resend, revoke.

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_core::{
    email::parse_list, ids::InvitationId, status::InvitationStatus, verification::Gated,
    AuditAction, Email, Invalid, InvitableRole,
};
use tessera_store::{Constraint, Invitation, InviteOutcome, NewLink, StoreError};

use super::service::{
    fresh_link, held_elsewhere_warning, invite_one, resend_interval_ms, Answer, Inviter,
};
use crate::{
    audit,
    authz::{perm, Authorized},
    ratelimit::{self, Limit},
    state::AppState,
    team::{pages::team_page, service::role_change},
    web::{
        humanize_ms, redirect_with_flash, redirect_with_warning, render, ClientIp, Form, Path,
        SignedIn, WebError, WebResult,
    },
};

/// Most addresses one invite form may carry.
pub const MAX_INVITES_PER_REQUEST: usize = 20;

/// The flash to show when an invitation acted on is no longer pending (another tab or
/// person got there first), instead of a bare 404.
fn no_longer_pending(invitation: &Invitation) -> Option<Response> {
    (invitation.status != InvitationStatus::Pending).then(|| {
        redirect_with_flash(
            "/team",
            &format!(
                "The invitation to {} was already {}.",
                invitation.email, invitation.status
            ),
        )
    })
}

#[derive(Deserialize)]
pub(super) struct InviteInput {
    #[serde(default)]
    emails: String,
    #[serde(default)]
    role: String,
}

pub(super) async fn invite(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::InviteMember, SignedIn>,
    ip: ClientIp,
    Form(input): Form<InviteInput>,
) -> WebResult<Response> {
    let again = |message: String| async {
        let page = team_page(
            &state,
            &who,
            Some(message),
            input.emails.clone(),
            input.role.clone(),
        )
        .await?;
        Ok::<_, WebError>(render(StatusCode::BAD_REQUEST, &page))
    };
    if let Err(refusal) = state
        .verified_teams
        .check(&state.store, &scope, Gated::Invitations)
        .await?
    {
        let page = team_page(
            &state,
            &who,
            Some(refusal.to_string()),
            input.emails.clone(),
            input.role.clone(),
        )
        .await?;
        return Ok(render(StatusCode::FORBIDDEN, &page));
    }
    let parsed = parse_list(&input.emails, MAX_INVITES_PER_REQUEST)
        .and_then(|emails| Ok((emails, input.role.parse::<InvitableRole>()?)));
    let (emails, role) = match parsed {
        Ok((emails, role)) => (emails, role.role()),
        Err(Invalid(message)) => return again(message).await,
    };
    // One unit per address, taken together before anything is sent (parallel forms cannot
    // pass the budget); units of addresses that get no mail are given back.
    let mut slots = match ratelimit::take_many(&state, Limit::InvitesPerTeam, scope.team_id(), emails.len()).await? {
        Ok(slots) => slots,
        Err(wait) => {
            return again(format!(
                "Your team has sent too many invitations recently (at most {} an hour). Try again in {wait}.",
                Limit::InvitesPerTeam.max()
            ))
            .await
        }
    };
    let team = state.store.get_team(&scope).await?;
    let inviter = Inviter {
        user_id: &who.user.id,
        name: &who.user.name,
    };
    let mut tally = InviteTally::default();
    for email in emails {
        let event = audit::event(
            &who,
            &ip,
            AuditAction::InvitationSent,
            email.as_str(),
            format!("invited as {}", role.label()),
        );
        let answer = invite_one(&state, &scope, &team.name, &inviter, &email, role, event).await?;
        if answer.sent_mail() {
            slots.pop();
        }
        match answer {
            Answer::AlreadyMember => tally.already.push(email.to_string()),
            Answer::Invited {
                outcome,
                held_elsewhere,
            } => {
                let invited = outcome.is_ok();
                tally.record(&email, role, outcome)?;
                if held_elsewhere && invited {
                    tally.elsewhere.push(email.to_string());
                }
            }
        }
    }
    for unused in slots {
        unused.release(&state).await?;
    }
    state.wake(crate::state::Wrote::Mail);
    Ok(tally.summary(&state))
}

/// What one invitation form did, address by address, for the message shown after it.
#[derive(Default)]
struct InviteTally {
    sent: Vec<String>,
    already: Vec<String>,
    too_soon: Vec<String>,
    /// Pending invitations asked again with another role: "… invited again as Manager (was Member)".
    role_changed: Vec<String>,
    /// Invited addresses that belong to another team's account (see `address_holder`).
    elsewhere: Vec<String>,
}

impl InviteTally {
    /// Notes the store's answer for `email`; an unexpected store error ends the form.
    fn record(
        &mut self,
        email: &Email,
        role: tessera_core::Role,
        outcome: Result<InviteOutcome, StoreError>,
    ) -> WebResult<()> {
        match outcome {
            Ok(InviteOutcome::Refreshed { previous_role, .. }) if previous_role != role => {
                self.role_changed.push(format!(
                    "{email} invited again as {} (was {}).",
                    role.label(),
                    previous_role.label()
                ));
                Ok(())
            }
            Ok(InviteOutcome::Created(_) | InviteOutcome::Refreshed { .. }) => {
                self.sent.push(email.to_string());
                Ok(())
            }
            Ok(InviteOutcome::RoleChanged {
                previous_role,
                retry_in_ms,
                ..
            }) => {
                self.role_changed.push(format!(
                    "{email} invited again as {} (was {}); the invitation was emailed moments ago, so its link now grants {} and no new email was sent (resend possible in {}).",
                    role.label(),
                    previous_role.label(),
                    role.label(),
                    humanize_ms(retry_in_ms)
                ));
                Ok(())
            }
            Err(StoreError::TooSoon { retry_in_ms }) => {
                self.too_soon.push(format!(
                    "{email} (resend possible in {})",
                    humanize_ms(retry_in_ms)
                ));
                Ok(())
            }
            Err(err) if err.is_unique(&Constraint::InvitationPending) => {
                self.already.push(email.to_string());
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Back to the team page with what was done; a warning when nothing was sent and no role
    /// changed (what was asked was not done), or when an invitee cannot accept yet.
    fn summary(self, state: &AppState) -> Response {
        let mut message = String::new();
        if !self.sent.is_empty() {
            message.push_str(&format!("Invitation sent to {}.", self.sent.join(", ")));
        }
        for changed in &self.role_changed {
            message.push(' ');
            message.push_str(changed);
        }
        if !self.already.is_empty() {
            message.push_str(&format!(
                " Already in your team: {}.",
                self.already.join(", ")
            ));
        }
        if !self.too_soon.is_empty() {
            message.push_str(&format!(
                " Invited moments ago, not sent again: {}.",
                self.too_soon.join(", ")
            ));
        }
        if !self.elsewhere.is_empty() {
            message.push(' ');
            message.push_str(&held_elsewhere_warning(state, &self.elsewhere));
        }
        if (self.sent.is_empty() && self.role_changed.is_empty()) || !self.elsewhere.is_empty() {
            return redirect_with_warning("/team", message.trim());
        }
        redirect_with_flash("/team", message.trim())
    }
}

/// An invitation id from the URL: one that cannot be an invitation's is not found.
fn invitation_id(raw: &str) -> WebResult<InvitationId> {
    InvitationId::parse(raw).map_err(|_| WebError::NotFound)
}

pub(super) async fn resend(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ResendInvitation, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = invitation_id(&id)?;
    let invitation = state.store.get_invitation(&scope, &id).await?;
    if let Some(page) = no_longer_pending(&invitation) {
        return Ok(page);
    }
    let slot = match ratelimit::take(&state, Limit::InvitesPerTeam, scope.team_id()).await? {
        Ok(slot) => slot,
        Err(wait) => {
            return Err(WebError::TooManyRequests(format!(
                "Your team has sent too many invitations recently. Try again in {wait}."
            )))
        }
    };
    let team = state.store.get_team(&scope).await?;
    let email = Email::parse(&invitation.email)
        .map_err(|Invalid(m)| WebError::Internal(anyhow::anyhow!(m)))?;
    let link = fresh_link(&state, &team.name, &who.user.name, &email, invitation.role);
    let event = audit::event(
        &who,
        &ip,
        AuditAction::InvitationResent,
        &invitation.email,
        "fresh link sent; the previous link no longer works".into(),
    );
    match state
        .store
        .resend_invitation(
            &scope,
            &id,
            &NewLink {
                token_hash: link.token_hash,
                expires_at: link.expires_at,
                mail: link.mail,
                event,
            },
            resend_interval_ms(&state),
        )
        .await
    {
        Ok(_) => {
            state.wake(crate::state::Wrote::Mail);
            Ok(redirect_with_flash(
                "/team",
                &format!("A fresh invitation link was sent to {}.", invitation.email),
            ))
        }
        Err(StoreError::TooSoon { retry_in_ms }) => {
            slot.release(&state).await?;
            Ok(redirect_with_warning(
                "/team",
                &format!(
                    "The invitation to {} was sent moments ago; you can resend it in {}.",
                    invitation.email,
                    humanize_ms(retry_in_ms)
                ),
            ))
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::RevokeInvitation, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = invitation_id(&id)?;
    let invitation = state.store.get_invitation(&scope, &id).await?;
    if let Some(page) = no_longer_pending(&invitation) {
        return Ok(page);
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::InvitationRevoked,
        &invitation.email,
        "invitation removed; its link no longer works".into(),
    );
    state.store.revoke_invitation(&scope, &id, &event).await?;
    Ok(redirect_with_flash(
        "/team",
        &format!("The invitation to {} was removed.", invitation.email),
    ))
}

#[derive(Deserialize)]
pub(super) struct RoleInput {
    #[serde(default)]
    role: String,
}

/// Changes the role a pending invitation grants (the link stays the same; it now grants the
/// new role). Audited like a member's role change.
pub(super) async fn change_role(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ChangeMemberRole, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
    Form(input): Form<RoleInput>,
) -> WebResult<Response> {
    let id = invitation_id(&id)?;
    let invitation = state.store.get_invitation(&scope, &id).await?;
    if let Some(page) = no_longer_pending(&invitation) {
        return Ok(page);
    }
    let role = input
        .role
        .parse::<InvitableRole>()
        .map_err(|Invalid(m)| WebError::BadRequest(m))?
        .role();
    if role == invitation.role {
        return Ok(redirect_with_flash(
            "/team",
            &format!(
                "The invitation to {} is already for a {}.",
                invitation.email,
                role.label()
            ),
        ));
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::InvitationRoleChanged,
        &invitation.email,
        role_change(invitation.role.label(), role),
    );
    match state
        .store
        .set_invitation_role(&scope, &id, role, &event)
        .await
    {
        Ok(()) => Ok(redirect_with_flash(
            "/team",
            &format!(
                "The invitation to {} now grants {}; its link stays the same (Resend to email one that names the new role).",
                invitation.email,
                role.label()
            ),
        )),
        Err(StoreError::NotFound) => Ok(redirect_with_warning(
            "/team",
            &format!(
                "The invitation to {} is no longer pending.",
                invitation.email
            ),
        )),
        Err(err) => Err(err.into()),
    }
}
