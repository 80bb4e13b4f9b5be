//! The audit log page, and the helper every feature uses to describe what it did.

use crate::web::PageTime;
use askama::Template;
use axum::{extract::State, response::Response, routing::get, Router};

use crate::web::Query;
use serde::Deserialize;
use tessera_core::AuditAction;
use tessera_store::NewAuditEvent;

use crate::{
    api::auth::ApiCaller,
    authz::{perm, Authorized},
    state::AppState,
    web::{page, ClientIp, Layout, SignedIn, WebResult},
};

/// Whoever an audit entry names as having acted: a signed-in person or an API key.
pub trait AuditActor {
    /// The acting user's id (none for a key) and the name the log shows.
    fn audit_actor(&self) -> (Option<String>, String);
}

impl AuditActor for SignedIn {
    fn audit_actor(&self) -> (Option<String>, String) {
        (Some(self.user.id.clone()), self.user.email.clone())
    }
}

/// A key is named by its label ("API key …"); no user acted.
impl AuditActor for ApiCaller {
    fn audit_actor(&self) -> (Option<String>, String) {
        (None, self.label())
    }
}

/// An audit entry for something `who` did from `ip`.
pub fn event(
    who: &impl AuditActor,
    ip: &ClientIp,
    action: AuditAction,
    target: &str,
    detail: String,
) -> NewAuditEvent {
    let (actor_user_id, actor) = who.audit_actor();
    NewAuditEvent {
        actor_user_id,
        actor,
        action,
        target: target.to_owned(),
        detail,
        ip: ip.0.clone(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/team/audit", get(show))
}

pub const PAGE_SIZE: i64 = 50;

struct Row {
    when: PageTime,
    actor: String,
    action: AuditAction,
    target: String,
    detail: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<Row>,
    next_cursor: Option<String>,
    first_page: bool,
}

#[derive(Deserialize)]
struct AuditQuery {
    cursor: Option<String>,
}

/// The team's audit log, newest first, 50 a page.
async fn show(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewAuditLog, SignedIn>,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    let cursor = q.cursor.filter(|c| c.len() <= 100);
    let log = state
        .store
        .list_audit(&scope, cursor.as_deref(), PAGE_SIZE)
        .await?;
    let rows = log
        .events
        .into_iter()
        .map(|e| Row {
            when: PageTime::at(e.created_at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            ip: e.ip,
        })
        .collect();
    Ok(page(&AuditPage {
        layout: Layout::signed_in("Audit log", &who, "/team/audit"),
        rows,
        next_cursor: log.next_cursor,
        first_page: cursor.is_none(),
    }))
}
