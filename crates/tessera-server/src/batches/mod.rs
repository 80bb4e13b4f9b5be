//! Batches: the v1 batch API (`/v1/batch…`, `/v1/batches`) and the dashboard's batch form,
//! over one set of rules in [`service`].

pub mod api;
pub mod pages;
pub mod service;

use axum::{routing::post, Router};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The dashboard's "new batch" form on a project page.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/batches", post(pages::create_batch))
}

/// The v1 batch routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::create_batch, api::list_batches))
        .routes(routes!(api::get_batch))
        .routes(routes!(api::finalize_batch))
        .routes(routes!(api::batch_status))
        .routes(routes!(api::set_batch_metadata))
}
