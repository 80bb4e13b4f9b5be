//! `/v1/batches`: batches group a project's tasks.

use axum::{
    extract::{Path, RawQuery, State},
    Json,
};
use serde::Serialize;
use serde_json::Value;
use tessera_core::{status::BatchStatus, Scope};
use tessera_store::{Batch, BatchFilter};
use utoipa::ToSchema;

use super::service::{self, check_metadata, new_batch};
use crate::api::{
    wire::{iso, json_bool, string_field, ApiError, ApiResult, JsonBody, QueryPairs},
    ErrorBody,
};
use crate::authz::{perm, Authorized};
use crate::state::AppState;
use crate::{
    callbacks::targets::check_target,
    projects::service::{check_name, created},
};

/// A batch as the API returns it (Scale's Batch).
// Fields in alphabetical order: the order the keys have always had on the wire.
#[derive(Serialize, ToSchema)]
pub struct BatchBody {
    calibration_batch: bool,
    /// Where the batch's completion is reported (a URL or an email address), or `""`.
    callback: String,
    /// Only once the batch is completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    completed_at: Option<String>,
    created_at: String,
    /// The customer's own data: whatever JSON object was given.
    #[schema(value_type = Object)]
    metadata: Value,
    name: String,
    /// The project's name.
    project: String,
    self_label_batch: bool,
    /// `staging`, `in_progress` or `completed`.
    #[schema(value_type = String)]
    status: BatchStatus,
    updated_at: String,
}

impl From<Batch> for BatchBody {
    fn from(batch: Batch) -> Self {
        Self {
            calibration_batch: batch.calibration_batch,
            callback: batch.callback,
            completed_at: batch.completed_at.map(iso),
            created_at: iso(batch.created_at),
            metadata: batch.metadata,
            name: batch.name,
            project: batch.project_name,
            self_label_batch: batch.self_label_batch,
            status: batch.status,
            updated_at: iso(batch.updated_at),
        }
    }
}

/// A batch's status and its tasks counted by status.
// Fields in alphabetical order: the order the keys have always had on the wire.
#[derive(Serialize, ToSchema)]
pub struct BatchStatusBody {
    canceled: i64,
    completed: i64,
    error: i64,
    pending: i64,
    #[schema(value_type = String)]
    status: BatchStatus,
}

/// A page of batches: Scale's list envelope with offset pagination.
// Fields in alphabetical order: the order the keys have always had on the wire.
#[derive(Serialize, ToSchema)]
pub struct BatchList {
    docs: Vec<BatchBody>,
    has_more: bool,
    limit: i64,
    offset: i64,
    total: i64,
    /// The same as `total` (the SDK reads this one).
    #[serde(rename = "totalDocs")]
    total_docs: i64,
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Batch \"{name}\" not found."))
}

/// The scope's batch of this name, or the API's 404.
async fn load(state: &AppState, scope: &Scope, name: &str) -> ApiResult<Batch> {
    state
        .store
        .find_batch(scope, name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Create a batch in a project. Batches of rapid/studio projects start in `staging` and must
/// be finalized; others start `in_progress`.
#[utoipa::path(
    post, path = "/v1/batches", tag = "batches", request_body = serde_json::Value,
    responses((status = 200, body = BatchBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
pub async fn create_batch(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    body: JsonBody,
) -> ApiResult<Json<BatchBody>> {
    let body = body.object()?;
    let name = check_name(
        "batch",
        &string_field(&body, "name", 1000)?.unwrap_or_default(),
    )?;
    let project_name = string_field(&body, "project", 1000)?
        .ok_or_else(|| ApiError::bad_request("Please include the batch's \"project\"."))?;
    let project = state
        .store
        .find_project(&scope, &project_name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Project \"{project_name}\" not found.")))?;
    let mut new = new_batch(&project, name.clone());
    if let Some(raw) = string_field(&body, "callback", tessera_core::team::MAX_URL_LEN)?
        .filter(|c| !c.trim().is_empty())
    {
        new.callback = check_target(&state, &scope, &raw).await?;
    }
    match body.get("metadata") {
        None | Some(Value::Null) => {}
        Some(m @ Value::Object(_)) => new.metadata = m.clone(),
        Some(_) => return Err(ApiError::bad_request("metadata must be a JSON object.")),
    }
    new.calibration_batch = json_bool(body.get("calibration_batch"));
    new.self_label_batch = json_bool(body.get("self_label_batch"));
    let batch = created("batch", &name, state.store.create_batch(&scope, &new).await)?;
    Ok(Json(batch.into()))
}

/// Get a batch by name.
#[utoipa::path(
    get, path = "/v1/batches/{name}", tag = "batches", params(("name" = String, Path)),
    responses((status = 200, body = BatchBody), (status = 404, body = ErrorBody)),
)]
pub async fn get_batch(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    Path(name): Path<String>,
) -> ApiResult<Json<BatchBody>> {
    Ok(Json(load(&state, &scope, &name).await?.into()))
}

/// Finalize a batch (`staging` → `in_progress`; a batch already in progress is unchanged).
#[utoipa::path(
    post, path = "/v1/batches/{name}/finalize", tag = "batches", params(("name" = String, Path)),
    responses((status = 200, body = BatchBody), (status = 404, body = ErrorBody)),
)]
pub async fn finalize_batch(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    Path(name): Path<String>,
) -> ApiResult<Json<BatchBody>> {
    let batch = load(&state, &scope, &name).await?;
    state.store.finalize_batch(&scope, &batch.id).await?;
    // A batch whose tasks are all final completes now and calls back.
    state.wake(crate::state::Wrote::Callbacks);
    Ok(Json(load(&state, &scope, &name).await?.into()))
}

/// A batch's status and its task counts by status.
#[utoipa::path(
    get, path = "/v1/batches/{name}/status", tag = "batches", params(("name" = String, Path)),
    responses((status = 200, body = BatchStatusBody), (status = 404, body = ErrorBody)),
)]
pub async fn batch_status(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    Path(name): Path<String>,
) -> ApiResult<Json<BatchStatusBody>> {
    let batch = load(&state, &scope, &name).await?;
    let counts = state.store.batch_counts(&scope, &batch.id).await?;
    Ok(Json(BatchStatusBody {
        canceled: counts.canceled,
        completed: counts.completed,
        error: counts.error,
        pending: counts.pending,
        status: batch.status,
    }))
}

/// Replace a batch's metadata with the JSON object in the body.
#[utoipa::path(
    post, path = "/v1/batches/{name}/setMetadata", tag = "batches", params(("name" = String, Path)),
    request_body = serde_json::Value,
    responses((status = 200, body = BatchBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_batch_metadata(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<BatchBody>> {
    let metadata = Value::Object(body.object()?);
    check_metadata(&metadata)?;
    let batch = load(&state, &scope, &name).await?;
    state
        .store
        .set_batch_metadata(&scope, &batch.id, &metadata)
        .await?;
    Ok(Json(load(&state, &scope, &name).await?.into()))
}

/// `offset` of a batch list: a whole number from 0 to ten million (0 when absent).
fn offset(q: &QueryPairs) -> ApiResult<i64> {
    let Some(raw) = q.get("offset") else {
        return Ok(0);
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|o| (0..=10_000_000).contains(o))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "offset must be a whole number of at least 0 (got \"{raw}\")."
            ))
        })
}

/// List batches, newest first, with offset pagination (`limit` 1–100, `offset`).
#[utoipa::path(
    get, path = "/v1/batches", tag = "batches",
    params(("project" = Option<String>, Query), ("status" = Option<String>, Query), ("start_time" = Option<String>, Query),
           ("end_time" = Option<String>, Query), ("exclude_archived" = Option<bool>, Query),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = BatchList), (status = 400, body = ErrorBody)),
)]
pub async fn list_batches(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<BatchList>> {
    let q = QueryPairs::parse(raw.as_deref());
    let limit = q.limit()?;
    let offset = offset(&q)?;
    q.flag("exclude_archived")?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(BatchStatus::from_word(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status must be staging, in_progress or completed (got \"{s}\")."
            ))
        })?),
    };
    let filter = BatchFilter {
        status,
        created_after: q.time("start_time")?,
        created_before: q.time("end_time")?,
        ..BatchFilter::default()
    };
    let (batches, total) = service::list(
        &state.store,
        &scope,
        q.get("project"),
        filter,
        limit,
        offset,
    )
    .await?;
    let has_more = offset + (batches.len() as i64) < total;
    Ok(Json(BatchList {
        docs: batches.into_iter().map(BatchBody::from).collect(),
        has_more,
        limit,
        offset,
        total,
        total_docs: total,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_core::ids::{BatchId, ProjectId};

    use super::*;

    fn batch(completed_at: Option<i64>) -> Batch {
        Batch {
            id: BatchId::generate(),
            name: "b/1".into(),
            project_id: ProjectId::generate(),
            project_name: "p".into(),
            status: BatchStatus::InProgress,
            callback: "https://example.test/cb".into(),
            metadata: json!({"k": [1, null]}),
            calibration_batch: true,
            self_label_batch: false,
            finalized: true,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_123,
            completed_at,
        }
    }

    /// The bodies are byte for byte what the `json!` maps they replaced produced.
    #[test]
    fn bodies_keep_their_wire_shape() {
        for completed_at in [None, Some(1_700_000_000_999)] {
            let b = batch(completed_at);
            let mut old = json!({
                "name": b.name, "project": b.project_name, "status": "in_progress",
                "callback": b.callback, "metadata": b.metadata,
                "calibration_batch": true, "self_label_batch": false,
                "created_at": iso(b.created_at), "updated_at": iso(b.updated_at),
            });
            if let Some(at) = completed_at {
                old["completed_at"] = json!(iso(at));
            }
            let new = serde_json::to_string(&BatchBody::from(b.clone())).unwrap();
            assert_eq!(new, old.to_string());
            let list = BatchList {
                docs: vec![BatchBody::from(b)],
                has_more: true,
                limit: 1,
                offset: 0,
                total: 2,
                total_docs: 2,
            };
            let old_list = json!({"docs": [old], "totalDocs": 2, "total": 2, "limit": 1, "offset": 0, "has_more": true});
            assert_eq!(serde_json::to_string(&list).unwrap(), old_list.to_string());
        }
        let status = BatchStatusBody {
            canceled: 1,
            completed: 2,
            error: 3,
            pending: 4,
            status: BatchStatus::Staging,
        };
        let old =
            json!({"status": "staging", "pending": 4, "completed": 2, "error": 3, "canceled": 1});
        assert_eq!(serde_json::to_string(&status).unwrap(), old.to_string());
    }
}
