//! `/v1/batches`: batches group a project's tasks.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use serde_json::{json, Value};
use tessera_core::Action;
use tessera_store::{Batch, BatchFilter, NewBatch};

use super::service::initial_status;

use crate::api::{
    auth::ApiCaller,
    wire::{iso, json_bool, string_field, ApiError, ApiResult, JsonBody, QueryPairs},
    ErrorBody,
};
use crate::state::AppState;
use crate::{
    callbacks::targets::check_target,
    projects::service::{check_name, created},
};

fn batch_json(batch: &Batch) -> Value {
    let mut out = json!({
        "name": batch.name,
        "project": batch.project_name,
        "status": batch.status,
        "callback": batch.callback,
        "metadata": batch.metadata,
        "calibration_batch": batch.calibration_batch,
        "self_label_batch": batch.self_label_batch,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
    });
    if let Some(at) = batch.completed_at {
        out["completed_at"] = json!(iso(at));
    }
    out
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Batch \"{name}\" not found."))
}

async fn load(state: &AppState, caller: &ApiCaller, name: &str) -> ApiResult<Batch> {
    state
        .store
        .find_batch(&caller.team_id, caller.mode, name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Create a batch in a project. Batches of rapid/studio projects start in `staging` and must
/// be finalized; others start `in_progress`.
#[utoipa::path(
    post, path = "/v1/batches", tag = "batches", request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let scope = caller.authorize(Action::EditProjects)?;
    let body = body.object()?;
    let name = check_name(
        "batch",
        &string_field(&body, "name", 1000)?.unwrap_or_default(),
    )?;
    let project_name = string_field(&body, "project", 1000)?
        .ok_or_else(|| ApiError::bad_request("Please include the batch's \"project\"."))?;
    let project = state
        .store
        .find_project(&caller.team_id, caller.mode, &project_name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Project \"{project_name}\" not found.")))?;
    let callback = match string_field(&body, "callback", tessera_core::team::MAX_URL_LEN)?
        .filter(|c| !c.trim().is_empty())
    {
        Some(raw) => check_target(&state, &scope, &raw).await?,
        None => String::new(),
    };
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => json!({}),
        Some(m @ Value::Object(_)) => m.clone(),
        Some(_) => return Err(ApiError::bad_request("metadata must be a JSON object.")),
    };
    let new = NewBatch {
        team_id: caller.team_id.clone(),
        mode: caller.mode,
        status: initial_status(&project),
        project_id: project.id,
        name: name.clone(),
        callback,
        metadata,
        calibration_batch: json_bool(body.get("calibration_batch")),
        self_label_batch: json_bool(body.get("self_label_batch")),
    };
    let batch = created("batch", &name, state.store.create_batch(&new).await)?;
    Ok(Json(batch_json(&batch)))
}

/// Get a batch by name.
#[utoipa::path(
    get, path = "/v1/batches/{name}", tag = "batches", params(("name" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)),
)]
pub async fn get_batch(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTasks)?;
    Ok(Json(batch_json(&load(&state, &caller, &name).await?)))
}

/// Finalize a batch (`staging` → `in_progress`; a batch already in progress is unchanged).
#[utoipa::path(
    post, path = "/v1/batches/{name}/finalize", tag = "batches", params(("name" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)),
)]
pub async fn finalize_batch(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let batch = load(&state, &caller, &name).await?;
    state.store.finalize_batch(&batch.id).await?;
    // A batch whose tasks are all final completes now and calls back.
    state.wake(crate::state::Wrote::Callbacks);
    Ok(Json(batch_json(&load(&state, &caller, &name).await?)))
}

/// A batch's status and its task counts by status.
#[utoipa::path(
    get, path = "/v1/batches/{name}/status", tag = "batches", params(("name" = String, Path)),
    responses((status = 200, description = "{status, pending, completed, error, canceled}", body = serde_json::Value), (status = 404, body = ErrorBody)),
)]
pub async fn batch_status(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTasks)?;
    let batch = load(&state, &caller, &name).await?;
    let counts = state.store.batch_counts(&batch.id).await?;
    Ok(Json(json!({
        "status": batch.status,
        "pending": counts.pending,
        "completed": counts.completed,
        "error": counts.error,
        "canceled": counts.canceled,
    })))
}

/// Replace a batch's metadata with the JSON object in the body.
#[utoipa::path(
    post, path = "/v1/batches/{name}/setMetadata", tag = "batches", params(("name" = String, Path)),
    request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_batch_metadata(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let metadata = Value::Object(body.object()?);
    if metadata.to_string().len() > crate::tasks::service::MAX_METADATA_BYTES {
        return Err(ApiError::bad_request("metadata is too large."));
    }
    let batch = load(&state, &caller, &name).await?;
    state.store.set_batch_metadata(&batch.id, &metadata).await?;
    Ok(Json(batch_json(&load(&state, &caller, &name).await?)))
}

/// List batches, newest first, with offset pagination (`limit` 1–100, `offset`).
#[utoipa::path(
    get, path = "/v1/batches", tag = "batches",
    params(("project" = Option<String>, Query), ("status" = Option<String>, Query), ("start_time" = Option<String>, Query),
           ("end_time" = Option<String>, Query), ("exclude_archived" = Option<bool>, Query),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "{docs, totalDocs, total, limit, offset, has_more}", body = serde_json::Value), (status = 400, body = ErrorBody)),
)]
pub async fn list_batches(
    State(state): State<AppState>,
    caller: ApiCaller,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTasks)?;
    let q = QueryPairs::parse(raw.as_deref());
    let limit = q.limit()?;
    let offset = match q.get("offset") {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|o| (0..=10_000_000).contains(o))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "offset must be a whole number of at least 0 (got \"{raw}\")."
                ))
            })?,
    };
    q.flag("exclude_archived")?;
    let status = q.get("status").map(str::to_owned);
    if let Some(s) = &status {
        if !matches!(s.as_str(), "staging" | "in_progress" | "completed") {
            return Err(ApiError::bad_request(format!(
                "status must be staging, in_progress or completed (got \"{s}\")."
            )));
        }
    }
    let mut filter = BatchFilter {
        status,
        created_after: q.time("start_time")?,
        created_before: q.time("end_time")?,
        ..BatchFilter::default()
    };
    if let Some(name) = q.get("project") {
        match state
            .store
            .find_project(&caller.team_id, caller.mode, name)
            .await?
        {
            Some(p) => filter.project_id = Some(p.id),
            None => {
                return Ok(Json(
                    json!({"docs": [], "totalDocs": 0, "total": 0, "limit": limit, "offset": offset, "has_more": false}),
                ))
            }
        }
    }
    let (batches, total) = state
        .store
        .list_batches(&caller.team_id, caller.mode, &filter, limit, offset)
        .await?;
    let has_more = offset + (batches.len() as i64) < total;
    Ok(Json(json!({
        "docs": batches.iter().map(batch_json).collect::<Vec<_>>(),
        "totalDocs": total,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": has_more,
    })))
}
