//! Delivers the callback outbox. A claim loop takes due deliveries as attempt slots free up
//! (up to [`CONCURRENCY`] in flight, each under a lease), every attempt runs on its own task,
//! and a finisher writes outcomes in batches — one transaction for many deliveries — so
//! throughput is bound by the receiver, not by a commit per callback.

mod attempt;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tessera_core::ids::DeliveryId;
use tessera_store::{ClaimedDelivery, DeliveryOutcome};
use tokio::{
    sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};

pub use attempt::{task_payload, MAX_RESPONSE_READ, TEST_SECRETS_HEADER};

use crate::{
    jobs::{Job, Next},
    outbound,
    state::AppState,
};

/// Attempts in flight at once, per server process.
pub const CONCURRENCY: usize = 128;
/// Attempts in flight for one team at most, so a team whose receiver hangs (every attempt
/// waiting out its timeout) cannot hold every slot and delay everybody else's callbacks.
pub const PER_TEAM: usize = CONCURRENCY / 2;
/// A team at its share is claimed for again once this many of its attempts have ended, so
/// that a busy team's work is claimed a few at a time rather than one per finished attempt.
const WAKE_ROOM: usize = 8;
/// Most deliveries claimed in one statement.
const CLAIM_BATCH: usize = 256;
/// Most outcomes written in one transaction.
const FINISH_BATCH: usize = 512;
/// Idle poll interval; new deliveries from this process also wake the worker at once.
const POLL: Duration = Duration::from_millis(500);
/// How long the claim loop waits after a failed claim.
const CLAIM_FAILED_PAUSE: Duration = Duration::from_secs(1);

/// The delivery worker of one server process: what its attempts share (the HTTP client, the
/// teams' secrets, each team's attempts in flight).
pub struct CallbackWorker {
    state: AppState,
    client: reqwest::Client,
    secrets: Mutex<attempt::SecretsCache>,
    /// Attempts in flight per team.
    in_flight: Mutex<HashMap<String, usize>>,
    /// A team that had no room (see [`WAKE_ROOM`]) has room again.
    room_freed: tokio::sync::Notify,
}

impl CallbackWorker {
    pub fn new(state: AppState) -> Arc<Self> {
        let client = outbound::client(
            state.config.allow_private_callbacks,
            state.config.callback_timeout,
        );
        Arc::new(Self {
            state,
            client,
            secrets: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            room_freed: tokio::sync::Notify::new(),
        })
    }

    /// How long a claimed delivery stays reserved: see [`lease_for`].
    fn lease_ms(&self) -> i64 {
        i64::try_from(lease_for(self.state.config.callback_timeout).as_millis())
            .unwrap_or(i64::MAX / 4)
    }

    /// The worker as the application's [`Job`]; starts its finisher.
    pub fn job(self: Arc<Self>) -> CallbackJob {
        let (outcomes, outcomes_rx) = mpsc::channel::<DeliveryOutcome>(FINISH_BATCH * 2);
        CallbackJob {
            finisher: tokio::spawn(finish(self.state.clone(), outcomes_rx)),
            worker: self,
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
            outcomes,
        }
    }

    /// Teams not claimed for now (fewer than [`WAKE_ROOM`] of their share free), and the
    /// least room among the other teams with attempts in flight.
    fn claim_limits(&self) -> (Vec<String>, usize) {
        let in_flight = self.in_flight.lock().expect("not poisoned");
        let mut busy = Vec::new();
        let mut least_room = PER_TEAM;
        for (team, n) in in_flight.iter() {
            let room = PER_TEAM.saturating_sub(*n);
            if room < WAKE_ROOM {
                busy.push(team.clone());
            } else {
                least_room = least_room.min(room);
            }
        }
        (busy, least_room)
    }

    /// Counts claimed deliveries in against their team's share; returns those admitted and
    /// (id, lease) of those over the share.
    fn admit(
        &self,
        claimed: Vec<ClaimedDelivery>,
    ) -> (Vec<ClaimedDelivery>, Vec<(DeliveryId, i64)>) {
        let mut in_flight = self.in_flight.lock().expect("not poisoned");
        let mut admitted = Vec::with_capacity(claimed.len());
        let mut over = Vec::new();
        for c in claimed {
            let n = in_flight.entry(c.delivery.team_id.clone()).or_insert(0);
            if *n >= PER_TEAM {
                over.push((
                    c.delivery.id.clone(),
                    c.delivery.next_attempt_at.unwrap_or_default(),
                ));
            } else {
                *n += 1;
                admitted.push(c);
            }
        }
        (admitted, over)
    }

    /// An attempt of `team_id` ended.
    fn leave(&self, team_id: &str) {
        let mut in_flight = self.in_flight.lock().expect("not poisoned");
        if let Some(n) = in_flight.get_mut(team_id) {
            *n -= 1;
            if *n == PER_TEAM - WAKE_ROOM {
                self.room_freed.notify_one();
            }
            if *n == 0 {
                in_flight.remove(team_id);
            }
        }
    }
}

/// The callback outbox as a [`Job`]: a pass waits for a free attempt slot, claims as many due
/// deliveries as there is room for and starts their attempts; the finisher records outcomes.
pub struct CallbackJob {
    worker: Arc<CallbackWorker>,
    /// One permit per attempt in flight; only [`Job::pass`] takes them.
    slots: Arc<Semaphore>,
    outcomes: mpsc::Sender<DeliveryOutcome>,
    finisher: JoinHandle<()>,
}

impl CallbackJob {
    /// Starts an attempt per admitted delivery, each on a slot (`first` is already held).
    fn dispatch(&self, first: OwnedSemaphorePermit, claimed: Vec<ClaimedDelivery>) {
        let mut permit = Some(first);
        for delivery in claimed {
            // Only the pass takes slots, so the ones counted when claiming are still free.
            let slot = match permit.take() {
                Some(p) => p,
                None => match self.slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let worker = self.worker.clone();
            let outcomes = self.outcomes.clone();
            tokio::spawn(async move {
                let team_id = delivery.delivery.team_id.clone();
                let outcome = worker.attempt(delivery).await;
                worker.leave(&team_id);
                let _ = outcomes.send(outcome).await;
                drop(slot);
            });
        }
    }
}

impl Job for CallbackJob {
    const POLL: Duration = POLL;

    async fn pass(&mut self, stop: &mut watch::Receiver<bool>) -> Next {
        let first = tokio::select! {
            permit = self.slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => return Next::Pause(POLL),
            },
            _ = stop.changed() => return Next::Now,
        };
        let worker = &self.worker;
        // Never claim more than the fullest team still claimed for has room for, so a claim
        // is not given back in part (teams with no attempt in flight have a whole share).
        let (busy_teams, least_room) = worker.claim_limits();
        let room = (1 + self.slots.available_permits().min(CLAIM_BATCH - 1)).min(least_room);
        let outbox = worker.state.store.cross_tenant();
        let claimed = match outbox
            .claim_due_deliveries(room as i64, worker.lease_ms(), &busy_teams)
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "claiming callback deliveries failed");
                return Next::Pause(CLAIM_FAILED_PAUSE);
            }
        };
        if claimed.is_empty() {
            return Next::Idle;
        }
        let (claimed, over) = worker.admit(claimed);
        if !over.is_empty() {
            // Claimed beyond a team's share: due again at once, for when it has room.
            if let Err(err) = outbox.release_deliveries(&over).await {
                tracing::warn!(error = %err, "releasing callback deliveries failed; they wait for their lease");
            }
        }
        if !claimed.is_empty() {
            self.dispatch(first, claimed);
        }
        Next::Now
    }

    async fn woken(&self) {
        tokio::select! {
            _ = self.worker.state.callbacks_queued.notified() => {}
            _ = self.worker.room_freed.notified() => {}
        }
    }

    /// Lets attempts in flight end (each is bounded by its timeout), then flushes outcomes.
    async fn shut_down(self) {
        let wait = self.worker.state.config.callback_timeout + Duration::from_secs(2);
        let _ = tokio::time::timeout(wait, self.slots.acquire_many(CONCURRENCY as u32)).await;
        drop(self.outcomes);
        let _ = self.finisher.await;
    }
}

/// Sends a test callback while the person waits, through the same code as every delivery
/// (outbound guard, headers, the rule that only the team's default callback URL gets the real
/// secrets, email targets handed to the mail outbox); one attempt, never retried. The caller
/// records the outcome with `finish_deliveries`.
pub async fn send_test_now(state: &AppState, delivery: tessera_store::Delivery) -> DeliveryOutcome {
    let worker = CallbackWorker::new(state.clone());
    worker
        .attempt(ClaimedDelivery {
            delivery,
            task: None,
        })
        .await
}

/// The least time a lease leaves, beyond the attempt itself, for the work around it.
const LEASE_MARGIN_MIN: Duration = Duration::from_secs(5);

/// The lease a claim takes for an attempt that may last `timeout`.
///
/// Invariant: a lease outlasts the attempt plus the time to record its outcome, so no other
/// worker takes a delivery while its holder may still send it or is about to record it (that
/// would deliver it twice). The attempt is bounded by `timeout` (the HTTP client's total
/// timeout: connect, send, response headers and body); around it come reading the team's
/// secrets (cached) and writing the outcome (a batched transaction, normally milliseconds,
/// retried with 3 s of back-off in all). The margin is the timeout again, and at least
/// [`LEASE_MARGIN_MIN`]: a short timeout still leaves seconds for the database, and a long one
/// (a slow receiver, likely on a busy system) leaves proportionally more.
///
/// The lease is also how long the deliveries of a process that died mid-attempt wait before
/// another worker retries them, so it stays short: 20 s with the default 10 s timeout, 6 s with
/// a 1 s one. If recording ever takes longer than the margin, the outcome is dropped (it is only
/// kept under the lease it was made under) and the delivery is attempted again: at least once.
pub fn lease_for(timeout: Duration) -> Duration {
    timeout + timeout.max(LEASE_MARGIN_MIN)
}

/// Writes outcomes as they come, many per transaction.
async fn finish(state: AppState, mut outcomes: mpsc::Receiver<DeliveryOutcome>) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while outcomes.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        let mut tries = 0;
        loop {
            match state.store.cross_tenant().finish_deliveries(&batch).await {
                Ok(()) => break,
                Err(err) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %err, "recording callback outcomes failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(err) => {
                    // The leases run out and the deliveries are attempted again: at least once.
                    tracing::error!(error = %err, count = batch.len(), "recording callback outcomes failed; they will be retried");
                    break;
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_outlasts_the_attempt_with_room_to_record_it() {
        assert_eq!(lease_for(Duration::from_secs(1)), Duration::from_secs(6));
        assert_eq!(lease_for(Duration::from_secs(10)), Duration::from_secs(20));
        assert_eq!(lease_for(Duration::from_secs(60)), Duration::from_secs(120));
    }
}
