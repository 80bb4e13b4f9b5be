//! `/v1/projects`: projects hold default params for their tasks, versioned in
//! `param_history`.

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::{json, Map, Value};
use tessera_core::Action;
use tessera_store::{Project, StoreError};

use super::service::{
    check_name, check_params, created, history_entry, new_project, MAX_HISTORY, MAX_NAME,
};
use crate::api::{
    auth::ApiCaller,
    wire::{iso, json_bool, string_field, ApiError, ApiResult, JsonBody},
    ErrorBody,
};
use crate::state::AppState;

fn project_json(project: &Project) -> Value {
    json!({
        "name": project.name,
        "type": project.task_type,
        "params": project.params,
        "param_history": project.param_history,
        "rapid": project.rapid,
        "studio": project.studio,
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Project \"{name}\" not found."))
}

/// Create a project (`{"type", "name", "params", "rapid", "studio", "datasetId"}`).
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects", request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
pub async fn create_project(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let body = body.object()?;
    let name = check_name(
        "project",
        &string_field(&body, "name", MAX_NAME * 4)?.unwrap_or_default(),
    )?;
    let task_type = string_field(&body, "type", 64)?
        .ok_or_else(|| ApiError::bad_request("Please include the project's task \"type\"."))?;
    let params = match body.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(ApiError::bad_request("params must be a JSON object.")),
    };
    let mut new = new_project(&caller.team_id, caller.mode, &name, &task_type, params)?;
    new.rapid = json_bool(body.get("rapid"));
    new.studio = json_bool(body.get("studio"));
    new.dataset_id = string_field(&body, "datasetId", 200)?;
    let project = created("project", &name, state.store.create_project(&new).await)?;
    Ok(Json(project_json(&project)))
}

/// The caller's project of this name, or the API's 404.
async fn load(state: &AppState, caller: &ApiCaller, name: &str) -> ApiResult<Project> {
    state
        .store
        .find_project(&caller.team_id, caller.mode, name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Get a project by name (`/` inside a name is sent as `%2F`).
#[utoipa::path(
    get, path = "/v1/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)),
)]
pub async fn get_project(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTasks)?;
    let project = load(&state, &caller, &name).await?;
    Ok(Json(project_json(&project)))
}

/// All projects of this mode, as a bare JSON array.
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<serde_json::Value>)),
)]
pub async fn list_projects(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTasks)?;
    let projects = state
        .store
        .list_projects(&caller.team_id, caller.mode)
        .await?;
    Ok(Json(Value::Array(
        projects.iter().map(project_json).collect(),
    )))
}

/// Update a project's params: appends a `param_history` version. With `"patch": true` the
/// fields are merged into the previous version, otherwise they replace it.
#[utoipa::path(
    post, path = "/v1/projects/{name}/setParams", tag = "projects", params(("name" = String, Path)),
    request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_params(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let mut body = body.object()?;
    let patch = json_bool(body.remove("patch").as_ref());
    let project = load(&state, &caller, &name).await?;
    // The SDK sends update_project(name, params={...}) or the fields directly.
    let fields = match body.remove("params") {
        Some(Value::Object(p)) if body.is_empty() => p,
        Some(other) => {
            body.insert("params".into(), other);
            body
        }
        None => body,
    };
    let updated = state
        .store
        .update_project_params(&project.id, |current| {
            let mut params = if patch {
                current.params.as_object().cloned().unwrap_or_default()
            } else {
                Map::new()
            };
            params.extend(fields);
            let params = Value::Object(params);
            check_params(&params).map_err(|e| e.message)?;
            let mut history = current
                .param_history
                .as_array()
                .cloned()
                .unwrap_or_default();
            let version = history
                .last()
                .and_then(|h| h.get("version"))
                .and_then(Value::as_i64)
                .map_or(0, |v| v + 1);
            history.push(history_entry(
                params.as_object().expect("params is an object"),
                version,
            ));
            if history.len() > MAX_HISTORY {
                history.drain(..history.len() - MAX_HISTORY);
            }
            Ok((params, Value::Array(history)))
        })
        .await;
    match updated {
        Ok(project) => Ok(Json(project_json(&project))),
        Err(StoreError::InvalidState(message)) => Err(ApiError::bad_request(message)),
        Err(err) => Err(err.into()),
    }
}

/// The task template of a textcollection project: its fields as template variables, at the
/// project's current params version. Other types have no templates (400).
#[utoipa::path(
    get, path = "/v1/projects/{name}/taskTemplates", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn task_templates(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTasks)?;
    let project = load(&state, &caller, &name).await?;
    if project.task_type != "textcollection" {
        return Err(ApiError::bad_request(format!(
            "Task templates exist only for textcollection and chat projects; \"{}\" is a {} project.",
            project.name, project.task_type
        )));
    }
    let version = project
        .param_history
        .as_array()
        .and_then(|h| h.last())
        .and_then(|h| h.get("version"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let fields = project
        .params
        .get("fields")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let variables: Vec<Value> = match &fields {
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
    Ok(Json(json!({
        "id": project.id,
        "version": version,
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
        "template_variables": variables,
        "response_schema": {"fields": fields},
        "auto_onboard_enabled": false,
    })))
}
