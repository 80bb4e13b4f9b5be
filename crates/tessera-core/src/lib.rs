//! Tessera's domain: the types and rules every other crate agrees on, with no I/O.
//!
//! Anything that decides *whether* something is allowed or *what shape* a value must have
//! lives here, so the dashboard, the API and the operator CLI cannot disagree.

#![forbid(unsafe_code)]

pub mod audit;
pub mod billing;
pub mod client_ip;
pub mod email;
pub mod handover;
pub mod ids;
pub mod integrations;
pub mod keys;
pub mod mode;
pub mod money;
pub mod policy;
pub mod profile;
pub mod retry;
pub mod role;
pub mod scope;
pub mod status;
pub mod storage;
pub mod tasks;
pub mod team;
pub mod verification;

pub use audit::AuditAction;
pub use email::Email;
pub use mode::Mode;
pub use policy::{can, Action, Actor};
pub use role::{InvitableRole, Role};
pub use scope::Scope;

/// A value that failed validation, with a message fit to show the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Trims `raw` and checks it is non-empty (when `required`), at most `max` characters and free
/// of control characters. Shared by every free-text field so limits read the same everywhere.
pub fn clean_text(field: &str, raw: &str, max: usize, required: bool) -> Result<String, Invalid> {
    let value = raw.trim();
    if required && value.is_empty() {
        return Err(Invalid(format!("{field} is required.")));
    }
    if value.chars().count() > max {
        return Err(Invalid(format!(
            "{field} must be at most {max} characters."
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "{field} must not contain control characters."
        )));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_trims_and_limits() {
        assert_eq!(clean_text("Name", "  Ada  ", 10, true).unwrap(), "Ada");
        assert!(clean_text("Name", "   ", 10, true).is_err());
        assert_eq!(clean_text("Name", "   ", 10, false).unwrap(), "");
        assert!(clean_text("Name", "abcdefghijk", 10, true).is_err());
        assert!(clean_text("Name", "a\u{0}b", 10, true).is_err());
        // Limits count characters, not bytes.
        assert!(clean_text("Name", "ééééé", 5, true).is_ok());
    }
}
