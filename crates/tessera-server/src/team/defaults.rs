//! The team's default callback URL, remembered for a moment: task creation applies it to every
//! task sent without a `callback_url`, and reading the team row on each creation would add a
//! database round trip to the API's hottest write. A change made on this replica applies at
//! once (the details page forgets the entry); one made on another replica within
//! [`TEAM_DEFAULTS_TTL`].

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use tessera_core::Scope;
use tessera_store::{Store, StoreError};

/// How long a team's default callback URL is trusted after it was read.
pub const TEAM_DEFAULTS_TTL: Duration = Duration::from_secs(2);
/// Teams remembered at most (the map is cleared past this).
const TEAM_DEFAULTS_MAX: usize = 50_000;

/// Teams' default callback URLs, by team id, with when each was read.
#[derive(Default)]
pub struct TeamDefaults {
    entries: RwLock<HashMap<String, (Option<String>, Instant)>>,
}

impl TeamDefaults {
    /// The scope's team default callback URL (`None`: the team has none).
    pub async fn callback_url(
        &self,
        store: &Store,
        scope: &Scope,
    ) -> Result<Option<String>, StoreError> {
        if let Some((url, at)) = self.read().get(scope.team_id()) {
            if at.elapsed() < TEAM_DEFAULTS_TTL {
                return Ok(url.clone());
            }
        }
        let url = store.get_team(scope).await?.default_callback_url;
        let mut entries = self.write();
        if entries.len() >= TEAM_DEFAULTS_MAX {
            entries.clear();
        }
        entries.insert(scope.team_id().to_owned(), (url.clone(), Instant::now()));
        Ok(url)
    }

    /// Drops what is remembered of `team_id`, after its details changed.
    pub fn forget(&self, team_id: &str) {
        self.write().remove(team_id);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (Option<String>, Instant)>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (Option<String>, Instant)>> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
