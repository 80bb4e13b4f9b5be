//! `/v1/task…` and `/v1/tasks`: create (per type, with validation), read, list, cancel,
//! audit, unique_id, metadata and tags.

use axum::{
    extract::{Path, RawQuery, State},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Map, Value};
use tessera_core::{
    tasks::{synthetic_response, validate, TaskType, TypeProblem},
    Action, Mode,
};
use tessera_store::{NewTask, StoreError, Task, TaskFilter};

use crate::callbacks::targets::check_target;

use super::{
    auth::ApiCaller,
    wire::{
        check_len, decode_token, encode_token, iso, json_bool, json_response, string_field,
        ApiError, ApiResult, JsonBody, QueryPairs,
    },
};
use crate::state::AppState;

pub const MAX_UNIQUE_ID: usize = 512;
pub const MAX_INSTRUCTION: usize = 100_000;
pub const MAX_TAGS: usize = 100;
pub const MAX_TAG_LEN: usize = 128;
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Top-level fields of a create request that are not task params.
const TOP_LEVEL: [&str; 7] = [
    "project",
    "batch",
    "instruction",
    "callback_url",
    "unique_id",
    "metadata",
    "tags",
];
/// Legacy top-level fields passed through as they came.
const PASSTHROUGH: [&str; 2] = ["urgency", "priority"];

fn task_not_found() -> ApiError {
    ApiError::not_found("Task with that ID not found.")
}

/// The wire shape of a task (scale-api.md §4.1), written straight from the stored task (no
/// intermediate JSON tree: list pages and task reads are the API's hottest paths). Keys such
/// as `unique_id` and `tags` are absent when unset; `limited` keeps only what
/// `limited_response` promises; legacy fields kept in `extra` never shadow a real one.
pub struct TaskWire<'a> {
    pub task: &'a Task,
    pub limited: bool,
}

/// Every key [`TaskWire`] writes itself, so that `extra` cannot repeat one.
const WIRE_KEYS: [&str; 20] = [
    "task_id",
    "status",
    "metadata",
    "project",
    "type",
    "created_at",
    "updated_at",
    "completed_at",
    "instruction",
    "callback_url",
    "params",
    "batch",
    "unique_id",
    "tags",
    "response",
    "callback_succeeded",
    "is_test",
    "customer_review_status",
    "audits",
    "processed_attachments",
];

impl serde::Serialize for TaskWire<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let task = self.task;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("task_id", &task.id)?;
        map.serialize_entry("status", &task.status)?;
        map.serialize_entry("metadata", &task.metadata)?;
        if let Some(project) = &task.project_name {
            map.serialize_entry("project", project)?;
        }
        if self.limited {
            return map.end();
        }
        map.serialize_entry("type", &task.task_type)?;
        map.serialize_entry("created_at", &iso(task.created_at))?;
        map.serialize_entry("updated_at", &iso(task.updated_at))?;
        if let Some(at) = task.completed_at {
            map.serialize_entry("completed_at", &iso(at))?;
        }
        if let Some(instruction) = &task.instruction {
            map.serialize_entry("instruction", instruction)?;
        }
        if let Some(url) = &task.callback_url {
            map.serialize_entry("callback_url", url)?;
        }
        map.serialize_entry("params", &task.params)?;
        if let Some(batch) = &task.batch_name {
            map.serialize_entry("batch", batch)?;
        }
        if let Some(unique_id) = &task.unique_id {
            map.serialize_entry("unique_id", unique_id)?;
        }
        if let Some(tags) = &task.tags {
            map.serialize_entry("tags", tags)?;
        }
        if let Some(response) = &task.response {
            map.serialize_entry("response", response)?;
        }
        if let Some(ok) = task.callback_succeeded {
            map.serialize_entry("callback_succeeded", &ok)?;
        }
        if task.mode == Mode::Test {
            map.serialize_entry("is_test", &true)?;
        }
        if let Some(review) = &task.customer_review_status {
            map.serialize_entry("customer_review_status", review)?;
        }
        if task.audits.as_array().is_some_and(|a| !a.is_empty()) {
            map.serialize_entry("audits", &task.audits)?;
        }
        if let Value::Object(extra) = &task.extra {
            for (k, v) in extra {
                if !WIRE_KEYS.contains(&k.as_str()) {
                    map.serialize_entry(k, v)?;
                }
            }
        }
        map.serialize_entry("processed_attachments", &[(); 0])?;
        map.end()
    }
}

/// [`TaskWire`] as a JSON value, for bodies that embed a task (callbacks, changes).
pub fn task_json(task: &Task, limited: bool) -> Value {
    serde_json::to_value(TaskWire { task, limited }).unwrap_or(Value::Null)
}

/// A page of `GET /v1/tasks`, serialized without copying its tasks.
#[derive(serde::Serialize)]
struct TaskListPage<'a> {
    docs: Vec<TaskWire<'a>>,
    total: i64,
    limit: i64,
    offset: i64,
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn parse_tags(value: Option<&Value>) -> ApiResult<Option<Vec<String>>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(one)) => vec![Value::String(one.clone())],
        Some(_) => return Err(ApiError::bad_request("tags must be a list of strings.")),
    };
    let tags = items
        .into_iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ApiError::bad_request("tags must be a list of strings."))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    check_tags(&tags)?;
    Ok(Some(tags))
}

fn check_tags(tags: &[String]) -> ApiResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "A task has at most {MAX_TAGS} tags."
        )));
    }
    for tag in tags {
        if tag.is_empty() {
            return Err(ApiError::bad_request("Tags must not be empty."));
        }
        check_len("A tag", tag, MAX_TAG_LEN)?;
    }
    Ok(())
}

fn check_metadata(metadata: &Value) -> ApiResult<()> {
    if !metadata.is_object() {
        return Err(ApiError::bad_request("metadata must be a JSON object."));
    }
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::bad_request(format!(
            "metadata must be at most {} KiB of JSON.",
            MAX_METADATA_BYTES / 1024
        )));
    }
    Ok(())
}

/// A callback target: an absolute http(s) URL or an email address.
pub fn check_callback(raw: &str) -> ApiResult<String> {
    let raw = raw.trim();
    if raw.contains('@') && !raw.contains("://") {
        return Ok(tessera_core::Email::parse(raw)?.to_string());
    }
    tessera_core::team::parse_callback_url(raw)?.ok_or_else(|| {
        ApiError::bad_request("callback_url must be an absolute http(s) URL or an email address.")
    })
}

/// Create a task of `task_type`. Fields other than project, batch, instruction,
/// callback_url, unique_id, metadata and tags become the task's params. Test keys get a
/// completed task with a synthetic response; live keys a pending one.
#[utoipa::path(
    post, path = "/v1/task/{task}", tag = "tasks",
    params(("task" = String, Path, description = "The task type: imageannotation, categorization, …")),
    request_body(content = serde_json::Value, description = "Task fields (scale-api.md §5)"),
    responses(
        (status = 200, description = "The task", body = serde_json::Value),
        (status = 400, description = "A required field is missing or invalid", body = super::ErrorBody),
        (status = 402, description = "Task type not enabled", body = super::ErrorBody),
        (status = 409, description = "unique_id already used", body = super::ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn create_task(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(task_type): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    if caller.mode == Mode::Test {
        if let Err(secs) = state.test_tasks.take(&caller.team_id) {
            return Err(ApiError::too_many(
                format!(
                    "Your team created its {} test tasks for this hour; try again in {secs} s.",
                    state.test_tasks.max()
                ),
                secs,
            ));
        }
    }
    let task_type: TaskType = task_type.parse().map_err(|TypeProblem::NotEnabled(t)| {
        ApiError::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            format!("The task type \"{t}\" is not enabled for your account. Contact sales to enable it."),
        )
    })?;
    let mut body = body.object()?;
    let unique_id = string_field(&body, "unique_id", MAX_UNIQUE_ID)?.filter(|u| !u.is_empty());
    let mut instruction = string_field(&body, "instruction", MAX_INSTRUCTION)?;
    let callback_url = string_field(&body, "callback_url", tessera_core::team::MAX_URL_LEN)?
        .filter(|u| !u.trim().is_empty());
    let callback_url = match callback_url {
        Some(raw) => Some(check_target(&state, &caller.team_id, &raw).await?),
        None => None,
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => json!({}),
        Some(m) => {
            check_metadata(m)?;
            m.clone()
        }
    };
    let tags = parse_tags(body.get("tags"))?;
    let project_name = string_field(&body, "project", 512)?;
    let batch_name = string_field(&body, "batch", 512)?;
    let mut extra = Map::new();
    for key in PASSTHROUGH {
        if let Some(v) = body.remove(key) {
            extra.insert(key.into(), v);
        }
    }
    for key in TOP_LEVEL {
        body.remove(key);
    }
    let mut params = body;

    let batch = match &batch_name {
        Some(name) => Some(
            state
                .store
                .find_batch(&caller.team_id, caller.mode, name)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Batch \"{name}\" not found.")))?,
        ),
        None => None,
    };
    if let Some(batch) = &batch {
        if batch.status == "completed" {
            return Err(ApiError::bad_request(format!(
                "Batch \"{}\" is completed; it accepts no new tasks.",
                batch.name
            )));
        }
        if project_name
            .as_deref()
            .is_some_and(|p| p != batch.project_name)
        {
            return Err(ApiError::bad_request(format!(
                "Batch \"{}\" belongs to project \"{}\", not \"{}\".",
                batch.name,
                batch.project_name,
                project_name.as_deref().unwrap_or_default()
            )));
        }
    }
    let project_name = project_name.or_else(|| batch.as_ref().map(|b| b.project_name.clone()));
    let project = match &project_name {
        Some(name) => Some(
            state
                .store
                .find_project(&caller.team_id, caller.mode, name)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Project \"{name}\" not found.")))?,
        ),
        None => None,
    };
    if let Some(project) = &project {
        if let Some(batch) = &batch {
            if (project.rapid || project.studio) && batch.finalized {
                return Err(ApiError::bad_request(format!(
                    "Batch \"{}\" is finalized; it accepts no new tasks.",
                    batch.name
                )));
            }
        }
        // Project params are defaults; the project's instruction follows the task's own.
        if let Value::Object(defaults) = &project.params {
            for (k, v) in defaults {
                if k == "instruction" {
                    if let Some(extra_instruction) = v.as_str().filter(|s| !s.is_empty()) {
                        instruction = Some(match instruction.take() {
                            Some(own) if !own.is_empty() => format!("{own}\n\n{extra_instruction}"),
                            _ => extra_instruction.to_owned(),
                        });
                    }
                } else if !params.contains_key(k) {
                    params.insert(k.clone(), v.clone());
                }
            }
        }
    }
    validate(task_type, &params)?;
    // Without a callback_url the store applies the team's default callback URL.
    let (status, response) = match caller.mode {
        Mode::Test => ("completed", Some(synthetic_response(task_type, &params))),
        Mode::Live => ("pending", None),
    };
    let new = NewTask {
        team_id: caller.team_id.clone(),
        mode: caller.mode,
        task_type: task_type.as_str().to_owned(),
        status: status.to_owned(),
        project: project.map(|p| (p.id, p.name)),
        batch: batch.map(|b| (b.id, b.name)),
        unique_id: unique_id.clone(),
        callback_url,
        instruction,
        params: Value::Object(params),
        metadata,
        tags,
        response,
        extra: Value::Object(extra),
    };
    match state.store.insert_task(&new).await {
        Ok(task) => {
            if task.completed_at.is_some() && task.callback_url.is_some() {
                state.callbacks_queued.notify_one();
            }
            Ok(Json(task_json(&task, false)))
        }
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let uid = unique_id.unwrap_or_default();
            let existing = state
                .store
                .find_task_by_unique_id(&caller.team_id, caller.mode, &uid)
                .await?;
            Err(ApiError::conflict(format!(
                "The unique_id (\"{uid}\") is already used for a different task ({}).",
                existing.map(|t| t.id).unwrap_or_default()
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// Task ids are 24 hex digits; anything much longer is refused before any query.
fn check_id(id: &str) -> ApiResult<()> {
    if id.len() > 64 {
        return Err(task_not_found());
    }
    Ok(())
}

fn changed(result: Result<Task, StoreError>) -> ApiResult<Json<Value>> {
    match result {
        Ok(task) => Ok(Json(task_json(&task, false))),
        Err(StoreError::NotFound) => Err(task_not_found()),
        Err(err) => Err(err.into()),
    }
}

/// Get one task.
#[utoipa::path(
    get, path = "/v1/task/{task}", tag = "tasks",
    params(("task" = String, Path, description = "The task id")),
    responses((status = 200, body = serde_json::Value), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn get_task(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.authorize(Action::ViewTasks)?;
    check_id(&id)?;
    let task = state
        .store
        .cached_task(&caller.team_id, caller.mode, &id)
        .await?
        .ok_or_else(task_not_found)?;
    Ok(json_response(&TaskWire {
        task: &task,
        limited: false,
    }))
}

/// List tasks, newest first, 1–100 a page (`limit`), with `next_token` paging and `total`
/// counting every match.
#[utoipa::path(
    get, path = "/v1/tasks", tag = "tasks",
    params(
        ("status" = Option<String>, Query), ("type" = Option<String>, Query), ("project" = Option<String>, Query),
        ("batch" = Option<String>, Query), ("start_time" = Option<String>, Query), ("end_time" = Option<String>, Query),
        ("completed_after" = Option<String>, Query), ("completed_before" = Option<String>, Query),
        ("updated_after" = Option<String>, Query), ("updated_before" = Option<String>, Query),
        ("customer_review_status" = Option<String>, Query), ("unique_id" = Option<Vec<String>>, Query),
        ("tags" = Option<Vec<String>>, Query), ("limit" = Option<i64>, Query), ("next_token" = Option<String>, Query),
        ("limited_response" = Option<bool>, Query), ("include_attachment_url" = Option<bool>, Query),
    ),
    responses((status = 200, description = "{docs, total, limit, offset, has_more, next_token}", body = serde_json::Value), (status = 400, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: ApiCaller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    caller.authorize(Action::ViewTasks)?;
    let q = QueryPairs::parse(raw.as_deref());
    let limit = q.limit()?;
    let after = q.get("next_token").map(decode_token).transpose()?;
    let limited = q.flag("limited_response")?.unwrap_or(false);
    q.flag("include_attachment_url")?;
    let status = q.get("status").map(str::to_owned);
    if let Some(s) = &status {
        if !matches!(s.as_str(), "pending" | "completed" | "canceled" | "error") {
            return Err(ApiError::bad_request(format!(
                "status must be pending, completed, canceled or error (got \"{s}\")."
            )));
        }
    }
    let review_statuses: Vec<String> = q
        .all("customer_review_status")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = review_statuses.iter().find(|s| {
        !matches!(
            s.as_str(),
            "pending" | "fixed" | "accepted" | "rejected" | "commented"
        )
    }) {
        return Err(ApiError::bad_request(format!("customer_review_status \"{bad}\" is not one of pending, fixed, accepted, rejected, commented.")));
    }
    let empty =
        || Json(json!({"docs": [], "total": 0, "limit": limit, "offset": 0, "has_more": false}));
    let mut filter = TaskFilter {
        status,
        task_type: q.get("type").map(str::to_owned),
        created_after: q.time("start_time")?,
        created_before: q.time("end_time")?,
        completed_after: q.time("completed_after")?,
        completed_before: q.time("completed_before")?,
        updated_after: q.time("updated_after")?,
        updated_before: q.time("updated_before")?,
        review_statuses,
        unique_ids: q.all("unique_id"),
        tags: q.all("tags"),
        ..TaskFilter::default()
    };
    if filter.unique_ids.len() > 100 || filter.tags.len() > 100 {
        return Err(ApiError::bad_request(
            "At most 100 unique_id and 100 tags values per request.",
        ));
    }
    if let Some(name) = q.get("project") {
        match state
            .store
            .find_project(&caller.team_id, caller.mode, name)
            .await?
        {
            Some(p) => filter.project_id = Some(p.id),
            None => return Ok(empty().into_response()),
        }
    }
    if let Some(name) = q.get("batch") {
        match state
            .store
            .find_batch(&caller.team_id, caller.mode, name)
            .await?
        {
            Some(b) => filter.batch_id = Some(b.id),
            None => return Ok(empty().into_response()),
        }
    }
    let page = state
        .store
        .list_tasks(&caller.team_id, caller.mode, &filter, limit, after)
        .await?;
    Ok(json_response(&TaskListPage {
        docs: page
            .tasks
            .iter()
            .map(|task| TaskWire { task, limited })
            .collect(),
        total: page.total,
        limit,
        offset: 0,
        has_more: page.next.is_some(),
        next_token: page.next.map(|(at, id)| encode_token(at, &id)),
    }))
}

/// Cancel a pending task; `clear_unique_id=true` also frees its unique_id.
#[utoipa::path(
    post, path = "/v1/task/{task_id}/cancel", tag = "tasks",
    params(("task_id" = String, Path), ("clear_unique_id" = Option<bool>, Query)),
    responses((status = 200, body = serde_json::Value), (status = 400, description = "Not pending", body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn cancel_task(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let clear = QueryPairs::parse(raw.as_deref())
        .flag("clear_unique_id")?
        .unwrap_or(false);
    check_id(&id)?;
    match state
        .store
        .cancel_task(&caller.team_id, caller.mode, &id, clear, &caller.label())
        .await
    {
        Err(StoreError::InvalidState(status)) => Err(ApiError::bad_request(format!(
            "Task {id} is {status}; only pending tasks can be canceled."
        ))),
        other => {
            // The last pending task of a finalized batch may have completed the batch.
            state.callbacks_queued.notify_one();
            changed(other)
        }
    }
}

/// Accept or reject a completed task (`{"accepted": bool, "comments": str}`).
#[utoipa::path(
    post, path = "/v1/task/{task_id}/audit", tag = "tasks",
    params(("task_id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn audit_task(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::AuditTasks)?;
    let body = body.object()?;
    if !body.contains_key("accepted") {
        return Err(ApiError::bad_request(
            "Please include \"accepted\" (true or false).",
        ));
    }
    let accepted = json_bool(body.get("accepted"));
    let comments = string_field(&body, "comments", 10_000)?;
    check_id(&id)?;
    let entry = audit_entry(&caller.label(), accepted, comments.as_deref());
    match state
        .store
        .audit_task(
            &caller.team_id,
            caller.mode,
            &id,
            accepted,
            entry,
            &caller.label(),
        )
        .await
    {
        Err(StoreError::InvalidState(status)) => Err(ApiError::bad_request(format!(
            "Task {id} is {status}; only completed tasks can be audited."
        ))),
        other => changed(other),
    }
}

/// One entry of a task's `audits` list.
pub fn audit_entry(auditor: &str, accepted: bool, comments: Option<&str>) -> Value {
    json!({
        "audited_by": auditor,
        "audited_at": iso(tessera_store::now_ms()),
        "audit_result": if accepted { "accepted" } else { "rejected" },
        "comments": comments,
    })
}

/// Set a task's unique_id (409 when another task of this mode uses it).
#[utoipa::path(
    post, path = "/v1/task/{task_id}/unique_id", tag = "tasks",
    params(("task_id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 409, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn set_unique_id(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let body = body.object()?;
    let unique_id = string_field(&body, "unique_id", MAX_UNIQUE_ID)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("Please include a non-empty \"unique_id\"."))?;
    check_id(&id)?;
    match state
        .store
        .set_task_unique_id(
            &caller.team_id,
            caller.mode,
            &id,
            Some(&unique_id),
            &caller.label(),
        )
        .await
    {
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let other = state
                .store
                .find_task_by_unique_id(&caller.team_id, caller.mode, &unique_id)
                .await?;
            Err(ApiError::conflict(format!(
                "The unique_id (\"{unique_id}\") is already used for a different task ({}).",
                other.map(|t| t.id).unwrap_or_default()
            )))
        }
        other => changed(other),
    }
}

/// Remove a task's unique_id.
#[utoipa::path(
    delete, path = "/v1/task/{task_id}/unique_id", tag = "tasks",
    params(("task_id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn clear_unique_id(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    check_id(&id)?;
    changed(
        state
            .store
            .set_task_unique_id(&caller.team_id, caller.mode, &id, None, &caller.label())
            .await,
    )
}

/// Replace a task's metadata with the JSON object in the body.
#[utoipa::path(
    post, path = "/v1/task/{task_id}/setMetadata", tag = "tasks",
    params(("task_id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn set_metadata(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let metadata = Value::Object(body.object()?);
    check_metadata(&metadata)?;
    check_id(&id)?;
    changed(
        state
            .store
            .set_task_metadata(
                &caller.team_id,
                caller.mode,
                &id,
                &metadata,
                &caller.label(),
            )
            .await,
    )
}

async fn update_tags(
    state: &AppState,
    caller: &ApiCaller,
    id: &str,
    body: JsonBody,
    op: fn(Vec<String>, Vec<String>) -> Vec<String>,
) -> ApiResult<Json<Value>> {
    let given = body.string_list("tags")?;
    check_tags(&given)?;
    check_id(id)?;
    let result = state
        .store
        .update_task_tags(
            &caller.team_id,
            caller.mode,
            id,
            &caller.label(),
            |current| {
                let tags = op(current, given);
                check_tags(&tags).map_err(|e| e.message)?;
                Ok(tags)
            },
        )
        .await;
    match result {
        Err(StoreError::InvalidState(message)) => Err(ApiError::bad_request(message)),
        other => changed(other),
    }
}

fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Replace a task's tags with the JSON list in the body.
#[utoipa::path(
    post, path = "/v1/task/{task_id}/tags", tag = "tasks",
    params(("task_id" = String, Path)), request_body = Vec<String>,
    responses((status = 200, body = serde_json::Value), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn set_tags(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    update_tags(&state, &caller, &id, body, |_, given| dedup(given)).await
}

/// Add tags (those not present yet, in order).
#[utoipa::path(
    put, path = "/v1/task/{task_id}/tags", tag = "tasks",
    params(("task_id" = String, Path)), request_body = Vec<String>,
    responses((status = 200, body = serde_json::Value), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn add_tags(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    update_tags(&state, &caller, &id, body, |mut current, given| {
        current.extend(given);
        dedup(current)
    })
    .await
}

/// Remove the listed tags (absent ones are ignored).
#[utoipa::path(
    delete, path = "/v1/task/{task_id}/tags", tag = "tasks",
    params(("task_id" = String, Path)), request_body = Vec<String>,
    responses((status = 200, body = serde_json::Value), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
)]
pub async fn delete_tags(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    update_tags(&state, &caller, &id, body, |current, given| {
        current.into_iter().filter(|t| !given.contains(t)).collect()
    })
    .await
}
