//! The Admin hand-over: from the Your Team page the Admin offers the role to a Manager
//! (after a confirm step); the Manager gets an email with a single-use link and, signed in as
//! themselves, accepts on the page it opens; then the two swap roles in one transaction. The
//! Admin can withdraw a pending offer. Whether an offer can still be accepted is decided by
//! [`tessera_core::handover::problem`]; support's way (CLI `set-admin`, the staff console)
//! stays as it was.

use crate::web::PageTime;
use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_core::{
    handover::{problem, HandoverProblem, HANDOVER_TTL_MS},
    policy::{check_handover_offer, MemberRef},
    Action, AuditAction, Email, Invalid, Role, Scope,
};
use tessera_store::{AdminHandover, Constraint, NewHandover, StoreError, User};

use super::pages::team_page;
use crate::{
    audit,
    authz::{perm, Authorized},
    crypto::{random_token, token_digest},
    mail,
    ratelimit::{self, Limit},
    state::{AppState, Wrote},
    web::{
        format_time, page, redirect_with_flash, redirect_with_warning, render, ClientIp, Form,
        Layout, Path, Query, SignedIn, WebError, WebResult,
    },
};

/// Hand-over tokens are 43 characters; anything much longer is not one of ours.
const MAX_TOKEN_LEN: usize = 100;

/// A pending offer as the Admin sees it on the team page.
pub struct PendingRow {
    pub id: String,
    pub to_name: String,
    pub to_email: String,
    pub offered: PageTime,
    pub expires: PageTime,
    /// Why it can no longer be accepted, if it cannot (a new offer closes it).
    pub problem: Option<String>,
}

/// A Manager the role may be offered to.
pub struct ManagerOption {
    pub id: String,
    pub label: String,
}

/// The team page's hand-over section, shown to the Admin.
pub struct HandoverSection {
    pub pending: Option<PendingRow>,
    /// Whether a new offer may be made (none pending, or the pending one is stale).
    pub offer_open: bool,
    pub managers: Vec<ManagerOption>,
    pub error: Option<String>,
}

/// The Admin's hand-over section of the team page.
pub async fn section(
    state: &AppState,
    scope: &Scope,
    members: &[User],
    now: i64,
) -> WebResult<HandoverSection> {
    let pending = state.store.pending_admin_handover(scope).await?;
    let stale = pending
        .as_ref()
        .and_then(|h| problem(&h.facts, now).map(|p| admin_note(p, h)));
    Ok(HandoverSection {
        offer_open: pending.is_none() || stale.is_some(),
        pending: pending.map(|h| PendingRow {
            id: h.id,
            to_name: h.to_name,
            to_email: h.to_email,
            offered: PageTime::at(h.created_at),
            expires: PageTime::at(h.expires_at),
            problem: stale,
        }),
        managers: members
            .iter()
            .filter(|m| m.role == Some(Role::Manager))
            .map(|m| ManagerOption {
                id: m.id.clone(),
                label: format!("{} ({})", m.name, m.email),
            })
            .collect(),
        error: None,
    })
}

/// Why a pending offer shown to the Admin can no longer be accepted.
fn admin_note(problem: HandoverProblem, h: &AdminHandover) -> String {
    let why = match problem {
        HandoverProblem::Expired => format!("It expired on {}.", format_time(h.expires_at)),
        HandoverProblem::AdminChanged => format!(
            "It was made by {}, who is no longer the Admin.",
            h.from_email
        ),
        HandoverProblem::NoLongerManager => format!(
            "{} is no longer a Manager of the team, so it cannot be accepted.",
            h.to_email
        ),
        HandoverProblem::Accepted | HandoverProblem::Cancelled | HandoverProblem::Lapsed => {
            "It is closed.".into()
        }
    };
    format!("{why} Cancel it, or offer the role again.")
}

/// The team page again with a hand-over message (400: the offer was not made).
async fn team_page_with_error(
    state: &AppState,
    who: &SignedIn,
    status: StatusCode,
    message: String,
) -> WebResult<Response> {
    let mut page = team_page(state, who, None, String::new(), "member".into()).await?;
    if let Some(section) = page.handover.as_mut() {
        section.error = Some(message);
    }
    Ok(render(status, &page))
}

/// The Manager `to` the role may be offered to, or why not.
async fn offer_target(
    state: &AppState,
    scope: &Scope,
    who: &SignedIn,
    to: &str,
) -> WebResult<Result<User, String>> {
    if to.is_empty() || to.len() > 64 {
        return Ok(Err("Choose the Manager to hand the Admin role to.".into()));
    }
    let target = match state.store.find_member(scope, to).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => return Err(WebError::NotFound),
        Err(err) => return Err(err.into()),
    };
    let allowed = check_handover_offer(
        &who.user.id,
        MemberRef {
            user_id: &target.id,
            role: target.role.unwrap_or(Role::Member),
        },
    );
    Ok(allowed.map(|()| target).map_err(|Invalid(m)| m))
}

#[derive(Deserialize)]
pub(super) struct OfferInput {
    #[serde(default)]
    to: String,
}

#[derive(Template)]
#[template(path = "handover_confirm.html")]
struct ConfirmOfferPage {
    layout: Layout,
    to_id: String,
    to_name: String,
    to_email: String,
    expires: PageTime,
}

/// The confirm step: what handing over the role means, and the button that sends the offer.
pub(super) async fn confirm_offer(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::HandOverAdmin, SignedIn>,
    Query(input): Query<OfferInput>,
) -> WebResult<Response> {
    let target = match offer_target(&state, &scope, &who, input.to.trim()).await? {
        Ok(target) => target,
        Err(message) => {
            return team_page_with_error(&state, &who, StatusCode::BAD_REQUEST, message).await
        }
    };
    Ok(page(&ConfirmOfferPage {
        layout: Layout::signed_in("Hand over the Admin role", &who, "/team"),
        to_id: target.id,
        to_name: target.name,
        to_email: target.email,
        expires: PageTime::at(tessera_store::now_ms() + HANDOVER_TTL_MS),
    }))
}

/// Sends the offer: a single-use link mailed to the Manager, audited.
pub(super) async fn offer(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::HandOverAdmin, SignedIn>,
    ip: ClientIp,
    Form(input): Form<OfferInput>,
) -> WebResult<Response> {
    let target = match offer_target(&state, &scope, &who, input.to.trim()).await? {
        Ok(target) => target,
        Err(message) => {
            return team_page_with_error(&state, &who, StatusCode::BAD_REQUEST, message).await
        }
    };
    let slot =
        match ratelimit::take(&state, Limit::AdminHandoverOffersPerTeam, scope.team_id()).await? {
            Ok(slot) => slot,
            Err(wait) => {
                return team_page_with_error(
                    &state,
                    &who,
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "The Admin role was offered too often recently (at most {} an hour). Try again in {wait}.",
                        Limit::AdminHandoverOffersPerTeam.max()
                    ),
                )
                .await
            }
        };
    let team = state.store.get_team(&scope).await?;
    let to =
        Email::parse(&target.email).map_err(|Invalid(m)| WebError::Internal(anyhow::anyhow!(m)))?;
    let token = random_token();
    let now = tessera_store::now_ms();
    let expires_at = now + HANDOVER_TTL_MS;
    let link = state.config.link(&format!("/admin-handover/{token}"));
    let from = if who.user.name.is_empty() {
        who.user.email.clone()
    } else {
        who.user.name.clone()
    };
    let message = mail::admin_handover(&state, &to, &team.name, &from, &link, expires_at);
    let event = audit::event(
        &who,
        &ip,
        AuditAction::TeamAdminHandoverOffered,
        &target.email,
        format!(
            "Admin role offered to {}; the link works until {}",
            target.email,
            format_time(expires_at)
        ),
    );
    let digest = token_digest(&token);
    let offer = NewHandover {
        from_user_id: &who.user.id,
        to_user_id: &target.id,
        token_hash: &digest,
        expires_at,
        mail: &message,
        event: &event,
    };
    let refused = match state.store.offer_admin_handover(&scope, &offer, now).await {
        Ok(_) => None,
        Err(err) if err.is_unique(&Constraint::HandoverPending) => Some(
            "An offer of the Admin role is pending already; cancel it before offering the role again.",
        ),
        Err(StoreError::NotFound | StoreError::InvalidState(_)) => Some(
            "The team changed meanwhile (roles or members); check the team and try again.",
        ),
        Err(err) => return Err(err.into()),
    };
    if let Some(message) = refused {
        slot.release(&state).await?;
        return team_page_with_error(&state, &who, StatusCode::CONFLICT, message.into()).await;
    }
    state.wake(Wrote::Mail);
    Ok(redirect_with_flash(
        "/team",
        &format!(
            "The Admin role was offered to {}. They have until {} to accept it from the link in their email.",
            target.email,
            format_time(expires_at)
        ),
    ))
}

#[derive(Deserialize)]
pub(super) struct CancelInput {
    #[serde(default)]
    id: String,
}

/// Withdraws the pending offer: its link stops working at once.
pub(super) async fn cancel(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::HandOverAdmin, SignedIn>,
    ip: ClientIp,
    Form(input): Form<CancelInput>,
) -> WebResult<Response> {
    let pending = state.store.pending_admin_handover(&scope).await?;
    let Some(pending) = pending.filter(|h| h.id == input.id) else {
        return Ok(redirect_with_warning(
            "/team",
            "That offer of the Admin role is no longer pending.",
        ));
    };
    let event = audit::event(
        &who,
        &ip,
        AuditAction::TeamAdminHandoverCancelled,
        &pending.to_email,
        format!(
            "offer of the Admin role to {} withdrawn; its link no longer works",
            pending.to_email
        ),
    );
    match state
        .store
        .cancel_admin_handover(&scope, &pending.id, tessera_store::now_ms(), &event)
        .await
    {
        Ok(()) => Ok(redirect_with_flash(
            "/team",
            &format!(
                "The offer of the Admin role to {} was cancelled; its link no longer works.",
                pending.to_email
            ),
        )),
        Err(StoreError::NotFound) => Ok(redirect_with_warning(
            "/team",
            "That offer of the Admin role is no longer pending.",
        )),
        Err(err) => Err(err.into()),
    }
}

// ----- the link in the Manager's email --------------------------------------------------------

#[derive(Template)]
#[template(path = "handover_accept.html")]
struct AcceptPage {
    layout: Layout,
    token: String,
    heading: String,
    message: String,
    /// The accept button is shown (the offer is for this person and can be accepted).
    can_accept: bool,
    /// Signed in as someone else: the sign-out form is shown, returning to the link.
    other_account: bool,
}

/// Why the offer cannot be accepted, for the person who opened its link.
fn problem_page(problem: HandoverProblem, h: &AdminHandover) -> (StatusCode, &'static str, String) {
    let team = &h.team_name;
    let from = &h.from_email;
    match problem {
        HandoverProblem::Accepted => (
            StatusCode::GONE,
            "Offer already accepted",
            format!("This offer of the Admin role of {team} was accepted already; its link works once."),
        ),
        HandoverProblem::Cancelled => (
            StatusCode::GONE,
            "Offer withdrawn",
            format!("{from} withdrew this offer of the Admin role of {team}. Ask them to offer it again if this is a mistake."),
        ),
        HandoverProblem::Lapsed => (
            StatusCode::GONE,
            "Offer closed",
            format!("This offer of the Admin role of {team} was closed when a newer offer was made. Use the link in the most recent email."),
        ),
        HandoverProblem::Expired => (
            StatusCode::GONE,
            "Offer expired",
            format!("This offer of the Admin role of {team} expired on {}. Ask {from} to offer it again.", format_time(h.expires_at)),
        ),
        HandoverProblem::AdminChanged => (
            StatusCode::CONFLICT,
            "The Admin changed",
            format!("{from} is no longer the Admin of {team}, so their offer of the role no longer stands. Ask the team's current Admin."),
        ),
        HandoverProblem::NoLongerManager => (
            StatusCode::CONFLICT,
            "You are no longer a Manager",
            format!("The Admin role is handed only to a Manager of {team}, and you are no longer one, so this offer cannot be accepted. Ask {from} to make you a Manager and offer the role again."),
        ),
    }
}

async fn load(state: &AppState, token: &str) -> WebResult<Option<AdminHandover>> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    Ok(state
        .store
        .cross_tenant()
        .find_admin_handover(&token_digest(token))
        .await?)
}

/// The page saying why this person cannot accept the offer behind the link, or `None` when
/// it is theirs and can be accepted (`on_post` picks the status of the signed-in-as-someone-
/// else page: a refusal on submit, a question on opening).
fn refusal(
    who: &SignedIn,
    token: &str,
    handover: Option<&AdminHandover>,
    on_post: bool,
) -> Option<Response> {
    let page = |status, heading: &str, message: String, other_account| {
        render(
            status,
            &AcceptPage {
                layout: Layout::signed_in(heading, who, ""),
                token: token.to_owned(),
                heading: heading.to_owned(),
                message,
                can_accept: false,
                other_account,
            },
        )
    };
    let Some(h) = handover else {
        return Some(page(
            StatusCode::NOT_FOUND,
            "Offer not found",
            "This link is not valid. Check that you copied the whole link from the email.".into(),
            false,
        ));
    };
    if h.to_user_id != who.user.id {
        let status = if on_post {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        let message = format!(
            "You are signed in as {}; this offer of the Admin role of {} is for {}. Sign out and sign in as {} to answer it.",
            who.user.email, h.team_name, h.to_email, h.to_email
        );
        return Some(page(
            status,
            "This offer is for someone else",
            message,
            true,
        ));
    }
    let problem = problem(&h.facts, tessera_store::now_ms())?;
    let (status, heading, message) = problem_page(problem, h);
    Some(page(status, heading, message, false))
}

pub(super) async fn accept_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let handover = load(&state, &token).await?;
    if let Some(page) = refusal(&who, &token, handover.as_ref(), false) {
        return Ok(page);
    }
    let h = handover.ok_or(WebError::NotFound)?;
    Ok(page(&AcceptPage {
        layout: Layout::signed_in("Become the Admin", &who, ""),
        token,
        heading: format!("Become the Admin of {}?", h.team_name),
        message: format!(
            "{} ({}) offers you the Admin role of {}. As the Admin you can do everything in the team, including changing its payment information and handing the role on; {} becomes a Manager. The offer expires on {}.",
            h.from_name,
            h.from_email,
            h.team_name,
            h.from_email,
            format_time(h.expires_at)
        ),
        can_accept: true,
        other_account: false,
    }))
}

pub(super) async fn accept(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let handover = load(&state, &token).await?;
    if let Some(page) = refusal(&who, &token, handover.as_ref(), true) {
        return Ok(page);
    }
    let h = handover.ok_or(WebError::NotFound)?;
    let scope = who.authorize(Action::AcceptAdminHandover)?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::TeamAdminHandoverAccepted,
        &who.user.email,
        format!(
            "Admin role accepted: {} is now the Admin, {} a Manager",
            who.user.email, h.from_email
        ),
    );
    let accepted = state
        .store
        .accept_admin_handover(
            &scope,
            &token_digest(&token),
            &who.user.id,
            tessera_store::now_ms(),
            &event,
        )
        .await?;
    if !accepted {
        // Something changed between reading the offer and accepting it: explain what.
        let again = load(&state, &token).await?;
        return refusal(&who, &token, again.as_ref(), true).ok_or_else(|| {
            WebError::Conflict(
                "The team changed while you were accepting. Open the link again.".into(),
            )
        });
    }
    // Whether the team may go live follows its Admin's verified address: read it afresh.
    state.verified_teams.forget(scope.team_id());
    Ok(redirect_with_flash(
        "/team",
        &format!(
            "You are now the Admin of {}; {} is now a Manager.",
            h.team_name, h.from_email
        ),
    ))
}
