//! Sign up, log in, log out, the profile page, password resets ([`reset`]), two-factor
//! sign-in ([`two_factor`]) and email verification ([`verify`]).

mod reset;
pub mod two_factor;
pub mod verify;

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use tessera_core::AuditAction;

use crate::web::{Form, Query};
use serde::Deserialize;
use tessera_core::{
    clean_text,
    profile::{check_new_password, Profile, MAX_NAME},
    team::parse_team_name,
    Email, Invalid,
};
use tessera_store::{Constraint, NewAuditEvent, NewUser, StoreError, Team, User};

use crate::{
    audit,
    crypto::{hash_password, verify_password},
    ratelimit::{self, Limit},
    state::AppState,
    web::{
        format_time, notice, page, redirect_with_flash, render, session, ClientIp, CsrfToken,
        FieldErrors, Layout, SignedIn, Viewer, WebError, WebResult,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(signup_form).post(signup))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/profile", get(profile_form).post(update_profile))
        .route("/profile/password", post(change_password))
        .route("/profile/two-factor", get(two_factor::show))
        .route("/profile/two-factor/restart", post(two_factor::restart))
        .route("/profile/two-factor/enable", post(two_factor::enable))
        .route(
            "/profile/two-factor/recovery-codes",
            post(two_factor::regenerate_codes),
        )
        .route("/profile/two-factor/disable", post(two_factor::disable))
        .route(
            "/login/two-factor",
            get(two_factor::sign_in::form).post(two_factor::sign_in::submit),
        )
        .route(
            "/password/forgot",
            get(reset::forgot_form).post(reset::forgot),
        )
        .route(
            "/password/reset/{token}",
            get(reset::reset_form).post(reset::reset),
        )
        .route("/verify-email", post(verify::resend))
        .route(
            "/verify-email/{token}",
            get(verify::confirm_form).post(verify::confirm),
        )
}

/// Where a signed-in person lands: the page their role is for.
pub fn home_path(who: &SignedIn) -> &'static str {
    use tessera_core::{Action, Actor};
    match &who.actor {
        Actor::Staff { .. } => "/staff",
        _ if who.labeler_scope().is_some() => "/label",
        // Get started: the home of everyone who works with tasks.
        _ if who.may(Action::ViewTasks) => "/",
        _ if who.may(Action::ViewTeam) => "/team",
        _ => "/profile",
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Only same-origin paths are followed after login (no open redirects).
fn safe_next(next: Option<&str>) -> Option<String> {
    crate::web::local_path(next?)
}

// ----- sign up -------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct SignupInput {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    team_name: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    layout: Layout,
    error: Option<String>,
    errors: FieldErrors,
    email: String,
    name: String,
    company: String,
    team_name: String,
}

fn signup_page(
    csrf: &CsrfToken,
    input: &SignupInput,
    error: Option<String>,
    errors: FieldErrors,
) -> SignupPage {
    SignupPage {
        layout: Layout::anonymous("Sign up", csrf, None),
        error,
        errors,
        email: input.email.chars().take(254).collect(),
        name: input.name.chars().take(MAX_NAME).collect(),
        company: input.company.chars().take(MAX_NAME).collect(),
        team_name: input.team_name.chars().take(200).collect(),
    }
}

/// A sign-up's fields, each checked on its own so the form shows every problem at once.
fn parse_signup(input: &SignupInput) -> Result<(Email, Profile, String), FieldErrors> {
    let mut errors = FieldErrors::default();
    let email = errors.check("email", Email::parse(&input.email));
    errors.check("password", check_new_password(&input.password, None));
    let name = errors.check("name", clean_text("Name", &input.name, MAX_NAME, true));
    let company = errors.check(
        "company",
        clean_text("Company", &input.company, MAX_NAME, false),
    );
    let team_name = errors.check("team_name", parse_team_name(&input.team_name));
    match (email, name, company, team_name) {
        (Some(email), Some(name), Some(company), Some(team_name)) if errors.is_empty() => {
            let profile = Profile::parse(&name, &company, "", "").map_err(|problem| {
                let mut errors = FieldErrors::default();
                errors.check::<()>("name", Err(problem));
                errors
            })?;
            Ok((email, profile, team_name))
        }
        _ => Err(errors),
    }
}

async fn signup_form(Viewer(viewer): Viewer, csrf: CsrfToken) -> Response {
    if let Some(who) = viewer {
        return Redirect::to(home_path(&who)).into_response();
    }
    page(&signup_page(
        &csrf,
        &SignupInput::default(),
        None,
        FieldErrors::default(),
    ))
}

async fn signup(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    headers: HeaderMap,
    Form(input): Form<SignupInput>,
) -> WebResult<Response> {
    let again = |status, message: String| {
        render(
            status,
            &signup_page(&csrf, &input, Some(message), FieldErrors::default()),
        )
    };
    // Every attempt counts (not just successful ones), before any work is done for it.
    if let Err(wait) = ratelimit::take(&state, Limit::SignupPerIp, &ip.0).await? {
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many sign-ups from your network. Try again in {wait}."),
        ));
    }
    let (email, profile, team_name) = match parse_signup(&input) {
        Ok(v) => v,
        Err(errors) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &signup_page(&csrf, &input, Some(errors.summary()), errors),
            ))
        }
    };
    // An address that has an account is told so by email only, and before any password is
    // hashed: the page does not confirm that the address exists.
    if let Some(owner) = state.store.find_user_by_email(&email).await? {
        // Mail goes to the address as the account has it, the page repeats what was typed.
        let to = Email::parse(&owner.email).unwrap_or_else(|_| email.clone());
        return existing_account(&state, &csrf, &email, &to, &owner).await;
    }
    let password_hash = hash_password(input.password.clone()).await?;
    let event = NewAuditEvent {
        actor_user_id: None,
        actor: email.to_string(),
        action: AuditAction::TeamSignedUp,
        target: team_name.clone(),
        detail: format!("{email} signed up and created the team as its Admin"),
        ip: ip.0.clone(),
    };
    let new_user = NewUser {
        email: email.clone(),
        password_hash,
        profile,
    };
    let link = verify::fresh_link(&state);
    let mail =
        crate::mail::email_verification(&state, &email, &team_name, &link.url, link.expires_at);
    match state
        .store
        .sign_up_team(&team_name, &new_user, event, &link.with_mail(&mail))
        .await
    {
        Ok((team, user)) => {
            state.wake(crate::state::Wrote::Mail);
            welcome(&state, &team, &user, &ip, &headers).await
        }
        // Signed up at the same moment by another request.
        Err(err) if err.is_unique(&Constraint::UserEmail) => {
            match state.store.find_user_by_email(&email).await? {
                Some(owner) => existing_account(&state, &csrf, &email, &email, &owner).await,
                None => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}

/// A new team's first steps: its callback secrets, made in the scope of its Admin (who may
/// manage the team's keys), and the Admin signed in on the team page.
async fn welcome(
    state: &AppState,
    team: &Team,
    user: &User,
    ip: &ClientIp,
    headers: &HeaderMap,
) -> WebResult<Response> {
    let scope = crate::keys::service::new_team_scope(team.id.as_str(), user).ok_or_else(|| {
        WebError::Internal(anyhow::anyhow!(
            "a new team's Admin may not manage its keys"
        ))
    })?;
    crate::keys::service::provision_team(&state.store, &state.config.master_key, &scope).await?;
    // A new team starts in test mode: its first keys, tasks and callbacks are test data.
    state
        .store
        .set_dashboard_mode(&user.id, tessera_core::Mode::Test)
        .await?;
    let cookies = session::start(state, &user.id, &ip.0, &user_agent(headers)).await?;
    let mut response = redirect_with_flash(
        "/",
        &format!(
            "Welcome to Tessera! Your team \"{}\" is ready, and you are its Admin. Follow the steps below to send your first test task; to go live, open the link we emailed to {} to verify the address.",
            team.name, user.email
        ),
    );
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The answer to a sign-up with an address that already has an account: the owner gets an
/// email (at most one an hour, so this is no way to flood an inbox), the page says only
/// that the next step is in the inbox. When the account never verified the address, the
/// email carries a fresh verification link instead (the person may have forgotten they
/// signed up); the page is the same either way.
async fn existing_account(
    state: &AppState,
    csrf: &CsrfToken,
    email: &Email,
    to: &Email,
    account: &User,
) -> WebResult<Response> {
    if ratelimit::take(state, Limit::SignupNoticePerEmail, to.normalized())
        .await?
        .is_ok()
    {
        if account.owns_address() {
            state
                .store
                .enqueue_mail(&crate::mail::signup_attempt(state, to))
                .await?;
        } else {
            let team_name = match &account.team_id {
                Some(team_id) => state.store.cross_tenant().get_team(team_id).await?.name,
                None => String::new(),
            };
            let link = verify::fresh_link(state);
            let mail = crate::mail::signup_attempt_unverified(
                state,
                to,
                &team_name,
                &link.url,
                link.expires_at,
            );
            state
                .store
                .resend_verification(&account.id, &link.with_mail(&mail))
                .await?;
        }
        state.wake(crate::state::Wrote::Mail);
    }
    Ok(notice(
        csrf,
        StatusCode::OK,
        "Check your email",
        format!(
            "We sent the next step to {email}. If you already have an account with this address, the message tells you how to sign in."
        ),
    ))
}

// ----- log in / out --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct LoginInput {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    error: Option<String>,
    email: String,
    next: String,
}

async fn login_form(
    Viewer(viewer): Viewer,
    csrf: CsrfToken,
    Query(q): Query<LoginQuery>,
) -> Response {
    if let Some(who) = viewer {
        return Redirect::to(home_path(&who)).into_response();
    }
    page(&LoginPage {
        layout: Layout::anonymous("Log in", &csrf, None),
        error: None,
        email: String::new(),
        next: safe_next(q.next.as_deref()).unwrap_or_default(),
    })
}

async fn login(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    headers: HeaderMap,
    Form(input): Form<LoginInput>,
) -> WebResult<Response> {
    let next = safe_next(input.next.as_deref());
    let again = |status, message: String| {
        render(
            status,
            &LoginPage {
                layout: Layout::anonymous("Log in", &csrf, None),
                error: Some(message),
                email: input.email.clone(),
                next: next.clone().unwrap_or_default(),
            },
        )
    };
    let email = match Email::parse(&input.email) {
        Ok(email) => email,
        Err(Invalid(message)) => return Ok(again(StatusCode::BAD_REQUEST, message)),
    };
    if input.password.len() > tessera_core::profile::MAX_PASSWORD * 4 {
        return Ok(again(
            StatusCode::BAD_REQUEST,
            "Email or password is incorrect.".into(),
        ));
    }
    let LoginSlots {
        account_key,
        account_slot,
        ip_slot,
    } = match take_login_slots(&state, &email, &ip).await? {
        Ok(slots) => slots,
        Err(message) => return Ok(again(StatusCode::TOO_MANY_REQUESTS, message)),
    };
    let found = state.store.user_credentials(&email).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let valid = verify_password(input.password.clone(), hash).await?;
    let Some(user) = user.filter(|_| valid) else {
        return Ok(again(
            StatusCode::UNAUTHORIZED,
            failed_login_message(&account_slot),
        ));
    };
    ip_slot.release(&state).await?;
    if state.store.has_two_factor(&user.id).await? {
        // The password was right, so this attempt does not count; earlier failures still do
        // until the second factor is right too (a known password buys no extra code guesses).
        account_slot.release(&state).await?;
        return two_factor::sign_in::begin(&state, &user, next, &ip).await;
    }
    ratelimit::clear(&state, Limit::LoginPerAccount, &account_key).await?;
    let cookies = session::start(&state, &user.id, &ip.0, &user_agent(&headers)).await?;
    let target = next.unwrap_or_else(|| "/".to_owned());
    let mut response = Redirect::to(&target).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The rate-limit slots a sign-in attempt holds while its password is checked.
struct LoginSlots {
    /// The (account, network) key of the per-account limit.
    account_key: String,
    account_slot: ratelimit::Slot,
    ip_slot: ratelimit::Slot,
}

/// Takes a sign-in attempt's slots before the password is checked, in one step per limit,
/// so parallel guesses cannot all slip under the limit; a success gives its slots back.
/// Failures count per (account, network) and per network: a stranger elsewhere cannot lock
/// the owner out. `Err` carries what the page says when a limit is reached.
async fn take_login_slots(
    state: &AppState,
    email: &Email,
    ip: &ClientIp,
) -> WebResult<Result<LoginSlots, String>> {
    let account_key = ratelimit::account_at(email.normalized(), &ip.0);
    let account_slot = match ratelimit::take(state, Limit::LoginPerAccount, &account_key).await? {
        Ok(slot) => slot,
        Err(wait) => {
            return Ok(Err(format!("Too many failed sign-in attempts for this account from your network. Try again in {wait}.")))
        }
    };
    let ip_slot = match ratelimit::take(state, Limit::LoginPerIp, &ip.0).await? {
        Ok(slot) => slot,
        Err(wait) => {
            account_slot.release(state).await?;
            return Ok(Err(format!(
                "Too many failed sign-in attempts from your network. Try again in {wait}."
            )));
        }
    };
    Ok(Ok(LoginSlots {
        account_key,
        account_slot,
        ip_slot,
    }))
}

/// What a wrong email or password is told: with a warning when the next failure locks the
/// account's sign-in from this network.
fn failed_login_message(account_slot: &ratelimit::Slot) -> String {
    let left = Limit::LoginPerAccount.max() - account_slot.used();
    if left == 1 {
        format!(
            "Email or password is incorrect. One more failed attempt locks sign-in to this account from your network for {}.",
            crate::web::humanize_ms(Limit::LoginPerAccount.window_ms())
        )
    } else {
        "Email or password is incorrect.".to_owned()
    }
}

#[derive(Deserialize, Default)]
struct LogoutInput {
    next: Option<String>,
}

/// Ends the session; `next` (a same-origin path only) is where to go afterwards, e.g. back
/// to an invitation that asked to sign out first.
async fn logout(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Form(input): Form<LogoutInput>,
) -> WebResult<Response> {
    if let Some(who) = viewer {
        state.store.delete_session(&who.session_hash).await?;
    }
    let target = safe_next(input.next.as_deref()).unwrap_or_else(|| "/login".to_owned());
    let mut response = redirect_with_flash(&target, "You have been logged out.");
    let (name, value) = session::clear_cookie(&state);
    response.headers_mut().append(name, value);
    Ok(response)
}

// ----- profile -------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ProfileInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    job_title: String,
    #[serde(default)]
    phone: String,
}

#[derive(Deserialize, Default)]
struct PasswordInput {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    layout: Layout,
    email: String,
    team: String,
    role: String,
    member_since: String,
    name: String,
    company: String,
    job_title: String,
    phone: String,
    profile_error: Option<String>,
    password_error: Option<String>,
    two_factor_enabled: bool,
}

fn profile_page(
    who: &SignedIn,
    input: ProfileInput,
    profile_error: Option<String>,
    password_error: Option<String>,
) -> ProfilePage {
    ProfilePage {
        layout: Layout::signed_in("Profile", who, "/profile"),
        email: who.user.email.clone(),
        team: who.team_name.clone().unwrap_or_else(|| {
            if who.user.is_staff {
                "Platform staff".into()
            } else {
                "No team — contact support to join one".into()
            }
        }),
        role: who
            .user
            .role
            .map(|r| r.label().to_owned())
            .unwrap_or_default(),
        member_since: format_time(who.user.created_at),
        name: input.name,
        company: input.company,
        job_title: input.job_title,
        phone: input.phone,
        profile_error,
        password_error,
        two_factor_enabled: who.two_factor_enabled,
    }
}

fn current_profile(who: &SignedIn) -> ProfileInput {
    ProfileInput {
        name: who.user.name.clone(),
        company: who.user.company.clone(),
        job_title: who.user.job_title.clone(),
        phone: who.user.phone.clone(),
    }
}

async fn profile_form(who: SignedIn) -> Response {
    let input = current_profile(&who);
    page(&profile_page(&who, input, None, None))
}

async fn update_profile(
    State(state): State<AppState>,
    who: SignedIn,
    Form(input): Form<ProfileInput>,
) -> WebResult<Response> {
    match Profile::parse(&input.name, &input.company, &input.job_title, &input.phone) {
        Ok(profile) => {
            state.store.update_profile(&who.user.id, &profile).await?;
            Ok(redirect_with_flash(
                "/profile",
                "Your profile has been saved.",
            ))
        }
        Err(Invalid(message)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &profile_page(&who, input, Some(message), None),
        )),
    }
}

async fn change_password(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<PasswordInput>,
) -> WebResult<Response> {
    let again = |message: String| {
        render(
            StatusCode::BAD_REQUEST,
            &profile_page(&who, current_profile(&who), None, Some(message)),
        )
    };
    if input.current_password.len() > tessera_core::profile::MAX_PASSWORD * 4 {
        return Ok(again("Your current password is incorrect.".into()));
    }
    // A stolen session must not become a way to guess the password.
    let slot = match ratelimit::take(&state, Limit::PasswordCheckPerUser, &who.user.id).await? {
        Ok(slot) => slot,
        Err(wait) => {
            return Ok(render(
                StatusCode::TOO_MANY_REQUESTS,
                &profile_page(
                    &who,
                    current_profile(&who),
                    None,
                    Some(format!(
                        "Too many wrong current passwords. Try again in {wait}."
                    )),
                ),
            ))
        }
    };
    let stored = state.store.password_hash(&who.user.id).await?;
    if !verify_password(input.current_password.clone(), Some(stored)).await? {
        return Ok(again("Your current password is incorrect.".into()));
    }
    slot.release(&state).await?;
    if let Err(Invalid(message)) =
        check_new_password(&input.new_password, Some(&input.confirm_password))
    {
        return Ok(again(message));
    }
    let hash = hash_password(input.new_password.clone()).await?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::UserPasswordChanged,
        &who.user.email,
        "password changed; other sessions signed out".into(),
    );
    match state
        .store
        .update_password(&who.user.id, &hash, &who.session_hash, event)
        .await
    {
        Ok(()) => Ok(redirect_with_flash(
            "/profile",
            "Your password has been changed. Other sessions were signed out.",
        )),
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/team")).as_deref(), Some("/team"));
        assert_eq!(safe_next(Some("//evil.example")), None);
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/\\evil")), None);
        assert_eq!(safe_next(Some("/\t/evil.example")), None);
        assert_eq!(safe_next(None), None);
    }
}
