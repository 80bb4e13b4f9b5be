//! The team: the v1 teammates API (`/v1/teams`, `/v1/teams/set_role`), the dashboard's
//! "Your Team" and team details pages, over the rules in [`service`], and the Admin
//! hand-over ([`handover`]).

pub mod api;
pub mod defaults;
pub mod handover;
pub mod pages;
pub mod service;

use axum::{
    routing::{get, post},
    Router,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The dashboard's team pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/team", get(pages::show))
        .route("/team/members/{user_id}/role", post(pages::change_role))
        .route(
            "/team/members/{user_id}/remove",
            get(pages::confirm_remove).post(pages::remove),
        )
        .route("/team/two-factor", post(pages::set_two_factor_requirement))
        .route(
            "/team/details",
            get(pages::details_form).post(pages::update_details),
        )
        .route(
            "/team/handover",
            get(handover::confirm_offer).post(handover::offer),
        )
        .route("/team/handover/cancel", post(handover::cancel))
        .route(
            "/admin-handover/{token}",
            get(handover::accept_form).post(handover::accept),
        )
}

/// The v1 teammate routes, with their OpenAPI descriptions (inviting is in
/// [`crate::invitations::api_router`]).
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list_teammates))
        .routes(routes!(api::set_role))
}
