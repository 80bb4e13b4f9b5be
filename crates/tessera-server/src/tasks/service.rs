//! The rules of tasks, shared by the v1 API and the dashboard: what a create request may
//! carry and what it means with its batch and project, how tags and metadata are checked, and
//! what an audit records.

use serde_json::{json, Map, Value};
use tessera_core::{
    status::{BatchStatus, TaskStatus},
    tasks::{synthetic_response, validate, TaskType},
    Mode, Scope,
};
use tessera_store::{Batch, NewTask, Parent, Store, StoreError, Task, TaskFilter};

use crate::{
    api::wire::{check_len, iso, ApiError, ApiResult},
    state::Wrote,
    team::defaults::TeamDefaults,
};

pub const MAX_UNIQUE_ID: usize = 512;
pub const MAX_INSTRUCTION: usize = 100_000;
pub const MAX_TAGS: usize = 100;
pub const MAX_TAG_LEN: usize = 128;
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Top-level fields of a create request that are not task params.
pub const TOP_LEVEL: [&str; 7] = [
    "project",
    "batch",
    "instruction",
    "callback_url",
    "unique_id",
    "metadata",
    "tags",
];
/// Legacy top-level fields passed through as they came.
pub const PASSTHROUGH: [&str; 2] = ["urgency", "priority"];

pub fn parse_tags(value: Option<&Value>) -> ApiResult<Option<Vec<String>>> {
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

pub fn check_tags(tags: &[String]) -> ApiResult<()> {
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

pub fn check_metadata(metadata: &Value) -> ApiResult<()> {
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

/// One entry of a task's `audits` list.
pub fn audit_entry(auditor: &str, accepted: bool, comments: Option<&str>) -> Value {
    json!({
        "audited_by": auditor,
        "audited_at": iso(tessera_store::now_ms()),
        "audit_result": if accepted { "accepted" } else { "rejected" },
        "comments": comments,
    })
}

pub fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A create request, its fields checked one by one by the wire layer; what they mean
/// together (batch, project, mode) is [`create_task`]'s job.
pub struct CreateRequest {
    pub task_type: TaskType,
    pub unique_id: Option<String>,
    pub instruction: Option<String>,
    /// Already checked as a target of the caller's team; `None` takes the team's default.
    pub callback_url: Option<String>,
    pub metadata: Value,
    pub tags: Option<Vec<String>>,
    pub project: Option<String>,
    pub batch: Option<String>,
    pub params: Map<String, Value>,
    /// Legacy top-level fields, kept as they came.
    pub extra: Map<String, Value>,
}

/// Why a task was not created.
#[derive(Debug)]
pub enum CreateError {
    /// The request contradicts its batch, project or task type (400).
    Refused(String),
    /// The unique_id is used by another task of the mode (409), worded by [`unique_id_taken`].
    UniqueIdTaken(String),
    Store(StoreError),
}

impl From<StoreError> for CreateError {
    fn from(err: StoreError) -> Self {
        CreateError::Store(err)
    }
}

impl From<tessera_core::Invalid> for CreateError {
    fn from(tessera_core::Invalid(message): tessera_core::Invalid) -> Self {
        CreateError::Refused(message)
    }
}

/// A created task, and the outbox it filled: a test task completes at once, so its callback
/// is queued with it.
#[must_use]
pub struct Created {
    pub task: Task,
    pub wrote: Option<Wrote>,
}

/// Creates a task in `scope`. A completed batch refuses tasks, and so does a finalized batch
/// of a rapid/studio project; the project's params are defaults and its instruction follows
/// the task's own; without a callback URL the team's default applies (resolved here, not in
/// SQL); a test task completes at once with a synthetic response.
pub async fn create_task(
    store: &Store,
    defaults: &TeamDefaults,
    scope: &Scope,
    req: CreateRequest,
) -> Result<Created, CreateError> {
    create_task_from_key(store, defaults, scope, req, None).await
}

/// [`create_task`] for the API: `key_id`, the authenticated key, is recorded with the task so
/// its page can name the integration that sent it.
pub async fn create_task_from_key(
    store: &Store,
    defaults: &TeamDefaults,
    scope: &Scope,
    mut req: CreateRequest,
    key_id: Option<&str>,
) -> Result<Created, CreateError> {
    let batch = match &req.batch {
        Some(name) => Some(find_open_batch(store, scope, name, req.project.as_deref()).await?),
        None => None,
    };
    let project_name = req
        .project
        .take()
        .or_else(|| batch.as_ref().map(|b| b.project_name.clone()));
    let project = match &project_name {
        Some(name) => Some(
            store
                .find_project(scope, name)
                .await?
                .ok_or_else(|| CreateError::Refused(format!("Project \"{name}\" not found.")))?,
        ),
        None => None,
    };
    if let (Some(project), Some(batch)) = (&project, &batch) {
        if (project.rapid || project.studio) && batch.finalized {
            return Err(CreateError::Refused(format!(
                "Batch \"{}\" is finalized; it accepts no new tasks.",
                batch.name
            )));
        }
    }
    if let Some(project) = &project {
        apply_defaults(&project.params, &mut req.instruction, &mut req.params);
    }
    validate(req.task_type, &req.params)?;
    let (status, response) = match scope.mode() {
        Mode::Test => (
            TaskStatus::Completed,
            Some(synthetic_response(req.task_type, &req.params)),
        ),
        Mode::Live => (TaskStatus::Pending, None),
    };
    let params = Value::Object(req.params);
    crate::integrations::service::check_attachments(store, scope, &params).await??;
    let callback_url = match req.callback_url {
        Some(url) => Some(url),
        None => defaults.callback_url(store, scope).await?,
    };
    let new = NewTask {
        task_type: req.task_type,
        status,
        project: project.map(|p| Parent {
            id: p.id.into_string(),
            name: p.name,
        }),
        batch: batch.map(|b| Parent {
            id: b.id.into_string(),
            name: b.name,
        }),
        unique_id: req.unique_id,
        callback_url,
        instruction: req.instruction,
        params,
        metadata: req.metadata,
        tags: req.tags,
        response,
        extra: Value::Object(req.extra),
    };
    insert(store, scope, new, key_id).await
}

/// Stores a new task; a taken unique_id is worded with the task that holds it.
async fn insert(
    store: &Store,
    scope: &Scope,
    new: NewTask,
    key_id: Option<&str>,
) -> Result<Created, CreateError> {
    match store.insert_task_from_key(scope, &new, key_id).await {
        Ok(task) => {
            let queued = task.completed_at.is_some() && task.callback_url.is_some();
            Ok(Created {
                task,
                wrote: queued.then_some(Wrote::Callbacks),
            })
        }
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let uid = new.unique_id.unwrap_or_default();
            Err(CreateError::UniqueIdTaken(
                unique_id_taken(store, scope, &uid).await?,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

/// The batch a task goes to: it must exist, not be completed, and belong to `project` when
/// the request names one too.
async fn find_open_batch(
    store: &Store,
    scope: &Scope,
    name: &str,
    project: Option<&str>,
) -> Result<Batch, CreateError> {
    let batch = store
        .find_batch(scope, name)
        .await?
        .ok_or_else(|| CreateError::Refused(format!("Batch \"{name}\" not found.")))?;
    if batch.status == BatchStatus::Completed {
        return Err(CreateError::Refused(format!(
            "Batch \"{}\" is completed; it accepts no new tasks.",
            batch.name
        )));
    }
    if let Some(project) = project.filter(|p| *p != batch.project_name) {
        return Err(CreateError::Refused(format!(
            "Batch \"{}\" belongs to project \"{}\", not \"{project}\".",
            batch.name, batch.project_name
        )));
    }
    Ok(batch)
}

/// Project params are defaults for the task's; the project's instruction follows the task's own.
fn apply_defaults(
    defaults: &Value,
    instruction: &mut Option<String>,
    params: &mut Map<String, Value>,
) {
    let Value::Object(defaults) = defaults else {
        return;
    };
    for (k, v) in defaults {
        if k == "instruction" {
            if let Some(extra_instruction) = v.as_str().filter(|s| !s.is_empty()) {
                *instruction = Some(match instruction.take() {
                    Some(own) if !own.is_empty() => format!("{own}\n\n{extra_instruction}"),
                    _ => extra_instruction.to_owned(),
                });
            }
        } else if !params.contains_key(k) {
            params.insert(k.clone(), v.clone());
        }
    }
}

/// The 409 wording when `unique_id` is taken: it names the task holding it.
pub async fn unique_id_taken(
    store: &Store,
    scope: &Scope,
    unique_id: &str,
) -> Result<String, StoreError> {
    let existing = store.find_task_by_unique_id(scope, unique_id).await?;
    Ok(format!(
        "The unique_id (\"{unique_id}\") is already used for a different task ({}).",
        existing.map(|t| t.id).unwrap_or_default()
    ))
}

/// Puts the ids of the project and batch named in a task list filter into `filter`. False
/// when a name is unknown: then nothing matches and the list is empty.
pub async fn resolve_names(
    store: &Store,
    scope: &Scope,
    project: Option<&str>,
    batch: Option<&str>,
    filter: &mut TaskFilter,
) -> Result<bool, StoreError> {
    if let Some(name) = project {
        match store.find_project(scope, name).await? {
            Some(p) => filter.project_id = Some(p.id.into_string()),
            None => return Ok(false),
        }
    }
    if let Some(name) = batch {
        match store.find_batch(scope, name).await? {
            Some(b) => filter.batch_id = Some(b.id.into_string()),
            None => return Ok(false),
        }
    }
    Ok(true)
}
