//! API-key authentication. Keys are looked up by SHA-256 digest through a small in-memory
//! cache so the hot path does not hit the database on every request; deleting a key evicts it
//! at once on this replica, and other replicas notice within [`KEY_CACHE_TTL`].

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use axum::{
    extract::FromRequestParts,
    http::{request::Parts, StatusCode},
};
use base64::{engine::general_purpose::STANDARD, Engine};
use tessera_core::{can, Action, Actor, Mode};
use tessera_store::{KeyIdentity, Store};

use super::wire::ApiError;
use crate::{crypto::token_digest, state::AppState};

/// How long a cached key lookup is trusted. A key deleted on another replica stops working
/// here within this bound.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Valid keys remembered at most (the cache of found keys is cleared past this).
const KEY_CACHE_MAX: usize = 50_000;
/// Unknown keys remembered at most. Kept apart from found keys, so a flood of random keys
/// fills only this map (cleared when full) and never evicts a customer's valid key.
const MISS_CACHE_MAX: usize = 10_000;

/// Remembers key lookups for a few seconds — found keys and misses in separate maps — and
/// when keys were used.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (KeyIdentity, Instant)>>,
    misses: RwLock<HashMap<String, Instant>>,
    last_used: Mutex<HashMap<String, i64>>,
}

impl KeyCache {
    /// The identity behind `digest`, from the cache when fresh, else from the store.
    pub async fn lookup(
        &self,
        store: &Store,
        digest: &str,
    ) -> Result<Option<KeyIdentity>, ApiError> {
        if let Some((identity, at)) = self.entries.read().expect("key cache lock").get(digest) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(identity.clone()));
            }
        }
        if let Some(at) = self.misses.read().expect("key cache lock").get(digest) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(None);
            }
        }
        let identity = store.key_identity(digest).await?;
        match &identity {
            Some(found) => {
                let mut entries = self.entries.write().expect("key cache lock");
                if entries.len() >= KEY_CACHE_MAX {
                    entries.clear();
                }
                entries.insert(digest.to_owned(), (found.clone(), Instant::now()));
            }
            None => {
                let mut misses = self.misses.write().expect("key cache lock");
                if misses.len() >= MISS_CACHE_MAX {
                    misses.clear();
                }
                misses.insert(digest.to_owned(), Instant::now());
            }
        }
        Ok(identity)
    }

    /// Valid keys and misses currently remembered (for tests).
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.entries.read().expect("key cache lock").len(),
            self.misses.read().expect("key cache lock").len(),
        )
    }

    /// Forgets a deleted key immediately.
    pub fn evict_key(&self, key_id: &str) {
        self.entries
            .write()
            .expect("key cache lock")
            .retain(|_, (identity, _)| identity.key_id != key_id);
    }

    fn note_use(&self, key_id: &str) {
        self.last_used
            .lock()
            .expect("key use lock")
            .insert(key_id.to_owned(), tessera_store::now_ms());
    }

    /// Writes the recorded last-use times (called periodically and at shutdown).
    pub async fn flush_uses(&self, store: &Store) {
        let uses: Vec<(String, i64)> = self
            .last_used
            .lock()
            .expect("key use lock")
            .drain()
            .collect();
        if let Err(err) = store.touch_api_keys(&uses).await {
            tracing::warn!(error = %err, "could not record API key use");
        }
    }
}

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

    /// Asks the policy whether this key may perform `action` on its own team: 403 with a
    /// message otherwise (a test key that tries to manage the team is told to use a live key).
    pub fn authorize(&self, action: Action) -> Result<(), ApiError> {
        if can(&self.actor(), action, Some(&self.team_id)) {
            return Ok(());
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
        let identity = state
            .api_keys
            .lookup(&state.store, &token_digest(&key))
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid API key."))?;
        state.api_keys.note_use(&identity.key_id);
        Ok(ApiCaller {
            team_id: identity.team_id,
            mode: identity.mode,
            key_id: identity.key_id,
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
