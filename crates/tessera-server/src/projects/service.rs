//! The rules of projects, shared by the v1 API and the dashboard: names, task types and
//! versioned default params.

use serde_json::{json, Map, Value};
use tessera_core::tasks::{TaskType, TypeProblem, KNOWN_TYPES};
use tessera_store::{NewProject, Project, StoreError};

use crate::api::wire::{iso, ApiError, ApiResult};

pub const MAX_NAME: usize = 200;
pub const MAX_PARAMS_BYTES: usize = 256 * 1024;
/// Param versions kept per project.
pub const MAX_HISTORY: usize = 200;

/// Checks a project or batch name: 1–200 characters, no control characters (`/` allowed).
pub fn check_name(what: &str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Please include a {what} name."
        )));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "A {what} name has 1 to {MAX_NAME} characters and no control characters."
        )));
    }
    Ok(name.to_owned())
}

pub fn check_params(params: &Value) -> ApiResult<()> {
    if params.to_string().len() > MAX_PARAMS_BYTES {
        return Err(ApiError::bad_request(format!(
            "params must be at most {} KiB of JSON.",
            MAX_PARAMS_BYTES / 1024
        )));
    }
    Ok(())
}

/// A version entry: the params flattened, plus `version` and `created_at`.
pub fn history_entry(params: &Map<String, Value>, version: i64) -> Value {
    let mut entry = params.clone();
    entry.insert("version".into(), json!(version));
    entry.insert("created_at".into(), json!(iso(tessera_store::now_ms())));
    Value::Object(entry)
}

/// Validates a new project's type and params (shared with the dashboard); the project is
/// created in the caller's scope.
pub fn new_project(
    name: &str,
    task_type: &str,
    params: Map<String, Value>,
) -> ApiResult<NewProject> {
    let task_type = match task_type.parse::<TaskType>() {
        Ok(task_type) => task_type,
        Err(TypeProblem::NotEnabled(t)) if KNOWN_TYPES.contains(&t.as_str()) => {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYMENT_REQUIRED,
                format!("The task type \"{t}\" is not enabled for your account."),
            ))
        }
        Err(TypeProblem::NotEnabled(t)) => {
            return Err(ApiError::bad_request(format!(
                "\"{t}\" is not a valid task type."
            )))
        }
    };
    check_params(&Value::Object(params.clone()))?;
    Ok(NewProject {
        name: name.to_owned(),
        task_type,
        param_history: json!([history_entry(&params, 0)]),
        params: Value::Object(params),
        rapid: false,
        studio: false,
        dataset_id: None,
    })
}

/// The outcome of creating a project or batch, the name conflict worded as the API's 409.
pub fn created<T>(what: &str, name: &str, result: Result<T, StoreError>) -> ApiResult<T> {
    match result {
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => Err(ApiError::conflict(format!(
            "A {what} named \"{name}\" already exists."
        ))),
        other => Ok(other?),
    }
}

/// The fields of a setParams body and whether they patch the current version. The SDK sends
/// `update_project(name, params={...})` or the fields directly.
pub fn param_fields(mut body: Map<String, Value>) -> (Map<String, Value>, bool) {
    let patch = crate::api::wire::json_bool(body.remove("patch").as_ref());
    let fields = match body.remove("params") {
        Some(Value::Object(p)) if body.is_empty() => p,
        Some(other) => {
            body.insert("params".into(), other);
            body
        }
        None => body,
    };
    (fields, patch)
}

/// The latest version number in a project's history (0 for none).
fn last_version(param_history: &Value) -> Option<i64> {
    param_history
        .as_array()
        .and_then(|h| h.last())
        .and_then(|h| h.get("version"))
        .and_then(Value::as_i64)
}

/// A project's next params and history: `fields` merged into (`patch`) or replacing the
/// current params, appended as the next version; the oldest versions beyond [`MAX_HISTORY`]
/// are dropped. The error is the 400's message.
pub fn next_version(
    current: &Project,
    fields: Map<String, Value>,
    patch: bool,
) -> Result<(Value, Value), String> {
    let mut params = if patch {
        current.params.as_object().cloned().unwrap_or_default()
    } else {
        Map::new()
    };
    params.extend(fields);
    let params = Value::Object(params);
    check_params(&params).map_err(|e| e.message)?;
    let version = last_version(&current.param_history).map_or(0, |v| v + 1);
    let mut history = current
        .param_history
        .as_array()
        .cloned()
        .unwrap_or_default();
    history.push(history_entry(
        params.as_object().expect("params is an object"),
        version,
    ));
    if history.len() > MAX_HISTORY {
        history.drain(..history.len() - MAX_HISTORY);
    }
    Ok((params, Value::Array(history)))
}

/// What a project's task template is made of: its params version, the template variables
/// (the field ids) and the fields themselves.
pub struct TaskTemplate {
    pub version: i64,
    pub variables: Vec<Value>,
    pub fields: Value,
}

/// The task template of a textcollection project; other types have none (400).
pub fn task_template(project: &Project) -> ApiResult<TaskTemplate> {
    if project.task_type != TaskType::TextCollection {
        return Err(ApiError::bad_request(format!(
            "Task templates exist only for textcollection and chat projects; \"{}\" is a {} project.",
            project.name,
            project.task_type.as_str()
        )));
    }
    let fields = project
        .params
        .get("fields")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let variables = match &fields {
        Value::Object(o) => o.keys().map(|k| json!(k)).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|f| {
                f.get("field_id")
                    .or_else(|| f.get("id"))
                    .cloned()
                    .or_else(|| f.as_str().map(|s| json!(s)))
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(TaskTemplate {
        version: last_version(&project.param_history).unwrap_or(0),
        variables,
        fields,
    })
}
