//! The rules of projects, shared by the v1 API and the dashboard: names, task types and
//! versioned default params.

use serde_json::{json, Map, Value};
use tessera_core::tasks::{TaskType, TypeProblem, KNOWN_TYPES};
use tessera_store::{NewProject, StoreError};

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

/// Validates a new project's type and params (shared with the dashboard).
pub fn new_project(
    team_id: &str,
    mode: tessera_core::Mode,
    name: &str,
    task_type: &str,
    params: Map<String, Value>,
) -> ApiResult<NewProject> {
    match task_type.parse::<TaskType>() {
        Ok(_) => {}
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
    }
    check_params(&Value::Object(params.clone()))?;
    Ok(NewProject {
        team_id: team_id.to_owned(),
        mode,
        name: name.to_owned(),
        task_type: task_type.to_owned(),
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
