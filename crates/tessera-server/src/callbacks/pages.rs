//! The dashboard's Callbacks pages (Members and up, scoped by the live/test switch):
//! deliveries with their attempts, a filter by state, Redeliver, and Send test callback. The
//! rules are in [`super::service`]; these handlers read the request and render.

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
use tessera_core::{status::DeliveryStatus, Action, Scope};
use tessera_store::{Delivery, DeliveryKind, NextStep};

use super::service::{self, Redelivery, RetryCancel};
use crate::{
    authz::{perm, Authorized},
    paging::{decode_token, encode_token},
    state::AppState,
    web::{
        page, redirect_with_flash, redirect_with_warning, render, session::in_mode, ClientIp, Form,
        Layout, Path, Query, SignedIn, WebError, WebResult,
    },
};

const PAGE: i64 = 50;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/callbacks", get(list))
        .route("/callbacks/test", post(send_test))
        .route("/callbacks/{id}", get(detail))
        .route("/callbacks/{id}/redeliver", post(redeliver))
        .route("/callbacks/{id}/cancel", post(cancel_retries))
}

struct Row {
    id: String,
    /// The id shortened for the list (the full one is in its title and on the detail page).
    short_id: String,
    kind: &'static str,
    subject: String,
    /// The task a task callback is about (the "About" column links to it).
    task_id: Option<String>,
    short_task_id: String,
    target: String,
    status: &'static str,
    attempts: i64,
    last: String,
    created: PageTime,
    next: PageTime,
}

fn row(d: &Delivery) -> Row {
    Row {
        id: d.id.as_str().to_owned(),
        short_id: shortened(d.id.as_str()),
        kind: d.kind.as_str(),
        subject: subject(d),
        task_id: d.task_id.clone().filter(|_| d.kind == DeliveryKind::Task),
        short_task_id: shortened(d.task_id.as_deref().unwrap_or_default()),
        target: d.target.clone(),
        status: d.status.as_str(),
        attempts: d.attempts,
        last: match (d.last_status_code, &d.last_error) {
            (Some(code), _) => code.to_string(),
            (None, Some(err)) => err.clone(),
            (None, None) => String::new(),
        },
        created: PageTime::at(d.created_at),
        next: PageTime::maybe(
            d.next_attempt_at
                .filter(|_| d.status == DeliveryStatus::Pending),
        ),
    }
}

/// A long id cut to its prefix and first 8 characters after it (`msg_2266d9af…`): enough to
/// tell rows apart, so the list keeps every column in view at desktop width.
fn shortened(id: &str) -> String {
    let start = id.find('_').map_or(0, |i| i + 1);
    match id.char_indices().nth(start + 8) {
        Some((cut, _)) if id.len() > cut + 1 => format!("{}…", &id[..cut]),
        _ => id.to_owned(),
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

/// The list in `scope`, with the test form holding `test_url` and `error` above it.
async fn list_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    query: ListQuery,
    test_url: String,
    error: Option<String>,
) -> WebResult<ListPage> {
    let status = service::parse_state(query.state).map_err(WebError::BadRequest)?;
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
        .list_deliveries(scope, status, after.clone(), PAGE)
        .await?;
    let counts = state.store.delivery_counts(scope).await?;
    let link = |cursor: Option<String>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = status {
            q.append_pair("state", s.as_str());
        }
        if let Some(c) = &cursor {
            q.append_pair("cursor", c);
        }
        in_mode(&format!("/callbacks?{}", q.finish()), scope.mode())
    };
    let tabs = [
        (DeliveryStatus::Pending, counts.pending),
        (DeliveryStatus::Succeeded, counts.succeeded),
        (DeliveryStatus::Failed, counts.failed),
    ]
    .into_iter()
    .map(|(value, count)| StateTab {
        value: value.as_str(),
        count,
        selected: status == Some(value),
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
    Authorized { caller, scope, .. }: Authorized<perm::ViewCallbacks, SignedIn>,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    Ok(page(
        &list_page(&state, &caller, &scope, query, String::new(), None).await?,
    ))
}

struct AttemptRow {
    when: PageTime,
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
    finished: PageTime,
    attempts: Vec<AttemptRow>,
    can_redeliver: bool,
    /// Pending and the person may send callbacks: Cancel retries is offered.
    can_cancel: bool,
}

async fn detail(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::ViewCallbacks, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let Some(delivery) = state.store.get_delivery(&scope, &id).await? else {
        if let Some(other) = caller.other_mode_scope(Action::ViewCallbacks) {
            if state.store.get_delivery(&other, &id).await?.is_some() {
                return Ok(crate::web::other_mode_offer(
                    &caller,
                    "callback",
                    &format!("/callbacks/{id}"),
                ));
            }
        }
        return Err(WebError::NotFound);
    };
    let attempts = state
        .store
        .delivery_attempts(&scope, &delivery.id)
        .await?
        .into_iter()
        .map(|a| AttemptRow {
            when: PageTime::at(a.at),
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
        layout: Layout::signed_in(format!("Callback {}", delivery.id), &caller, "/callbacks"),
        can_redeliver: caller.may(Action::SendCallbacks)
            && delivery.status != DeliveryStatus::Pending,
        can_cancel: caller.may(Action::SendCallbacks) && delivery.status == DeliveryStatus::Pending,
        task_id: delivery.task_id.clone(),
        payload,
        finished: PageTime::maybe(delivery.finished_at),
        delivery: row(&delivery),
        attempts,
    }))
}

async fn redeliver(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::SendCallbacks, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let here = in_mode(&format!("/callbacks/{id}"), scope.mode());
    match service::redeliver(&state, &scope, &caller, &ip, &id).await? {
        Redelivery::Queued => Ok(redirect_with_flash(
            &here,
            "Redelivery queued: the callback is sent again now, with the same webhook-id.",
        )),
        Redelivery::OverBudget(message) => Ok(redirect_with_warning(&here, &message)),
        Redelivery::StillPending => Ok(redirect_with_warning(
            &here,
            "This callback is still being delivered; redeliver it once it has succeeded or failed.",
        )),
        Redelivery::NotFound => Err(WebError::NotFound),
    }
}

/// Cancel retries: a pending delivery stops being retried and reads failed.
async fn cancel_retries(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::SendCallbacks, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
) -> WebResult<Response> {
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let here = in_mode(&format!("/callbacks/{id}"), scope.mode());
    match service::cancel_retries(&state, &scope, &caller, &ip, &id).await? {
        RetryCancel::Canceled => Ok(redirect_with_flash(
            &here,
            "Retries canceled: this callback is not sent again (Redeliver sends it anew).",
        )),
        RetryCancel::Finished => Ok(redirect_with_warning(
            &here,
            "This callback has already finished; there are no retries to cancel.",
        )),
        RetryCancel::NotFound => Err(WebError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_shortened_after_their_prefix() {
        assert_eq!(
            super::shortened("msg_2266d9afbdbcce89fe12893e"),
            "msg_2266d9af…"
        );
        assert_eq!(super::shortened("d6795003ca703f2da317c55f"), "d6795003…");
        assert_eq!(super::shortened("msg_123456789"), "msg_123456789");
        assert_eq!(super::shortened(""), "");
    }
}

#[derive(Deserialize)]
struct TestInput {
    #[serde(default)]
    url: String,
}

/// Sends a sample callback (see [`service::send_test`]) and answers with the list page
/// showing how it went, or the form again with why it was refused.
async fn send_test(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::SendCallbacks, SignedIn>,
    ip: ClientIp,
    Form(input): Form<TestInput>,
) -> WebResult<Response> {
    let raw = input.url.trim().to_owned();
    let sent = service::send_test(&state, &scope, &caller, &ip, &raw).await?;
    // The list is shown in the scope the person may view.
    let view = caller.authorize(Action::ViewCallbacks)?;
    let sent = match sent {
        Ok(sent) => sent,
        Err((status, message)) => {
            let list = list_page(
                &state,
                &caller,
                &view,
                ListQuery::default(),
                raw,
                Some(message),
            );
            return Ok(render(status, &list.await?));
        }
    };
    let attempt = sent.outcome.attempt;
    let delivery = sent.delivery;
    let mut page = list_page(&state, &caller, &view, ListQuery::default(), raw, None).await?;
    page.test_result = Some(TestResult {
        email: !delivery.target.contains("://"),
        delivery_id: delivery.id.into_string(),
        target: delivery.target,
        succeeded: sent.outcome.next == NextStep::Succeeded,
        status_code: attempt.status_code,
        latency_ms: attempt.latency_ms,
        snippet: attempt.response_snippet.unwrap_or_default(),
        error: attempt.error,
    });
    Ok(render(StatusCode::OK, &page))
}
