//! The team's default callback URL, remembered for a moment: task creation applies it to every
//! task sent without a `callback_url`, and reading the team row on each creation would add a
//! database round trip to the API's hottest write. A change made on this replica applies at
//! once (the details page forgets the entry); one made on another replica within
//! [`TEAM_DEFAULTS_TTL`].

use std::time::Duration;

use tessera_core::Scope;
use tessera_store::{Store, StoreError};

use crate::ttl::TtlMap;

/// How long a team's default callback URL is trusted after it was read.
pub const TEAM_DEFAULTS_TTL: Duration = Duration::from_secs(2);

/// Teams' default callback URLs, by team id.
pub struct TeamDefaults(TtlMap<Option<String>>);

impl Default for TeamDefaults {
    fn default() -> Self {
        Self(TtlMap::new(TEAM_DEFAULTS_TTL))
    }
}

impl TeamDefaults {
    /// The scope's team default callback URL (`None`: the team has none).
    pub async fn callback_url(
        &self,
        store: &Store,
        scope: &Scope,
    ) -> Result<Option<String>, StoreError> {
        self.0
            .get_or_load(scope.team_id(), async {
                Ok(store.get_team(scope).await?.default_callback_url)
            })
            .await
    }

    /// Drops what is remembered of `team_id`, after its details changed.
    pub fn forget(&self, team_id: &str) {
        self.0.forget(team_id);
    }
}
