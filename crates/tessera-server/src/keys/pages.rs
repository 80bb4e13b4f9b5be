//! The API Keys page and its forms. Every route manages the team's keys, so every handler
//! takes `Authorized<perm::ManageApiKeys, SignedIn>`; the page shows both modes (test first:
//! a new team starts by testing), so the scope's mode is replaced by the one each form names.
//!
//! Words: an API key is *rolled* (a new key replaces it; the old one keeps working for the
//! grace period the Manager picks), a callback secret is *rotated* (the auth key at once, the
//! signing secret with a 24-hour overlap); re-sealing everything under a new master key is the
//! operator's master-key rotation ([`super::rotation`]), which changes no key's value.

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use tessera_core::{
    keys::{time_left, KeyExpiry, RollGrace},
    AuditAction, Invalid, Mode, Scope,
};
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
        .route("/keys/{id}/roll", get(roll_form).post(roll_key))
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
    created: PageTime,
    last_used: PageTime,
    /// Its lifetime now: "never expires", "expires … (in 29 days)", "expired …".
    lifetime: String,
    /// Whether it no longer works (expired, or rolled and past its grace).
    refused: bool,
    /// For a rolled key in its grace period: how long it keeps working and what replaced it.
    rolled: Option<String>,
    /// For a key that replaced a rolled one still in its grace period: which one.
    replaces: Option<String>,
    /// Whether it may be rolled (not rolled already).
    can_roll: bool,
}

/// One option of a `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

fn expiry_choices(selected: KeyExpiry) -> Vec<Choice> {
    KeyExpiry::ALL
        .into_iter()
        .map(|choice| Choice {
            value: choice.value(),
            label: match choice {
                KeyExpiry::Never => "Never".into(),
                KeyExpiry::Days(days) => format!("After {days} days"),
            },
            selected: choice == selected,
        })
        .collect()
}

fn grace_choices(selected: RollGrace) -> Vec<Choice> {
    RollGrace::ALL
        .into_iter()
        .map(|choice| Choice {
            value: choice.value().into(),
            label: match choice {
                RollGrace::Now => "Now: refuse the old key at once".into(),
                RollGrace::OneHour => "In 1 hour".into(),
                RollGrace::OneDay => "In 24 hours".into(),
                RollGrace::SevenDays => "In 7 days".into(),
            },
            selected: choice == selected,
        })
        .collect()
}

/// What a refused Add key form had typed, shown again in its section with the reason.
struct CreateDraft {
    mode: Mode,
    label: String,
    expiry: Option<KeyExpiry>,
    error: String,
}

struct ModeSection {
    mode: &'static str,
    label: &'static str,
    /// The one-time nonce of this section's Add key form (see [`create`]).
    form_nonce: String,
    keys: Vec<KeyRow>,
    /// The Add key form's label and expiry (empty and never, or what a refused form sent).
    draft_label: String,
    expiry_choices: Vec<Choice>,
    /// Why this section's Add key form was refused.
    form_error: Option<String>,
    callback_created: PageTime,
    signing_created: PageTime,
    signing_previous_until: Option<PageTime>,
}

/// A secret shown once on this page render.
#[derive(serde::Serialize, serde::Deserialize)]
struct Revealed {
    what: String,
    value: String,
    /// An API key (not a callback secret): shown with a request to try it.
    #[serde(default)]
    api_key: bool,
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
    /// This server's v1 API address, for the SDK's `api_instance_url` and curl.
    api_base: String,
    sections: Vec<ModeSection>,
    revealed: Option<Revealed>,
    error: Option<String>,
}

/// This server's v1 API address (`https://tessera.example/v1`), from its public URL.
fn api_base(state: &AppState) -> String {
    state.config.link("/v1")
}

/// How a key's lifetime reads at `now`.
fn lifetime(key: &ApiKey, now: i64) -> String {
    match key.expires_at {
        None => "never expires".into(),
        Some(at) if at <= now => format!("expired {}", format_time(at)),
        Some(at) => format!("expires {} (in {})", format_time(at), time_left(at - now)),
    }
}

/// The keys page's row for `key`, among the team's `keys` (to name replacements), at `now`.
fn key_row(key: &ApiKey, keys: &[ApiKey], now: i64) -> KeyRow {
    let prefix_of = |id: &tessera_core::ids::ApiKeyId| {
        keys.iter()
            .find(|k| k.id == *id)
            .map_or_else(|| "a deleted key".to_owned(), |k| format!("{}…", k.prefix))
    };
    let rolled = key.rolled.as_ref().filter(|r| r.until > now).map(|r| {
        format!(
            "Rolled: keeps working for {} more (until {}), replaced by {}",
            time_left(r.until - now),
            format_time(r.until),
            prefix_of(&r.replaced_by)
        )
    });
    let replaces = keys
        .iter()
        .find(|old| {
            old.rolled
                .as_ref()
                .is_some_and(|r| r.replaced_by == key.id && r.until > now)
        })
        .map(|old| format!("Replaces {}…", old.prefix));
    KeyRow {
        id: key.id.to_string(),
        label: key.label.clone(),
        prefix: key.prefix.clone(),
        created_by: key.created_by_label.clone(),
        created: PageTime::at(key.created_at),
        last_used: PageTime::maybe(key.last_used_at),
        lifetime: lifetime(key, now),
        refused: key.expires_at.is_some_and(|at| at <= now),
        rolled,
        replaces,
        can_roll: key.rolled.is_none(),
    }
}

/// One mode's section of the page: its keys (from the team's `keys`; rolled keys whose grace
/// ended are left out — they are refused for good and their replacement is listed) and its
/// secrets.
async fn mode_section(
    state: &AppState,
    scope: &Scope,
    keys: &[ApiKey],
    draft: Option<&CreateDraft>,
) -> WebResult<ModeSection> {
    let master = &state.config.master_key;
    let mode = scope.mode();
    let secret = service::team_secret(&state.store, master, scope, AUTH_KEY.kind).await?;
    let signing = service::team_secret(&state.store, master, scope, SIGNING_SECRET.kind).await?;
    let now = tessera_store::now_ms();
    let draft = draft.filter(|d| d.mode == mode);
    Ok(ModeSection {
        draft_label: draft.map(|d| d.label.clone()).unwrap_or_default(),
        form_error: draft.map(|d| d.error.clone()),
        expiry_choices: expiry_choices(draft.and_then(|d| d.expiry).unwrap_or(KeyExpiry::Never)),
        signing_created: PageTime::at(signing.created_at),
        signing_previous_until: signing
            .previous_until
            .filter(|until| *until > now && signing.previous_sealed.is_some())
            .map(PageTime::at),
        mode: mode.as_str(),
        label: mode.label(),
        form_nonce: crate::crypto::random_token(),
        keys: keys
            .iter()
            .filter(|k| k.mode == mode)
            .filter(|k| k.rolled.as_ref().is_none_or(|r| r.until > now))
            .map(|k| key_row(k, keys, now))
            .collect(),
        callback_created: PageTime::at(secret.created_at),
    })
}

async fn keys_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    revealed: Option<Revealed>,
    draft: Option<CreateDraft>,
) -> WebResult<KeysPage> {
    let keys = state.store.list_api_keys(scope).await?;
    let mut sections = Vec::new();
    for mode in [Mode::Test, Mode::Live] {
        let in_mode = scope.with_mode(mode).ok_or(WebError::Forbidden)?;
        sections.push(mode_section(state, &in_mode, &keys, draft.as_ref()).await?);
    }
    Ok(KeysPage {
        layout: Layout::signed_in("API Keys", who, "/keys"),
        api_base: api_base(state),
        sections,
        revealed,
        error: None,
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
    /// `never` or a number of days (see [`KeyExpiry::parse`]); absent means never.
    #[serde(default)]
    expires: Option<String>,
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
    let revealed = Revealed {
        what,
        value,
        api_key: true,
    };
    Ok(show_once(state, who, &revealed))
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
    let expiry = input.expires.as_deref().map(KeyExpiry::parse).transpose();
    let parsed = input.mode.parse::<Mode>().and_then(|m| {
        Ok((
            m,
            tessera_core::clean_text("Label", &input.label, MAX_LABEL, false)?,
            expiry.clone()?.unwrap_or(KeyExpiry::Never),
            service::parse_form_nonce(&input.form_nonce)?,
        ))
    });
    let (mode, label, expiry, form_nonce) = match parsed {
        Ok(v) => v,
        Err(Invalid(message)) => {
            // The form again in its section, with the reason and what was typed (a label
            // cut to the field's length, as the form would take it). Without a known mode
            // there is no section: the reason goes on top of the page.
            let draft = input.mode.parse::<Mode>().ok().map(|mode| CreateDraft {
                mode,
                label: input.label.chars().take(MAX_LABEL).collect(),
                expiry: expiry.ok().flatten(),
                error: message.clone(),
            });
            let top_error = draft.is_none().then_some(message);
            let mut page = keys_page(&state, &who, &scope, None, draft).await?;
            page.error = top_error;
            return Ok(render(StatusCode::BAD_REQUEST, &page));
        }
    };
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyCreated,
        &label,
        format!("{} key, {}", mode.label(), expiry.label()),
    );
    let request = KeyRequest {
        label: &label,
        created_by: Some(&who.user.id),
        expiry,
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
    let revealed = Revealed {
        what,
        value: key,
        api_key: true,
    };
    Ok(show_once(&state, &who, &revealed))
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
    let revealed = Revealed {
        what,
        value,
        api_key: true,
    };
    Ok(show_once(&state, &who, &revealed))
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

#[derive(Template)]
#[template(path = "key_roll.html")]
struct RollPage {
    layout: Layout,
    key: KeyRow,
    mode_label: &'static str,
    grace_choices: Vec<Choice>,
    expiry_choices: Vec<Choice>,
    /// Why the grace or the expiry chosen was refused, shown beside its field.
    grace_error: Option<String>,
    expiry_error: Option<String>,
}

/// The Roll form of `key`, with the choices made (or the defaults: one hour of grace, and
/// the old key's lifetime for the new one).
fn roll_page(
    who: &SignedIn,
    key: &ApiKey,
    grace: RollGrace,
    expiry: KeyExpiry,
    (grace_error, expiry_error): (Option<String>, Option<String>),
) -> RollPage {
    let now = tessera_store::now_ms();
    RollPage {
        layout: Layout::signed_in("Roll API key", who, "/keys"),
        key: key_row(key, std::slice::from_ref(key), now),
        mode_label: key.mode.label(),
        grace_choices: grace_choices(grace),
        expiry_choices: expiry_choices(expiry),
        grace_error,
        expiry_error,
    }
}

/// A key of the team that can be rolled, or where to send the Manager instead (rolled
/// already: to the list, told so). A deleted key, or another team's, is not found.
async fn rollable(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> WebResult<Result<ApiKey, Response>> {
    let key = state.store.get_api_key(scope, id).await?;
    if key.rolled.is_some() {
        return Ok(Err(already_rolled(&key)));
    }
    Ok(Ok(key))
}

fn already_rolled(key: &ApiKey) -> Response {
    redirect_with_warning(
        "/keys",
        &format!(
            "The key {}… was already rolled; nothing was changed. Its replacement is listed beside it.",
            key.prefix
        ),
    )
}

async fn roll_form(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let key = match rollable(&state, &scope, &id).await? {
        Ok(key) => key,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let expiry = KeyExpiry::of_key(key.created_at, key.expires_at);
    let form = roll_page(&who, &key, RollGrace::OneHour, expiry, (None, None));
    Ok(page(&form))
}

#[derive(Deserialize)]
struct RollInput {
    #[serde(default)]
    grace: String,
    #[serde(default)]
    expires: String,
}

/// Rolls a key: its replacement is shown once (as a new key is), the old one keeps working
/// for the grace period chosen; audited as `api_key.rolled` with the grace.
async fn roll_key(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Manager,
    ip: ClientIp,
    Path(id): Path<String>,
    Form(input): Form<RollInput>,
) -> WebResult<Response> {
    let old = match rollable(&state, &scope, &id).await? {
        Ok(key) => key,
        Err(elsewhere) => return Ok(elsewhere),
    };
    let grace = RollGrace::parse(&input.grace);
    let expiry = KeyExpiry::parse(&input.expires);
    let (grace, expiry) = match (grace, expiry) {
        (Ok(grace), Ok(expiry)) => (grace, expiry),
        (grace, expiry) => {
            // Every mistake at once, each beside its field; the valid choice is kept.
            let errors = (
                grace.as_ref().err().map(|Invalid(m)| m.clone()),
                expiry.as_ref().err().map(|Invalid(m)| m.clone()),
            );
            let kept_grace = grace.unwrap_or(RollGrace::OneHour);
            let kept_expiry =
                expiry.unwrap_or_else(|_| KeyExpiry::of_key(old.created_at, old.expires_at));
            let form = roll_page(&who, &old, kept_grace, kept_expiry, errors);
            return Ok(render(StatusCode::BAD_REQUEST, &form));
        }
    };
    let scope = scope.with_mode(old.mode).ok_or(WebError::Forbidden)?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyRolled,
        &old.prefix,
        format!(
            "{} key {}: the old key {}; the new key {}",
            old.mode.label(),
            old.label,
            grace.label(),
            expiry.label()
        ),
    );
    let request = KeyRequest {
        label: &old.label,
        created_by: Some(&who.user.id),
        expiry,
        form_nonce: None,
        event,
    };
    let master = &state.config.master_key;
    let rolled = match service::roll_api_key(
        &state.store,
        master,
        &state.api_keys,
        &scope,
        &old,
        grace,
        request,
    )
    .await
    {
        Ok(rolled) => rolled,
        // Another request rolled or deleted it first.
        Err(StoreError::InvalidState(_)) => return Ok(already_rolled(&old)),
        Err(StoreError::NotFound) => {
            return Ok(redirect_with_flash(
                "/keys",
                "That key was deleted; there is nothing to roll.",
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let until = rolled.old.rolled.as_ref().map_or(0, |r| r.until);
    let old_fate = if grace == RollGrace::Now {
        "is refused from now on".to_owned()
    } else {
        format!("keeps working until {}", format_time(until))
    };
    let what = format!(
        "New {} key {} — it replaces {}…, which {old_fate}",
        rolled.new.mode.label().to_lowercase(),
        key_name(&rolled.new),
        rolled.old.prefix
    );
    let revealed = Revealed {
        what,
        value: rolled.value,
        api_key: true,
    };
    Ok(show_once(&state, &who, &revealed))
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
    let revealed = Revealed {
        what,
        value,
        api_key: false,
    };
    Ok(show_once(&state, &who, &revealed))
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
