//! The API Keys page and its forms. Every route manages the team's keys, so every handler
//! takes `Authorized<perm::ManageApiKeys, SignedIn>`; the page shows both modes, so the
//! scope's mode is replaced by the one each form names.

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use tessera_core::{AuditAction, Invalid, Mode, Scope};
use tessera_store::{ApiKey, StoreError};

use super::service::{self, Created, KeyRequest, SecretSpec, AUTH_KEY, SIGNING_SECRET};
use super::MAX_LABEL;
use crate::{
    audit,
    authz::{perm, Authorized},
    crypto::Purpose,
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, redirect_with_warning, render, ClientIp, Form,
        Layout, Path, SignedIn, WebError, WebResult,
    },
};

/// A manager of the team's keys, with the team's scope.
type Manager = Authorized<perm::ManageApiKeys, SignedIn>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(show).post(create))
        .route("/keys/{id}/reveal", post(reveal_key))
        .route("/keys/{id}/delete", post(delete_key))
        .route(
            "/keys/callback/{mode}/reveal",
            post(reveal_secret::<AuthKey>),
        )
        .route("/keys/callback/{mode}/rotate", post(rotate::<AuthKey>))
        .route(
            "/keys/signing/{mode}/reveal",
            post(reveal_secret::<SigningSecret>),
        )
        .route("/keys/signing/{mode}/rotate", post(rotate::<SigningSecret>))
}

/// A callback secret named as a type, so one handler serves each secret's routes.
trait Secret {
    const SPEC: SecretSpec;
}

struct AuthKey;
impl Secret for AuthKey {
    const SPEC: SecretSpec = AUTH_KEY;
}

struct SigningSecret;
impl Secret for SigningSecret {
    const SPEC: SecretSpec = SIGNING_SECRET;
}

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

/// A key as the page names it: its label in quotes, or its prefix when it has none.
fn key_name(key: &ApiKey) -> String {
    if key.label.is_empty() {
        key.prefix.clone()
    } else {
        format!("“{}”", key.label)
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    layout: Layout,
    sections: Vec<ModeSection>,
    revealed: Option<Revealed>,
    error: Option<String>,
}

/// One mode's section of the page: its keys (from the team's `keys`) and its secrets.
async fn mode_section(state: &AppState, scope: &Scope, keys: &[ApiKey]) -> WebResult<ModeSection> {
    let master = &state.config.master_key;
    let mode = scope.mode();
    let secret = service::team_secret(&state.store, master, scope, AUTH_KEY.kind).await?;
    let signing = service::team_secret(&state.store, master, scope, SIGNING_SECRET.kind).await?;
    let now = tessera_store::now_ms();
    Ok(ModeSection {
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
                id: k.id.to_string(),
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
    })
}

async fn keys_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    revealed: Option<Revealed>,
    error: Option<String>,
) -> WebResult<KeysPage> {
    let keys = state.store.list_api_keys(scope).await?;
    let mut sections = Vec::new();
    for mode in [Mode::Live, Mode::Test] {
        let in_mode = scope.with_mode(mode).ok_or(WebError::Forbidden)?;
        sections.push(mode_section(state, &in_mode, &keys).await?);
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
    Authorized {
        caller: who, scope, ..
    }: Manager,
    headers: HeaderMap,
) -> WebResult<Response> {
    let revealed = take_revealed(&state, &who, &headers);
    let shown = revealed.is_some();
    let mut response = page(&keys_page(&state, &who, &scope, revealed, None).await?);
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

/// The answer to a form sent again (a double click, a resubmission): the key the first
/// submission created, shown again (audited as a reveal), or word that it has been deleted
/// since — never a second key.
async fn already_created(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
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
    state.store.record_audit(scope, &event).await?;
    let what = format!(
        "New {} key {} (the form was sent twice; this is the one key it created)",
        key.mode.label().to_lowercase(),
        key_name(&key)
    );
    Ok(show_once(state, who, &Revealed { what, value }))
}

/// Adds a key and shows it at once; the same form sent twice makes one key
/// ([`service::create_api_key_once`]).
async fn create(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    ip: ClientIp,
    Form(input): Form<CreateInput>,
) -> WebResult<Response> {
    let parsed = input.mode.parse::<Mode>().and_then(|m| {
        Ok((
            m,
            tessera_core::clean_text("Label", &input.label, MAX_LABEL, false)?,
            service::parse_form_nonce(&input.form_nonce)?,
        ))
    });
    let (mode, label, form_nonce) = match parsed {
        Ok(v) => v,
        Err(Invalid(message)) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &keys_page(&state, &who, &scope, None, Some(message)).await?,
            ))
        }
    };
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyCreated,
        &label,
        format!("{} key", mode.label()),
    );
    let request = KeyRequest {
        label: &label,
        created_by: Some(&who.user.id),
        form_nonce,
        event,
    };
    let scope = scope.with_mode(mode).ok_or(WebError::Forbidden)?;
    let master = &state.config.master_key;
    let (record, key) =
        match service::create_api_key_once(&state.store, master, &scope, request).await? {
            Created::New(record, key) => (record, key),
            Created::Again { key, deleted } => {
                return already_created(&state, &who, &scope, &ip, key, deleted).await
            }
        };
    let what = format!(
        "New {} key {}",
        mode.label().to_lowercase(),
        key_name(&record)
    );
    Ok(show_once(&state, &who, &Revealed { what, value: key }))
}

async fn reveal_key(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let key = state.store.get_api_key(&scope, &id).await?;
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
    let what = format!("{} key {}", key.mode.label(), key_name(&key));
    Ok(show_once(&state, &who, &Revealed { what, value }))
}

async fn delete_key(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let key = match state.store.get_api_key(&scope, &id).await {
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
    state.store.delete_api_key(&scope, &id, &event).await?;
    state.api_keys.evict_key(&key.id);
    Ok(redirect_with_flash(
        "/keys",
        &format!(
            "Key {}… deleted. Requests with it are refused from now on.",
            key.prefix
        ),
    ))
}

/// The scope in the mode a secret's route names.
fn in_mode(scope: &Scope, raw: &str) -> WebResult<Scope> {
    let mode: Mode = raw.parse().map_err(|Invalid(m)| WebError::BadRequest(m))?;
    scope.with_mode(mode).ok_or(WebError::Forbidden)
}

/// Shows a callback secret once, and audits that it was seen.
async fn reveal_secret<S: Secret>(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    ip: ClientIp,
    Path(mode): Path<String>,
) -> WebResult<Response> {
    let spec = S::SPEC;
    let scope = in_mode(&scope, &mode)?;
    let (master, mode) = (&state.config.master_key, scope.mode());
    let secret = service::team_secret(&state.store, master, &scope, spec.kind).await?;
    let value =
        service::reveal_team_secret(master, scope.team_id(), spec.kind, mode, &secret.sealed)
            .map_err(WebError::Internal)?;
    let event = audit::event(&who, &ip, spec.revealed, mode.as_str(), String::new());
    state.store.record_audit(&scope, &event).await?;
    let what = format!("{} {}", mode.label(), spec.label);
    Ok(show_once(&state, &who, &Revealed { what, value }))
}

/// Replaces a callback secret (the signing secret keeps the previous one signing a while).
async fn rotate<S: Secret>(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    ip: ClientIp,
    Path(mode): Path<String>,
) -> WebResult<Response> {
    let spec = S::SPEC;
    let scope = in_mode(&scope, &mode)?;
    let mode = scope.mode();
    let detail = spec.rotation_detail().into();
    let event = audit::event(&who, &ip, spec.rotated, mode.as_str(), detail);
    let master = &state.config.master_key;
    let keep = spec.keep_previous_ms;
    service::rotate_secret(&state.store, master, &scope, spec.kind, keep, &event).await?;
    Ok(redirect_with_flash(
        "/keys",
        &format!(
            "The {} {} was replaced. {}",
            mode.label().to_lowercase(),
            spec.label,
            spec.rotated_note
        ),
    ))
}
