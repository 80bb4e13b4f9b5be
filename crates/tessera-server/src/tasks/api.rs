//! `/v1/task…` and `/v1/tasks`: create (per type, with validation), read, list, cancel,
//! audit, unique_id, metadata and tags.

use axum::{
    extract::{Path, RawQuery, State},
    response::Response,
    Json,
};
use serde_json::{json, Map, Value};
use tessera_core::{
    status::{ReviewStatus, TaskStatus},
    tasks::{TaskType, TypeProblem},
    verification::Gated,
    Mode, Scope,
};
use tessera_store::{PageCursor, StoreError, Task, TaskFilter};

use super::{
    service::{self, *},
    wire::{task_json, TaskListPage, TaskWire},
};
use crate::{
    api::{
        wire::{json_bool, json_response, string_field, ApiError, ApiResult, JsonBody, QueryPairs},
        ErrorBody,
    },
    authz::{perm, Authorized},
    callbacks::targets::check_target,
    paging::{decode_token, encode_token},
    state::{AppState, Wrote},
};

fn task_not_found() -> ApiError {
    ApiError::not_found("Task with that ID not found.")
}

/// Create a task of `task_type`. Fields other than project, batch, instruction,
/// callback_url, unique_id, metadata and tags become the task's params. Test keys get a
/// completed task with a synthetic response; live keys a pending one.
#[utoipa::path(
    post, path = "/v1/task/{task}", tag = "tasks",
    params(("task" = String, Path, description = "The task type: imageannotation, categorization, …")),
    request_body(content = serde_json::Value, description = "Task fields (scale-api.md §5)"),
    responses(
        (status = 200, description = "The task", body = TaskWire),
        (status = 400, description = "A required field is missing or invalid", body = ErrorBody),
        (status = 402, description = "Task type not enabled", body = ErrorBody),
        (status = 403, description = "Live key of a team whose Admin has not verified their email address", body = ErrorBody),
        (status = 409, description = "unique_id already used", body = ErrorBody),
    ),
)]
pub async fn create_task(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(task_type): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    if scope.mode() == Mode::Test {
        if let Err(secs) = state.test_tasks.take(&scope) {
            return Err(ApiError::too_many(
                format!(
                    "Your team created its {} test tasks for this hour; try again in {secs} s.",
                    state.test_tasks.max()
                ),
                secs,
            ));
        }
    }
    if scope.mode() == Mode::Live {
        if let Err(refusal) = state
            .verified_teams
            .check(&state.store, &scope, Gated::LiveTasks)
            .await?
        {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                refusal.to_string(),
            ));
        }
    }
    if scope.mode() == Mode::Live
        && state
            .spend_states
            .limit_reached(&state.store, &scope)
            .await?
    {
        let account = state.store.billing_account(&scope).await?;
        let limit = tessera_core::money::Money::new(
            account.spend_limit.unwrap_or_default(),
            account.currency,
        );
        return Err(ApiError::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            crate::billing::service::spend_limit_message(limit),
        ));
    }
    let request = create_request(&state, &scope, &task_type, body).await?;
    let created = service::create_task_from_key(
        &state.store,
        &state.team_defaults,
        &scope,
        request,
        Some(&caller.key_id),
    )
    .await
    .map_err(|err| match err {
        CreateError::Refused(message) => ApiError::bad_request(message),
        CreateError::UniqueIdTaken(message) => ApiError::conflict(message),
        CreateError::Store(err) => err.into(),
    })?;
    if let Some(wrote) = created.wrote {
        state.wake(wrote);
    }
    Ok(Json(task_json(&created.task, false)))
}

/// Reads a create request off the wire, each field checked on its own. Fields other than
/// the top-level ones become the task's params.
async fn create_request(
    state: &AppState,
    scope: &Scope,
    task_type: &str,
    body: JsonBody,
) -> ApiResult<CreateRequest> {
    let task_type: TaskType = task_type.parse().map_err(|TypeProblem::NotEnabled(t)| {
        ApiError::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            format!("The task type \"{t}\" is not enabled for your account. Contact sales to enable it."),
        )
    })?;
    let mut body = body.object()?;
    let unique_id = string_field(&body, "unique_id", MAX_UNIQUE_ID)?.filter(|u| !u.is_empty());
    let instruction = string_field(&body, "instruction", MAX_INSTRUCTION)?;
    let callback_url = string_field(&body, "callback_url", tessera_core::team::MAX_URL_LEN)?
        .filter(|u| !u.trim().is_empty());
    let callback_url = match callback_url {
        Some(raw) => Some(check_target(state, scope, &raw).await?),
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
    let project = string_field(&body, "project", 512)?;
    let batch = string_field(&body, "batch", 512)?;
    let mut extra = Map::new();
    for key in PASSTHROUGH {
        if let Some(v) = body.remove(key) {
            extra.insert(key.into(), v);
        }
    }
    for key in TOP_LEVEL {
        body.remove(key);
    }
    Ok(CreateRequest {
        task_type,
        unique_id,
        instruction,
        callback_url,
        metadata,
        tags,
        project,
        batch,
        params: body,
        extra,
    })
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
    params(
        ("task" = String, Path, description = "The task id"),
        ("include_attachment_url" = Option<bool>, Query, description = "Add `attachment_url`: for an attachment in a connected bucket a signed URL valid 15 minutes, for a public URL the URL itself"),
    ),
    responses((status = 200, body = TaskWire), (status = 404, body = ErrorBody)),
)]
pub async fn get_task(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    check_id(&id)?;
    let with_url = match raw.as_deref() {
        None => false,
        Some(raw) => QueryPairs::parse(Some(raw))
            .flag("include_attachment_url")?
            .unwrap_or(false),
    };
    let task = state
        .store
        .cached_task(&scope, &id)
        .await?
        .ok_or_else(task_not_found)?;
    if !with_url {
        return Ok(json_response(&TaskWire {
            task: &task,
            limited: false,
        }));
    }
    let mut body = super::wire::task_json(&task, false);
    let attachment = task.params.get("attachment").and_then(Value::as_str);
    if let (Some(url), Value::Object(map)) = (attachment, &mut body) {
        match crate::integrations::service::signed_url(&state, &scope, url).await {
            Ok(Some(signed)) => {
                map.insert("attachment_url".into(), Value::String(signed));
            }
            Ok(None) if url.starts_with("https://") || url.starts_with("http://") => {
                map.insert("attachment_url".into(), Value::String(url.to_owned()));
            }
            Ok(None) => {}
            Err(problem) => {
                map.insert("attachment_url".into(), Value::Null);
                map.insert(
                    "attachment_error".into(),
                    Value::String(problem.to_string()),
                );
            }
        }
    }
    Ok(json_response(&body))
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
    responses((status = 200, body = TaskListPage), (status = 400, body = ErrorBody)),
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = QueryPairs::parse(raw.as_deref());
    let limit = q.limit()?;
    let after = q.get("next_token").map(decode_token).transpose()?;
    let limited = q.flag("limited_response")?.unwrap_or(false);
    q.flag("include_attachment_url")?;
    let filter = list_filter(&q)?;
    let empty = TaskListPage {
        docs: Vec::new(),
        total: 0,
        limit,
        offset: 0,
        has_more: false,
        next_token: None,
    };
    let Some(mut filter) = filter else {
        return Ok(json_response(&empty));
    };
    let known = resolve_names(
        &state.store,
        &scope,
        q.get("project"),
        q.get("batch"),
        &mut filter,
    )
    .await?;
    if !known {
        return Ok(json_response(&empty));
    }
    let after = after.map(|(created_at, id)| PageCursor { created_at, id });
    let page = state
        .store
        .list_tasks(&scope, &filter, limit, after)
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
        next_token: page.next.map(|n| encode_token(n.created_at, &n.id)),
    }))
}

/// The filters of `GET /v1/tasks` other than project and batch, each checked; `None` when
/// nothing can match (a task type Tessera does not offer: no task has it).
fn list_filter(q: &QueryPairs) -> ApiResult<Option<TaskFilter>> {
    let status = match q.get("status") {
        Some(s) => Some(TaskStatus::from_word(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be pending, completed, canceled or error (got \"{s}\")."
            ))
        })?),
        None => None,
    };
    let review_statuses = q
        .all("customer_review_status")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ReviewStatus::from_word(s).ok_or_else(|| ApiError::bad_request(format!("customer_review_status \"{s}\" is not one of pending, fixed, accepted, rejected, commented.")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let task_type = q.get("type").map(|t| t.parse::<TaskType>().ok());
    let filter = TaskFilter {
        status,
        task_type: task_type.flatten(),
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
    Ok((task_type != Some(None)).then_some(filter))
}

/// Cancel a pending task; `clear_unique_id=true` also frees its unique_id.
#[utoipa::path(
    post, path = "/v1/task/{task_id}/cancel", tag = "tasks",
    params(("task_id" = String, Path), ("clear_unique_id" = Option<bool>, Query)),
    responses((status = 200, body = TaskWire), (status = 400, description = "Not pending", body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn cancel_task(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let clear = QueryPairs::parse(raw.as_deref())
        .flag("clear_unique_id")?
        .unwrap_or(false);
    check_id(&id)?;
    match state
        .store
        .cancel_task(&scope, &id, clear, &caller.label())
        .await
    {
        Err(StoreError::InvalidState(status)) => Err(ApiError::bad_request(format!(
            "Task {id} is {status}; only pending tasks can be canceled."
        ))),
        other => {
            // The last pending task of a finalized batch may have completed the batch.
            state.wake(Wrote::Callbacks);
            changed(other)
        }
    }
}

/// The body of an audit, for the OpenAPI document: the handler reads it field by field, so
/// that each problem gets its own message.
#[derive(utoipa::ToSchema)]
pub struct AuditRequest {
    /// Accept (true) or reject (false) the task's response.
    pub accepted: bool,
    /// Why, for the record (at most 10,000 characters).
    pub comments: Option<String>,
}

/// Accept or reject a completed task (`{"accepted": bool, "comments": str}`).
#[utoipa::path(
    post, path = "/v1/task/{task_id}/audit", tag = "tasks",
    params(("task_id" = String, Path)), request_body = AuditRequest,
    responses((status = 200, body = TaskWire), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn audit_task(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::AuditTasks>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
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
        .audit_task(&scope, &id, accepted, entry, &caller.label())
        .await
    {
        Err(StoreError::InvalidState(status)) => Err(ApiError::bad_request(format!(
            "Task {id} is {status}; only completed tasks can be audited."
        ))),
        other => changed(other),
    }
}

/// The body that sets a unique_id, for the OpenAPI document (read field by field, as
/// [`AuditRequest`]).
#[derive(utoipa::ToSchema)]
pub struct UniqueIdRequest {
    /// Non-empty, at most 512 characters, unused by the mode's other tasks.
    pub unique_id: String,
}

/// Set a task's unique_id (409 when another task of this mode uses it).
#[utoipa::path(
    post, path = "/v1/task/{task_id}/unique_id", tag = "tasks",
    params(("task_id" = String, Path)), request_body = UniqueIdRequest,
    responses((status = 200, body = TaskWire), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_unique_id(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let body = body.object()?;
    let unique_id = string_field(&body, "unique_id", MAX_UNIQUE_ID)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("Please include a non-empty \"unique_id\"."))?;
    check_id(&id)?;
    match state
        .store
        .set_task_unique_id(&scope, &id, Some(&unique_id), &caller.label())
        .await
    {
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => Err(ApiError::conflict(
            unique_id_taken(&state.store, &scope, &unique_id).await?,
        )),
        other => changed(other),
    }
}

/// Remove a task's unique_id.
#[utoipa::path(
    delete, path = "/v1/task/{task_id}/unique_id", tag = "tasks",
    params(("task_id" = String, Path)),
    responses((status = 200, body = TaskWire), (status = 404, body = ErrorBody)),
)]
pub async fn clear_unique_id(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    check_id(&id)?;
    changed(
        state
            .store
            .set_task_unique_id(&scope, &id, None, &caller.label())
            .await,
    )
}

/// Replace a task's metadata with the JSON object in the body.
#[utoipa::path(
    post, path = "/v1/task/{task_id}/setMetadata", tag = "tasks",
    params(("task_id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, body = TaskWire), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_metadata(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let metadata = Value::Object(body.object()?);
    check_metadata(&metadata)?;
    check_id(&id)?;
    changed(
        state
            .store
            .set_task_metadata(&scope, &id, &metadata, &caller.label())
            .await,
    )
}

/// Changes the tags of task `id` of `scope` with `op` (current tags, given tags), recorded
/// as done by `actor`.
async fn update_tags(
    state: &AppState,
    scope: &Scope,
    actor: &str,
    id: &str,
    body: JsonBody,
    op: fn(Vec<String>, Vec<String>) -> Vec<String>,
) -> ApiResult<Json<Value>> {
    let given = body.string_list("tags")?;
    check_tags(&given)?;
    check_id(id)?;
    let result = state
        .store
        .update_task_tags(scope, id, actor, |current| {
            let tags = op(current, given);
            check_tags(&tags).map_err(|e| e.message)?;
            Ok(tags)
        })
        .await;
    match result {
        Err(StoreError::InvalidState(message)) => Err(ApiError::bad_request(message)),
        other => changed(other),
    }
}

/// Replace a task's tags with the JSON list in the body.
#[utoipa::path(
    post, path = "/v1/task/{task_id}/tags", tag = "tasks",
    params(("task_id" = String, Path)), request_body = Vec<String>,
    responses((status = 200, body = TaskWire), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_tags(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    update_tags(&state, &scope, &caller.label(), &id, body, |_, given| {
        dedup(given)
    })
    .await
}

/// Add tags (those not present yet, in order).
#[utoipa::path(
    put, path = "/v1/task/{task_id}/tags", tag = "tasks",
    params(("task_id" = String, Path)), request_body = Vec<String>,
    responses((status = 200, body = TaskWire), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn add_tags(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    update_tags(
        &state,
        &scope,
        &caller.label(),
        &id,
        body,
        |mut current, given| {
            current.extend(given);
            dedup(current)
        },
    )
    .await
}

/// Remove the listed tags (absent ones are ignored).
#[utoipa::path(
    delete, path = "/v1/task/{task_id}/tags", tag = "tasks",
    params(("task_id" = String, Path)), request_body = Vec<String>,
    responses((status = 200, body = TaskWire), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn delete_tags(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::EditProjects>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    update_tags(
        &state,
        &scope,
        &caller.label(),
        &id,
        body,
        |current, given| current.into_iter().filter(|t| !given.contains(t)).collect(),
    )
    .await
}
