//! The API Keys page (Managers and the Admin): live and test keys, and each mode's callback
//! auth key. Every reveal is audited.

pub mod cache;
pub mod rotation;
pub mod service;

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};

use crate::web::{Form, Path};
use serde::Deserialize;
use tessera_core::{Action, AuditAction, Invalid, Mode};
use tessera_store::{ApiKey, Constraint, StoreError};

use crate::{
    audit,
    crypto::Purpose,
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, redirect_with_warning, render, ClientIp, Layout,
        SignedIn, WebError, WebResult,
    },
};

/// How long a rotated signing secret keeps signing beside the new one, so receivers can
/// switch without rejecting callbacks in between.
pub const SIGNING_OVERLAP_MS: i64 = 24 * 3_600_000;

/// The two callback secrets a team holds per mode, as the page names them.
#[derive(Clone, Copy)]
struct SecretSpec {
    kind: tessera_core::status::SecretKind,
    label: &'static str,
    revealed: AuditAction,
    rotated: AuditAction,
    keep_previous_ms: i64,
    rotated_note: &'static str,
}

const AUTH_KEY: SecretSpec = SecretSpec {
    kind: tessera_core::status::SecretKind::CallbackAuth,
    label: "callback auth key",
    revealed: AuditAction::CallbackAuthKeyRevealed,
    rotated: AuditAction::CallbackAuthKeyRotated,
    keep_previous_ms: 0,
    rotated_note: "Callbacks carry the new key from now on. Update your receiver.",
};
const SIGNING_SECRET: SecretSpec = SecretSpec {
    kind: tessera_core::status::SecretKind::CallbackSigning,
    label: "callback signing secret",
    revealed: AuditAction::CallbackSigningSecretRevealed,
    rotated: AuditAction::CallbackSigningSecretRotated,
    keep_previous_ms: SIGNING_OVERLAP_MS,
    rotated_note: "Callbacks are signed with both the new and the previous secret for 24 hours. Update your receiver.",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(show).post(create))
        .route("/keys/{id}/reveal", post(reveal_key))
        .route("/keys/{id}/delete", post(delete_key))
        .route("/keys/callback/{mode}/reveal", post(reveal_callback))
        .route("/keys/callback/{mode}/rotate", post(rotate_callback))
        .route("/keys/signing/{mode}/reveal", post(reveal_signing))
        .route("/keys/signing/{mode}/rotate", post(rotate_signing))
}

pub const MAX_LABEL: usize = 100;

struct KeyRow {
    id: String,
    label: String,
    prefix: String,
    created_by: String,
    created: String,
    last_used: String,
}

struct ModeSection {
    mode: &'static str,
    label: &'static str,
    /// The one-time nonce of this section's Add key form (see [`create`]).
    form_nonce: String,
    keys: Vec<KeyRow>,
    callback_created: String,
    signing_created: String,
    signing_previous_until: Option<String>,
}

/// A secret shown once on this page render.
#[derive(serde::Serialize, serde::Deserialize)]
struct Revealed {
    what: String,
    value: String,
}

/// Carries a just-created or revealed secret across the redirect after the POST (so a reload
/// never repeats the action): sealed with the master key, HttpOnly, for the keys page only,
/// and cleared when shown.
const REVEAL_COOKIE: &str = "tessera_reveal";

fn show_once(state: &AppState, who: &SignedIn, revealed: &Revealed) -> Response {
    let sealed = state.config.master_key.seal(
        &Purpose::reveal_cookie(&who.session_hash),
        &serde_json::to_vec(revealed).unwrap_or_default(),
    );
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let mut response = Redirect::to("/keys#revealed").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{REVEAL_COOKIE}={sealed}; Path=/keys; Max-Age=120; HttpOnly; SameSite=Strict{secure}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn take_revealed(state: &AppState, who: &SignedIn, headers: &HeaderMap) -> Option<Revealed> {
    let jar = axum_extra::extract::CookieJar::from_headers(headers);
    let sealed = jar.get(REVEAL_COOKIE)?.value().to_owned();
    let bytes = state
        .config
        .master_key
        .open(&Purpose::reveal_cookie(&who.session_hash), &sealed)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    layout: Layout,
    sections: Vec<ModeSection>,
    revealed: Option<Revealed>,
    error: Option<String>,
}

async fn keys_page(
    state: &AppState,
    who: &SignedIn,
    revealed: Option<Revealed>,
    error: Option<String>,
) -> WebResult<KeysPage> {
    let scope = who.authorize(Action::ManageApiKeys)?;
    let team_id = scope.team_id();
    let keys = state.store.list_api_keys(team_id).await?;
    let mut sections = Vec::new();
    for mode in [Mode::Live, Mode::Test] {
        let secret = service::team_secret(
            &state.store,
            &state.config.master_key,
            team_id,
            tessera_core::status::SecretKind::CallbackAuth,
            mode,
        )
        .await?;
        let signing = service::team_secret(
            &state.store,
            &state.config.master_key,
            team_id,
            tessera_core::status::SecretKind::CallbackSigning,
            mode,
        )
        .await?;
        let now = tessera_store::now_ms();
        sections.push(ModeSection {
            signing_created: format_time(signing.created_at),
            signing_previous_until: signing
                .previous_until
                .filter(|until| *until > now && signing.previous_sealed.is_some())
                .map(format_time),
            mode: mode.as_str(),
            label: mode.label(),
            form_nonce: crate::crypto::random_token(),
            keys: keys
                .iter()
                .filter(|k| k.mode == mode)
                .map(|k| KeyRow {
                    id: k.id.clone(),
                    label: k.label.clone(),
                    prefix: k.prefix.clone(),
                    created_by: k.created_by_label.clone(),
                    created: format_time(k.created_at),
                    last_used: k
                        .last_used_at
                        .map(format_time)
                        .unwrap_or_else(|| "never".into()),
                })
                .collect(),
            callback_created: format_time(secret.created_at),
        });
    }
    Ok(KeysPage {
        layout: Layout::signed_in("API Keys", who, "/keys"),
        sections,
        revealed,
        error,
    })
}

async fn show(
    State(state): State<AppState>,
    who: SignedIn,
    headers: HeaderMap,
) -> WebResult<Response> {
    let revealed = take_revealed(&state, &who, &headers);
    let shown = revealed.is_some();
    let mut response = page(&keys_page(&state, &who, revealed, None).await?);
    if shown {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "tessera_reveal=; Path=/keys; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct CreateInput {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    label: String,
    /// The form's one-time nonce; absent from forms not rendered by the keys page.
    #[serde(default)]
    form_nonce: String,
}

/// Longest form nonce accepted (ours are 43 characters).
const MAX_FORM_NONCE: usize = 64;

/// The form nonce, checked: empty (no nonce), or URL-safe base64 of sensible length.
fn parse_form_nonce(raw: &str) -> Result<Option<&str>, Invalid> {
    let nonce = raw.trim();
    if nonce.is_empty() {
        return Ok(None);
    }
    let shaped = nonce.len() <= MAX_FORM_NONCE
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shaped {
        return Err(Invalid(
            "This form is not one the API Keys page made; reload the page and add the key again."
                .into(),
        ));
    }
    Ok(Some(nonce))
}

/// The answer to a form sent again (a double click, a resubmission): the key the first
/// submission created, shown again (audited as a reveal), or word that it has been deleted
/// since — never a second key.
async fn already_created(
    state: &AppState,
    who: &SignedIn,
    ip: &ClientIp,
    key: ApiKey,
    deleted: bool,
) -> WebResult<Response> {
    if deleted {
        return Ok(redirect_with_warning(
            "/keys",
            &format!(
                "This form already created the key {}…, which has been deleted since; no other key was created.",
                key.prefix
            ),
        ));
    }
    let value =
        service::reveal_api_key(&state.config.master_key, &key).map_err(WebError::Internal)?;
    let event = audit::event(
        who,
        ip,
        AuditAction::ApiKeyRevealed,
        &key.prefix,
        format!(
            "{} key {}: the Add key form was sent again, its key shown again",
            key.mode.label(),
            key.label
        ),
    );
    let scope = who.authorize(Action::ManageApiKeys)?;
    state.store.record_audit(&scope, &event).await?;
    let what = format!(
        "New {} key {} (the form was sent twice; this is the one key it created)",
        key.mode.label().to_lowercase(),
        if key.label.is_empty() {
            key.prefix.clone()
        } else {
            format!("“{}”", key.label)
        }
    );
    Ok(show_once(state, who, &Revealed { what, value }))
}

/// Adds a key and shows it at once. Idempotent per form: the keys page renders a one-time
/// nonce into each Add key form, stored with the key under a unique index, so the same form
/// sent twice (even in parallel) makes one key.
async fn create(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<CreateInput>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ManageApiKeys)?;
    let team_id = scope.team_id();
    let parsed = input.mode.parse::<Mode>().and_then(|m| {
        Ok((
            m,
            tessera_core::clean_text("Label", &input.label, MAX_LABEL, false)?,
            parse_form_nonce(&input.form_nonce)?,
        ))
    });
    let (mode, label, nonce) = match parsed {
        Ok(v) => v,
        Err(Invalid(message)) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &keys_page(&state, &who, None, Some(message)).await?,
            ))
        }
    };
    if let Some(nonce) = nonce {
        if let Some((key, deleted)) = state.store.api_key_by_form_nonce(team_id, nonce).await? {
            return already_created(&state, &who, &ip, key, deleted).await;
        }
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyCreated,
        &label,
        format!("{} key", mode.label()),
    );
    let created = service::create_api_key_once(
        &state.store,
        &state.config.master_key,
        team_id,
        mode,
        &label,
        Some(&who.user.id),
        nonce,
        event,
    )
    .await;
    let (record, key) = match (created, nonce) {
        (Ok(created), _) => created,
        // The same form's other submission won the race: show its key.
        (Err(err), Some(nonce)) if err.is_unique(&Constraint::ApiKeyFormNonce) => {
            let (key, deleted) = state
                .store
                .api_key_by_form_nonce(team_id, nonce)
                .await?
                .ok_or(WebError::Internal(anyhow::anyhow!(
                    "a key with this form nonce was refused but is not there"
                )))?;
            return already_created(&state, &who, &ip, key, deleted).await;
        }
        (Err(err), _) => return Err(err.into()),
    };
    let what = format!(
        "New {} key {}",
        mode.label().to_lowercase(),
        if record.label.is_empty() {
            record.prefix.clone()
        } else {
            format!("“{}”", record.label)
        }
    );
    Ok(show_once(&state, &who, &Revealed { what, value: key }))
}

async fn reveal_key(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ManageApiKeys)?;
    let team_id = scope.team_id();
    let key = state.store.get_api_key(team_id, &id).await?;
    let value =
        service::reveal_api_key(&state.config.master_key, &key).map_err(WebError::Internal)?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyRevealed,
        &key.prefix,
        format!("{} key {}", key.mode.label(), key.label),
    );
    state.store.record_audit(&scope, &event).await?;
    let what = format!(
        "{} key {}",
        key.mode.label(),
        if key.label.is_empty() {
            key.prefix.clone()
        } else {
            format!("“{}”", key.label)
        }
    );
    Ok(show_once(&state, &who, &Revealed { what, value }))
}

async fn delete_key(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ManageApiKeys)?;
    let team_id = scope.team_id();
    let key = match state.store.get_api_key(team_id, &id).await {
        Ok(key) => key,
        Err(StoreError::NotFound) => {
            return Ok(redirect_with_flash(
                "/keys",
                "That key was already deleted.",
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyDeleted,
        &key.prefix,
        format!("{} key {}", key.mode.label(), key.label),
    );
    state.store.delete_api_key(team_id, &id, &event).await?;
    state.api_keys.evict_key(&id);
    Ok(redirect_with_flash(
        "/keys",
        &format!(
            "Key {}… deleted. Requests with it are refused from now on.",
            key.prefix
        ),
    ))
}

fn parse_mode(raw: &str) -> WebResult<Mode> {
    raw.parse().map_err(|Invalid(m)| WebError::BadRequest(m))
}

async fn reveal_callback(
    state: State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    mode: Path<String>,
) -> WebResult<Response> {
    reveal_secret(state, who, ip, mode, AUTH_KEY).await
}

async fn reveal_signing(
    state: State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    mode: Path<String>,
) -> WebResult<Response> {
    reveal_secret(state, who, ip, mode, SIGNING_SECRET).await
}

async fn rotate_callback(
    state: State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    mode: Path<String>,
) -> WebResult<Response> {
    rotate(state, who, ip, mode, AUTH_KEY).await
}

async fn rotate_signing(
    state: State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    mode: Path<String>,
) -> WebResult<Response> {
    rotate(state, who, ip, mode, SIGNING_SECRET).await
}

/// Shows a callback secret once, and audits that it was seen.
async fn reveal_secret(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(mode): Path<String>,
    kind: SecretSpec,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ManageApiKeys)?;
    let team_id = scope.team_id();
    let mode = parse_mode(&mode)?;
    let secret = service::team_secret(
        &state.store,
        &state.config.master_key,
        team_id,
        kind.kind,
        mode,
    )
    .await?;
    let value = service::reveal_team_secret(
        &state.config.master_key,
        team_id,
        kind.kind,
        mode,
        &secret.sealed,
    )
    .map_err(WebError::Internal)?;
    let event = audit::event(&who, &ip, kind.revealed, mode.as_str(), String::new());
    state.store.record_audit(&scope, &event).await?;
    Ok(show_once(
        &state,
        &who,
        &Revealed {
            what: format!("{} {}", mode.label(), kind.label),
            value,
        },
    ))
}

/// Replaces a callback secret (the signing secret keeps the previous one signing a while).
async fn rotate(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(mode): Path<String>,
    kind: SecretSpec,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ManageApiKeys)?;
    let team_id = scope.team_id();
    let mode = parse_mode(&mode)?;
    let detail = if kind.keep_previous_ms > 0 {
        "the previous secret keeps signing for 24 hours"
    } else {
        "the previous key stops being sent"
    };
    let event = audit::event(&who, &ip, kind.rotated, mode.as_str(), detail.into());
    service::rotate_secret(
        &state.store,
        &state.config.master_key,
        team_id,
        kind.kind,
        mode,
        kind.keep_previous_ms,
        &event,
    )
    .await?;
    Ok(redirect_with_flash(
        "/keys",
        &format!(
            "The {} {} was replaced. {}",
            mode.label().to_lowercase(),
            kind.label,
            kind.rotated_note
        ),
    ))
}
