//! Tasks of the v1 API: the records ([`Task`] and friends) and creation here; reads in
//! `read`, keyset-paginated listing with filters in `list`, and the changes the API allows
//! (cancel, unique_id, metadata, tags, audit) in `change`. The table's columns are described
//! once, in `columns`.

mod change;
mod columns;
mod list;
mod read;

use serde_json::{json, Value};
use tessera_core::{
    status::{ReviewStatus, TaskStatus},
    tasks::TaskType,
    Mode, Scope,
};

pub(crate) use change::record_and_read;
pub(crate) use columns::{insert_tasks_sql, INSERT_ROW_FIELDS};

use crate::{
    callbacks::new_delivery_id,
    now_ms,
    task_insert::{self, TaskRow},
    Store, StoreResult,
};

/// A task as the API shows it (JSON fields already parsed, words typed). Deserialized from
/// the JSON objects of SQLite's page query, whose keys are the column names of
/// `columns::COLUMNS` and the joined names.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Task {
    pub id: String,
    pub team_id: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub project_name: Option<String>,
    pub batch_name: Option<String>,
    pub unique_id: Option<String>,
    pub callback_url: Option<String>,
    pub instruction: Option<String>,
    pub params: Value,
    pub metadata: Value,
    pub tags: Option<Vec<String>>,
    pub response: Option<Value>,
    pub extra: Value,
    #[serde(deserialize_with = "optional_flag")]
    pub callback_succeeded: Option<bool>,
    pub customer_review_status: Option<ReviewStatus>,
    pub audits: Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// The schema's 0/1 flags, as JSON numbers.
fn optional_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(<Option<i64> as serde::Deserialize>::deserialize(d)?.map(crate::flag))
}

/// A project or batch a new task belongs to: its id (stored) and name (shown).
#[derive(Debug, Clone)]
pub struct Parent {
    pub id: String,
    pub name: String,
}

/// A task to insert into a scope (the scope gives its team and mode). Test-mode tasks arrive
/// already completed, with their response.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub task_type: TaskType,
    pub status: TaskStatus,
    pub project: Option<Parent>,
    pub batch: Option<Parent>,
    pub unique_id: Option<String>,
    /// As stored and sent: the caller has already applied the team's default.
    pub callback_url: Option<String>,
    pub instruction: Option<String>,
    pub params: Value,
    pub metadata: Value,
    pub tags: Option<Vec<String>>,
    pub response: Option<Value>,
    pub extra: Value,
}

/// Filters of `GET /v1/tasks`; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub task_type: Option<TaskType>,
    pub project_id: Option<String>,
    pub batch_id: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub completed_after: Option<i64>,
    pub completed_before: Option<i64>,
    pub updated_after: Option<i64>,
    pub updated_before: Option<i64>,
    pub review_statuses: Vec<ReviewStatus>,
    pub unique_ids: Vec<String>,
    pub tags: Vec<String>,
    /// The dashboard's search box: a task whose id or unique_id is exactly this (both
    /// indexed lookups within the team's mode).
    pub id_or_unique_id: Option<String>,
    /// The dashboard's metadata search: tasks whose metadata has this top-level string field
    /// with exactly this value.
    pub metadata_field: Option<MetadataField>,
}

/// `key = value` on a task's metadata: the key is a top-level field of the metadata object
/// (letters, digits, `_`, `-` and `.`, checked by the caller), the value a JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataField {
    pub key: String,
    pub value: String,
}

impl TaskFilter {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.task_type.is_none()
            && self.project_id.is_none()
            && self.batch_id.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
            && self.completed_after.is_none()
            && self.completed_before.is_none()
            && self.updated_after.is_none()
            && self.updated_before.is_none()
            && self.review_statuses.is_empty()
            && self.unique_ids.is_empty()
            && self.tags.is_empty()
            && self.id_or_unique_id.is_none()
            && self.metadata_field.is_none()
    }
}

/// Where a page of tasks starts: after the task with this creation time and id (keyset
/// pagination, newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: i64,
    pub id: String,
}

/// One page of tasks, newest first.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// All tasks matching the filter, whatever the page.
    pub total: i64,
    /// Where the next page starts (the last task shown).
    pub next: Option<PageCursor>,
}

/// A history line of a task, for the dashboard.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    pub at: i64,
    pub actor: String,
    pub event: String,
    pub detail: String,
}

/// A 24-hex-digit task id, the shape Scale's ids have.
pub fn new_task_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// The tags without repeats, in order: the rows of the tag index.
fn distinct(tags: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tags.iter()
        .filter(|t| seen.insert(t.as_str()))
        .cloned()
        .collect()
}

impl Store {
    /// Inserts a task into `scope` with its tag index rows, the team's task count, and
    /// (completed at creation with a callback URL) its callback delivery, all committed
    /// together — in a batch with other concurrent creations (`task_insert`). A completed task
    /// may complete its finalized batch. `Unique(TaskUniqueId)` when its `unique_id` is taken
    /// in this mode.
    pub async fn insert_task(&self, scope: &Scope, new: &NewTask) -> StoreResult<Task> {
        self.insert_task_from_key(scope, new, None).await
    }

    /// [`Store::insert_task`] for a task an API key sends: the key is recorded with the task
    /// (the task page names it), in the same row, so creation costs no extra statement.
    pub async fn insert_task_from_key(
        &self,
        scope: &Scope,
        new: &NewTask,
        key_id: Option<&str>,
    ) -> StoreResult<Task> {
        let id = new_task_id();
        let now = now_ms();
        let completed_at = (new.status == TaskStatus::Completed).then_some(now);
        let row = TaskRow {
            id: id.clone(),
            team_id: scope.team_id().to_owned(),
            mode: scope.mode().as_str(),
            task_type: new.task_type.as_str(),
            status: new.status.as_str(),
            project_id: new.project.as_ref().map(|p| p.id.clone()),
            batch_id: new.batch.as_ref().map(|b| b.id.clone()),
            unique_id: new.unique_id.clone(),
            callback_url: new.callback_url.clone(),
            instruction: new.instruction.clone(),
            params: new.params.to_string(),
            metadata: new.metadata.to_string(),
            response: new.response.as_ref().map(Value::to_string),
            extra: new.extra.to_string(),
            tags: new.tags.as_ref().map(|t| json!(t).to_string()),
            tag_index: new.tags.as_deref().map(distinct).unwrap_or_default(),
            at: now,
            completed_at,
            created_by_key: key_id.map(str::to_owned),
            delivery_id: new_delivery_id(),
        };
        // Through the group-commit writer when it runs (see `task_insert`), else alone.
        match self.task_writer_queue() {
            Some(queue) => queue.insert(row).await?,
            None => task_insert::insert_alone(&self.writer, self.dialect, row).await?,
        }
        Ok(Task {
            id,
            team_id: scope.team_id().to_owned(),
            mode: scope.mode(),
            task_type: new.task_type,
            status: new.status,
            project_name: new.project.as_ref().map(|p| p.name.clone()),
            batch_name: new.batch.as_ref().map(|b| b.name.clone()),
            unique_id: new.unique_id.clone(),
            callback_url: new.callback_url.clone(),
            instruction: new.instruction.clone(),
            params: new.params.clone(),
            metadata: new.metadata.clone(),
            tags: new.tags.clone(),
            response: new.response.clone(),
            extra: new.extra.clone(),
            callback_succeeded: None,
            customer_review_status: None,
            audits: json!([]),
            created_at: now,
            updated_at: now,
            completed_at,
        })
    }
}
