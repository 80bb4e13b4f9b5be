//! Projects on the dashboard (Members and up; Managers edit), scoped by the live/test
//! switch: the project list and a project's detail with its params history and batches.

use crate::web::PageTime;
use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_core::{Action, Scope};
use tessera_store::{BatchFilter, StoreError};

use super::service::{check_name, new_project};
use crate::{
    authz::{perm, Authorized},
    state::AppState,
    tasks::pages::{choices, pretty, type_names, Choice},
    web::{page, redirect_with_flash, render, Form, Layout, Query, SignedIn, WebError, WebResult},
};

struct ProjectRow {
    name: String,
    display: String,
    task_type: String,
    created: PageTime,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    layout: Layout,
    projects: Vec<ProjectRow>,
    can_edit: bool,
    types: Vec<Choice>,
    error: Option<String>,
    name: String,
    instruction: String,
}

/// The project list of `scope` (whose caller may view its tasks: managing projects includes
/// seeing them), with the creation form as `input` left it.
async fn projects_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    error: Option<String>,
    input: ProjectInput,
) -> WebResult<ProjectsPage> {
    let team = who.team_name.clone().unwrap_or_default();
    let projects = state
        .store
        .list_projects(scope)
        .await?
        .into_iter()
        .rev()
        .map(|p| ProjectRow {
            display: format!("{team} / {}", p.name),
            name: p.name,
            task_type: p.task_type.as_str().to_owned(),
            created: PageTime::at(p.created_at),
        })
        .collect();
    Ok(ProjectsPage {
        layout: Layout::signed_in("Projects", who, "/projects"),
        projects,
        can_edit: who.may(Action::EditProjects),
        types: choices(&type_names(), &input.task_type),
        error,
        name: input.name,
        instruction: input.instruction,
    })
}

pub(super) async fn projects(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewTasks, SignedIn>,
) -> WebResult<Response> {
    Ok(page(
        &projects_page(&state, &who, &scope, None, ProjectInput::default()).await?,
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct ProjectInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    task_type: String,
    #[serde(default)]
    instruction: String,
}

pub(super) async fn create_project(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditProjects, SignedIn>,
    Form(input): Form<ProjectInput>,
) -> WebResult<Response> {
    let mut params = Map::new();
    if !input.instruction.trim().is_empty() {
        params.insert("instruction".into(), json!(input.instruction.trim()));
    }
    let new = check_name("project", &input.name)
        .and_then(|name| new_project(&name, &input.task_type, params));
    let new = match new {
        Ok(new) => new,
        Err(err) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &projects_page(&state, &who, &scope, Some(err.message), input).await?,
            ))
        }
    };
    match state.store.create_project(&scope, &new).await {
        Ok(p) => Ok(redirect_with_flash(
            &project_link(&p.name),
            &format!("Project \"{}\" created in {} mode.", p.name, who.mode),
        )),
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let message = format!(
                "A project named \"{}\" already exists in {} mode.",
                new.name, who.mode
            );
            Ok(render(
                StatusCode::BAD_REQUEST,
                &projects_page(&state, &who, &scope, Some(message), input).await?,
            ))
        }
        Err(err) => Err(err.into()),
    }
}

pub(crate) fn project_link(name: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("name", name)
        .finish();
    format!("/projects/view?{q}")
}

struct BatchRow {
    name: String,
    status: String,
    created: PageTime,
    tasks_link: String,
}

#[derive(Template)]
#[template(path = "project.html")]
pub(crate) struct ProjectPage {
    layout: Layout,
    name: String,
    display: String,
    task_type: String,
    params: String,
    history: Vec<(i64, String, String)>,
    batches: Vec<BatchRow>,
    can_edit: bool,
    tasks_link: String,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameQuery {
    #[serde(default)]
    name: String,
}

/// The page of `scope`'s project of this name (whose caller may view its tasks: managing
/// projects includes seeing them), with its batches and an error from a form, if any.
pub(crate) async fn project_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    name: &str,
    error: Option<String>,
) -> WebResult<ProjectPage> {
    let project = state
        .store
        .find_project(scope, name)
        .await?
        .ok_or(WebError::NotFound)?;
    let (batches, _) = state
        .store
        .list_batches(
            scope,
            &BatchFilter {
                project_id: Some(project.id.clone()),
                ..BatchFilter::default()
            },
            100,
            0,
        )
        .await?;
    let history = history_rows(&project.param_history);
    let tasks_link = |extra: &str| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("project", &project.name);
        if !extra.is_empty() {
            q.append_pair("batch", extra);
        }
        format!("/tasks?{}", q.finish())
    };
    Ok(ProjectPage {
        layout: Layout::signed_in(format!("Project {}", project.name), who, "/projects"),
        display: format!(
            "{} / {}",
            who.team_name.clone().unwrap_or_default(),
            project.name
        ),
        task_type: project.task_type.as_str().to_owned(),
        params: pretty(&project.params),
        history,
        batches: batches
            .into_iter()
            .map(|b| BatchRow {
                tasks_link: tasks_link(&b.name),
                name: b.name,
                status: b.status.as_str().to_owned(),
                created: PageTime::at(b.created_at),
            })
            .collect(),
        can_edit: who.may(Action::EditProjects),
        tasks_link: tasks_link(""),
        name: project.name,
        error,
    })
}

/// The project's param versions, newest first: (version, time, the params shown).
fn history_rows(param_history: &Value) -> Vec<(i64, String, String)> {
    param_history
        .as_array()
        .map(|h| {
            h.iter()
                .rev()
                .map(|entry| {
                    let version = entry
                        .get("version")
                        .and_then(Value::as_i64)
                        .unwrap_or_default();
                    let at = entry
                        .get("created_at")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let mut shown = entry.clone();
                    if let Value::Object(o) = &mut shown {
                        o.remove("version");
                        o.remove("created_at");
                    }
                    (version, at, pretty(&shown))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) async fn project_detail(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewTasks, SignedIn>,
    Query(q): Query<NameQuery>,
) -> WebResult<Response> {
    match project_page(&state, &who, &scope, &q.name, None).await {
        Err(WebError::NotFound) => {
            if let Some(other) = who.other_mode_scope(tessera_core::Action::ViewTasks) {
                if state.store.find_project(&other, &q.name).await?.is_some() {
                    let path = format!(
                        "/projects/view?name={}",
                        url::form_urlencoded::byte_serialize(q.name.as_bytes()).collect::<String>()
                    );
                    return Ok(crate::web::other_mode_offer(&who, "project", &path));
                }
            }
            Err(WebError::NotFound)
        }
        shown => Ok(page(&shown?)),
    }
}
