//! Inviting teammates (invite, resend, revoke) and accepting an invitation from its link.

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};
use tessera_core::AuditAction;

use crate::web::{Form, Path};
use serde::Deserialize;
use tessera_core::{
    email::parse_list,
    profile::{check_new_password, Profile},
    Action, Email, Invalid, InvitableRole,
};
use tessera_store::{
    AcceptOutcome, Constraint, InvitationLink, InviteOutcome, NewAuditEvent, NewInvitation,
    NewLink, NewUser, StoreError,
};

use crate::{
    audit,
    crypto::{hash_password, random_token, token_digest, verify_password},
    mail,
    ratelimit::{self, Limit},
    state::AppState,
    team::team_page,
    web::{
        format_time, humanize_ms, page, redirect_with_flash, redirect_with_warning, render,
        session, ClientIp, CsrfToken, Layout, SignedIn, Viewer, WebError, WebResult,
    },
};

/// Most addresses one invite form may carry.
pub const MAX_INVITES_PER_REQUEST: usize = 20;
/// Invitation tokens are 43 characters; anything much longer is not one of ours.
const MAX_TOKEN_LEN: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/team/invitations", post(invite))
        .route("/team/invitations/{id}/resend", post(resend))
        .route("/team/invitations/{id}/revoke", post(revoke))
        .route("/invite/{token}", get(accept_form).post(accept))
}

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
    role: tessera_core::Role,
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

/// The flash to show when an invitation acted on is no longer pending (another tab or
/// person got there first), instead of a bare 404.
fn no_longer_pending(invitation: &tessera_store::Invitation) -> Option<Response> {
    (invitation.status != "pending").then(|| {
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
struct InviteInput {
    #[serde(default)]
    emails: String,
    #[serde(default)]
    role: String,
}

async fn invite(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<InviteInput>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::InviteMember)?;
    let team_id = scope.team_id().to_owned();
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
    let parsed = parse_list(&input.emails, MAX_INVITES_PER_REQUEST)
        .and_then(|emails| Ok((emails, input.role.parse::<InvitableRole>()?)));
    let (emails, role) = match parsed {
        Ok(v) => v,
        Err(Invalid(message)) => return again(message).await,
    };
    // One unit per address, taken together before anything is sent (parallel forms cannot
    // pass the budget); units of addresses that get no mail are given back.
    let mut slots = match ratelimit::take_many(&state, Limit::InvitesPerTeam, &team_id, emails.len()).await? {
        Ok(slots) => slots,
        Err(wait) => {
            return again(format!(
                "Your team has sent too many invitations recently (at most {} an hour). Try again in {wait}.",
                Limit::InvitesPerTeam.max()
            ))
            .await
        }
    };
    let team = state.store.get_team(&team_id).await?;
    let mut tally = InviteTally::default();
    for email in emails {
        if let Some(existing) = state.store.find_user_by_email(&email).await? {
            if existing.team_id.as_deref() == Some(team_id.as_str()) {
                tally.already.push(email.to_string());
                continue;
            }
        }
        let link = fresh_link(&state, &team.name, &who.user.name, &email, role.role());
        let new = NewInvitation {
            team_id: team_id.clone(),
            email: email.clone(),
            role: role.role(),
            invited_by: who.user.id.clone(),
            token_hash: link.token_hash,
            expires_at: link.expires_at,
            min_resend_interval_ms: resend_interval_ms(&state),
            mail: link.mail,
            event: audit::event(
                &who,
                &ip,
                AuditAction::InvitationSent,
                email.as_str(),
                format!("invited as {}", role.role().label()),
            ),
        };
        if tally.record(&email, role.role(), state.store.invite(&new).await)? {
            slots.pop();
        }
    }
    for unused in slots {
        unused.release(&state).await?;
    }
    state.wake(crate::state::Wrote::Mail);
    Ok(tally.summary())
}

/// What one invitation form did, address by address, for the message shown after it.
#[derive(Default)]
struct InviteTally {
    sent: Vec<String>,
    already: Vec<String>,
    too_soon: Vec<String>,
    /// Pending invitations asked again with another role: "… invited again as Manager (was Member)".
    role_changed: Vec<String>,
}

impl InviteTally {
    /// Notes the store's answer for `email`; `Ok(true)` when a mail was queued (its rate-limit
    /// unit is used).
    fn record(
        &mut self,
        email: &Email,
        role: tessera_core::Role,
        outcome: Result<InviteOutcome, StoreError>,
    ) -> WebResult<bool> {
        match outcome {
            Ok(InviteOutcome::Refreshed { previous_role, .. }) if previous_role != role => {
                self.role_changed.push(format!(
                    "{email} invited again as {} (was {}).",
                    role.label(),
                    previous_role.label()
                ));
                Ok(true)
            }
            Ok(InviteOutcome::Created(_) | InviteOutcome::Refreshed { .. }) => {
                self.sent.push(email.to_string());
                Ok(true)
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
                Ok(false)
            }
            Err(StoreError::TooSoon { retry_in_ms }) => {
                self.too_soon.push(format!(
                    "{email} (resend possible in {})",
                    humanize_ms(retry_in_ms)
                ));
                Ok(false)
            }
            Err(err) if err.is_unique(&Constraint::InvitationPending) => {
                self.already.push(email.to_string());
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Back to the team page with what was done; a warning when nothing was sent and no role
    /// changed (what was asked was not done).
    fn summary(self) -> Response {
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
        if self.sent.is_empty() && self.role_changed.is_empty() {
            return redirect_with_warning("/team", message.trim());
        }
        redirect_with_flash("/team", message.trim())
    }
}

async fn resend(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ResendInvitation)?;
    let team_id = scope.team_id();
    let invitation = state.store.get_invitation(team_id, &id).await?;
    if let Some(page) = no_longer_pending(&invitation) {
        return Ok(page);
    }
    let slot = match ratelimit::take(&state, Limit::InvitesPerTeam, team_id).await? {
        Ok(slot) => slot,
        Err(wait) => {
            return Err(WebError::TooManyRequests(format!(
                "Your team has sent too many invitations recently. Try again in {wait}."
            )))
        }
    };
    let team = state.store.get_team(team_id).await?;
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
            team_id,
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

async fn revoke(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::RevokeInvitation)?;
    let team_id = scope.team_id();
    let invitation = state.store.get_invitation(team_id, &id).await?;
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
    state.store.revoke_invitation(team_id, &id, &event).await?;
    Ok(redirect_with_flash(
        "/team",
        &format!("The invitation to {} was removed.", invitation.email),
    ))
}

// ----- accepting -------------------------------------------------------------------------

use crate::web::notice;

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
    let page = if existing.team_id.as_deref() == Some(link.invitation.team_id.as_str()) {
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
    expires: String,
    existing_account: bool,
    error: Option<String>,
    name: String,
    company: String,
    job_title: String,
    phone: String,
}

#[derive(Deserialize, Default)]
struct AcceptInput {
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
        expires: format_time(link.link_expires_at),
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
        .find_invitation_link(&token_digest(token))
        .await?)
}

async fn accept_form(
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

async fn accept(
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
    let result = match join(
        &state,
        invitee,
        &input,
        &token,
        &link.invitation.email,
        event,
    )
    .await?
    {
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
    email: &str,
    event: NewAuditEvent,
) -> WebResult<Result<Result<tessera_store::User, StoreError>, String>> {
    let digest = token_digest(token);
    match invitee {
        Invitee::New => {
            let parsed =
                Profile::parse(&input.name, &input.company, &input.job_title, &input.phone)
                    .and_then(|p| {
                        check_new_password(&input.password, Some(&input.confirm_password))
                            .map(|()| p)
                    });
            let profile = match parsed {
                Ok(p) => p,
                Err(Invalid(message)) => return Ok(Err(message)),
            };
            let new_user = NewUser {
                email: Email::parse(email)
                    .map_err(|Invalid(m)| WebError::Internal(anyhow::anyhow!(m)))?,
                password_hash: hash_password(input.password.clone()).await?,
                profile,
            };
            Ok(Ok(state
                .store
                .accept_invitation(&digest, Some(&new_user), None, event)
                .await))
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
                .accept_invitation(&digest, None, Some(&user_id), event)
                .await))
        }
    }
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
