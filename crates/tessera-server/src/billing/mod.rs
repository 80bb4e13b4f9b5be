//! Billing (issue 11, ADR 0005): the Billing pages, the `/v1/billing` API, the period-close
//! job, over the rules in [`service`]. Money is integer minor units; prices are frozen into
//! usage when a task completes (in the store), and the close turns unbilled usage into an
//! immutable invoice.

pub mod api;
pub mod jobs;
pub mod pages;
pub(crate) mod render;
pub mod service;

use axum::{
    routing::{get, post},
    Router,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The dashboard's billing pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/billing", get(pages::show))
        .route("/billing/spend-limit", post(pages::set_spend_limit))
        .route("/billing/invoices/{id}", get(pages::show_invoice))
        .route("/billing/invoices/{id}/csv", get(pages::invoice_csv))
}

/// The v1 billing routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::billing))
        .routes(routes!(api::usage))
        .routes(routes!(api::invoices))
        .routes(routes!(api::invoice))
}
