//! Tasks on the dashboard (Members and up), scoped by the live/test switch: the switch itself,
//! the task list with filters and pages, task detail with params, response, metadata,
//! history, and accept/reject audits.

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};

use crate::web::{Form, Path, Query};
use serde::Deserialize;
use serde_json::Value;
use tessera_core::{tasks::TaskType, Action, Mode};
use tessera_store::{StoreError, Task, TaskFilter};

use super::service::{audit_entry, resolve_names};
use crate::{
    paging::{decode_token, encode_token},
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, render, session::MODE_COOKIE, Layout, SignedIn,
        WebError, WebResult,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mode", post(switch_mode))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}", get(task_detail))
        .route("/tasks/{id}/audit", post(audit))
}

const TASKS_PAGE: i64 = 50;

/// A choice in a select box.
pub(crate) struct Choice {
    pub(crate) value: &'static str,
    pub(crate) selected: bool,
}

pub(crate) fn choices(values: &[&'static str], current: &str) -> Vec<Choice> {
    values
        .iter()
        .map(|&value| Choice {
            value,
            selected: value == current,
        })
        .collect()
}

/// The statuses the task list filters by.
const TASK_STATUSES: [&str; 4] = ["pending", "completed", "canceled", "error"];

pub(crate) fn type_names() -> Vec<&'static str> {
    TaskType::ALL.iter().map(|t| t.as_str()).collect()
}

#[derive(Deserialize)]
struct ModeInput {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    back: String,
}

/// The live/test switch: remembered in a cookie, every task page follows it.
async fn switch_mode(who: SignedIn, Form(input): Form<ModeInput>) -> WebResult<Response> {
    who.authorize(Action::ViewTasks)?;
    let mode: Mode = input
        .mode
        .parse()
        .map_err(|e: tessera_core::Invalid| WebError::BadRequest(e.0))?;
    let back = crate::web::local_path(&input.back).unwrap_or_else(|| "/tasks".into());
    // Detail pages belong to one mode; go to the list instead.
    let back = if back.starts_with("/tasks/") {
        "/tasks".to_owned()
    } else if back.starts_with("/projects/") {
        "/projects".to_owned()
    } else {
        back
    };
    let mut response = Redirect::to(&back).into_response();
    let cookie = format!(
        "{MODE_COOKIE}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax",
        mode.as_str()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

pub(crate) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TaskQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    project: Option<String>,
    batch: Option<String>,
    cursor: Option<String>,
}

struct TaskRow {
    id: String,
    task_type: String,
    status: String,
    project: String,
    batch: String,
    created: String,
    review: String,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    layout: Layout,
    rows: Vec<TaskRow>,
    total: i64,
    statuses: Vec<Choice>,
    types: Vec<Choice>,
    project: String,
    batch: String,
    next_link: Option<String>,
    first_link: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Refuses a status or type filter the list does not know.
fn check_filters(status: Option<&str>, task_type: Option<&str>) -> WebResult<()> {
    if let Some(s) = status.filter(|s| !TASK_STATUSES.contains(s)) {
        return Err(WebError::BadRequest(format!(
            "\"{s}\" is not a task status; the filter \"status\" takes {}.",
            TASK_STATUSES.join(", ")
        )));
    }
    if let Some(t) = task_type.filter(|t| t.parse::<TaskType>().is_err()) {
        return Err(WebError::BadRequest(format!(
            "\"{t}\" is not a task type; the filter \"type\" takes {}.",
            type_names().join(", ")
        )));
    }
    Ok(())
}

async fn tasks(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<TaskQuery>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::ViewTasks)?;
    let team_id = scope.team_id();
    let status = nonempty(q.status);
    let task_type = nonempty(q.task_type);
    check_filters(status.as_deref(), task_type.as_deref())?;
    let project = nonempty(q.project);
    let batch = nonempty(q.batch);
    let after = match nonempty(q.cursor) {
        Some(c) => Some(decode_token(&c).map_err(|_| {
            WebError::BadRequest(
                "The page link's \"cursor\" is not valid; start again from the first page.".into(),
            )
        })?),
        None => None,
    };
    let mut filter = TaskFilter {
        status: status.clone(),
        task_type: task_type.clone(),
        ..TaskFilter::default()
    };
    let known = resolve_names(
        &state.store,
        &scope,
        project.as_deref(),
        batch.as_deref(),
        &mut filter,
    )
    .await?;
    let page_of = if known {
        Some(
            state
                .store
                .list_tasks(team_id, who.mode, &filter, TASKS_PAGE, after.clone())
                .await?,
        )
    } else {
        None
    };
    let link = |cursor: Option<String>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &status),
            ("type", &task_type),
            ("project", &project),
            ("batch", &batch),
            ("cursor", &cursor),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        format!("/tasks?{}", q.finish())
    };
    let (rows, total, next_link) = match page_of {
        None => (Vec::new(), 0, None),
        Some(p) => (
            p.tasks.iter().map(task_row).collect(),
            p.total,
            p.next.map(|(at, id)| link(Some(encode_token(at, &id)))),
        ),
    };
    Ok(page(&TasksPage {
        layout: Layout::signed_in("Tasks", &who, "/tasks"),
        rows,
        total,
        statuses: choices(&TASK_STATUSES, status.as_deref().unwrap_or_default()),
        types: choices(&type_names(), task_type.as_deref().unwrap_or_default()),
        project: project.clone().unwrap_or_default(),
        batch: batch.clone().unwrap_or_default(),
        first_link: after.map(|_| link(None)),
        next_link,
    }))
}

fn task_row(t: &Task) -> TaskRow {
    TaskRow {
        id: t.id.clone(),
        task_type: t.task_type.clone(),
        status: t.status.clone(),
        project: t.project_name.clone().unwrap_or_default(),
        batch: t.batch_name.clone().unwrap_or_default(),
        created: format_time(t.created_at),
        review: t.customer_review_status.clone().unwrap_or_default(),
    }
}

/// A callback of the task, linked to its delivery page.
struct CallbackRow {
    id: String,
    status: String,
    attempts: i64,
    created: String,
}

struct HistoryRow {
    when: String,
    actor: String,
    event: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    layout: Layout,
    id: String,
    task_type: String,
    status: String,
    project: String,
    batch: String,
    unique_id: String,
    instruction: String,
    callback_url: String,
    tags: String,
    review: String,
    params: String,
    response: Option<String>,
    metadata: String,
    history: Vec<HistoryRow>,
    callbacks: Vec<CallbackRow>,
    can_audit: bool,
    error: Option<String>,
}

async fn task_page(
    state: &AppState,
    who: &SignedIn,
    id: &str,
    error: Option<String>,
) -> WebResult<TaskPage> {
    let scope = who.authorize(Action::ViewTasks)?;
    let team_id = scope.team_id();
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let task = state
        .store
        .get_task(team_id, who.mode, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let mut history = vec![HistoryRow {
        when: format_time(task.created_at),
        actor: String::new(),
        event: "created".into(),
        detail: format!("{} mode", task.mode),
    }];
    if let (Some(at), true) = (task.completed_at, task.mode == Mode::Test) {
        history.push(HistoryRow {
            when: format_time(at),
            actor: "test mode".into(),
            event: "completed".into(),
            detail: "synthetic response".into(),
        });
    }
    for e in state.store.task_events(&task.id).await? {
        history.push(HistoryRow {
            when: format_time(e.at),
            actor: e.actor,
            event: e.event,
            detail: e.detail,
        });
    }
    let callbacks = if who.may(Action::ViewCallbacks) {
        state
            .store
            .task_deliveries(&task.id)
            .await?
            .into_iter()
            .map(|d| CallbackRow {
                id: d.id,
                status: d.status,
                attempts: d.attempts,
                created: format_time(d.created_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(TaskPage {
        layout: Layout::signed_in(format!("Task {}", task.id), who, "/tasks"),
        callbacks,
        can_audit: who.may(Action::AuditTasks) && task.status == "completed",
        id: task.id.clone(),
        task_type: task.task_type.clone(),
        status: task.status.clone(),
        project: task.project_name.clone().unwrap_or_default(),
        batch: task.batch_name.clone().unwrap_or_default(),
        unique_id: task.unique_id.clone().unwrap_or_default(),
        instruction: task.instruction.clone().unwrap_or_default(),
        callback_url: task.callback_url.clone().unwrap_or_default(),
        tags: task.tags.clone().unwrap_or_default().join(", "),
        review: task.customer_review_status.clone().unwrap_or_default(),
        params: pretty(&task.params),
        response: task.response.as_ref().map(pretty),
        metadata: pretty(&task.metadata),
        history,
        error,
    })
}

async fn task_detail(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    Ok(page(&task_page(&state, &who, &id, None).await?))
}

#[derive(Deserialize)]
struct AuditInput {
    #[serde(default)]
    result: String,
    #[serde(default)]
    comments: String,
}

async fn audit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(input): Form<AuditInput>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::AuditTasks)?;
    let team_id = scope.team_id().to_owned();
    let accepted = match input.result.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return Err(WebError::BadRequest("Choose accept or reject.".into())),
    };
    let comments = match tessera_core::clean_text("Comments", &input.comments, 2000, false) {
        Ok(c) => c,
        Err(e) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &task_page(&state, &who, &id, Some(e.0)).await?,
            ))
        }
    };
    let auditor = who.user.email.clone();
    let entry = audit_entry(
        &auditor,
        accepted,
        Some(&comments)
            .filter(|c| !c.is_empty())
            .map(String::as_str),
    );
    match state
        .store
        .audit_task(&team_id, who.mode, &id, accepted, entry, &auditor)
        .await
    {
        Ok(_) => Ok(redirect_with_flash(
            &format!("/tasks/{id}"),
            if accepted {
                "Task accepted."
            } else {
                "Task rejected."
            },
        )),
        Err(StoreError::InvalidState(status)) => {
            let message = format!("This task is {status}; only completed tasks can be audited.");
            Ok(render(
                StatusCode::BAD_REQUEST,
                &task_page(&state, &who, &id, Some(message)).await?,
            ))
        }
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}
