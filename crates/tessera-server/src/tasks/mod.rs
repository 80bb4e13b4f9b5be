//! Tasks: the v1 task API (`/v1/task…`, `/v1/tasks`) and the dashboard's task pages, over
//! one set of rules in [`service`].

pub mod api;
pub mod pages;
pub mod service;
pub mod wire;

use axum::Router;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The dashboard's task pages and the live/test switch they follow.
pub fn router() -> Router<AppState> {
    pages::router()
}

/// The v1 task routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::create_task, api::get_task))
        .routes(routes!(api::list_tasks))
        .routes(routes!(api::cancel_task))
        .routes(routes!(api::audit_task))
        .routes(routes!(api::set_unique_id, api::clear_unique_id))
        .routes(routes!(api::set_metadata))
        .routes(routes!(api::set_tags, api::add_tags, api::delete_tags))
}
