//! Cloud storage integrations (issue 12): a team connects its private AWS S3, Google Cloud
//! Storage and Azure Blob buckets through delegated credentials, Tessera verifies access and
//! explains what is wrong, task attachments in those buckets are checked at creation and shown
//! to labelers through short-lived signed URLs (or streamed, in proxy mode). The Integrations
//! page and `/v1/integrations` share [`service`].

pub mod api;
pub mod attachments;
pub mod clients;
mod diagnose;
mod pages;
pub mod service;
pub mod sts;

use axum::{
    routing::{get, post},
    Router,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The Integrations page and its forms.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations", get(pages::show).post(pages::add))
        .route("/integrations/proxy", post(pages::set_proxy))
        .route("/integrations/{id}/verify", post(pages::verify))
        .route(
            "/integrations/{id}/remove",
            get(pages::confirm_remove).post(pages::remove),
        )
}

/// The v1 integration routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::aws))
        .routes(routes!(api::get_one, api::remove))
        .routes(routes!(api::verify))
}
