//! Projects: the v1 project API (`/v1/projects…`) and the dashboard's project pages, over
//! one set of rules in [`service`].

pub mod api;
pub mod pages;
pub mod service;

use axum::{routing::get, Router};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The dashboard's project list and detail pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/projects",
            get(pages::projects).post(pages::create_project),
        )
        .route("/projects/view", get(pages::project_detail))
}

/// The v1 project routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::create_project, api::list_projects))
        .routes(routes!(api::get_project))
        .routes(routes!(api::set_params))
        .routes(routes!(api::task_templates))
}
