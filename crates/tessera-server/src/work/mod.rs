//! Projects and tasks on the dashboard (Members and up), scoped by the live/test switch:
//! project list and detail with batches, task list with filters and pages, task detail with
//! params, response, metadata, history, and accept/reject audits.

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
use serde_json::{json, Map, Value};
use tessera_core::{tasks::TaskType, Action, Mode};
use tessera_store::{BatchFilter, NewBatch, StoreError, Task, TaskFilter};

use crate::{
    api::{
        projects::{check_name, new_project},
        tasks::audit_entry,
        wire::{decode_token, encode_token},
    },
    state::AppState,
    web::{
        format_time, page, redirect_with_flash, render, session::MODE_COOKIE, Layout, SignedIn,
        WebError, WebResult,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mode", post(switch_mode))
        .route("/projects", get(projects).post(create_project))
        .route("/projects/view", get(project_detail))
        .route("/projects/batches", post(create_batch))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}", get(task_detail))
        .route("/tasks/{id}/audit", post(audit))
}

const TASKS_PAGE: i64 = 50;

/// A choice in a select box.
struct Choice {
    value: &'static str,
    selected: bool,
}

fn choices(values: &[&'static str], current: &str) -> Vec<Choice> {
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

fn type_names() -> Vec<&'static str> {
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

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

struct ProjectRow {
    name: String,
    display: String,
    task_type: String,
    created: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    layout: Layout,
    projects: Vec<ProjectRow>,
    can_edit: bool,
    types: Vec<Choice>,
    error: Option<String>,
    name: String,
    instruction: String,
}

async fn projects_page(
    state: &AppState,
    who: &SignedIn,
    error: Option<String>,
    input: ProjectInput,
) -> WebResult<ProjectsPage> {
    let team_id = who.authorize(Action::ViewTasks)?;
    let team = who.team_name.clone().unwrap_or_default();
    let projects = state
        .store
        .list_projects(team_id, who.mode)
        .await?
        .into_iter()
        .rev()
        .map(|p| ProjectRow {
            display: format!("{team} / {}", p.name),
            name: p.name,
            task_type: p.task_type,
            created: format_time(p.created_at),
        })
        .collect();
    Ok(ProjectsPage {
        layout: Layout::signed_in("Projects", who, "/projects"),
        projects,
        can_edit: who.authorize(Action::EditProjects).is_ok(),
        types: choices(&type_names(), &input.task_type),
        error,
        name: input.name,
        instruction: input.instruction,
    })
}

async fn projects(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    Ok(page(
        &projects_page(&state, &who, None, ProjectInput::default()).await?,
    ))
}

#[derive(Deserialize, Default)]
struct ProjectInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    task_type: String,
    #[serde(default)]
    instruction: String,
}

async fn create_project(
    State(state): State<AppState>,
    who: SignedIn,
    Form(input): Form<ProjectInput>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::EditProjects)?.to_owned();
    let mut params = Map::new();
    if !input.instruction.trim().is_empty() {
        params.insert("instruction".into(), json!(input.instruction.trim()));
    }
    let new = check_name("project", &input.name)
        .and_then(|name| new_project(&team_id, who.mode, &name, &input.task_type, params));
    let new = match new {
        Ok(new) => new,
        Err(err) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &projects_page(&state, &who, Some(err.message), input).await?,
            ))
        }
    };
    match state.store.create_project(&new).await {
        Ok(p) => Ok(redirect_with_flash(
            &project_link(&p.name),
            &format!("Project \"{}\" created in {} mode.", p.name, who.mode),
        )),
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let message = format!(
                "A project named \"{}\" already exists in {} mode.",
                new.name, who.mode
            );
            Ok(render(
                StatusCode::BAD_REQUEST,
                &projects_page(&state, &who, Some(message), input).await?,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

fn project_link(name: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("name", name)
        .finish();
    format!("/projects/view?{q}")
}

struct BatchRow {
    name: String,
    status: String,
    created: String,
    tasks_link: String,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    layout: Layout,
    name: String,
    display: String,
    task_type: String,
    params: String,
    history: Vec<(i64, String, String)>,
    batches: Vec<BatchRow>,
    can_edit: bool,
    tasks_link: String,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameQuery {
    #[serde(default)]
    name: String,
}

async fn project_page(
    state: &AppState,
    who: &SignedIn,
    name: &str,
    error: Option<String>,
) -> WebResult<ProjectPage> {
    let team_id = who.authorize(Action::ViewTasks)?;
    let project = state
        .store
        .find_project(team_id, who.mode, name)
        .await?
        .ok_or(WebError::NotFound)?;
    let (batches, _) = state
        .store
        .list_batches(
            team_id,
            who.mode,
            &BatchFilter {
                project_id: Some(project.id.clone()),
                ..BatchFilter::default()
            },
            100,
            0,
        )
        .await?;
    let history = project
        .param_history
        .as_array()
        .map(|h| {
            h.iter()
                .rev()
                .map(|entry| {
                    let version = entry
                        .get("version")
                        .and_then(Value::as_i64)
                        .unwrap_or_default();
                    let at = entry
                        .get("created_at")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let mut shown = entry.clone();
                    if let Value::Object(o) = &mut shown {
                        o.remove("version");
                        o.remove("created_at");
                    }
                    (version, at, pretty(&shown))
                })
                .collect()
        })
        .unwrap_or_default();
    let tasks_link = |extra: &str| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("project", &project.name);
        if !extra.is_empty() {
            q.append_pair("batch", extra);
        }
        format!("/tasks?{}", q.finish())
    };
    Ok(ProjectPage {
        layout: Layout::signed_in(format!("Project {}", project.name), who, "/projects"),
        display: format!(
            "{} / {}",
            who.team_name.clone().unwrap_or_default(),
            project.name
        ),
        task_type: project.task_type.clone(),
        params: pretty(&project.params),
        history,
        batches: batches
            .into_iter()
            .map(|b| BatchRow {
                tasks_link: tasks_link(&b.name),
                name: b.name,
                status: b.status,
                created: format_time(b.created_at),
            })
            .collect(),
        can_edit: who.authorize(Action::EditProjects).is_ok(),
        tasks_link: tasks_link(""),
        name: project.name,
        error,
    })
}

async fn project_detail(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<NameQuery>,
) -> WebResult<Response> {
    Ok(page(&project_page(&state, &who, &q.name, None).await?))
}

#[derive(Deserialize)]
struct BatchInput {
    #[serde(default)]
    project: String,
    #[serde(default)]
    name: String,
}

async fn create_batch(
    State(state): State<AppState>,
    who: SignedIn,
    Form(input): Form<BatchInput>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::EditProjects)?.to_owned();
    let project = state
        .store
        .find_project(&team_id, who.mode, &input.project)
        .await?
        .ok_or(WebError::NotFound)?;
    let name = match check_name("batch", &input.name) {
        Ok(name) => name,
        Err(err) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &project_page(&state, &who, &project.name, Some(err.message)).await?,
            ))
        }
    };
    let new = NewBatch {
        team_id,
        mode: who.mode,
        project_id: project.id.clone(),
        name: name.clone(),
        status: if project.rapid || project.studio {
            "staging"
        } else {
            "in_progress"
        }
        .into(),
        callback: String::new(),
        metadata: json!({}),
        calibration_batch: false,
        self_label_batch: false,
    };
    match state.store.create_batch(&new).await {
        Ok(_) => Ok(redirect_with_flash(
            &project_link(&project.name),
            &format!("Batch \"{name}\" created."),
        )),
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let message = format!(
                "A batch named \"{name}\" already exists in {} mode.",
                who.mode
            );
            Ok(render(
                StatusCode::BAD_REQUEST,
                &project_page(&state, &who, &project.name, Some(message)).await?,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

// ----- tasks -------------------------------------------------------------------------------

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

async fn tasks(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<TaskQuery>,
) -> WebResult<Response> {
    let team_id = who.authorize(Action::ViewTasks)?;
    let status = nonempty(q.status);
    if let Some(s) = status.as_deref().filter(|s| !TASK_STATUSES.contains(s)) {
        return Err(WebError::BadRequest(format!(
            "\"{s}\" is not a task status; the filter \"status\" takes {}.",
            TASK_STATUSES.join(", ")
        )));
    }
    let task_type = nonempty(q.task_type);
    if let Some(t) = task_type
        .as_deref()
        .filter(|t| t.parse::<TaskType>().is_err())
    {
        return Err(WebError::BadRequest(format!(
            "\"{t}\" is not a task type; the filter \"type\" takes {}.",
            type_names().join(", ")
        )));
    }
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
    let mut unknown = false;
    if let Some(name) = &project {
        match state.store.find_project(team_id, who.mode, name).await? {
            Some(p) => filter.project_id = Some(p.id),
            None => unknown = true,
        }
    }
    if let Some(name) = &batch {
        match state.store.find_batch(team_id, who.mode, name).await? {
            Some(b) => filter.batch_id = Some(b.id),
            None => unknown = true,
        }
    }
    let page_of = if unknown {
        None
    } else {
        Some(
            state
                .store
                .list_tasks(team_id, who.mode, &filter, TASKS_PAGE, after.clone())
                .await?,
        )
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
    let team_id = who.authorize(Action::ViewTasks)?;
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
    let callbacks = if who.authorize(Action::ViewCallbacks).is_ok() {
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
        can_audit: who.authorize(Action::AuditTasks).is_ok() && task.status == "completed",
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
    let team_id = who.authorize(Action::AuditTasks)?.to_owned();
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
