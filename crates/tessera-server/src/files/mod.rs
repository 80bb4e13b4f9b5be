//! Files: uploads and imports of task attachments (`/v1/files…`), over the rules in
//! [`service`].

pub mod api;
pub mod service;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub use api::json_body_limit;
pub use tessera_core::storage::MAX_FILE_BYTES;

/// The v1 file routes, with their OpenAPI descriptions.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::upload_file))
        .routes(routes!(api::import_file))
}
