//! Accepting an invitation from the link in its email: the accept page, joining with a new
//! account or a teamless one, and the pages for links that cannot be used. The link's token
//! is all the request has, so the link is found through [`tessera_store::CrossTenant`].

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;
use tessera_core::{
    profile::{check_new_password, Profile},
    AuditAction, Email, Invalid,
};
use tessera_store::{
    AcceptOutcome, Constraint, InvitationLink, NewAuditEvent, NewUser, StoreError, SupersededSignup,
};

use crate::{
    crypto::{hash_password, token_digest, verify_password},
    state::AppState,
    web::{
        format_time, notice, page, redirect_with_flash, render, session, ClientIp, CsrfToken, Form,
        Layout, Path, SignedIn, Viewer, WebError, WebResult,
    },
};

/// Invitation tokens are 43 characters; anything much longer is not one of ours.
const MAX_TOKEN_LEN: usize = 100;

/// The clear page for a link that cannot be used, or `None` when it can.
fn link_problem(csrf: &CsrfToken, link: Option<&InvitationLink>) -> Option<Response> {
    let Some(link) = link else {
        return Some(notice(csrf, StatusCode::NOT_FOUND, "Invitation not found",
            "This invitation link is not valid. Check that you copied the whole link from the email, or ask your team for a new invitation.".into()));
    };
    let team = &link.team_name;
    let (heading, message) = match link.state(tessera_store::now_ms()) {
        AcceptOutcome::Valid => return None,
        AcceptOutcome::Used => ("Invitation already used", format!(
            "This invitation to {team} has already been accepted. Log in with the account that accepted it.")),
        AcceptOutcome::Revoked => ("Invitation revoked", format!(
            "This invitation to {team} was withdrawn by the team. Ask them to invite you again if this is a mistake.")),
        AcceptOutcome::Superseded => ("Link replaced", format!(
            "A newer invitation to {team} was sent to this address, so this link no longer works. Use the link in the most recent email.")),
        AcceptOutcome::Expired => ("Invitation expired", format!(
            "This invitation to {team} expired on {}. Ask a Manager of {team} to resend it.", format_time(link.link_expires_at))),
    };
    Some(notice(csrf, StatusCode::GONE, heading, message))
}

/// How the invitee relates to existing accounts.
enum Invitee {
    /// No account: the accept form creates one.
    New,
    /// An account in no team: joins after confirming its password.
    Teamless(String),
    /// An unverified sign-up holds the address: the link proves the address is the
    /// invitee's, so the accept form creates their account and the sign-up is closed.
    Supersedes(tessera_store::User),
}

/// Decides who the invitee is, or returns the page explaining why they cannot accept.
async fn invitee(
    state: &AppState,
    csrf: &CsrfToken,
    link: &InvitationLink,
) -> WebResult<Result<Invitee, Response>> {
    let email = Email::parse(&link.invitation.email)
        .map_err(|Invalid(m)| WebError::Internal(anyhow::anyhow!(m)))?;
    let Some(existing) = state.store.find_user_by_email(&email).await? else {
        return Ok(Ok(Invitee::New));
    };
    let same_team = existing.team_id.as_deref() == Some(link.invitation.team_id.as_str());
    if !same_team && !existing.owns_address() {
        return Ok(Ok(Invitee::Supersedes(existing)));
    }
    let page = if same_team {
        notice(
            csrf,
            StatusCode::CONFLICT,
            "Already a member",
            format!(
                "{} is already a member of {}. Log in to continue.",
                existing.email, link.team_name
            ),
        )
    } else if existing.team_id.is_some() || existing.is_staff {
        notice(
            csrf,
            StatusCode::CONFLICT,
            "Address belongs to another team",
            format!(
                "The address {} belongs to another team — contact support to move it to {}.",
                existing.email, link.team_name
            ),
        )
    } else {
        return Ok(Ok(Invitee::Teamless(existing.id)));
    };
    Ok(Err(page))
}

#[derive(Template)]
#[template(path = "accept.html")]
struct AcceptPage {
    layout: Layout,
    token: String,
    team_name: String,
    email: String,
    role_label: String,
    expires: PageTime,
    existing_account: bool,
    error: Option<String>,
    name: String,
    company: String,
    job_title: String,
    phone: String,
}

#[derive(Deserialize, Default)]
pub(super) struct AcceptInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    job_title: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm_password: String,
}

fn accept_page(
    csrf: &CsrfToken,
    token: &str,
    link: &InvitationLink,
    existing: bool,
    input: &AcceptInput,
    error: Option<String>,
) -> AcceptPage {
    AcceptPage {
        layout: Layout::anonymous(format!("Join {}", link.team_name), csrf, None),
        token: token.to_owned(),
        team_name: link.team_name.clone(),
        email: link.invitation.email.clone(),
        role_label: link.invitation.role.label().to_owned(),
        expires: PageTime::at(link.link_expires_at),
        existing_account: existing,
        error,
        name: input.name.clone(),
        company: input.company.clone(),
        job_title: input.job_title.clone(),
        phone: input.phone.clone(),
    }
}

#[derive(Template)]
#[template(path = "accept_other.html")]
struct SignedInAsOtherPage {
    layout: Layout,
    token: String,
    team_name: String,
    email: String,
    signed_in_as: String,
}

/// The page for a browser signed in as someone other than the invitee, or `None` when nobody
/// or the invitee is signed in. Accepting would silently replace the session with the
/// invitee's, so the person signs out first (the sign-out form returns to this link).
fn signed_in_as_other(
    viewer: Option<&SignedIn>,
    token: &str,
    link: &InvitationLink,
    status: StatusCode,
) -> Option<Response> {
    let who = viewer?;
    let invited = Email::parse(&link.invitation.email).ok();
    let same = Email::parse(&who.user.email)
        .ok()
        .zip(invited)
        .is_some_and(|(mine, invited)| mine.normalized() == invited.normalized());
    if same {
        return None;
    }
    Some(render(
        status,
        &SignedInAsOtherPage {
            layout: Layout::signed_in(format!("Join {}", link.team_name), who, ""),
            token: token.to_owned(),
            team_name: link.team_name.clone(),
            email: link.invitation.email.clone(),
            signed_in_as: who.user.email.clone(),
        },
    ))
}

async fn load_link(state: &AppState, token: &str) -> WebResult<Option<InvitationLink>> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(None);
    }
    Ok(state
        .store
        .cross_tenant()
        .find_invitation_link(&token_digest(token))
        .await?)
}

pub(super) async fn accept_form(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let link = load_link(&state, &token).await?;
    if let Some(problem) = link_problem(&csrf, link.as_ref()) {
        return Ok(problem);
    }
    let link = link.ok_or(WebError::NotFound)?;
    if let Some(page) = signed_in_as_other(viewer.as_ref(), &token, &link, StatusCode::OK) {
        return Ok(page);
    }
    match invitee(&state, &csrf, &link).await? {
        Err(page) => Ok(page),
        Ok(who) => Ok(page(&accept_page(
            &csrf,
            &token,
            &link,
            matches!(who, Invitee::Teamless(_)),
            &AcceptInput::default(),
            None,
        ))),
    }
}

pub(super) async fn accept(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    csrf: CsrfToken,
    ip: ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(input): Form<AcceptInput>,
) -> WebResult<Response> {
    let link = load_link(&state, &token).await?;
    if let Some(problem) = link_problem(&csrf, link.as_ref()) {
        return Ok(problem);
    }
    let link = link.ok_or(WebError::NotFound)?;
    // Refused, not a silent switch of accounts: nothing changes and the session stays.
    if let Some(page) = signed_in_as_other(viewer.as_ref(), &token, &link, StatusCode::CONFLICT) {
        return Ok(page);
    }
    let invitee = match invitee(&state, &csrf, &link).await? {
        Err(page) => return Ok(page),
        Ok(invitee) => invitee,
    };
    let existing = matches!(invitee, Invitee::Teamless(_));
    let again = |message: String| {
        render(
            StatusCode::BAD_REQUEST,
            &accept_page(&csrf, &token, &link, existing, &input, Some(message)),
        )
    };
    let event = NewAuditEvent {
        actor_user_id: None,
        actor: link.invitation.email.clone(),
        action: AuditAction::InvitationAccepted,
        target: link.invitation.email.clone(),
        detail: format!("joined as {}", link.invitation.role.label()),
        ip: ip.0.clone(),
    };
    let result = match join(&state, invitee, &input, &token, &link, event, &ip).await? {
        Ok(result) => result,
        Err(message) => return Ok(again(message)),
    };
    let user = match result {
        Ok(user) => user,
        Err(err) => return accept_failed(&state, &csrf, &token, &link, err).await,
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let cookies = session::start(&state, &user.id, &ip.0, user_agent).await?;
    // The page the role is for, as `home_path` picks it: a labeler works the labeling queue.
    let landing = if link.invitation.role == tessera_core::Role::Labeler {
        "/label"
    } else {
        "/team"
    };
    let mut response = redirect_with_flash(
        landing,
        &format!(
            "Welcome to {}! You joined as {}.",
            link.team_name,
            link.invitation.role.label()
        ),
    );
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Accepts the invitation for the invitee: a new account from the form, or the teamless
/// account whose password the form proves. `Err(message)`: the form is shown again.
async fn join(
    state: &AppState,
    invitee: Invitee,
    input: &AcceptInput,
    token: &str,
    link: &InvitationLink,
    event: NewAuditEvent,
    ip: &ClientIp,
) -> WebResult<Result<Result<tessera_store::User, StoreError>, String>> {
    let digest = token_digest(token);
    let email = link.invitation.email.as_str();
    match invitee {
        Invitee::New => {
            let new_user = match new_account(input, email).await? {
                Ok(new_user) => new_user,
                Err(message) => return Ok(Err(message)),
            };
            Ok(Ok(state
                .store
                .cross_tenant()
                .accept_invitation(&digest, Some(&new_user), None, event)
                .await))
        }
        Invitee::Supersedes(signup) => {
            let new_user = match new_account(input, email).await? {
                Ok(new_user) => new_user,
                Err(message) => return Ok(Err(message)),
            };
            let superseded = superseded_signup(state, &signup, link, ip).await?;
            let accepted = state
                .store
                .cross_tenant()
                .accept_invitation_superseding(&digest, &new_user, &superseded, event)
                .await;
            Ok(Ok(accepted.map(|(user, closed)| {
                state.verified_teams.forget(&closed.team_id);
                for key_id in closed.revoked_key_ids {
                    state
                        .api_keys
                        .evict_key(&tessera_core::ids::ApiKeyId::from_stored(key_id));
                }
                user
            })))
        }
        Invitee::Teamless(user_id) => {
            let wrong = || Ok(Err("That password is not correct for this account.".into()));
            if input.password.len() > tessera_core::profile::MAX_PASSWORD * 4 {
                return wrong();
            }
            let hash = state.store.password_hash(&user_id).await?;
            if !verify_password(input.password.clone(), Some(hash)).await? {
                return wrong();
            }
            Ok(Ok(state
                .store
                .cross_tenant()
                .accept_invitation(&digest, None, Some(&user_id), event)
                .await))
        }
    }
}

/// The invitee's new account from the accept form, or the message to show with the form.
async fn new_account(input: &AcceptInput, email: &str) -> WebResult<Result<NewUser, String>> {
    let parsed = Profile::parse(&input.name, &input.company, &input.job_title, &input.phone)
        .and_then(|p| {
            check_new_password(&input.password, Some(&input.confirm_password)).map(|()| p)
        });
    let profile = match parsed {
        Ok(p) => p,
        Err(Invalid(message)) => return Ok(Err(message)),
    };
    Ok(Ok(NewUser {
        email: Email::parse(email).map_err(|Invalid(m)| WebError::Internal(anyhow::anyhow!(m)))?,
        password_hash: hash_password(input.password.clone()).await?,
        profile,
    }))
}

/// What closing the unverified sign-up `signup` records, in its team's log and the inviting
/// team's.
async fn superseded_signup(
    state: &AppState,
    signup: &tessera_store::User,
    link: &InvitationLink,
    ip: &ClientIp,
) -> WebResult<SupersededSignup> {
    let email = &link.invitation.email;
    let closed_team = match &signup.team_id {
        Some(team_id) => state.store.cross_tenant().get_team(team_id).await?.name,
        None => String::new(),
    };
    let event = |action, target: &str, detail: String| NewAuditEvent {
        actor_user_id: None,
        actor: email.clone(),
        action,
        target: target.to_owned(),
        detail,
        ip: ip.0.clone(),
    };
    Ok(SupersededSignup {
        user_id: signup.id.clone(),
        closed_team_events: vec![
            event(
                AuditAction::UserSignupSuperseded,
                email,
                format!(
                    "{email} was never verified and an invitation to it from {} was accepted: the address now belongs to that account; this account was closed, its sessions ended",
                    link.team_name
                ),
            ),
            event(
                AuditAction::TeamClosed,
                &closed_team,
                "closed with its only account, whose address was proven to be someone else's; its API keys were revoked and pending callbacks dropped".into(),
            ),
        ],
        inviting_team_event: event(
            AuditAction::UserSignupSuperseded,
            email,
            format!(
                "{email} had an unverified sign-up (team \"{closed_team}\"); accepting this invitation proved the address, and that sign-up was closed"
            ),
        ),
    })
}

/// The page for an acceptance the store refused: the link changed meanwhile, or the address
/// belongs to another team.
async fn accept_failed(
    state: &AppState,
    csrf: &CsrfToken,
    token: &str,
    link: &InvitationLink,
    err: StoreError,
) -> WebResult<Response> {
    match err {
        StoreError::NotFound => {
            // Another request used, revoked or replaced the link meanwhile: explain which.
            let link = load_link(state, token).await?;
            Ok(link_problem(csrf, link.as_ref()).unwrap_or_else(|| {
                notice(csrf, StatusCode::CONFLICT, "Please try again", "The invitation changed while you were filling in the form. Open the link again.".into())
            }))
        }
        err if err.is_unique(&Constraint::UserEmail) => Ok(notice(
            csrf,
            StatusCode::CONFLICT,
            "Address belongs to another team",
            format!(
                "The address {} belongs to another team — contact support to move it to {}.",
                link.invitation.email, link.team_name
            ),
        )),
        err => Err(err.into()),
    }
}
