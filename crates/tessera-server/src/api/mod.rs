//! The Scale-compatible v1 API (`/v1/...`), as the official Python SDK drives it
//! (`../shared/docs/scale-api.md`). Every route is registered together with its OpenAPI
//! description, so `/v1/openapi.json` is generated from the same code that serves.

pub mod auth;
pub mod wire;

use axum::{routing::get, Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The error body every failing v1 request gets.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
    /// The HTTP status code, repeated.
    pub status_code: u16,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera v1 API",
        description = "Scale-compatible task API. Authenticate with HTTP Basic (API key as the user name, empty password) or `Authorization: Bearer <key>`. Keys starting `test_` act in test mode, `live_` in live mode; the two modes never see each other's objects. An unknown key, an expired key and a rolled key past its grace period each get a 401 saying which.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    // Every v1 operation takes a key, by either scheme.
    security(("basic" = []), ("bearer" = [])),
    tags(
        (name = "tasks", description = "Create, read, list and change tasks"),
        (name = "projects", description = "Projects: defaults for their tasks"),
        (name = "batches", description = "Batches of tasks"),
        (name = "files", description = "Uploaded and imported attachments"),
        (name = "teams", description = "Teammates and invitations"),
        (name = "integrations", description = "Cloud storage integrations: private S3, GCS and Azure buckets for attachments"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The v1 routes and the OpenAPI document describing exactly them.
pub fn router() -> Router<AppState> {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::tasks::api_router())
        .merge(crate::projects::api_router())
        .merge(crate::batches::api_router())
        .merge(crate::files::api_router())
        .merge(crate::team::api_router())
        .merge(crate::billing::api_router())
        .merge(crate::integrations::api_router())
        .merge(crate::invitations::api_router())
        .split_for_parts();
    let document = openapi.to_json().unwrap_or_else(|_| "{}".into());
    let document: serde_json::Value = serde_json::from_str(&document).unwrap_or_default();
    router.route(
        "/v1/openapi.json",
        get(move || async move { Json(document.clone()) }),
    )
}
