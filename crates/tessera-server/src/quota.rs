//! Per-team hourly budgets that keep Tessera from being used as a mail relay or a webhook
//! reflector: free test tasks complete (and call back) at once, so their number per team and
//! hour is capped; email callbacks are capped separately (see `ratelimit::Limit`).

use std::{collections::HashMap, sync::Mutex};

use tessera_core::Scope;
use tessera_store::now_ms;

const HOUR_MS: i64 = 3_600_000;

/// At most `max` events per team in each clock hour (UTC), counted in this process's memory:
/// test task creation is a hot path that must not pay a database write per request for its
/// budget. Each replica enforces the budget on the requests it serves. `max == 0` turns the
/// budget off.
pub struct HourlyBudget {
    max: u64,
    /// Team → (hour number, events in that hour).
    used: Mutex<HashMap<String, (i64, u64)>>,
}

impl HourlyBudget {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            used: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Takes one event of the scope's team's budget (whatever the mode), or says in how many
    /// seconds the next hour starts. Only an authorised caller has a scope to spend.
    pub fn take(&self, scope: &Scope) -> Result<(), u64> {
        self.take_at(scope.team_id(), now_ms())
    }

    fn take_at(&self, team: &str, now: i64) -> Result<(), u64> {
        if self.max == 0 {
            return Ok(());
        }
        let hour = now.div_euclid(HOUR_MS);
        let mut used = self.used.lock().expect("budget lock");
        let entry = used.entry(team.to_owned()).or_insert((hour, 0));
        if entry.0 != hour {
            *entry = (hour, 0);
        }
        if entry.1 >= self.max {
            let next_hour = (hour + 1) * HOUR_MS;
            return Err(u64::try_from((next_hour - now + 999) / 1000)
                .unwrap_or(1)
                .max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_per_team_and_hour() {
        let budget = HourlyBudget::new(2);
        let t = 10 * HOUR_MS + 1_000;
        assert_eq!(budget.take_at("a", t), Ok(()));
        assert_eq!(budget.take_at("a", t), Ok(()));
        assert_eq!(budget.take_at("a", t), Err(3599));
        assert_eq!(budget.take_at("b", t), Ok(()));
        assert_eq!(budget.take_at("a", 11 * HOUR_MS), Ok(()));
        let off = HourlyBudget::new(0);
        for _ in 0..10 {
            assert_eq!(off.take_at("a", t), Ok(()));
        }
    }
}
