//! The rules of batches, shared by the v1 API and the dashboard.

use serde_json::{json, Value};
use tessera_core::{status::BatchStatus, Scope};
use tessera_store::{Batch, BatchFilter, NewBatch, Project, Store, StoreResult};

use crate::api::wire::{ApiError, ApiResult};

/// The status a new batch of `project` starts in: batches of rapid/studio projects are
/// staged until finalized, others take tasks at once.
pub fn initial_status(project: &Project) -> BatchStatus {
    if project.rapid || project.studio {
        BatchStatus::Staging
    } else {
        BatchStatus::InProgress
    }
}

/// A new batch of `project` named `name`, in its initial status, with no callback, empty
/// metadata and neither calibration nor self-labeling (the API may set those).
pub fn new_batch(project: &Project, name: String) -> NewBatch {
    NewBatch {
        project_id: project.id.clone(),
        name,
        status: initial_status(project),
        callback: String::new(),
        metadata: json!({}),
        calibration_batch: false,
        self_label_batch: false,
    }
}

/// Checks a batch's metadata: at most as large as a task's.
pub fn check_metadata(metadata: &Value) -> ApiResult<()> {
    if metadata.to_string().len() > crate::tasks::service::MAX_METADATA_BYTES {
        return Err(ApiError::bad_request("metadata is too large."));
    }
    Ok(())
}

/// A page of the scope's batches matching `filter`, limited to the project named `project`
/// when one is: a project name that is unknown matches nothing.
pub async fn list(
    store: &Store,
    scope: &Scope,
    project: Option<&str>,
    mut filter: BatchFilter,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Batch>, i64)> {
    if let Some(name) = project {
        match store.find_project(scope, name).await? {
            Some(p) => filter.project_id = Some(p.id),
            None => return Ok((Vec::new(), 0)),
        }
    }
    store.list_batches(scope, &filter, limit, offset).await
}
