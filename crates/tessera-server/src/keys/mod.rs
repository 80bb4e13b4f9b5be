//! The API Keys page (Managers and the Admin): live and test keys, and each mode's callback
//! auth key. Every reveal is audited.

pub mod service;

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;
use tessera_core::{Action, Invalid, Mode};
use tessera_store::StoreError;

use crate::{
    audit,
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, render, ClientIp, Layout, SignedIn, WebError,
        WebResult,
    },
};
use service::CALLBACK_AUTH;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(show).post(create))
        .route("/keys/{id}/reveal", post(reveal_key))
        .route("/keys/{id}/delete", post(delete_key))
        .route("/keys/callback/{mode}/reveal", post(reveal_callback))
        .route("/keys/callback/{mode}/rotate", post(rotate_callback))
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
    keys: Vec<KeyRow>,
    callback_created: String,
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

fn show_once(state: &AppState, revealed: &Revealed) -> Response {
    let sealed = state
        .config
        .master_key
        .seal(&serde_json::to_vec(revealed).unwrap_or_default());
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

fn take_revealed(state: &AppState, headers: &HeaderMap) -> Option<Revealed> {
    let jar = axum_extra::extract::CookieJar::from_headers(headers);
    let sealed = jar.get(REVEAL_COOKIE)?.value().to_owned();
    let bytes = state.config.master_key.open(&sealed).ok()?;
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
    let team_id = who.authorize(Action::ManageApiKeys)?;
    let keys = state.store.list_api_keys(team_id).await?;
    let mut sections = Vec::new();
    for mode in [Mode::Live, Mode::Test] {
        let secret = service::team_secret(
            &state.store,
            &state.config.master_key,
            team_id,
            CALLBACK_AUTH,
            mode,
        )
        .await?;
        sections.push(ModeSection {
            mode: mode.as_str(),
            label: mode.label(),
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
    let revealed = take_revealed(&state, &headers);
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
}

/// Adds a key and shows it at once.
async fn create(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<CreateInput>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::ManageApiKeys)?;
    let parsed = input.mode.parse::<Mode>().and_then(|m| {
        Ok((
            m,
            tessera_core::clean_text("Label", &input.label, MAX_LABEL, false)?,
        ))
    });
    let (mode, label) = match parsed {
        Ok(v) => v,
        Err(Invalid(message)) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &keys_page(&state, &who, None, Some(message)).await?,
            ))
        }
    };
    let event = audit::event(
        &who,
        &ip,
        "api_key.created",
        &label,
        format!("{} key", mode.label()),
    );
    let (record, key) = service::create_api_key(
        &state.store,
        &state.config.master_key,
        team_id,
        mode,
        &label,
        Some(&who.user.id),
        event,
    )
    .await?;
    let what = format!(
        "New {} key {}",
        mode.label().to_lowercase(),
        if record.label.is_empty() {
            record.prefix.clone()
        } else {
            format!("“{}”", record.label)
        }
    );
    Ok(show_once(&state, &Revealed { what, value: key }))
}

async fn reveal_key(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::ManageApiKeys)?;
    let key = state.store.get_api_key(team_id, &id).await?;
    let value =
        service::reveal(&state.config.master_key, &key.sealed).map_err(WebError::Internal)?;
    let event = audit::event(
        &who,
        &ip,
        "api_key.revealed",
        &key.prefix,
        format!("{} key {}", key.mode.label(), key.label),
    );
    state.store.record_audit(Some(team_id), &event).await?;
    let what = format!(
        "{} key {}",
        key.mode.label(),
        if key.label.is_empty() {
            key.prefix.clone()
        } else {
            format!("“{}”", key.label)
        }
    );
    Ok(show_once(&state, &Revealed { what, value }))
}

async fn delete_key(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::ManageApiKeys)?;
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
        "api_key.deleted",
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
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(mode): Path<String>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::ManageApiKeys)?;
    let mode = parse_mode(&mode)?;
    let secret = service::team_secret(
        &state.store,
        &state.config.master_key,
        team_id,
        CALLBACK_AUTH,
        mode,
    )
    .await?;
    let value =
        service::reveal(&state.config.master_key, &secret.sealed).map_err(WebError::Internal)?;
    let event = audit::event(
        &who,
        &ip,
        "callback_auth_key.revealed",
        mode.as_str(),
        String::new(),
    );
    state.store.record_audit(Some(team_id), &event).await?;
    Ok(show_once(
        &state,
        &Revealed {
            what: format!("{} callback auth key", mode.label()),
            value,
        },
    ))
}

async fn rotate_callback(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(mode): Path<String>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::ManageApiKeys)?;
    let mode = parse_mode(&mode)?;
    let event = audit::event(
        &who,
        &ip,
        "callback_auth_key.rotated",
        mode.as_str(),
        "the previous key stops being sent".into(),
    );
    service::rotate_secret(
        &state.store,
        &state.config.master_key,
        team_id,
        CALLBACK_AUTH,
        mode,
        0,
        &event,
    )
    .await?;
    Ok(redirect_with_flash(
        "/keys",
        &format!(
            "The {} callback auth key was replaced. Update your receiver.",
            mode.label().to_lowercase()
        ),
    ))
}
