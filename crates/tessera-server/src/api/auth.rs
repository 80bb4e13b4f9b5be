//! API-key authentication: the [`ApiCaller`] extractor, through the key cache
//! ([`crate::keys::cache`]) so the hot path does not hit the database on every request.

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, StatusCode},
};
use base64::{engine::general_purpose::STANDARD, Engine};
use tessera_core::{Action, Actor, Mode, Scope};

use tessera_core::keys::KeyRefusal;
use tessera_store::KeyIdentity;

use super::wire::ApiError;
use crate::{crypto::token_digest, keys::cache::KeyLookup, state::AppState, web::format_time};

/// Who is calling the API: a team, in one mode, through one key. Keys act with the Admin's
/// authority inside their mode.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub team_id: String,
    pub mode: Mode,
    pub key_id: String,
}

impl ApiCaller {
    /// The actor the policy sees for this key.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey {
            key_id: self.key_id.clone(),
            team_id: self.team_id.clone(),
            mode: self.mode,
        }
    }

    /// Asks the policy whether this key may perform `action` on its own team, and returns the
    /// scope the store needs for it: 403 with a message otherwise (a test key that tries to
    /// manage the team is told to use a live key).
    pub fn authorize(&self, action: Action) -> Result<Scope, ApiError> {
        if let Some(scope) = Scope::authorized(&self.actor(), action, &self.team_id, self.mode) {
            return Ok(scope);
        }
        let message = if self.mode == Mode::Test && action.manages_team() {
            "Managing the team through the API needs a live API key; test keys can only work with projects, batches, tasks and files."
        } else {
            "This API key is not allowed to do that."
        };
        Err(ApiError::new(StatusCode::FORBIDDEN, message))
    }

    /// A label for audit entries and task history ("API key test_Ab12…").
    pub fn label(&self) -> String {
        format!("API key {}", self.key_id)
    }
}

/// Why a key that exists is refused, for the caller to fix it: distinct from an unknown key,
/// with the moment it stopped working and, for a rolled key, the prefix of its replacement
/// (as the API Keys page lists it).
fn refusal_message(identity: &KeyIdentity, refusal: &KeyRefusal) -> String {
    match refusal {
        KeyRefusal::Expired { at } => format!(
            "This API key expired at {}. Add a new key on the API Keys page.",
            format_time(*at)
        ),
        KeyRefusal::Rolled { until } => {
            let replacement = identity
                .replacement_prefix
                .as_deref()
                .map(|prefix| format!(" It was replaced by the key {prefix}…; use that one."))
                .unwrap_or_default();
            format!(
                "This API key was rolled and stopped working at {}.{replacement}",
                format_time(*until)
            )
        }
    }
}

/// Extracts the key from `Authorization: Basic base64(key:)` or `Bearer key`.
fn key_from_header(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let key = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':')
            .map_or(text.clone(), |(user, _password)| user.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_owned()
    } else {
        return None;
    };
    (!key.is_empty() && key.len() <= 200).then_some(key)
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("Please provide your API key with HTTP Basic auth (key as the user name, empty password)."))?;
        let key = key_from_header(header).ok_or_else(|| ApiError::unauthorized("The Authorization header is malformed; use HTTP Basic with your API key as the user name, or Bearer."))?;
        let identity = match state
            .api_keys
            .lookup(&state.store, &token_digest(&key))
            .await?
        {
            KeyLookup::Valid(identity) => identity,
            KeyLookup::Refused(identity, refusal) => {
                return Err(ApiError::unauthorized(refusal_message(&identity, &refusal)))
            }
            KeyLookup::Unknown => return Err(ApiError::unauthorized("Invalid API key.")),
        };
        state.api_keys.note_use(&identity.key_id);
        Ok(ApiCaller {
            team_id: identity.team_id.into_string(),
            mode: identity.mode,
            key_id: identity.key_id.into_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_and_bearer() {
        let basic = format!("Basic {}", STANDARD.encode("test_abc:"));
        assert_eq!(key_from_header(&basic).as_deref(), Some("test_abc"));
        let with_password = format!("Basic {}", STANDARD.encode("test_abc:ignored"));
        assert_eq!(key_from_header(&with_password).as_deref(), Some("test_abc"));
        assert_eq!(
            key_from_header("Bearer live_xyz").as_deref(),
            Some("live_xyz")
        );
        assert_eq!(key_from_header("Basic !!!"), None);
        assert_eq!(key_from_header("Digest abc"), None);
        assert_eq!(
            key_from_header(&format!("Basic {}", STANDARD.encode(":"))),
            None
        );
    }
}
