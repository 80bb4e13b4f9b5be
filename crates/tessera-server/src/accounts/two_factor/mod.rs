//! Two-factor sign-in (TOTP) on the Profile page: set-up with a QR code and the secret in
//! text, confirmed with a current code and the password; ten single-use recovery codes shown
//! once; new recovery codes and turning it off, each with the password and a code. The
//! second sign-in step is in [`sign_in`], the code arithmetic in [`totp`].

pub(super) mod sign_in;
pub mod totp;

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use serde::Deserialize;
use tessera_core::AuditAction;
use tessera_store::{NewAuditEvent, TwoFactor, User};

use crate::{
    audit,
    crypto::{verify_password, Purpose},
    ratelimit::{self, Limit},
    state::AppState,
    web::{
        format_time, redirect_with_flash, render, ClientIp, Form, Layout, SignedIn, WebError,
        WebResult,
    },
};

/// Longest code field read: a recovery code with generous spacing.
const MAX_CODE_INPUT: usize = 64;

/// The current Unix time in seconds, for TOTP.
fn unix_now() -> u64 {
    u64::try_from(tessera_store::now_ms() / 1000).unwrap_or(0)
}

/// Opens a user's sealed secret.
fn open_secret(state: &AppState, user_id: &str, sealed: &str) -> WebResult<Vec<u8>> {
    state
        .config
        .master_key
        .open(&Purpose::two_factor_secret(user_id), sealed)
        .map_err(WebError::Internal)
}

/// Checks a second factor of `user`: a current authenticator code not used before (the
/// step is recorded, so it never works again) or an unused recovery code (used up, audited
/// with `why`). `false` for anything else, a malformed input included.
pub(crate) async fn check_second_factor(
    state: &AppState,
    user: &User,
    input: &str,
    ip: &str,
    why: &str,
) -> WebResult<bool> {
    if input.len() > MAX_CODE_INPUT {
        return Ok(false);
    }
    let Some(row) = state
        .store
        .two_factor(&user.id)
        .await?
        .filter(TwoFactor::is_enabled)
    else {
        return Ok(false);
    };
    if totp::looks_like_code(input).is_some() {
        let secret = open_secret(state, &user.id, &row.secret_sealed)?;
        let Some(step) = totp::matching_step(&secret, input, unix_now(), row.last_used_step)
            .map_err(WebError::Internal)?
        else {
            return Ok(false);
        };
        return Ok(state.store.use_two_factor_step(&user.id, step).await?);
    }
    let Some(code) = totp::normalize_recovery_code(input) else {
        return Ok(false);
    };
    let event = NewAuditEvent {
        actor_user_id: Some(user.id.clone()),
        actor: user.email.clone(),
        action: AuditAction::UserRecoveryCodeUsed,
        target: user.email.clone(),
        detail: format!("a recovery code was used {why}"),
        ip: ip.to_owned(),
    };
    Ok(state
        .store
        .use_recovery_code(&user.id, &totp::recovery_code_digest(&code), &event)
        .await?)
}

/// New recovery codes and their digests.
fn recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes = totp::new_recovery_codes();
    let digests = codes
        .iter()
        .map(|c| totp::recovery_code_digest(&totp::normalize_recovery_code(c).expect("made valid")))
        .collect();
    (codes, digests)
}

// ----- pages ---------------------------------------------------------------------------------

/// What the set-up shows: the QR code and the same secret in text.
pub struct Enrollment {
    pub qr_svg: String,
    pub secret_text: String,
}

#[derive(Template)]
#[template(path = "two_factor.html")]
struct TwoFactorPage {
    layout: Layout,
    /// The team requires it and it is not on: the only page open until it is.
    required_by_team: bool,
    /// On: since when, with how many recovery codes left.
    enabled_since: Option<String>,
    codes_left: i64,
    /// Off: the pending set-up to confirm.
    enrollment: Option<Enrollment>,
    /// An error on the form `error_form` names ("enable", "codes" or "disable").
    error: Option<String>,
    error_form: &'static str,
    code: String,
}

impl TwoFactorPage {
    fn error_on(&self, form: &str) -> Option<&str> {
        self.error.as_deref().filter(|_| self.error_form == form)
    }
}

#[derive(Template)]
#[template(path = "two_factor_codes.html")]
struct RecoveryCodesPage {
    layout: Layout,
    codes: Vec<String>,
    /// Set up just now (rather than regenerated).
    first_time: bool,
}

/// The page for `who`, starting a set-up (a new secret, sealed and stored as pending) when
/// two-factor sign-in is off and none is pending.
async fn two_factor_page(
    state: &AppState,
    who: &SignedIn,
    error: Option<(&'static str, String)>,
    code: String,
) -> WebResult<TwoFactorPage> {
    let mut row = state.store.two_factor(&who.user.id).await?;
    if row.is_none() {
        restart_setup(state, &who.user.id).await?;
        row = state.store.two_factor(&who.user.id).await?;
    }
    let row = row.ok_or_else(|| WebError::Internal(anyhow::anyhow!("set-up not stored")))?;
    let (enabled_since, codes_left, enrollment) = match row.enabled_at {
        Some(at) => (
            Some(format_time(at)),
            state.store.recovery_codes_left(&who.user.id).await?,
            None,
        ),
        None => {
            let secret = open_secret(state, &who.user.id, &row.secret_sealed)?;
            let uri = totp::otpauth_uri(&secret, &who.user.email).map_err(WebError::Internal)?;
            (
                None,
                0,
                Some(Enrollment {
                    qr_svg: totp::qr_svg(&uri).map_err(WebError::Internal)?,
                    secret_text: totp::secret_text(&secret),
                }),
            )
        }
    };
    let (error_form, error) = match error {
        Some((form, message)) => (form, Some(message)),
        None => ("", None),
    };
    Ok(TwoFactorPage {
        layout: Layout::signed_in("Two-factor authentication", who, "/profile"),
        required_by_team: who.must_set_up_two_factor,
        enabled_since,
        codes_left,
        enrollment,
        error,
        error_form,
        code,
    })
}

/// Stores a new pending secret (the set-up starts over); `false` when it is on already.
async fn restart_setup(state: &AppState, user_id: &str) -> WebResult<bool> {
    let secret = totp::new_secret();
    let sealed = state
        .config
        .master_key
        .seal(&Purpose::two_factor_secret(user_id), &secret);
    Ok(state
        .store
        .begin_two_factor_setup(user_id, &sealed, tessera_store::now_ms())
        .await?)
}

/// The page again with `message` on the form `form`, at `status`.
async fn form_error(
    state: &AppState,
    who: &SignedIn,
    form: &'static str,
    (status, message): (StatusCode, String),
    code: String,
) -> WebResult<Response> {
    let page = two_factor_page(state, who, Some((form, message)), code).await?;
    Ok(render(status, &page))
}

pub(super) async fn show(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    Ok(render(
        StatusCode::OK,
        &two_factor_page(&state, &who, None, String::new()).await?,
    ))
}

/// "Start over": a new secret replaces a set-up not yet confirmed (a QR code scanned into
/// the wrong app, or shown where others could see it).
pub(super) async fn restart(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    if restart_setup(&state, &who.user.id).await? {
        Ok(redirect_with_flash(
            "/profile/two-factor",
            "A new secret was made: scan the new QR code.",
        ))
    } else {
        Ok(redirect_with_flash(
            "/profile/two-factor",
            "Two-factor authentication is on already.",
        ))
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ConfirmInput {
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

/// The password check every change here starts with, counted per user like the profile's
/// password change (a stolen session must not become a way to guess the password). `Err`
/// holds what the form says. The slot comes back only once the whole request succeeds.
async fn check_password(
    state: &AppState,
    who: &SignedIn,
    password: &str,
) -> WebResult<Result<ratelimit::Slot, String>> {
    if password.len() > tessera_core::profile::MAX_PASSWORD * 4 {
        return Ok(Err("Your password is incorrect.".into()));
    }
    let slot = match ratelimit::take(state, Limit::PasswordCheckPerUser, &who.user.id).await? {
        Ok(slot) => slot,
        Err(wait) => {
            return Ok(Err(format!(
                "Too many wrong passwords or codes. Try again in {wait}."
            )))
        }
    };
    let stored = state.store.password_hash(&who.user.id).await?;
    if !verify_password(password.to_owned(), Some(stored)).await? {
        return Ok(Err("Your password is incorrect.".into()));
    }
    Ok(Ok(slot))
}

fn shown_once(page: &impl Template) -> Response {
    let mut response = render(StatusCode::OK, page);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// Turns two-factor sign-in on once the password and a current code of the pending secret
/// check out; shows the recovery codes once.
pub(super) async fn enable(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<ConfirmInput>,
) -> WebResult<Response> {
    let code: String = input.code.chars().take(MAX_CODE_INPUT).collect();
    let Some(pending) = state
        .store
        .two_factor(&who.user.id)
        .await?
        .filter(|row| !row.is_enabled())
    else {
        return Ok(redirect_with_flash(
            "/profile/two-factor",
            "Two-factor authentication is on already.",
        ));
    };
    let slot = match check_password(&state, &who, &input.password).await? {
        Ok(slot) => slot,
        Err(message) => {
            return form_error(
                &state,
                &who,
                "enable",
                (StatusCode::BAD_REQUEST, message),
                code,
            )
            .await
        }
    };
    // The code proves only that the app holds the secret this page showed; a wrong one is a
    // typo, not a guess (unlike on the forms below, where it stands between a stolen session
    // and the account's protection).
    slot.release(&state).await?;
    let secret = open_secret(&state, &who.user.id, &pending.secret_sealed)?;
    let step =
        totp::matching_step(&secret, &input.code, unix_now(), 0).map_err(WebError::Internal)?;
    let Some(step) = step else {
        let message = "That code is not the current one. Enter the 6-digit code your app shows now (check that the device's clock is right).";
        return form_error(
            &state,
            &who,
            "enable",
            (StatusCode::BAD_REQUEST, message.into()),
            code,
        )
        .await;
    };
    let (codes, digests) = recovery_codes();
    let event = audit::event(
        &who,
        &ip,
        AuditAction::UserTwoFactorEnabled,
        &who.user.email,
        "two-factor authentication turned on; 10 recovery codes made".into(),
    );
    let done = state
        .store
        .enable_two_factor(&who.user.id, &pending.secret_sealed, step, &digests, &event)
        .await?;
    if !done {
        let message = "The set-up changed meanwhile (another tab started over): scan this QR code and try again.";
        return form_error(
            &state,
            &who,
            "enable",
            (StatusCode::CONFLICT, message.into()),
            code,
        )
        .await;
    }
    Ok(shown_once(&RecoveryCodesPage {
        layout: Layout::signed_in(
            "Recovery codes",
            &SignedIn {
                must_set_up_two_factor: false,
                ..who
            },
            "/profile",
        ),
        codes,
        first_time: true,
    }))
}

/// Checks the password and a code for a change to protection that is on; `Err` carries the
/// form's message and status.
async fn confirm_change(
    state: &AppState,
    who: &SignedIn,
    ip: &ClientIp,
    input: &ConfirmInput,
    why: &str,
) -> WebResult<Result<ratelimit::Slot, (StatusCode, String)>> {
    let slot = match check_password(state, who, &input.password).await? {
        Ok(slot) => slot,
        Err(message) => return Ok(Err((StatusCode::BAD_REQUEST, message))),
    };
    if !check_second_factor(state, &who.user, &input.code, &ip.0, why).await? {
        return Ok(Err((
            StatusCode::BAD_REQUEST,
            "That code does not work: enter the current code from your app (each works once) or an unused recovery code.".into(),
        )));
    }
    Ok(Ok(slot))
}

/// New recovery codes replace every old one (used or not); shown once.
pub(super) async fn regenerate_codes(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<ConfirmInput>,
) -> WebResult<Response> {
    if !who.two_factor_enabled {
        return Ok(redirect_with_flash(
            "/profile/two-factor",
            "Two-factor authentication is off: set it up first.",
        ));
    }
    let slot = match confirm_change(&state, &who, &ip, &input, "to make new recovery codes").await?
    {
        Ok(slot) => slot,
        Err(error) => return form_error(&state, &who, "codes", error, String::new()).await,
    };
    let (codes, digests) = recovery_codes();
    let event = audit::event(
        &who,
        &ip,
        AuditAction::UserRecoveryCodesRegenerated,
        &who.user.email,
        "10 new recovery codes; the old ones no longer work".into(),
    );
    state
        .store
        .replace_recovery_codes(&who.user.id, &digests, &event)
        .await?;
    slot.release(&state).await?;
    Ok(shown_once(&RecoveryCodesPage {
        layout: Layout::signed_in("Recovery codes", &who, "/profile"),
        codes,
        first_time: false,
    }))
}

/// Turns two-factor sign-in off. Allowed while the team requires it too: that is how a new
/// phone is set up, and the requirement sends the member straight back to the set-up.
pub(super) async fn disable(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<ConfirmInput>,
) -> WebResult<Response> {
    if !who.two_factor_enabled {
        return Ok(redirect_with_flash(
            "/profile/two-factor",
            "Two-factor authentication is off already.",
        ));
    }
    let slot = match confirm_change(
        &state,
        &who,
        &ip,
        &input,
        "to turn two-factor authentication off",
    )
    .await?
    {
        Ok(slot) => slot,
        Err(error) => return form_error(&state, &who, "disable", error, String::new()).await,
    };
    let event = audit::event(
        &who,
        &ip,
        AuditAction::UserTwoFactorDisabled,
        &who.user.email,
        "two-factor authentication turned off; recovery codes deleted".into(),
    );
    state.store.disable_two_factor(&who.user.id, &event).await?;
    slot.release(&state).await?;
    Ok(redirect_with_flash(
        "/profile",
        "Two-factor authentication is off. Signing in now takes only your password.",
    ))
}
