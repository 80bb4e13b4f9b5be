//! Background upkeep as a [`Job`]: records API key use every few seconds; prunes expired
//! sessions, stale rate-limit events, old callback attempts and partial uploads left by a
//! crash at start and every few minutes.

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    jobs::{Job, Next},
    ratelimit,
    state::AppState,
};

/// How often API key use is written to the database ("last used" on the keys page).
const KEY_USE_FLUSH: Duration = Duration::from_secs(15);
/// How often expired sessions, stale rate-limit events and old callback attempts are dropped.
const PRUNE_EVERY: u32 = 20;
/// How long the attempts of a callback stay on the dashboard.
const CALLBACK_ATTEMPTS_KEPT_MS: i64 = 30 * 86_400_000;

/// A partial upload untouched this long was left by a crash (requests time out after 30 s).
const STALE_PARTIAL_FILE: Duration = Duration::from_secs(3600);

/// The upkeep job; its pass runs every [`KEY_USE_FLUSH`], pruning on every [`PRUNE_EVERY`]th.
pub struct Housekeeping {
    state: AppState,
    ticks: u32,
}

impl Housekeeping {
    pub fn new(state: AppState) -> Self {
        Self { state, ticks: 0 }
    }

    /// Drops what has outlived its use, for every team at once.
    async fn prune(&self) {
        let state = &self.state;
        let every_team = state.store.cross_tenant();
        if let Err(err) = every_team
            .prune_expired(
                ratelimit::Limit::LONGEST_WINDOW_MS,
                i64::try_from(state.config.session_idle_timeout.as_millis()).unwrap_or(i64::MAX),
            )
            .await
        {
            tracing::warn!(error = %err, "housekeeping failed");
        }
        let before = tessera_store::now_ms() - CALLBACK_ATTEMPTS_KEPT_MS;
        if let Err(err) = every_team.prune_callback_attempts(before).await {
            tracing::warn!(error = %err, "pruning callback attempts failed");
        }
        match state.files.sweep_partials(STALE_PARTIAL_FILE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed stale partial uploads"),
            Err(err) => tracing::warn!(error = %err, "sweeping partial uploads failed"),
        }
    }
}

impl Job for Housekeeping {
    const POLL: Duration = KEY_USE_FLUSH;

    /// Never has more to do at once: each pass is followed by a wait of [`KEY_USE_FLUSH`].
    async fn pass(&mut self, _stop: &mut watch::Receiver<bool>) -> Next {
        self.state.api_keys.flush_uses(&self.state.store).await;
        if self.ticks.is_multiple_of(PRUNE_EVERY) {
            self.prune().await;
        }
        self.ticks = self.ticks.wrapping_add(1);
        Next::Idle
    }
}
