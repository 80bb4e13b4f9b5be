//! "Forgot your password?": a single-use link valid one hour, mailed to the account's
//! address. The request page answers the same whether or not the address has an account, and
//! is rate-limited per address and per IP; using the link sets the new password and signs out
//! every session of the account, audited.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_core::{profile::check_new_password, AuditAction, Email, Invalid};
use tessera_store::{NewAuditEvent, NewPasswordReset};

use crate::{
    crypto::{hash_password, random_token, token_digest},
    ratelimit::{self, Limit},
    state::AppState,
    web::{page, redirect_with_flash, render, ClientIp, CsrfToken, Form, Layout, Path, WebResult},
};

/// How long a reset link works.
const RESET_TTL_MS: i64 = 60 * 60 * 1000;

#[derive(Template)]
#[template(path = "password_forgot.html")]
struct ForgotPage {
    layout: Layout,
    email: String,
    error: Option<String>,
    /// The address the same-for-everyone answer names, once a request was made.
    sent_to: Option<String>,
}

pub(super) async fn forgot_form(csrf: CsrfToken) -> Response {
    page(&ForgotPage {
        layout: Layout::anonymous("Reset your password", &csrf, None),
        email: String::new(),
        error: None,
        sent_to: None,
    })
}

#[derive(Deserialize, Default)]
pub(super) struct ForgotInput {
    #[serde(default)]
    email: String,
}

pub(super) async fn forgot(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    Form(input): Form<ForgotInput>,
) -> WebResult<Response> {
    let again = |status, error: String| {
        render(
            status,
            &ForgotPage {
                layout: Layout::anonymous("Reset your password", &csrf, None),
                email: input.email.chars().take(254).collect(),
                error: Some(error),
                sent_to: None,
            },
        )
    };
    let email = match Email::parse(&input.email) {
        Ok(email) => email,
        Err(Invalid(message)) => return Ok(again(StatusCode::BAD_REQUEST, message)),
    };
    if let Err(wait) = ratelimit::take(&state, Limit::PasswordResetPerIp, &ip.0).await? {
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many reset requests from your network. Try again in {wait}."),
        ));
    }
    // The answer below is the same whether or not the address has an account, and whether or
    // not this address's own budget is spent: the page must not tell who has an account.
    let within_budget =
        ratelimit::take(&state, Limit::PasswordResetPerEmail, email.as_str()).await?;
    if within_budget.is_ok() {
        if let Some(user) = state.store.find_user_by_email(&email).await? {
            let token = random_token();
            let now = tessera_store::now_ms();
            let expires_at = now + RESET_TTL_MS;
            let link = state.config.link(&format!("/password/reset/{token}"));
            let mail = crate::mail::password_reset(&state, &email, &link, expires_at);
            state
                .store
                .create_password_reset(
                    &NewPasswordReset {
                        user_id: &user.id,
                        token_hash: &token_digest(&token),
                        expires_at,
                        requested_ip: &ip.0,
                        mail: &mail,
                    },
                    now,
                )
                .await?;
            state.wake(crate::state::Wrote::Mail);
        }
    }
    Ok(page(&ForgotPage {
        layout: Layout::anonymous("Reset your password", &csrf, None),
        email: String::new(),
        error: None,
        sent_to: Some(email.as_str().to_owned()),
    }))
}

#[derive(Template)]
#[template(path = "password_reset.html")]
struct ResetPage {
    layout: Layout,
    token: String,
    /// False: the link is unknown, used or expired (the page offers a new one).
    usable: bool,
    error: Option<String>,
}

fn reset_page(csrf: &CsrfToken, token: &str, usable: bool, error: Option<String>) -> ResetPage {
    ResetPage {
        layout: Layout::anonymous("Choose a new password", csrf, None),
        token: if usable {
            token.to_owned()
        } else {
            String::new()
        },
        usable,
        error,
    }
}

/// Reset tokens are 43 URL-safe characters; anything else is not one.
fn plausible(token: &str) -> bool {
    token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) async fn reset_form(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let usable = plausible(&token)
        && state
            .store
            .password_reset_user(&token_digest(&token), tessera_store::now_ms())
            .await?
            .is_some();
    let status = if usable {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok(render(status, &reset_page(&csrf, &token, usable, None)))
}

#[derive(Deserialize, Default)]
pub(super) struct ResetInput {
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub(super) async fn reset(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    Path(token): Path<String>,
    Form(input): Form<ResetInput>,
) -> WebResult<Response> {
    if !plausible(&token) {
        return Ok(render(
            StatusCode::NOT_FOUND,
            &reset_page(&csrf, &token, false, None),
        ));
    }
    if let Err(Invalid(message)) =
        check_new_password(&input.new_password, Some(&input.confirm_password))
    {
        return Ok(render(
            StatusCode::BAD_REQUEST,
            &reset_page(&csrf, &token, true, Some(message)),
        ));
    }
    let hash = hash_password(input.new_password).await?;
    let event = NewAuditEvent {
        actor_user_id: None,
        actor: "password reset link".into(),
        action: AuditAction::UserPasswordReset,
        target: String::new(),
        detail: "password reset by email link; every session signed out".into(),
        ip: ip.0.clone(),
    };
    let done = state
        .store
        .reset_password(
            &token_digest(&token),
            &hash,
            tessera_store::now_ms(),
            &event,
        )
        .await?;
    match done {
        Some(_) => Ok(redirect_with_flash(
            "/login",
            "Your password has been reset, and every session of your account was signed out. Log in with the new password.",
        )),
        None => Ok(render(
            StatusCode::NOT_FOUND,
            &reset_page(&csrf, &token, false, None),
        )),
    }
}
