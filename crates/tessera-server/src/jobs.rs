//! The one shape of Tessera's background work, as crates.io's `crates_io_worker` has one
//! runner for every job: a [`Job`] says how to do one pass (claim due rows under a lease, run
//! them, record how each went, retrying on a `tessera_core::retry` schedule) and [`run`] is the
//! loop every job shares: pass after pass while there is work, then wait for a wake-up
//! ([`AppState::wake`](crate::state::AppState::wake)) or the poll interval, and stop after the
//! current pass once the application's stop signal is sent.
//!
//! The mail outbox, the callback outbox and housekeeping are jobs; the billing period close
//! will be the next. Adding one is implementing [`Job`] and starting
//! `jobs::run(job, stop)` as a component in `Application::run`.

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
