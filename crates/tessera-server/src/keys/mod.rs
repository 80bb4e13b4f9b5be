//! API keys and team secrets: the API Keys page (Managers and the Admin: test and live keys,
//! added with an expiry and rolled with a grace period, and each mode's callback auth key and
//! signing secret, rotated; every reveal is audited) in `pages`, the rules shared with the CLI
//! in `service`, the API-key lookup cache in `cache` and master-key rotation (re-sealing) in
//! `rotation`.

pub mod cache;
mod pages;
pub mod rotation;
pub mod service;

pub use pages::router;
pub use service::SIGNING_OVERLAP_MS;

/// Longest label a key may have.
pub const MAX_LABEL: usize = 100;
