//! `/v1/projects`: projects hold default params for their tasks, versioned in
//! `param_history`.

use axum::{
    extract::{Path, State},
    Json,
};
use serde::Serialize;
use serde_json::{Map, Value};
use tessera_core::Scope;
use tessera_store::{Project, StoreError};
use utoipa::ToSchema;

use super::service::{
    check_name, created, new_project, next_version, param_fields, task_template, MAX_NAME,
};
use crate::api::{
    wire::{iso, json_bool, string_field, ApiError, ApiResult, JsonBody},
    ErrorBody,
};
use crate::authz::{perm, Authorized};
use crate::state::AppState;

/// A project as the API returns it (Scale's Project).
// Fields in alphabetical order: the order the keys have always had on the wire.
#[derive(Serialize, ToSchema)]
pub struct ProjectBody {
    created_at: String,
    name: String,
    /// The params of every version, each flattened with its `version` and `created_at`.
    #[schema(value_type = Vec<Object>)]
    param_history: Value,
    /// Default params of the project's tasks: whatever the project was given.
    #[schema(value_type = Object)]
    params: Value,
    rapid: bool,
    studio: bool,
    /// The task type.
    #[serde(rename = "type")]
    task_type: &'static str,
    updated_at: String,
}

impl From<Project> for ProjectBody {
    fn from(project: Project) -> Self {
        Self {
            created_at: iso(project.created_at),
            name: project.name,
            param_history: project.param_history,
            params: project.params,
            rapid: project.rapid,
            studio: project.studio,
            task_type: project.task_type.as_str(),
            updated_at: iso(project.updated_at),
        }
    }
}

/// The fields of a textcollection project's tasks, as Scale's TaskTemplate.
// Fields in alphabetical order: the order the keys have always had on the wire.
#[derive(Serialize, ToSchema)]
pub struct TaskTemplateBody {
    auto_onboard_enabled: bool,
    created_at: String,
    /// The project's id.
    id: String,
    response_schema: ResponseSchema,
    /// The field ids, as the template's variables.
    #[schema(value_type = Vec<Object>)]
    template_variables: Vec<Value>,
    updated_at: String,
    /// The project's params version the template is taken from.
    version: i64,
}

/// The response a template's task is answered with: the project's fields.
#[derive(Serialize, ToSchema)]
pub struct ResponseSchema {
    #[schema(value_type = Object)]
    fields: Value,
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Project \"{name}\" not found."))
}

/// Create a project (`{"type", "name", "params", "rapid", "studio", "datasetId"}`).
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects", request_body = serde_json::Value,
    responses((status = 200, body = ProjectBody), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
pub async fn create_project(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    body: JsonBody,
) -> ApiResult<Json<ProjectBody>> {
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
    let mut new = new_project(&name, &task_type, params)?;
    new.rapid = json_bool(body.get("rapid"));
    new.studio = json_bool(body.get("studio"));
    new.dataset_id = string_field(&body, "datasetId", 200)?;
    let project = created(
        "project",
        &name,
        state.store.create_project(&scope, &new).await,
    )?;
    Ok(Json(project.into()))
}

/// The scope's project of this name, or the API's 404.
async fn load(state: &AppState, scope: &Scope, name: &str) -> ApiResult<Project> {
    state
        .store
        .find_project(scope, name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Get a project by name (`/` inside a name is sent as `%2F`).
#[utoipa::path(
    get, path = "/v1/projects/{name}", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = ProjectBody), (status = 404, body = ErrorBody)),
)]
pub async fn get_project(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProjectBody>> {
    Ok(Json(load(&state, &scope, &name).await?.into()))
}

/// All projects of this mode, as a bare JSON array.
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<ProjectBody>)),
)]
pub async fn list_projects(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
) -> ApiResult<Json<Vec<ProjectBody>>> {
    let projects = state.store.list_projects(&scope).await?;
    Ok(Json(projects.into_iter().map(ProjectBody::from).collect()))
}

/// Update a project's params: appends a `param_history` version. With `"patch": true` the
/// fields are merged into the previous version, otherwise they replace it.
#[utoipa::path(
    post, path = "/v1/projects/{name}/setParams", tag = "projects", params(("name" = String, Path)),
    request_body = serde_json::Value,
    responses((status = 200, body = ProjectBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn set_params(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    Path(name): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<ProjectBody>> {
    let (fields, patch) = param_fields(body.object()?);
    let project = load(&state, &scope, &name).await?;
    let updated = state
        .store
        .update_project_params(&scope, &project.id, |current| {
            next_version(current, fields, patch)
        })
        .await;
    match updated {
        Ok(project) => Ok(Json(project.into())),
        Err(StoreError::InvalidState(message)) => Err(ApiError::bad_request(message)),
        Err(err) => Err(err.into()),
    }
}

/// The task template of a textcollection project: its fields as template variables, at the
/// project's current params version. Other types have no templates (400).
#[utoipa::path(
    get, path = "/v1/projects/{name}/taskTemplates", tag = "projects", params(("name" = String, Path)),
    responses((status = 200, body = TaskTemplateBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
pub async fn task_templates(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTasks>,
    Path(name): Path<String>,
) -> ApiResult<Json<TaskTemplateBody>> {
    let project = load(&state, &scope, &name).await?;
    let template = task_template(&project)?;
    Ok(Json(TaskTemplateBody {
        auto_onboard_enabled: false,
        created_at: iso(project.created_at),
        id: project.id.into_string(),
        response_schema: ResponseSchema {
            fields: template.fields,
        },
        template_variables: template.variables,
        updated_at: iso(project.updated_at),
        version: template.version,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_core::{ids::ProjectId, tasks::TaskType};

    use super::*;

    /// The bodies are byte for byte what the `json!` maps they replaced produced.
    #[test]
    fn bodies_keep_their_wire_shape() {
        let project = Project {
            id: ProjectId::generate(),
            name: "p/1".into(),
            task_type: TaskType::TextCollection,
            params: json!({"fields": [{"field_id": "a"}], "instruction": "x"}),
            param_history: json!([{"version": 0, "instruction": "x"}]),
            rapid: true,
            studio: false,
            dataset_id: Some("d".into()),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_123,
        };
        let old = json!({
            "name": project.name, "type": "textcollection", "params": project.params,
            "param_history": project.param_history, "rapid": true, "studio": false,
            "created_at": iso(project.created_at), "updated_at": iso(project.updated_at),
        });
        let new = serde_json::to_string(&ProjectBody::from(project.clone())).unwrap();
        assert_eq!(new, old.to_string());
        let template = TaskTemplateBody {
            auto_onboard_enabled: false,
            created_at: iso(project.created_at),
            id: project.id.to_string(),
            response_schema: ResponseSchema {
                fields: json!([{"field_id": "a"}]),
            },
            template_variables: vec![json!("a")],
            updated_at: iso(project.updated_at),
            version: 0,
        };
        let old = json!({
            "id": project.id, "version": 0, "created_at": iso(project.created_at),
            "updated_at": iso(project.updated_at), "template_variables": ["a"],
            "response_schema": {"fields": [{"field_id": "a"}]}, "auto_onboard_enabled": false,
        });
        assert_eq!(serde_json::to_string(&template).unwrap(), old.to_string());
    }
}
