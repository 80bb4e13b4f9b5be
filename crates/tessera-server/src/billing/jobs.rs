//! The monthly period close as a [`BatchWork`]: each replica claims teams whose close is due
//! under a lease, closes the month that ended (one transaction per team, see the store), and
//! makes the team due again at the start of the next month. Several replicas may run it: a
//! claimed team is skipped by the others, and a second close of a period finds it closed.

use std::time::Duration;

use tessera_core::billing::{month_start, next_month_start};
use tessera_core::ids::TeamId;
use tessera_store::{CloseOutcome, CrossTenant};

use crate::{jobs::BatchWork, state::AppState};

/// How long a replica holds a claimed team while closing it.
const CLOSE_LEASE_MS: i64 = 5 * 60 * 1000;

/// The period-close job.
pub struct PeriodClose {
    state: AppState,
}

impl PeriodClose {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    fn store(&self) -> CrossTenant {
        self.state.store.cross_tenant()
    }
}

impl BatchWork for PeriodClose {
    type Item = TeamId;
    const BATCH: usize = 50;
    const POLL: Duration = Duration::from_secs(60);
    const FAILED: &'static str = "period close pass failed";

    async fn claim(&self) -> anyhow::Result<Vec<TeamId>> {
        let now = tessera_store::now_ms();
        let limit = i64::try_from(Self::BATCH).unwrap_or(50);
        Ok(self
            .store()
            .claim_due_closes(now, CLOSE_LEASE_MS, limit)
            .await?)
    }

    async fn run(&self, team: &TeamId) -> anyhow::Result<()> {
        let now = tessera_store::now_ms();
        let payment = super::service::opening_payment(&self.state);
        let outcome = self
            .store()
            .close_claimed(team, month_start(now), next_month_start(now), payment)
            .await?;
        if let CloseOutcome::Closed { number, .. } = outcome {
            tracing::info!(team = team.as_str(), invoice = %number, "period closed");
        }
        Ok(())
    }
}
