//! Billing (issue 11, ADR 0005): the Billing pages, the `/v1/billing` API, the period-close
//! job, over the rules in [`service`]. Money is integer minor units; prices are frozen into
//! usage when a task completes (in the store), and the close turns unbilled usage into an
//! immutable invoice.

pub mod api;
mod card;
pub mod jobs;
pub mod pages;
pub mod provider;
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
        .route("/billing/card", get(card::show).post(card::save))
        .route("/billing/invoices/{id}", get(pages::show_invoice))
        .route("/billing/invoices/{id}/csv", get(pages::invoice_csv))
        .route("/billing/invoices/{id}/pdf", get(pages::invoice_pdf))
}

/// Largest webhook body accepted (Stripe's events are a few KiB).
const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

/// The payment provider's webhook: outside the dashboard (no session, no CSRF token; the
/// signature is its authentication).
pub fn webhook_router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(card::stripe_webhook))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// The v1 billing routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::billing))
        .routes(routes!(api::usage))
        .routes(routes!(api::invoices))
        .routes(routes!(api::invoice))
}
