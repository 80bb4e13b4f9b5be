//! Callbacks: the delivery worker, Standard Webhooks signing, where a team may send
//! callbacks, and the dashboard's Callbacks pages (`pages`, with their rules in `service`) and
//! Callback email addresses page (`emails`).

pub mod emails;
mod pages;
pub mod service;
pub mod signing;
pub mod targets;
pub mod worker;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    pages::router().merge(emails::router())
}
