//! Tasks on the dashboard (Members and up), scoped by the live/test switch: the switch itself,
//! the task list with filters and pages, task detail with params, response, metadata,
//! history, and accept/reject audits.

use crate::web::PageTime;
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
use tessera_core::tasks::search;
use tessera_core::{status::TaskStatus, tasks::TaskType, Action, Mode, Scope};
use tessera_store::{MetadataField, PageCursor, StoreError, Task, TaskFilter};

use super::service::{audit_entry, resolve_names};
use crate::{
    authz::{perm, Authorized},
    paging::{decode_token, encode_token},
    state::AppState,
    web::{
        other_mode_offer, page, redirect_with_flash, render, session::in_mode, FieldErrors, Layout,
        SignedIn, WebError, WebResult,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mode", post(switch_mode))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}", get(task_detail))
        .route("/tasks/{id}/audit", post(audit))
        .route("/tasks/{id}/attachment", get(attachment))
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
fn status_names() -> Vec<&'static str> {
    TaskStatus::ALL.iter().map(|s| s.as_str()).collect()
}

pub(crate) fn type_names() -> Vec<&'static str> {
    TaskType::ALL.iter().map(|t| t.as_str()).collect()
}

#[derive(Deserialize)]
struct ModeInput {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    back: String,
    /// Set by the "this task is in the other mode" page: return to that very object.
    #[serde(default)]
    stay: Option<String>,
}

/// The live/test switch: remembered with the person's account (every browser they use opens
/// in it), and the page returned to carries the mode in its address.
async fn switch_mode(
    State(state): State<AppState>,
    Authorized { caller: who, .. }: Authorized<perm::ViewTasks, SignedIn>,
    Form(input): Form<ModeInput>,
) -> WebResult<Response> {
    let mode: Mode = input
        .mode
        .parse()
        .map_err(|e: tessera_core::Invalid| WebError::BadRequest(e.0))?;
    let back = crate::web::local_path(&input.back).unwrap_or_else(|| "/tasks".into());
    let back = in_mode(&back, Mode::Live);
    // Detail pages belong to one mode; go to the list instead (unless asked to stay: the
    // object is known to be in the mode switched to).
    let back = match back.split('/').nth(1) {
        _ if input.stay.is_some() => back,
        Some(list @ ("tasks" | "projects" | "batches" | "callbacks"))
            if back.len() > list.len() + 1 =>
        {
            format!("/{list}")
        }
        _ => back,
    };
    if who.stored_mode != mode {
        state.store.set_dashboard_mode(&who.user.id, mode).await?;
    }
    Ok(Redirect::to(&in_mode(&back, mode)).into_response())
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
    /// The search box: a task id or unique_id.
    q: Option<String>,
    /// `key=value` on a top-level string field of the metadata.
    metadata: Option<String>,
    /// Created on or after this day (UTC, `YYYY-MM-DD`).
    from: Option<String>,
    /// Created on or before this day.
    to: Option<String>,
    cursor: Option<String>,
}

struct TaskRow {
    id: String,
    task_type: &'static str,
    status: &'static str,
    project: String,
    batch: String,
    created: PageTime,
    review: &'static str,
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
    search: String,
    metadata: String,
    from: String,
    to: String,
    /// Each refused search field's message, shown next to it (the list is then empty).
    errors: FieldErrors,
    next_link: Option<String>,
    first_link: Option<String>,
}

/// The search fields of the list as typed (kept when one is refused), each bounded so an
/// overlong one is refused by its check rather than echoed whole.
struct SearchInput {
    search: Option<String>,
    metadata: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Applies the search fields to `filter`, collecting each refused field's message.
fn apply_search(input: &SearchInput, filter: &mut TaskFilter) -> FieldErrors {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut errors = FieldErrors::default();
    if let Some(term) = errors.check("q", search::search_term(&text(&input.search))) {
        filter.id_or_unique_id = term;
    }
    if let Some(field) = errors.check("metadata", search::metadata_search(&text(&input.metadata))) {
        filter.metadata_field = field.map(|(key, value)| MetadataField { key, value });
    }
    let from = errors.check("from", search::day("The start date", &text(&input.from)));
    let to = errors.check("to", search::day("The end date", &text(&input.to)));
    if let (Some(from), Some(to)) = (from, to) {
        if let Some((after, before)) = errors.check("to", search::created_range(from, to)) {
            filter.created_after = after;
            filter.created_before = before;
        }
    }
    errors
}

/// A field as typed, cut to `max` characters for showing it again.
fn kept(value: &Option<String>, max: usize) -> String {
    value
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(max)
        .collect()
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The status and type filters as the list takes them; refuses ones it does not know.
fn check_filters(
    status: Option<&str>,
    task_type: Option<&str>,
) -> WebResult<(Option<TaskStatus>, Option<TaskType>)> {
    let status = match status {
        Some(s) => Some(TaskStatus::from_word(s).ok_or_else(|| {
            WebError::BadRequest(format!(
                "\"{s}\" is not a task status; the filter \"status\" takes {}.",
                status_names().join(", ")
            ))
        })?),
        None => None,
    };
    let task_type = match task_type {
        Some(t) => Some(t.parse::<TaskType>().map_err(|_| {
            WebError::BadRequest(format!(
                "\"{t}\" is not a task type; the filter \"type\" takes {}.",
                type_names().join(", ")
            ))
        })?),
        None => None,
    };
    Ok((status, task_type))
}

async fn tasks(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewTasks, SignedIn>,
    Query(q): Query<TaskQuery>,
) -> WebResult<Response> {
    let status = nonempty(q.status);
    let task_type = nonempty(q.task_type);
    let (status_filter, type_filter) = check_filters(status.as_deref(), task_type.as_deref())?;
    let project = nonempty(q.project);
    let batch = nonempty(q.batch);
    let search_input = SearchInput {
        search: nonempty(q.q),
        metadata: nonempty(q.metadata),
        from: nonempty(q.from),
        to: nonempty(q.to),
    };
    let after = match nonempty(q.cursor) {
        Some(c) => Some(
            decode_token(&c)
                .map(|(created_at, id)| PageCursor { created_at, id })
                .map_err(|_| {
                    WebError::BadRequest(
                        "The page link's \"cursor\" is not valid; start again from the first page."
                            .into(),
                    )
                })?,
        ),
        None => None,
    };
    let mut filter = TaskFilter {
        status: status_filter,
        task_type: type_filter,
        ..TaskFilter::default()
    };
    let errors = apply_search(&search_input, &mut filter);
    let known = errors.is_empty()
        && resolve_names(
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
                .list_tasks(&scope, &filter, TASKS_PAGE, after.clone())
                .await?,
        )
    } else {
        None
    };
    let list_path = in_mode("/tasks", who.mode);
    let link = |cursor: Option<String>| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &status),
            ("type", &task_type),
            ("project", &project),
            ("batch", &batch),
            ("q", &search_input.search),
            ("metadata", &search_input.metadata),
            ("from", &search_input.from),
            ("to", &search_input.to),
            ("cursor", &cursor),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        format!("{list_path}?{}", q.finish())
    };
    let (rows, total, next_link) = match page_of {
        None => (Vec::new(), 0, None),
        Some(p) => (
            p.tasks.iter().map(task_row).collect(),
            p.total,
            p.next
                .map(|n| link(Some(encode_token(n.created_at, &n.id)))),
        ),
    };
    let refused = !errors.is_empty();
    let shown = TasksPage {
        layout: Layout::signed_in("Tasks", &who, "/tasks"),
        rows,
        total,
        statuses: choices(&status_names(), status.as_deref().unwrap_or_default()),
        types: choices(&type_names(), task_type.as_deref().unwrap_or_default()),
        project: project.clone().unwrap_or_default(),
        batch: batch.clone().unwrap_or_default(),
        search: kept(&search_input.search, search::MAX_SEARCH_CHARS + 1),
        metadata: kept(
            &search_input.metadata,
            search::MAX_METADATA_KEY_CHARS + search::MAX_METADATA_VALUE_CHARS + 2,
        ),
        from: kept(&search_input.from, 10),
        to: kept(&search_input.to, 10),
        errors,
        first_link: after.map(|_| link(None)),
        next_link,
    };
    Ok(if refused {
        render(StatusCode::BAD_REQUEST, &shown)
    } else {
        page(&shown)
    })
}

fn task_row(t: &Task) -> TaskRow {
    TaskRow {
        id: t.id.clone(),
        task_type: t.task_type.as_str(),
        status: t.status.as_str(),
        project: t.project_name.clone().unwrap_or_default(),
        batch: t.batch_name.clone().unwrap_or_default(),
        created: PageTime::at(t.created_at),
        review: t.customer_review_status.map_or("", |r| r.as_str()),
    }
}

/// A callback of the task, linked to its delivery page.
struct CallbackRow {
    id: String,
    status: String,
    attempts: i64,
    created: PageTime,
}

struct HistoryRow {
    when: PageTime,
    actor: String,
    event: String,
    detail: String,
}

/// One annotation of the response as the overlay draws it, in the image's pixels: `shape` is
/// the SVG element (`path`, `circle` or `ellipse`) and the attributes it uses.
struct DrawnShape {
    shape: &'static str,
    kind: &'static str,
    label: String,
    color: &'static str,
    /// `path`: its outline.
    d: String,
    /// `circle` / `ellipse`: the centre, radii and rotation (degrees).
    cx: String,
    cy: String,
    rx: String,
    ry: String,
    rotation: String,
    /// Where the label is written: the shape's top-left extent.
    label_x: String,
    label_y: String,
}

/// Colours the overlay gives labels, in order of first appearance (distinct on photos and
/// readable as text on the page's white).
const LABEL_COLORS: [&str; 8] = [
    "#e8590c", "#1c7ed6", "#2f9e44", "#c2255c", "#7048e8", "#0c8599", "#a61e4d", "#5c940d",
];

fn num(n: f64) -> String {
    // Whole pixels print without a fraction; others keep two decimals at most.
    let rounded = (n * 100.0).round() / 100.0;
    format!("{rounded}")
}

fn path_of(points: &[(f64, f64)], closed: bool) -> String {
    let mut d = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        d.push_str(if i == 0 { "M" } else { " L" });
        d.push_str(&format!("{} {}", num(*x), num(*y)));
    }
    if closed {
        d.push_str(" Z");
    }
    d
}

/// The shapes of a response, each with its label's colour.
fn drawn_shapes(task_type: TaskType, response: &Value) -> Vec<DrawnShape> {
    use tessera_core::tasks::overlay::{annotations, Geometry};
    let mut labels: Vec<String> = Vec::new();
    annotations(task_type, response)
        .into_iter()
        .map(|a| {
            let index = labels
                .iter()
                .position(|l| *l == a.label)
                .unwrap_or_else(|| {
                    labels.push(a.label.clone());
                    labels.len() - 1
                });
            let (label_x, label_y) = a.geometry.anchor();
            let mut drawn = DrawnShape {
                shape: "path",
                kind: "",
                color: LABEL_COLORS[index % LABEL_COLORS.len()],
                label: a.label,
                d: String::new(),
                cx: String::new(),
                cy: String::new(),
                rx: String::new(),
                ry: String::new(),
                rotation: String::new(),
                label_x: num(label_x),
                label_y: num(label_y),
            };
            match a.geometry {
                Geometry::Box {
                    left,
                    top,
                    width,
                    height,
                } => {
                    drawn.kind = "box";
                    drawn.d = path_of(
                        &[
                            (left, top),
                            (left + width, top),
                            (left + width, top + height),
                            (left, top + height),
                        ],
                        true,
                    );
                }
                Geometry::Polygon(points) => {
                    drawn.kind = "polygon";
                    drawn.d = path_of(&points, true);
                }
                Geometry::Line(points) => {
                    drawn.kind = "line";
                    drawn.d = path_of(&points, false);
                }
                Geometry::Cuboid { front, back } => {
                    drawn.kind = "cuboid";
                    let mut d = format!("{} {}", path_of(&front, true), path_of(&back, true));
                    for (f, b) in front.iter().zip(&back) {
                        d.push(' ');
                        d.push_str(&path_of(&[*f, *b], false));
                    }
                    drawn.d = d;
                }
                Geometry::Point((x, y)) => {
                    drawn.kind = "point";
                    drawn.shape = "circle";
                    drawn.cx = num(x);
                    drawn.cy = num(y);
                }
                Geometry::Ellipse {
                    center,
                    rx,
                    ry,
                    rotation,
                } => {
                    drawn.kind = "ellipse";
                    drawn.shape = "ellipse";
                    drawn.cx = num(center.0);
                    drawn.cy = num(center.1);
                    drawn.rx = num(rx);
                    drawn.ry = num(ry);
                    drawn.rotation = num(rotation);
                }
            }
            drawn
        })
        .collect()
}

/// The task's creating key as the page names it: "label (prefix…)".
fn key_text(key: &tessera_store::KeyName) -> String {
    let label = if key.label.is_empty() {
        "Unnamed key"
    } else {
        key.label.as_str()
    };
    let deleted = if key.deleted { ", deleted" } else { "" };
    format!("{label} ({}…{deleted})", key.prefix)
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    layout: Layout,
    id: String,
    task_type: &'static str,
    status: &'static str,
    project: String,
    batch: String,
    /// The project's page and the batch's tasks (there is no batch page), in this mode.
    project_link: String,
    batch_link: String,
    /// The API key that created the task, if one did and it is still known.
    created_by_key: Option<String>,
    /// The response's annotations drawn over the attachment (an image task with a response).
    shapes: Vec<DrawnShape>,
    /// Whether the attachment is an image the page can show.
    show_image: bool,
    unique_id: String,
    instruction: String,
    callback_url: String,
    tags: String,
    review: &'static str,
    params: String,
    /// The attachment as the task names it, and where the browser can open it (a signed URL,
    /// the proxy route, or the public URL itself), or why it cannot be read.
    attachment: Option<String>,
    attachment_src: Option<String>,
    attachment_problem: Option<String>,
    response: Option<String>,
    metadata: String,
    history: Vec<HistoryRow>,
    callbacks: Vec<CallbackRow>,
    can_audit: bool,
    error: Option<String>,
}

/// The task page of task `id` of `scope` (a scope to view tasks in), with `error` above the
/// audit form.
async fn task_page(
    state: &AppState,
    (who, scope): (&SignedIn, &Scope),
    id: &str,
    error: Option<String>,
) -> WebResult<TaskPage> {
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let task = state
        .store
        .get_task(scope, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let mut history = vec![HistoryRow {
        when: PageTime::at(task.created_at),
        actor: String::new(),
        event: "created".into(),
        detail: format!("{} mode", task.mode),
    }];
    if let (Some(at), true) = (task.completed_at, task.mode == Mode::Test) {
        history.push(HistoryRow {
            when: PageTime::at(at),
            actor: "test mode".into(),
            event: "completed".into(),
            detail: "synthetic response".into(),
        });
    }
    for e in state.store.task_events(scope, &task.id).await? {
        history.push(HistoryRow {
            when: PageTime::at(e.at),
            actor: e.actor,
            event: e.event,
            detail: e.detail,
        });
    }
    let callbacks = if who.may(Action::ViewCallbacks) {
        state
            .store
            .task_deliveries(scope, &task.id)
            .await?
            .into_iter()
            .map(|d| CallbackRow {
                id: d.id.into_string(),
                status: d.status.as_str().to_owned(),
                attempts: d.attempts,
                created: PageTime::at(d.created_at),
            })
            .collect()
    } else {
        Vec::new()
    };
    let attachment = task
        .params
        .get("attachment")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let (attachment_src, attachment_problem) = match attachment.as_deref() {
        Some(url) => {
            let proxy_path = in_mode(&format!("/tasks/{}/attachment", task.id), who.mode);
            crate::integrations::service::attachment_source(state, scope, url, &proxy_path).await
        }
        None => (None, None),
    };
    let created_by_key = state
        .store
        .task_creator_key(scope, &task.id)
        .await?
        .map(|k| key_text(&k));
    let is_image = task
        .params
        .get("attachment_type")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "image");
    let show_image = is_image && attachment_src.is_some();
    let shapes = match &task.response {
        Some(response) if show_image => drawn_shapes(task.task_type, response),
        _ => Vec::new(),
    };
    let project = task.project_name.clone().unwrap_or_default();
    let batch = task.batch_name.clone().unwrap_or_default();
    let query = |pairs: &[(&str, &str)]| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let project_link = format!(
        "{}?{}",
        in_mode("/projects/view", who.mode),
        query(&[("name", &project)])
    );
    let batch_link = format!(
        "{}?{}",
        in_mode("/tasks", who.mode),
        query(&[("project", &project), ("batch", &batch)])
    );
    Ok(TaskPage {
        layout: Layout::signed_in(format!("Task {}", task.id), who, "/tasks"),
        project_link,
        batch_link,
        created_by_key,
        shapes,
        show_image,
        attachment,
        attachment_src,
        attachment_problem,
        callbacks,
        can_audit: who.may(Action::AuditTasks) && task.status == TaskStatus::Completed,
        id: task.id.clone(),
        task_type: task.task_type.as_str(),
        status: task.status.as_str(),
        project,
        batch,
        unique_id: task.unique_id.clone().unwrap_or_default(),
        instruction: task.instruction.clone().unwrap_or_default(),
        callback_url: task.callback_url.clone().unwrap_or_default(),
        tags: task.tags.clone().unwrap_or_default().join(", "),
        review: task.customer_review_status.map_or("", |r| r.as_str()),
        params: pretty(&task.params),
        response: task.response.as_ref().map(pretty),
        metadata: pretty(&task.metadata),
        history,
        error,
    })
}

/// The task page shows the customer's attachment, which may live on the customer's host: as on
/// the labeling page, its policy lets images load from http(s) sources (everything else stays
/// as strict as elsewhere).
fn with_attachment_images(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// Proxy mode: the task's attachment streamed from the team's bucket.
async fn attachment(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let task = state
        .store
        .get_task(&scope, &id)
        .await?
        .ok_or(WebError::NotFound)?;
    let url = task
        .params
        .get("attachment")
        .and_then(serde_json::Value::as_str)
        .ok_or(WebError::NotFound)?;
    Ok(crate::integrations::attachments::stream(&state, &scope, url).await)
}

async fn task_detail(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewTasks, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    match task_page(&state, (&who, &scope), &id, None).await {
        Err(WebError::NotFound) if id.len() <= 64 => {
            if let Some(other) = who.other_mode_scope(Action::ViewTasks) {
                if state.store.get_task(&other, &id).await?.is_some() {
                    return Ok(other_mode_offer(&who, "task", &format!("/tasks/{id}")));
                }
            }
            Err(WebError::NotFound)
        }
        shown => Ok(with_attachment_images(page(&shown?))),
    }
}

#[derive(Deserialize)]
struct AuditInput {
    #[serde(default)]
    result: String,
    #[serde(default)]
    comments: String,
}

/// Records an audit from the task page; a refusal re-renders the page (viewed with the
/// person's own view permission) with the reason.
async fn audit(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::AuditTasks, SignedIn>,
    Path(id): Path<String>,
    Form(input): Form<AuditInput>,
) -> WebResult<Response> {
    let rerender = |message: String| async {
        let view = who.authorize(Action::ViewTasks)?;
        let page = task_page(&state, (&who, &view), &id, Some(message)).await?;
        Ok::<_, WebError>(with_attachment_images(render(
            StatusCode::BAD_REQUEST,
            &page,
        )))
    };
    let accepted = match input.result.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return Err(WebError::BadRequest("Choose accept or reject.".into())),
    };
    let comments = match tessera_core::clean_text("Comments", &input.comments, 2000, false) {
        Ok(c) => c,
        Err(e) => return rerender(e.0).await,
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
        .audit_task(&scope, &id, accepted, entry, &auditor)
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
            rerender(format!(
                "This task is {status}; only completed tasks can be audited."
            ))
            .await
        }
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}
