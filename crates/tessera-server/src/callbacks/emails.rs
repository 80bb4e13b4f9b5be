//! The "Callback email addresses" page (Managers): addresses besides the members' own that
//! the team's email callbacks may go to, each confirmed by a link mailed to it. Adding one
//! follows [`super::service::add_callback_email`].

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};

use serde::Deserialize;
use tessera_core::{AuditAction, Scope};
use tessera_store::{NewAuditEvent, StoreError};

use super::service;
use crate::{
    audit,
    authz::{perm, Authorized},
    crypto::token_digest,
    state::AppState,
    web::{
        format_time, notice, page, redirect_with_flash, render, ClientIp, CsrfToken, Form, Layout,
        Path, SignedIn, WebError, WebResult,
    },
};

/// Longest token accepted in a link (ours are 43 characters).
const MAX_TOKEN_LEN: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callbacks/emails", get(list).post(add))
        .route("/callbacks/emails/{id}/remove", post(remove))
        .route(
            "/callbacks/emails/verify/{token}",
            get(confirm_form).post(confirm),
        )
}

struct Row {
    id: String,
    email: String,
    verified: bool,
    status: String,
    added: PageTime,
}

#[derive(Template)]
#[template(path = "callback_emails.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    error: Option<String>,
    email: String,
    emails_per_hour: u64,
}

async fn list_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    email: String,
    error: Option<String>,
) -> WebResult<ListPage> {
    let rows = state
        .store
        .list_callback_emails(scope)
        .await?
        .into_iter()
        .map(|e| Row {
            verified: e.verified_at.is_some(),
            status: match (e.verified_at, e.token_expires_at) {
                (Some(at), _) => format!("since {}", format_time(at)),
                (None, Some(until)) => format!("link sent, works until {}", format_time(until)),
                (None, None) => String::new(),
            },
            added: PageTime::at(e.created_at),
            id: e.id.into_string(),
            email: e.email,
        })
        .collect();
    Ok(ListPage {
        layout: Layout::signed_in("Callback email addresses", who, "/callbacks/emails"),
        rows,
        error,
        email,
        emails_per_hour: state.config.team_callback_emails_per_hour,
    })
}

async fn list(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditTeamDetails, SignedIn>,
) -> WebResult<Response> {
    Ok(page(
        &list_page(&state, &caller, &scope, String::new(), None).await?,
    ))
}

#[derive(Deserialize)]
struct AddInput {
    #[serde(default)]
    email: String,
}

async fn add(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditTeamDetails, SignedIn>,
    ip: ClientIp,
    Form(input): Form<AddInput>,
) -> WebResult<Response> {
    let again = |message: String| async {
        Ok::<_, WebError>(render(
            StatusCode::BAD_REQUEST,
            &list_page(&state, &who, &scope, input.email.clone(), Some(message)).await?,
        ))
    };
    match service::add_callback_email(&state, &scope, &who, &ip, &input.email).await? {
        Ok(email) => Ok(redirect_with_flash(
            "/callbacks/emails",
            &format!("A confirmation link was sent to {email}. Email callbacks go there once it is opened."),
        )),
        Err(message) => again(message).await,
    }
}

async fn remove(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditTeamDetails, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::CallbackEmailRemoved,
        &id,
        String::new(),
    );
    match state.store.remove_callback_email(&scope, &id, &event).await {
        Ok(removed) => Ok(redirect_with_flash(
            "/callbacks/emails",
            &format!(
                "{} removed: no more email callbacks go there.",
                removed.email
            ),
        )),
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}

#[derive(Template)]
#[template(path = "callback_email_verify.html")]
struct VerifyPage {
    layout: Layout,
    team_name: String,
    email: String,
    token: String,
}

fn link_gone(csrf: &CsrfToken) -> Response {
    notice(
        csrf,
        StatusCode::NOT_FOUND,
        "Link not valid",
        "This confirmation link is unknown, was already used, or has expired. Ask the team to send a new one.".into(),
    )
}

/// The link opens a page with a button, so a mail scanner fetching links confirms nothing.
async fn confirm_form(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> WebResult<Response> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(link_gone(&csrf));
    }
    let Some(pending) = state
        .store
        .cross_tenant()
        .pending_callback_email(&token_digest(&token))
        .await?
    else {
        return Ok(link_gone(&csrf));
    };
    let team = state
        .store
        .cross_tenant()
        .get_team(&pending.team_id)
        .await?;
    Ok(page(&VerifyPage {
        layout: Layout::anonymous("Confirm callback emails", &csrf, None),
        team_name: team.name,
        email: pending.email,
        token,
    }))
}

async fn confirm(
    State(state): State<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    Path(token): Path<String>,
) -> WebResult<Response> {
    if token.len() > MAX_TOKEN_LEN {
        return Ok(link_gone(&csrf));
    }
    let digest = token_digest(&token);
    let Some(pending) = state
        .store
        .cross_tenant()
        .pending_callback_email(&digest)
        .await?
    else {
        return Ok(link_gone(&csrf));
    };
    let event = NewAuditEvent {
        actor_user_id: None,
        actor: pending.email.clone(),
        action: AuditAction::CallbackEmailVerified,
        target: pending.email.clone(),
        detail: "confirmed by the link mailed to it".into(),
        ip: ip.0.clone(),
    };
    match state
        .store
        .cross_tenant()
        .verify_callback_email(&digest, &event)
        .await
    {
        Ok(verified) => Ok(notice(
            &csrf,
            StatusCode::OK,
            "Address confirmed",
            format!(
                "{} now receives the team's email callbacks. Thank you.",
                verified.email
            ),
        )),
        Err(StoreError::NotFound) => Ok(link_gone(&csrf)),
        Err(err) => Err(err.into()),
    }
}
