//! Liveness, readiness, static assets and the 404 page.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::{state::AppState, web::WebError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

const STYLE: &str = include_str!("../static/style.css");
const SCRIPT: &str = include_str!("../static/app.js");
const CARD_SCRIPT: &str = include_str!("../static/billing-card.js");
const LABEL_SCRIPT: &str = include_str!("../static/label.js");
const LABEL_STYLE: &str = include_str!("../static/label.css");
const TASK_VIEW_SCRIPT: &str = include_str!("../static/task-view.js");

async fn static_file(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "billing-card.js" => (CARD_SCRIPT, "text/javascript; charset=utf-8"),
        "label.js" => (LABEL_SCRIPT, "text/javascript; charset=utf-8"),
        "label.css" => (LABEL_STYLE, "text/css; charset=utf-8"),
        "task-view.js" => (TASK_VIEW_SCRIPT, "text/javascript; charset=utf-8"),
        _ => return WebError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// 404: JSON under `/v1/`, a page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/v1/") {
        crate::api::wire::ApiError::not_found("No such endpoint.").into_response()
    } else {
        WebError::NotFound.into_response()
    }
}
