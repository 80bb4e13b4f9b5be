//! A per-team value remembered for a moment, for reads on the API's hottest writes (the
//! default callback URL, the spend limit) that would otherwise cost a database round trip per
//! request. Changes made on this replica are applied at once by [`TtlMap::forget`]; changes
//! made on another replica within the time-to-live.

use std::{
    collections::HashMap,
    future::Future,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

/// Teams remembered at most (the map is cleared past this).
const MAX_ENTRIES: usize = 50_000;

/// Values by team id, each with when it was read.
pub struct TtlMap<V> {
    ttl: Duration,
    entries: RwLock<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> TtlMap<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::default(),
        }
    }

    /// The remembered value for `team_id` while fresh, else what `load` reads (remembered).
    pub async fn get_or_load<E, F>(&self, team_id: &str, load: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some((value, at)) = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(team_id)
        {
            if at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        let value = load.await?;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(team_id.to_owned(), (value.clone(), Instant::now()));
        Ok(value)
    }

    /// Drops what is remembered of `team_id`, after it changed here.
    pub fn forget(&self, team_id: &str) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(team_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_until_forgotten_or_stale() {
        let map = TtlMap::new(Duration::from_secs(60));
        let first: Result<i32, ()> = map.get_or_load("t", async { Ok(1) }).await;
        assert_eq!(first, Ok(1));
        let cached: Result<i32, ()> = map.get_or_load("t", async { Ok(2) }).await;
        assert_eq!(cached, Ok(1));
        map.forget("t");
        let reread: Result<i32, ()> = map.get_or_load("t", async { Ok(3) }).await;
        assert_eq!(reread, Ok(3));
        let stale = TtlMap::new(Duration::ZERO);
        let _: Result<i32, ()> = stale.get_or_load("t", async { Ok(1) }).await;
        let again: Result<i32, ()> = stale.get_or_load("t", async { Ok(2) }).await;
        assert_eq!(again, Ok(2));
        let failed: Result<i32, &str> = stale.get_or_load("u", async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
    }
}
