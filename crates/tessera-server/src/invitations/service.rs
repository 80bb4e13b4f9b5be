//! The rules of inviting, shared by the dashboard and the v1 API: how long a link lives, how
//! soon an invitation may be emailed again, what a fresh link consists of, and inviting one
//! address (people already in the team are not invited).

use tessera_core::{Email, Role, Scope};
use tessera_store::{InviteOutcome, NewAuditEvent, NewInvitation, StoreResult};

use crate::{
    crypto::{random_token, token_digest},
    mail,
    state::AppState,
};

fn ttl_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.invitation_ttl.as_millis()).unwrap_or(i64::MAX / 4)
}

/// How soon an invitation may be emailed again (resend, or inviting the address again).
pub fn resend_interval_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.resend_interval.as_millis()).unwrap_or(60_000)
}

/// A new single-use link for an invitation: the digest to store, its expiry, and the email
/// that carries the link (the raw token exists only inside that sealed email).
pub struct FreshLink {
    pub token_hash: String,
    pub expires_at: i64,
    pub mail: tessera_store::NewMail,
}

pub fn fresh_link(
    state: &AppState,
    team_name: &str,
    inviter: &str,
    email: &Email,
    role: Role,
) -> FreshLink {
    let token = random_token();
    let expires_at = tessera_store::now_ms() + ttl_ms(state);
    let link = state.config.link(&format!("/invite/{token}"));
    FreshLink {
        token_hash: token_digest(&token),
        expires_at,
        mail: mail::invitation(state, team_name, inviter, email, role, &link, expires_at),
    }
}

/// Who an invitation is from: the person recorded as inviting and named in the email.
pub struct Inviter<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
}

/// What inviting one address came to.
pub enum Answer {
    /// The address belongs to a member of the team already: nothing was written.
    AlreadyMember,
    /// The store's answer (a refusal such as `TooSoon` included), and whether the address
    /// belongs to another team's account (see [`address_holder`]): the invitation is sent,
    /// but it can be accepted only once that account has left its team or support moved it,
    /// so the inviter is warned now rather than the invitee refused later.
    Invited {
        outcome: StoreResult<InviteOutcome>,
        held_elsewhere: bool,
    },
}

impl Answer {
    /// Whether an email was queued, so the address used its unit of the invitation budget.
    pub fn sent_mail(&self) -> bool {
        matches!(
            self,
            Answer::Invited {
                outcome: Ok(InviteOutcome::Created(_) | InviteOutcome::Refreshed { .. }),
                ..
            }
        )
    }
}

/// Whose an address is, as inviting sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressHolder {
    /// No account uses it, one in no team, or an unverified sign-up (it can accept an
    /// invitation; an unverified sign-up gives the address up when it does).
    Free,
    /// A member of the inviting team.
    ThisTeam,
    /// An account that cannot join: a member of another team, platform staff or a workforce
    /// labeler (only support moves such an account).
    Elsewhere,
}

/// The one place that decides whether `email` "belongs to another team" when inviting it
/// into the scope's team. An unverified sign-up's address does not count
/// ([`tessera_store::User::owns_address`]).
pub async fn address_holder(
    state: &AppState,
    scope: &Scope,
    email: &Email,
) -> StoreResult<AddressHolder> {
    let Some(existing) = state.store.find_user_by_email(email).await? else {
        return Ok(AddressHolder::Free);
    };
    Ok(match existing.team_id.as_deref() {
        Some(team) if team == scope.team_id() => AddressHolder::ThisTeam,
        // An unverified sign-up does not own its address: accepting the invitation takes it.
        Some(_) if !existing.owns_address() => AddressHolder::Free,
        Some(_) => AddressHolder::Elsewhere,
        None if existing.is_staff || existing.is_workforce => AddressHolder::Elsewhere,
        None => AddressHolder::Free,
    })
}

/// What the inviter is told about invitees whose addresses belong to another team: they must
/// leave it, or ask the operator's support (`--support-email`) to move their account.
pub fn held_elsewhere_warning(state: &AppState, emails: &[String]) -> String {
    let support = match &state.config.support_email {
        Some(address) => format!("contact support at {address}"),
        None => "contact the support of this Tessera installation".to_owned(),
    };
    format!(
        "{} already belong{} to another team: the invitation was sent, but to accept it they must first leave their other team (its Admin or a Manager removes them) or {support} to move their account.",
        emails.join(", "),
        if emails.len() == 1 { "s" } else { "" }
    )
}

/// Invites `email` into the scope's team (`team_name`) with `role`, unless they are in it
/// already. The caller has taken the rate-limit unit and wakes the mail worker.
pub async fn invite_one(
    state: &AppState,
    scope: &Scope,
    team_name: &str,
    inviter: &Inviter<'_>,
    email: &Email,
    role: Role,
    event: NewAuditEvent,
) -> StoreResult<Answer> {
    let holder = address_holder(state, scope, email).await?;
    if holder == AddressHolder::ThisTeam {
        return Ok(Answer::AlreadyMember);
    }
    let link = fresh_link(state, team_name, inviter.name, email, role);
    let new = NewInvitation {
        email: email.clone(),
        role,
        invited_by: inviter.user_id.to_owned(),
        token_hash: link.token_hash,
        expires_at: link.expires_at,
        min_resend_interval_ms: resend_interval_ms(state),
        mail: link.mail,
        event,
    };
    Ok(Answer::Invited {
        outcome: state.store.invite(scope, &new).await,
        held_elsewhere: holder == AddressHolder::Elsewhere,
    })
}
