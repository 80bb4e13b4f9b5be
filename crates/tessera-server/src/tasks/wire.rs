//! The wire shape of a task, shared by the v1 API and the callback bodies.

use serde_json::Value;
use tessera_core::Mode;
use tessera_store::Task;

use crate::api::wire::iso;

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
pub struct TaskListPage<'a> {
    pub docs: Vec<TaskWire<'a>>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
