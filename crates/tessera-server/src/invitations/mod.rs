//! Invitations: inviting teammates from the dashboard (invite, resend, revoke, change the
//! role a pending invitation grants) and through `/v1/teams/invite`, over the rules in
//! [`service`], and accepting an invitation from the link in its email ([`accept`]).

pub mod accept;
pub mod api;
pub mod pages;
pub mod service;

use axum::{
    routing::{get, post},
    Router,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The dashboard's invitation actions and the accept page of an invitation link.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/team/invitations", post(pages::invite))
        .route("/team/invitations/{id}/resend", post(pages::resend))
        .route("/team/invitations/{id}/revoke", post(pages::revoke))
        .route("/team/invitations/{id}/role", post(pages::change_role))
        .route(
            "/invite/{token}",
            get(accept::accept_form).post(accept::accept),
        )
}

/// The v1 invite route, with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(api::invite_teammates))
}
