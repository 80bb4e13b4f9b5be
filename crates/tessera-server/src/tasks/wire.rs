//! The wire shape of a task, shared by the v1 API and the callback bodies.

use serde_json::Value;
use tessera_core::{
    status::{ReviewStatus, TaskStatus},
    tasks::TaskType,
    Mode,
};
use tessera_store::Task;
use utoipa::openapi::{
    schema::{AdditionalProperties, Array, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type},
    RefOr,
};

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

/// The OpenAPI description of the object [`TaskWire`] writes: its serializer is written by
/// hand (see there), so its schema is too. `limited_response` pages keep only `task_id`,
/// `status`, `metadata` and `project`.
impl utoipa::PartialSchema for TaskWire<'_> {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A task (scale-api.md §4.1); legacy top-level fields it was created with follow as they came. \
                 With limited_response, only task_id, status, metadata and project.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)));
        for (name, mut schema, description) in task_properties() {
            if let (Schema::Object(o), false) = (&mut schema, description.is_empty()) {
                o.description = Some(description.to_owned());
            }
            object = object.property(name, schema);
        }
        for required in ["task_id", "status", "metadata"] {
            object = object.required(required);
        }
        RefOr::T(Schema::Object(object.build()))
    }
}

/// The keys [`TaskWire`] writes, in its order: name, schema, description.
fn task_properties() -> [(&'static str, Schema, &'static str); 20] {
    fn of(kind: Type) -> Schema {
        ObjectBuilder::new().schema_type(kind).into()
    }
    fn words(words: Vec<&'static str>) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(words))
            .into()
    }
    let time = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    };
    let json = || Schema::from(ObjectBuilder::new());
    let list = |item: Schema| Schema::from(Array::new(item));
    let text = || of(Type::String);
    let statuses = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
    let types = TaskType::ALL.iter().map(|t| t.as_str()).collect();
    let reviews = ReviewStatus::ALL.iter().map(|s| s.as_str()).collect();
    [
        ("task_id", text(), "24 hex digits"),
        ("status", words(statuses), ""),
        ("metadata", json(), "The caller's own JSON object"),
        ("project", text(), "Absent without a project"),
        ("type", words(types), ""),
        ("created_at", time(), ""),
        ("updated_at", time(), ""),
        ("completed_at", time(), "Absent until completed"),
        ("instruction", text(), "Absent when unset"),
        ("callback_url", text(), "Absent when unset"),
        ("params", json(), "The task type's parameters"),
        ("batch", text(), "Absent without a batch"),
        ("unique_id", text(), "Absent when unset"),
        ("tags", list(text()), "Absent when the task never had tags"),
        ("response", json(), "The answer, once completed"),
        (
            "callback_succeeded",
            of(Type::Boolean),
            "Absent until a callback was attempted",
        ),
        (
            "is_test",
            of(Type::Boolean),
            "Present (true) only on test-mode tasks",
        ),
        (
            "customer_review_status",
            words(reviews),
            "Absent until reviewed",
        ),
        (
            "audits",
            list(json()),
            "Absent while the task has no audits",
        ),
        ("processed_attachments", list(json()), "Always empty"),
    ]
}

impl utoipa::ToSchema for TaskWire<'_> {
    fn name() -> std::borrow::Cow<'static, str> {
        "Task".into()
    }
}

/// [`TaskWire`] as a JSON value, for bodies that embed a task (callbacks, changes).
pub fn task_json(task: &Task, limited: bool) -> Value {
    serde_json::to_value(TaskWire { task, limited }).unwrap_or(Value::Null)
}

/// A page of `GET /v1/tasks`, serialized without copying its tasks.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TaskListPage<'a> {
    pub docs: Vec<TaskWire<'a>>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_every_key_the_serializer_writes() {
        let described: Vec<&str> = task_properties().iter().map(|(name, ..)| *name).collect();
        assert_eq!(described, WIRE_KEYS);
    }
}
