//! The dashboard's "new batch" form, on a project's page (Managers and up).

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_store::StoreError;

use super::service::new_batch;
use crate::{
    authz::{perm, Authorized},
    projects::{
        pages::{project_link, project_page},
        service::check_name,
    },
    state::AppState,
    web::{redirect_with_flash, render, Form, SignedIn, WebError, WebResult},
};

#[derive(Deserialize)]
pub(super) struct BatchInput {
    #[serde(default)]
    project: String,
    #[serde(default)]
    name: String,
}

pub(super) async fn create_batch(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditProjects, SignedIn>,
    Form(input): Form<BatchInput>,
) -> WebResult<Response> {
    let project = state
        .store
        .find_project(&scope, &input.project)
        .await?
        .ok_or(WebError::NotFound)?;
    let name = match check_name("batch", &input.name) {
        Ok(name) => name,
        Err(err) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &project_page(&state, &who, &scope, &project.name, Some(err.message)).await?,
            ))
        }
    };
    match state
        .store
        .create_batch(&scope, &new_batch(&project, name.clone()))
        .await
    {
        Ok(_) => Ok(redirect_with_flash(
            &project_link(&project.name),
            &format!("Batch \"{name}\" created."),
        )),
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => {
            let message = format!(
                "A batch named \"{name}\" already exists in {} mode.",
                who.mode
            );
            Ok(render(
                StatusCode::BAD_REQUEST,
                &project_page(&state, &who, &scope, &project.name, Some(message)).await?,
            ))
        }
        Err(err) => Err(err.into()),
    }
}
