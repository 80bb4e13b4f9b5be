//! Callbacks: the delivery worker, Standard Webhooks signing, and the dashboard's Callbacks
//! page (Members and up, scoped by the live/test switch): deliveries with their attempts,
//! a filter by state, Redeliver, and Send test callback.

pub mod emails;
pub mod signing;
pub mod targets;
pub mod worker;

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};

use crate::web::{Form, Path, Query};
use serde::Deserialize;
use serde_json::json;
use tessera_core::{Action, AuditAction};
use tessera_store::{Delivery, DeliveryKind, NewDelivery, StoreError};

use crate::{
    audit,
    paging::{decode_token, encode_token},
    ratelimit::{self, Limit},
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, redirect_with_warning, render, ClientIp, Layout,
        SignedIn, WebError, WebResult,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callbacks", get(list))
        .route("/callbacks/test", post(send_test))
        .route("/callbacks/{id}", get(detail))
        .route("/callbacks/{id}/redeliver", post(redeliver))
        .merge(emails::router())
}

const PAGE: i64 = 50;
const STATES: [&str; 3] = ["pending", "succeeded", "failed"];

struct Row {
    id: String,
    kind: &'static str,
    subject: String,
    target: String,
    status: String,
    attempts: i64,
    last: String,
    created: String,
    next: String,
}

fn row(d: &Delivery) -> Row {
    Row {
        id: d.id.clone(),
        kind: d.kind.as_str(),
        subject: subject(d),
        target: d.target.clone(),
        status: d.status.clone(),
        attempts: d.attempts,
        last: match (d.last_status_code, &d.last_error) {
            (Some(code), _) => code.to_string(),
            (None, Some(err)) => err.clone(),
            (None, None) => String::new(),
        },
        created: format_time(d.created_at),
        next: if d.status == "pending" {
            d.next_attempt_at.map(format_time).unwrap_or_default()
        } else {
            String::new()
        },
    }
}

/// What a delivery is about, in words.
fn subject(d: &Delivery) -> String {
    match d.kind {
        DeliveryKind::Task => format!("task {}", d.task_id.as_deref().unwrap_or_default()),
        DeliveryKind::Batch => "batch completed".into(),
        DeliveryKind::Test => "test callback".into(),
    }
}

struct StateTab {
    value: &'static str,
    count: i64,
    selected: bool,
}

#[derive(Template)]
#[template(path = "callbacks.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    tabs: Vec<StateTab>,
    all_selected: bool,
    total: i64,
    next_link: Option<String>,
    first_link: Option<String>,
    test_url: String,
    error: Option<String>,
    can_send: bool,
    /// The outcome of the test callback just sent, shown on the page that answers it.
    test_result: Option<TestResult>,
}

/// How a test callback went: the receiver's answer (status, latency, the first 1 KiB of its
/// body) or the error.
struct TestResult {
    delivery_id: String,
    target: String,
    succeeded: bool,
    status_code: Option<i64>,
    latency_ms: i64,
    snippet: String,
    error: Option<String>,
    /// An email target: handed to the mail outbox, which sends it.
    email: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    cursor: Option<String>,
}

async fn list_page(
    state: &AppState,
    who: &SignedIn,
    query: ListQuery,
    test_url: String,
    error: Option<String>,
) -> WebResult<ListPage> {
    let scope = who.authorize(Action::ViewCallbacks)?;
    let team_id = scope.team_id();
    let status = match query.state.filter(|s| !s.is_empty()) {
        Some(s) if STATES.contains(&s.as_str()) => Some(s),
        Some(s) => {
            return Err(WebError::BadRequest(format!(
                "\"{s}\" is not a callback state; the filter \"state\" takes {}.",
                STATES.join(", ")
            )))
        }
        None => None,
    };
    let after = match query.cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_token(&c).map_err(|_| {
            WebError::BadRequest(
                "The page link's \"cursor\" is not valid; start again from the first page.".into(),
            )
        })?),
        None => None,
    };
    let page_of = state
        .store
        .list_deliveries(team_id, who.mode, status.as_deref(), after.clone(), PAGE)
        .await?;
    let counts = state
        .store
        .delivery_counts(Some(team_id), Some(who.mode))
        .await?;
    let link = |cursor: Option<String>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = &status {
            q.append_pair("state", s);
        }
        if let Some(c) = &cursor {
            q.append_pair("cursor", c);
        }
        format!("/callbacks?{}", q.finish())
    };
    let tabs = [
        ("pending", counts.pending),
        ("succeeded", counts.succeeded),
        ("failed", counts.failed),
    ]
    .into_iter()
    .map(|(value, count)| StateTab {
        value,
        count,
        selected: status.as_deref() == Some(value),
    })
    .collect();
    Ok(ListPage {
        layout: Layout::signed_in("Callbacks", who, "/callbacks"),
        rows: page_of.deliveries.iter().map(row).collect(),
        tabs,
        all_selected: status.is_none(),
        total: counts.pending + counts.succeeded + counts.failed,
        next_link: page_of
            .next
            .map(|(at, id)| link(Some(encode_token(at, &id)))),
        first_link: after.map(|_| link(None)),
        test_url,
        error,
        can_send: who.may(Action::SendCallbacks),
        test_result: None,
    })
}

async fn list(
    State(state): State<AppState>,
    who: SignedIn,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    Ok(page(
        &list_page(&state, &who, query, String::new(), None).await?,
    ))
}

struct AttemptRow {
    when: String,
    status_code: String,
    latency_ms: i64,
    error: String,
    snippet: String,
    /// What this attempt sent: headers (secrets masked when sent) and the exact body.
    request: Option<tessera_store::SentRequest>,
}

#[derive(Template)]
#[template(path = "callback.html")]
struct DetailPage {
    layout: Layout,
    delivery: Row,
    task_id: Option<String>,
    payload: Option<String>,
    finished: String,
    attempts: Vec<AttemptRow>,
    can_redeliver: bool,
}

async fn detail(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ViewCallbacks)?;
    let team_id = scope.team_id();
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let delivery = state
        .store
        .get_delivery(team_id, who.mode, &id)
        .await?
        .ok_or(WebError::NotFound)?;
    let attempts = state
        .store
        .delivery_attempts(&delivery.id)
        .await?
        .into_iter()
        .map(|a| AttemptRow {
            when: format_time(a.at),
            status_code: a.status_code.map(|c| c.to_string()).unwrap_or_default(),
            latency_ms: a.latency_ms,
            error: a.error.unwrap_or_default(),
            snippet: a.response_snippet.unwrap_or_default(),
            request: a.request,
        })
        .collect();
    // Batch and test callbacks carry a fixed body; a task callback's is built from the task
    // when sent, so only its attempts (below) show what was sent — never a body built now.
    let payload = delivery.payload.clone();
    Ok(page(&DetailPage {
        layout: Layout::signed_in(format!("Callback {}", delivery.id), &who, "/callbacks"),
        can_redeliver: who.may(Action::SendCallbacks) && delivery.status != "pending",
        task_id: delivery.task_id.clone(),
        payload,
        finished: delivery.finished_at.map(format_time).unwrap_or_default(),
        delivery: row(&delivery),
        attempts,
    }))
}

async fn redeliver(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::SendCallbacks)?;
    let team_id = scope.team_id();
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    if let Err(wait) = ratelimit::take(&state, Limit::CallbackSendsPerTeam, team_id).await? {
        return Ok(redirect_with_warning(
            &format!("/callbacks/{id}"),
            &format!(
                "Your team sent {} test callbacks and redeliveries this hour; try again in {wait}.",
                Limit::CallbackSendsPerTeam.max()
            ),
        ));
    }
    match state.store.redeliver(team_id, who.mode, &id).await {
        Ok(delivery) => {
            let event = audit::event(
                &who,
                &ip,
                AuditAction::CallbackRedelivered,
                &delivery.id,
                format!("{} mode, to {}", who.mode, delivery.target),
            );
            state.store.record_audit(&scope, &event).await?;
            state.wake(crate::state::Wrote::Callbacks);
            Ok(redirect_with_flash(
                &format!("/callbacks/{id}"),
                "Redelivery queued: the callback is sent again now, with the same webhook-id.",
            ))
        }
        Err(StoreError::InvalidState(_)) => Ok(redirect_with_warning(
            &format!("/callbacks/{id}"),
            "This callback is still being delivered; redeliver it once it has succeeded or failed.",
        )),
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize)]
struct TestInput {
    #[serde(default)]
    url: String,
}

/// Sends a sample callback to a URL (or email address) at once and answers with the result:
/// sent like a real one (same code, headers and signature), tried once and never retried,
/// recorded as a test delivery with its one attempt so it shows in the list. An email target
/// is handed to the mail outbox, which sends it on its own schedule.
async fn send_test(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<TestInput>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::SendCallbacks)?;
    let team_id = scope.team_id().to_owned();
    let raw = input.url.trim().to_owned();
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    // The budget first: a refused send must not use a unit of the email budget.
    let target = match ratelimit::take(&state, Limit::CallbackSendsPerTeam, &team_id).await? {
        Err(wait) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Your team sent {} test callbacks and redeliveries this hour; try again in {wait}.",
                Limit::CallbackSendsPerTeam.max()
            ),
        )),
        Ok(_) if raw.len() > tessera_core::team::MAX_URL_LEN => Err(bad(format!(
            "The URL must be at most {} characters.",
            tessera_core::team::MAX_URL_LEN
        ))),
        Ok(_) if raw.is_empty() => Err(bad(
            "Enter the URL (or email address) to send a test callback to.".to_owned(),
        )),
        Ok(_) => targets::check_target(&state, &team_id, &raw)
            .await
            .map_err(|e| (e.status, e.message)),
    };
    let target = match target {
        Ok(t) => t,
        Err((status, message)) => {
            return Ok(render(
                status,
                &list_page(&state, &who, ListQuery::default(), raw, Some(message)).await?,
            ))
        }
    };
    let payload = json!({
        "test": true,
        "message": "A test callback from Tessera: your receiver is reachable and can check the headers.",
        "task_id": "000000000000000000000000",
        "task": {"task_id": "000000000000000000000000", "status": "completed", "type": "categorization", "is_test": true},
        "response": {"category": "example"},
    });
    let lease = worker::lease_for(state.config.callback_timeout);
    let delivery = state
        .store
        .start_delivery_now(
            &NewDelivery {
                team_id: team_id.clone(),
                mode: who.mode,
                kind: DeliveryKind::Test,
                batch_id: None,
                target,
                payload: payload.to_string(),
            },
            i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4),
        )
        .await?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::CallbackTestSent,
        &delivery.id,
        format!("{} mode, to {}", who.mode, delivery.target),
    );
    state.store.record_audit(&scope, &event).await?;
    let outcome = worker::send_test_now(&state, delivery.clone()).await;
    state
        .store
        .finish_deliveries(std::slice::from_ref(&outcome))
        .await?;
    let attempt = outcome.attempt;
    let mut page = list_page(&state, &who, ListQuery::default(), raw, None).await?;
    page.test_result = Some(TestResult {
        email: !delivery.target.contains("://"),
        delivery_id: delivery.id,
        target: delivery.target,
        succeeded: outcome.next == tessera_store::NextStep::Succeeded,
        status_code: attempt.status_code,
        latency_ms: attempt.latency_ms,
        snippet: attempt.response_snippet.unwrap_or_default(),
        error: attempt.error,
    });
    Ok(render(StatusCode::OK, &page))
}
