//! The labeler's pages: the queue (Next task claims the oldest pending live task under a
//! lease), the task view with instruction, attachment, params, the lease's countdown with
//! Extend, and a response editor checked against the task type, Submit (completes the task,
//! its callback and usage record in one transaction; also after the lease ran out, while
//! nobody else took the task) and Release. Every refusal shows the task page again with the
//! labeler's typed response. Submit & next takes the next task at once. The labeler's own
//! history of completed tasks opens each one read-only (`history`). The rules are in
//! `service`, the pages in `pages`.

mod choices;
mod history;
mod pages;
mod service;

use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
    Router,
};

use crate::{state::AppState, web::csrf::MAX_RESPONSE_FORM_BYTES};

pub fn router() -> Router<AppState> {
    // The routes that carry a response take what the API takes (csrf::RESPONSE_FORM_ROUTES).
    let response_limit = DefaultBodyLimit::max(MAX_RESPONSE_FORM_BYTES);
    Router::new()
        .route("/label", get(pages::queue))
        .route("/label/next", post(pages::next))
        .route("/label/history", get(history::history))
        .route("/label/history/{id}", get(history::done))
        .route(
            "/label/{id}",
            get(pages::task).post(pages::submit).layer(response_limit),
        )
        .route(
            "/label/{id}/extend",
            post(pages::extend).layer(response_limit),
        )
        .route("/label/{id}/release", post(pages::release))
        .route("/label/{id}/error", post(pages::report_error))
        .route("/label/{id}/attachment", get(pages::attachment))
}
