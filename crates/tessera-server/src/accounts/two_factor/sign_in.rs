//! The second sign-in step. After a right password, an account with two-factor sign-in gets
//! no session: the half-done sign-in is held server-side for a few minutes under the digest
//! of a random token, which the browser keeps in a cookie used for nothing else. The code (or
//! a recovery code) then starts the session; wrong codes count against the same per-account
//! and per-network limits as wrong passwords, so knowing the password buys no extra guesses.

use askama::Template;
use axum::{
    extract::{FromRequestParts, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tessera_core::Email;
use tessera_store::{SignInChallenge, User};

use crate::{
    crypto::{random_token, token_digest},
    ratelimit::{self, Limit},
    state::AppState,
    web::{
        redirect_with_warning, render, session, ClientIp, CsrfToken, Form, Layout, WebError,
        WebResult,
    },
};

use super::super::{take_login_slots, user_agent, LoginSlots};

/// The cookie holding a half-done sign-in's token.
const CHALLENGE_COOKIE: &str = "tessera_sign_in";
/// How long the second step may take.
const CHALLENGE_TTL_SECS: i64 = 5 * 60;

fn challenge_cookie(state: &AppState, value: &str, max_age: i64) -> WebResult<HeaderValue> {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        state.config.cookie_name(CHALLENGE_COOKIE)
    ))
    .map_err(|e| WebError::Internal(e.into()))
}

/// Holds the sign-in of `user` (password right) for its second step, and sends the browser
/// there.
pub(in crate::accounts) async fn begin(
    state: &AppState,
    user: &User,
    next: Option<String>,
    ip: &ClientIp,
) -> WebResult<Response> {
    let token = random_token();
    let expires_at = tessera_store::now_ms() + CHALLENGE_TTL_SECS * 1000;
    state
        .store
        .create_sign_in_challenge(
            &token_digest(&token),
            &SignInChallenge {
                user_id: user.id.clone(),
                next_path: next.unwrap_or_default(),
            },
            &ip.0,
            expires_at,
        )
        .await?;
    let mut response = Redirect::to("/login/two-factor").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        challenge_cookie(state, &token, CHALLENGE_TTL_SECS)?,
    );
    Ok(response)
}

/// The half-done sign-in this browser holds, if it has not expired.
pub(in crate::accounts) struct PendingSignIn(Option<Pending>);

pub(in crate::accounts) struct Pending {
    token_hash: String,
    challenge: SignInChallenge,
    user: User,
}

impl FromRequestParts<AppState> for PendingSignIn {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = axum_extra::extract::CookieJar::from_headers(&parts.headers);
        let Some(token) = jar
            .get(&state.config.cookie_name(CHALLENGE_COOKIE))
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty() && v.len() <= 64)
        else {
            return Ok(PendingSignIn(None));
        };
        let token_hash = token_digest(&token);
        let Some(challenge) = state.store.sign_in_challenge(&token_hash).await? else {
            return Ok(PendingSignIn(None));
        };
        let user = state.store.get_user(&challenge.user_id).await?;
        Ok(PendingSignIn(Some(Pending {
            token_hash,
            challenge,
            user,
        })))
    }
}

/// Back to the password: the second step took too long, or was never started.
fn start_again(state: &AppState) -> WebResult<Response> {
    let mut response = redirect_with_warning(
        "/login",
        "Your sign-in expired before the code was entered. Log in again.",
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, challenge_cookie(state, "", 0)?);
    Ok(response)
}

#[derive(Template)]
#[template(path = "login_two_factor.html")]
struct SecondStepPage {
    layout: Layout,
    error: Option<String>,
}

fn second_step_page(csrf: &CsrfToken, error: Option<String>) -> SecondStepPage {
    SecondStepPage {
        layout: Layout::anonymous("Two-factor authentication", csrf, None),
        error,
    }
}

pub(in crate::accounts) async fn form(
    State(state): State<AppState>,
    csrf: CsrfToken,
    PendingSignIn(pending): PendingSignIn,
) -> WebResult<Response> {
    if pending.is_none() {
        return start_again(&state);
    }
    Ok(render(StatusCode::OK, &second_step_page(&csrf, None)))
}

#[derive(Deserialize, Default)]
pub(in crate::accounts) struct CodeInput {
    #[serde(default)]
    code: String,
}

pub(in crate::accounts) async fn submit(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    headers: HeaderMap,
    PendingSignIn(pending): PendingSignIn,
    Form(input): Form<CodeInput>,
) -> WebResult<Response> {
    let Some(Pending {
        token_hash,
        challenge,
        user,
    }) = pending
    else {
        return start_again(&state);
    };
    let again = |status, message: String| render(status, &second_step_page(&csrf, Some(message)));
    let email = Email::parse(&user.email).map_err(|e| WebError::Internal(anyhow::anyhow!(e.0)))?;
    let LoginSlots {
        account_key,
        account_slot,
        ip_slot,
    } = match take_login_slots(&state, &email, &ip).await? {
        Ok(slots) => slots,
        Err(message) => return Ok(again(StatusCode::TOO_MANY_REQUESTS, message)),
    };
    let valid =
        super::check_second_factor(&state, &user, input.code.trim(), &ip.0, "to sign in").await?;
    if !valid {
        return Ok(again(
            StatusCode::UNAUTHORIZED,
            failed_code_message(&account_slot),
        ));
    }
    // Once only, however many requests race with right codes.
    if !state.store.finish_sign_in_challenge(&token_hash).await? {
        return start_again(&state);
    }
    ip_slot.release(&state).await?;
    ratelimit::clear(&state, Limit::LoginPerAccount, &account_key).await?;
    let cookies = session::start(&state, &user.id, &ip.0, &user_agent(&headers)).await?;
    let target = if challenge.next_path.is_empty() {
        "/".to_owned()
    } else {
        challenge.next_path
    };
    let mut response = Redirect::to(&target).into_response();
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .append(header::SET_COOKIE, challenge_cookie(&state, "", 0)?);
    Ok(response)
}

/// What a wrong code is told, warning before the attempt that locks sign-in.
fn failed_code_message(account_slot: &ratelimit::Slot) -> String {
    let left = Limit::LoginPerAccount.max() - account_slot.used();
    let base = "That code does not work. Enter the current code from your authenticator app (each code works once), or one of your recovery codes.";
    if left == 1 {
        format!(
            "{base} One more failed attempt locks sign-in to this account from your network for {}.",
            crate::web::humanize_ms(Limit::LoginPerAccount.window_ms())
        )
    } else {
        base.to_owned()
    }
}
