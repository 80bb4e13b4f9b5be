//! The one shape of Tessera's background work, as crates.io's `crates_io_worker` has one
//! runner for every job: a [`Job`] says how to do one pass (claim due rows under a lease, run
//! them, record how each went, retrying on a `tessera_core::retry` schedule) and [`run`] is the
//! loop every job shares: pass after pass while there is work, then wait for a wake-up
//! ([`AppState::wake`](crate::state::AppState::wake)) or the poll interval, and stop after the
//! current pass once the application's stop signal is sent.
//!
//! The mail outbox, the callback outbox and housekeeping are jobs; the billing period close
//! will be the next. Adding one is implementing [`Job`] (or, for rows claimed and run one by
//! one as mail is, [`BatchWork`]) and starting `jobs::run(job, stop)` as a component in
//! `Application::run`. The callback outbox implements [`Job`] itself: it runs many attempts
//! at once, with a share per team, and records their outcomes in batches.

use std::{future::Future, time::Duration};

use tokio::sync::watch;

/// What the runner does after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// There may be more due work: pass again at once.
    Now,
    /// Nothing more is due: wait for a wake-up or the poll interval.
    Idle,
    /// The pass failed (it logged why): wait this long, wake-ups notwithstanding, so a broken
    /// database is not hammered.
    Pause(Duration),
}

/// A kind of background work.
pub trait Job: Send + 'static {
    /// How long an idle job waits before looking for due work again; work queued by this
    /// process wakes it sooner (see [`Job::woken`]), work queued by another process is found
    /// within this bound.
    const POLL: Duration;

    /// One pass over due work. A job that must wait inside a pass (for room to run more at
    /// once) waits on `stop` too, and returns when it changes.
    fn pass(&mut self, stop: &mut watch::Receiver<bool>) -> impl Future<Output = Next> + Send;

    /// Resolves when this process queued work for the job. By default nothing wakes it: it
    /// runs on its poll interval only.
    fn woken(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// After the last pass: let work in flight end and record it.
    fn shut_down(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async {}
    }
}

/// Runs `job` until `stop` turns true (checked after every pass and every wait), then shuts
/// it down.
pub async fn run<J: Job>(mut job: J, mut stop: watch::Receiver<bool>) {
    loop {
        let next = job.pass(&mut stop).await;
        if *stop.borrow() {
            break;
        }
        match next {
            Next::Now => continue,
            Next::Idle => {
                tokio::select! {
                    _ = job.woken() => {}
                    _ = tokio::time::sleep(J::POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Next::Pause(pause) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    job.shut_down().await;
}

/// Work that comes as rows claimed in batches under a lease, each run and recorded in turn:
/// the mail outbox now, the billing period close next. [`Batches`] makes it a [`Job`]: a
/// full batch is followed by the next pass at once, a short one by a wait.
pub trait BatchWork: Send + Sync + 'static {
    /// One claimed row.
    type Item: Send + Sync;
    /// Most items claimed in one pass.
    const BATCH: usize;
    /// See [`Job::POLL`].
    const POLL: Duration;
    /// What the log says when a pass fails (the error goes with it).
    const FAILED: &'static str;

    /// Claims up to [`Self::BATCH`] due items, each under a lease long enough to run and
    /// record it: an item whose holder dies is claimed again once the lease runs out, so work
    /// is done at least once.
    fn claim(&self) -> impl Future<Output = anyhow::Result<Vec<Self::Item>>> + Send;

    /// Runs one item and records how it went: done, or due again when [`retry_at`] says, or
    /// given up. An error ends the pass (the rest of the batch waits for its lease).
    fn run(&self, item: &Self::Item) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// See [`Job::woken`].
    fn woken(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// [`BatchWork`] as a [`Job`].
pub struct Batches<W>(pub W);

impl<W: BatchWork> Batches<W> {
    /// Claims a batch and runs it; how many items were claimed.
    async fn run_batch(&self) -> anyhow::Result<usize> {
        let batch = self.0.claim().await?;
        for item in &batch {
            self.0.run(item).await?;
        }
        Ok(batch.len())
    }
}

impl<W: BatchWork> Job for Batches<W> {
    const POLL: Duration = W::POLL;

    async fn pass(&mut self, _stop: &mut watch::Receiver<bool>) -> Next {
        match self.run_batch().await {
            Ok(n) if n == W::BATCH => Next::Now,
            Ok(_) => Next::Idle,
            Err(err) => {
                tracing::warn!(error = %err, "{}", W::FAILED);
                Next::Idle
            }
        }
    }

    fn woken(&self) -> impl Future<Output = ()> + Send {
        self.0.woken()
    }
}

/// When to try again after failure number `failures`: the `schedule`'s delay, scaled by
/// `jitter` when given, at least `at_least`; `None` when the schedule is used up.
pub fn retry_at(
    schedule: &tessera_core::retry::RetrySchedule,
    failures: u32,
    jitter: Option<f64>,
    at_least: Option<Duration>,
) -> Option<i64> {
    let mut delay = schedule.delay_after(failures)?;
    if let Some(jitter) = jitter {
        delay = delay.mul_f64(jitter);
    }
    if let Some(asked) = at_least {
        delay = delay.max(asked);
    }
    Some(tessera_store::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4))
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    /// Counts its passes; has work for the first three.
    struct Counting {
        passes: Arc<AtomicUsize>,
        shut_down: Arc<AtomicUsize>,
    }

    impl Job for Counting {
        const POLL: Duration = Duration::from_secs(3600);

        async fn pass(&mut self, _stop: &mut watch::Receiver<bool>) -> Next {
            if self.passes.fetch_add(1, Ordering::SeqCst) < 2 {
                Next::Now
            } else {
                Next::Idle
            }
        }

        async fn shut_down(self) {
            self.shut_down.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn passes_while_there_is_work_then_waits_and_stops_after_the_pass() {
        let passes = Arc::new(AtomicUsize::new(0));
        let shut_down = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = watch::channel(false);
        let job = Counting {
            passes: passes.clone(),
            shut_down: shut_down.clone(),
        };
        let task = tokio::spawn(run(job, stop_rx));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 3, "two with work, one idle");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            passes.load(Ordering::SeqCst),
            3,
            "the wait ends without a pass"
        );
        assert_eq!(shut_down.load(Ordering::SeqCst), 1);
    }

    /// Has a full batch, then a short one; counts the items run.
    struct Rows {
        claims: std::sync::Mutex<Vec<usize>>,
        ran: AtomicUsize,
    }

    impl BatchWork for Rows {
        type Item = usize;
        const BATCH: usize = 4;
        const POLL: Duration = Duration::from_secs(3600);
        const FAILED: &'static str = "test pass failed";

        async fn claim(&self) -> anyhow::Result<Vec<usize>> {
            let n = self.claims.lock().unwrap().pop().unwrap_or(0);
            Ok((0..n).collect())
        }

        async fn run(&self, _item: &usize) -> anyhow::Result<()> {
            self.ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_full_batch_is_followed_at_once_a_short_one_by_a_wait() {
        let mut job = Batches(Rows {
            claims: std::sync::Mutex::new(vec![1, Rows::BATCH]),
            ran: AtomicUsize::new(0),
        });
        let (_stop_tx, mut stop) = watch::channel(false);
        assert_eq!(job.pass(&mut stop).await, Next::Now);
        assert_eq!(job.pass(&mut stop).await, Next::Idle);
        assert_eq!(job.0.ran.load(Ordering::SeqCst), Rows::BATCH + 1);
    }

    #[test]
    fn retries_follow_the_schedule_and_honour_a_floor() {
        let schedule = tessera_core::retry::RetrySchedule::parse("1s,1h").unwrap();
        let now = tessera_store::now_ms();
        let first = retry_at(&schedule, 1, None, None).unwrap() - now;
        assert!((1_000..1_100).contains(&first), "{first}");
        let floored = retry_at(&schedule, 1, None, Some(Duration::from_secs(60))).unwrap() - now;
        assert!((60_000..60_100).contains(&floored), "{floored}");
        assert_eq!(retry_at(&schedule, 3, None, None), None);
    }
}
