//! The dashboard's "new batch" form, on a project's page (Managers and up).

use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use serde_json::json;
use tessera_core::Action;
use tessera_store::{NewBatch, StoreError};

use super::service::initial_status;
use crate::{
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
    who: SignedIn,
    Form(input): Form<BatchInput>,
) -> WebResult<Response> {
    let scope = who.authorize(Action::EditProjects)?;
    let team_id = scope.team_id().to_owned();
    let project = state
        .store
        .find_project(&team_id, who.mode, &input.project)
        .await?
        .ok_or(WebError::NotFound)?;
    let name = match check_name("batch", &input.name) {
        Ok(name) => name,
        Err(err) => {
            return Ok(render(
                StatusCode::BAD_REQUEST,
                &project_page(&state, &who, &project.name, Some(err.message)).await?,
            ))
        }
    };
    let new = NewBatch {
        team_id,
        mode: who.mode,
        project_id: project.id.clone(),
        name: name.clone(),
        status: initial_status(&project),
        callback: String::new(),
        metadata: json!({}),
        calibration_batch: false,
        self_label_batch: false,
    };
    match state.store.create_batch(&new).await {
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
                &project_page(&state, &who, &project.name, Some(message)).await?,
            ))
        }
        Err(err) => Err(err.into()),
    }
}
