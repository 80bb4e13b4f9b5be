//! The in-memory cache of API-key lookups, part of the shared state: keys are looked up by
//! SHA-256 digest without a database round trip on every request. Deleting or rolling a key
//! evicts it at once on this replica, and other replicas notice within [`KEY_CACHE_TTL`].
//! A key's expiry and a rolled key's grace end are part of what is cached and are compared
//! with the clock on every lookup, so a cached key never outlives either, to the millisecond.

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use tessera_core::ids::ApiKeyId;
use tessera_core::keys::{key_refusal, KeyRefusal};
use tessera_store::{KeyIdentity, Store, StoreError};

/// How long a cached key lookup is trusted. A key deleted on another replica stops working
/// here within this bound.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Valid keys remembered at most (the cache of found keys is cleared past this).
const KEY_CACHE_MAX: usize = 50_000;
/// Unknown keys remembered at most. Kept apart from found keys, so a flood of random keys
/// fills only this map (cleared when full) and never evicts a customer's valid key.
const MISS_CACHE_MAX: usize = 10_000;

/// What a key digest is worth right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// A key that may authenticate.
    Valid(KeyIdentity),
    /// A key that exists but no longer works: expired, or rolled and past its grace.
    Refused(KeyIdentity, KeyRefusal),
    /// No such key (or a deleted one).
    Unknown,
}

/// Remembers key lookups for a few seconds — found keys and misses in separate maps — and
/// when keys were used.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (KeyIdentity, Instant)>>,
    misses: RwLock<HashMap<String, Instant>>,
    last_used: Mutex<HashMap<ApiKeyId, i64>>,
}

impl KeyCache {
    /// What `digest` is worth at this moment: the identity behind it (from the cache when
    /// fresh, else from the store), judged against its expiry and grace end now.
    pub async fn lookup(&self, store: &Store, digest: &str) -> Result<KeyLookup, StoreError> {
        let identity = self.identity(store, digest).await?;
        Ok(match identity {
            None => KeyLookup::Unknown,
            Some(identity) => {
                let now = tessera_store::now_ms();
                match key_refusal(now, identity.expires_at, identity.rolled_until) {
                    None => KeyLookup::Valid(identity),
                    Some(refusal) => KeyLookup::Refused(identity, refusal),
                }
            }
        })
    }

    /// The identity behind `digest`, from the cache when fresh, else from the store.
    async fn identity(
        &self,
        store: &Store,
        digest: &str,
    ) -> Result<Option<KeyIdentity>, StoreError> {
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
        // Before the lookup no team is known: it is what authenticates the request.
        let identity = store.cross_tenant().key_identity(digest).await?;
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

    /// Forgets a deleted or rolled key immediately.
    pub fn evict_key(&self, key_id: &ApiKeyId) {
        self.entries
            .write()
            .expect("key cache lock")
            .retain(|_, (identity, _)| identity.key_id != *key_id);
    }

    /// Remembers that a key was used now; written out by [`KeyCache::flush_uses`].
    pub fn note_use(&self, key_id: &ApiKeyId) {
        self.last_used
            .lock()
            .expect("key use lock")
            .insert(key_id.clone(), tessera_store::now_ms());
    }

    /// Writes the recorded last-use times of every team's keys (called periodically and at
    /// shutdown).
    pub async fn flush_uses(&self, store: &Store) {
        let uses: Vec<(ApiKeyId, i64)> = self
            .last_used
            .lock()
            .expect("key use lock")
            .drain()
            .collect();
        if let Err(err) = store.cross_tenant().touch_api_keys(&uses).await {
            tracing::warn!(error = %err, "could not record API key use");
        }
    }
}
