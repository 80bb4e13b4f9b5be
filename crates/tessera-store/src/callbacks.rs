//! The callback outbox: deliveries written in the transaction that finalises a task (or a
//! batch), claimed by workers with a lease, finished with the attempt's outcome.
//!
//! A pending delivery's `next_attempt_at` is its due time; a worker claiming it moves that
//! time to the end of its lease, so a worker that dies mid-attempt only delays the delivery
//! until the lease runs out — nothing is lost, and no other worker takes it meanwhile.

use sqlx::{any::AnyRow, Row};
use tessera_core::Mode;

use crate::{
    new_id, now_ms,
    sql::{Arg, Sql},
    tasks::Task,
    Store, StoreError, StoreResult,
};

pub use tessera_core::status::DeliveryKind;

/// A callback delivery as the dashboard and the worker see it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub team_id: String,
    pub mode: Mode,
    pub kind: DeliveryKind,
    pub task_id: Option<String>,
    pub batch_id: Option<String>,
    pub target: String,
    pub payload: Option<String>,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// A delivery a worker now holds, with its task when it is a task callback.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    pub task: Option<Task>,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub at: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_snippet: Option<String>,
    /// What the attempt sent, when it got as far as building the request (attempts recorded
    /// before this was kept have none).
    pub request: Option<SentRequest>,
}

/// A request as it went out: the headers in order, secrets already masked by the sender
/// (the store keeps them as given), and the exact body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The key a body is kept under within its delivery.
fn body_digest(body: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// What became of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// Try again at this time.
    RetryAt(i64),
    /// The schedule is used up.
    GiveUp,
}

/// The result of one attempt on a claimed delivery.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub delivery_id: String,
    /// The lease the attempt was made under: the outcome is kept only if the delivery is
    /// still held under it (another worker took it over otherwise).
    pub claimed_until: i64,
    pub task_id: Option<String>,
    pub attempt: DeliveryAttempt,
    pub next: NextStep,
}

/// A delivery to queue outside a task completion (batch and test callbacks).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub team_id: String,
    pub mode: Mode,
    pub kind: DeliveryKind,
    pub batch_id: Option<String>,
    pub target: String,
    pub payload: String,
}

/// One page of a team's deliveries, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// Where the next page starts (`created_at`, `id` of the last delivery shown).
    pub next: Option<(i64, String)>,
}

/// Deliveries by status, for the dashboard's filter tabs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// `SELECT {DELIVERY_COLUMNS} FROM callback_deliveries d`.
static DELIVERY_SELECT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {DELIVERY_COLUMNS} FROM callback_deliveries d"));

const DELIVERY_COLUMNS: &str = "d.id, d.team_id, d.mode, d.kind, d.task_id, d.batch_id, d.target, d.payload, \
    d.status, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error, d.created_at, d.updated_at, d.finished_at";

/// The columns for `RETURNING`, which names them without a table alias.
static RETURNING_COLUMNS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| DELIVERY_COLUMNS.replace("d.", ""));

fn delivery_from_row(row: &AnyRow) -> StoreResult<Delivery> {
    let mode: String = row.try_get("mode")?;
    let kind: String = row.try_get("kind")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        mode: mode
            .parse()
            .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))?,
        kind: DeliveryKind::from_word(&kind)
            .ok_or_else(|| StoreError::Config(format!("bad delivery kind {kind}")))?,
        task_id: row.try_get("task_id")?,
        batch_id: row.try_get("batch_id")?,
        target: row.try_get("target")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Most outcomes written per statement (7 parameters each, well under both databases' limits).
const FINISH_CHUNK: usize = 500;

/// A fresh delivery id, in the `msg_…` shape Standard Webhooks receivers expect.
pub fn new_delivery_id() -> String {
    new_id("msg")
}

/// Queues a task's callback inside the transaction that finalises the task.
pub(crate) async fn enqueue_task_delivery(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    mode: Mode,
    task_id: &str,
    target: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO callback_deliveries (id, team_id, mode, kind, task_id, target, status, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'task', $4, $5, 'pending', $6, $6, $6)",
    )
    .bind(new_delivery_id())
    .bind(team_id)
    .bind(mode.as_str())
    .bind(task_id)
    .bind(target)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Queues a batch or test callback.
    pub async fn enqueue_delivery(&self, new: &NewDelivery) -> StoreResult<Delivery> {
        self.insert_delivery(new, 0).await
    }

    /// Records a delivery its caller attempts at once (a test callback sent while the person
    /// waits): pending and held under a lease of `lease_ms`, as if claimed, so no worker takes
    /// it meanwhile; the caller finishes it with [`Store::finish_deliveries`].
    pub async fn start_delivery_now(
        &self,
        new: &NewDelivery,
        lease_ms: i64,
    ) -> StoreResult<Delivery> {
        self.insert_delivery(new, lease_ms).await
    }

    /// A pending delivery, first due `due_in_ms` from now.
    async fn insert_delivery(&self, new: &NewDelivery, due_in_ms: i64) -> StoreResult<Delivery> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO callback_deliveries (id, team_id, mode, kind, batch_id, target, payload, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9) RETURNING {}",
            *RETURNING_COLUMNS
        ))
        .bind(new_delivery_id())
        .bind(&new.team_id)
        .bind(new.mode.as_str())
        .bind(new.kind.as_str())
        .bind(new.batch_id.clone())
        .bind(&new.target)
        .bind(&new.payload)
        .bind(now + due_in_ms)
        .bind(now)
        .fetch_one(&self.writer)
        .await?;
        delivery_from_row(&row)
    }

    /// Claims up to `limit` due deliveries for `lease_ms` (on PostgreSQL skipping rows other
    /// workers are claiming), with the tasks of task callbacks.
    pub async fn claim_due_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        skip_teams: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = now_ms();
        let claimed_until = now + lease_ms;
        let mut q = Sql::new(self.dialect);
        q.push("UPDATE callback_deliveries SET next_attempt_at = ")
            .bind(claimed_until)
            .push(" WHERE id IN (SELECT id FROM callback_deliveries WHERE status = 'pending' AND next_attempt_at <= ")
            .bind(now);
        if !skip_teams.is_empty() {
            q.push(" AND team_id NOT IN (").list(skip_teams).push(")");
        }
        q.push(" ORDER BY next_attempt_at LIMIT ")
            .bind(limit)
            .push(self.skip_locked())
            .push(") RETURNING ")
            .push(&RETURNING_COLUMNS);
        let rows = q.query().fetch_all(&self.writer).await?;
        let deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let task_ids: Vec<String> = deliveries
            .iter()
            .filter_map(|d| d.task_id.clone())
            .collect();
        let mut tasks = self.cross_tenant().tasks_by_ids(&task_ids).await?;
        Ok(deliveries
            .into_iter()
            .map(|delivery| {
                let task = delivery
                    .task_id
                    .as_ref()
                    .and_then(|id| tasks.remove(id.as_str()));
                ClaimedDelivery { delivery, task }
            })
            .collect())
    }

    /// Gives claimed deliveries back unattempted (due at once), each only if still held under
    /// the lease given: the worker claimed more of a team than it lets run at once.
    pub async fn release_deliveries(&self, held: &[(String, i64)]) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        for (id, claimed_until) in held {
            sqlx::query(
                "UPDATE callback_deliveries SET next_attempt_at = $1 \
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
            )
            .bind(now)
            .bind(id)
            .bind(claimed_until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcomes of attempts in one transaction: the attempt rows, the deliveries'
    /// new state, and `callback_succeeded` on tasks whose delivery finished.
    ///
    /// An outcome changes its delivery only while the delivery is still held under the lease
    /// the attempt was made under (another worker took it over otherwise); its attempt is
    /// recorded either way. A success is never overwritten by a later round's failure.
    ///
    /// A few statements per [`FINISH_CHUNK`] outcomes rather than three per outcome: one
    /// `UPDATE … FROM (VALUES …)` for the deliveries, one multi-row `INSERT` for the attempts,
    /// and one `UPDATE` of the tasks per flag.
    pub async fn finish_deliveries(&self, outcomes: &[DeliveryOutcome]) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        // The same order in every transaction, so concurrent finishers lock rows alike.
        let mut sorted: Vec<&DeliveryOutcome> = outcomes.iter().collect();
        sorted.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
        let mut tx = self.writer.begin().await?;
        let mut flagged: Vec<&str> = Vec::new();
        for chunk in sorted.chunks(FINISH_CHUNK) {
            let changed = self.update_deliveries(&mut tx, chunk, now).await?;
            self.insert_attempts(&mut tx, chunk, now).await?;
            // Failures first: a success in the same batch then still wins.
            for (flag, step) in [(0_i64, NextStep::GiveUp), (1, NextStep::Succeeded)] {
                let mut tasks: Vec<&str> = chunk
                    .iter()
                    .filter(|o| o.next == step && changed.contains(&o.delivery_id))
                    .filter_map(|o| o.task_id.as_deref())
                    .collect();
                if tasks.is_empty() {
                    continue;
                }
                tasks.sort_unstable();
                tasks.dedup();
                let mut q = Sql::new(self.dialect);
                q.push("UPDATE tasks SET callback_succeeded = ")
                    .bind(flag)
                    .push(" WHERE id IN (")
                    .list(tasks.iter().copied())
                    .push(") AND (callback_succeeded IS NULL OR callback_succeeded = 0)");
                q.query().execute(&mut *tx).await?;
                flagged.extend(tasks);
            }
        }
        // `callback_succeeded` is part of the task: readers' caches must drop it.
        self.announce_task_changes(&mut tx, &flagged).await?;
        tx.commit().await?;
        self.tasks_changed(flagged);
        Ok(())
    }

    /// The deliveries' new state after `chunk`'s attempts, as one `UPDATE … FROM (VALUES …)`:
    /// (id, claimed_until, status, next_attempt_at, finished_at, last_status_code,
    /// last_error) per row; VALUES columns are column1… on both databases. The ids of the
    /// deliveries still held under the attempt's lease, which it changed.
    async fn update_deliveries(
        &self,
        tx: &mut sqlx::AnyConnection,
        chunk: &[&DeliveryOutcome],
        now: i64,
    ) -> StoreResult<std::collections::HashSet<String>> {
        let mut q = Sql::new(self.dialect);
        q.push(
            "UPDATE callback_deliveries SET status = v.column3, next_attempt_at = v.column4, \
             finished_at = v.column5, attempts = attempts + 1, last_status_code = v.column6, \
             last_error = v.column7, updated_at = ",
        )
        .bind(now)
        .push(" FROM (VALUES ");
        for (i, outcome) in chunk.iter().enumerate() {
            let (status, next_at, finished_at) = match outcome.next {
                NextStep::Succeeded => ("succeeded", None, Some(now)),
                NextStep::RetryAt(at) => ("pending", Some(at), None),
                NextStep::GiveUp => ("failed", None, Some(now)),
            };
            if i > 0 {
                q.push(", ");
            }
            q.tuple([
                Arg::from(&outcome.delivery_id),
                Arg::from(outcome.claimed_until),
                Arg::from(status),
                Arg::from(next_at),
                Arg::from(finished_at),
                Arg::from(outcome.attempt.status_code),
                Arg::from(outcome.attempt.error.as_deref()),
            ]);
        }
        q.push(
            ") AS v WHERE id = v.column1 AND status = 'pending' AND next_attempt_at = v.column2 \
             RETURNING id",
        );
        Ok(q.query_as::<(String,)>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect())
    }

    /// The attempt rows of `chunk`, and the bodies they sent (once per delivery and digest:
    /// a retry usually sends the same), each as one multi-row `INSERT`.
    async fn insert_attempts(
        &self,
        tx: &mut sqlx::AnyConnection,
        chunk: &[&DeliveryOutcome],
        now: i64,
    ) -> StoreResult<()> {
        let digests: Vec<Option<String>> = chunk
            .iter()
            .map(|o| o.attempt.request.as_ref().map(|r| body_digest(&r.body)))
            .collect();
        let mut bodies: Vec<(&str, &str, &str)> = chunk
            .iter()
            .zip(&digests)
            .filter_map(|(o, d)| {
                let request = o.attempt.request.as_ref()?;
                Some((o.delivery_id.as_str(), d.as_deref()?, request.body.as_str()))
            })
            .collect();
        bodies.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        bodies.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
        if !bodies.is_empty() {
            let mut q = Sql::new(self.dialect);
            q.push("INSERT INTO callback_bodies (delivery_id, digest, body, created_at) VALUES ");
            for (i, (delivery_id, digest, body)) in bodies.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.tuple([
                    Arg::from(*delivery_id),
                    Arg::from(*digest),
                    Arg::from(*body),
                    Arg::from(now),
                ]);
            }
            q.push(" ON CONFLICT (delivery_id, digest) DO NOTHING");
            q.query().execute(&mut *tx).await?;
        }

        let mut q = Sql::new(self.dialect);
        q.push(
            "INSERT INTO callback_attempts (id, delivery_id, at, status_code, latency_ms, error, \
             response_snippet, request_headers, body_digest) VALUES ",
        );
        for (i, (outcome, digest)) in chunk.iter().zip(&digests).enumerate() {
            let attempt = &outcome.attempt;
            let headers = attempt
                .request
                .as_ref()
                .map(|r| serde_json::to_string(&r.headers).unwrap_or_default());
            if i > 0 {
                q.push(", ");
            }
            q.tuple([
                Arg::from(new_id("att")),
                Arg::from(&outcome.delivery_id),
                Arg::from(attempt.at),
                Arg::from(attempt.status_code),
                Arg::from(attempt.latency_ms),
                Arg::from(attempt.error.as_deref()),
                Arg::from(attempt.response_snippet.as_deref()),
                Arg::from(headers),
                Arg::from(digest.as_deref()),
            ]);
        }
        q.query().execute(&mut *tx).await?;
        Ok(())
    }

    /// A team's deliveries in one mode, newest first, optionally of one status.
    pub async fn list_deliveries(
        &self,
        team_id: &str,
        mode: Mode,
        status: Option<&str>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<DeliveryPage> {
        let mut q = Sql::new(self.dialect);
        q.push(&DELIVERY_SELECT).push(" WHERE ");
        let mut c = q.conditions();
        c.eq("d.team_id", team_id).eq("d.mode", mode.as_str());
        if let Some(status) = status.filter(|s| !s.is_empty()) {
            c.eq("d.status", status);
        }
        if let Some((at, id)) = &after {
            c.and()
                .push("(d.created_at < ")
                .bind(*at)
                .push(" OR (d.created_at = ")
                .bind(*at)
                .push(" AND d.id < ")
                .bind(id)
                .push("))");
        }
        q.push(" ORDER BY d.created_at DESC, d.id DESC LIMIT ")
            .bind(limit + 1);
        let rows = q.query().fetch_all(&self.reader).await?;
        let mut deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if deliveries.len() as i64 > limit {
            deliveries.truncate(usize::try_from(limit).unwrap_or(0));
            deliveries.last().map(|d| (d.created_at, d.id.clone()))
        } else {
            None
        };
        Ok(DeliveryPage { deliveries, next })
    }

    /// A team's delivery counts by status in one mode.
    pub async fn delivery_counts(
        &self,
        team_id: Option<&str>,
        mode: Option<Mode>,
    ) -> StoreResult<DeliveryCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM callback_deliveries \
             WHERE ($1 = '' OR team_id = $1) AND ($2 = '' OR mode = $2) GROUP BY status",
        )
        .bind(team_id.unwrap_or_default())
        .bind(mode.map(Mode::as_str).unwrap_or_default())
        .fetch_all(&self.reader)
        .await?;
        let mut counts = DeliveryCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "pending" => counts.pending = n,
                "succeeded" => counts.succeeded = n,
                "failed" => counts.failed = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// One of a team's deliveries in one mode.
    pub async fn get_delivery(
        &self,
        team_id: &str,
        mode: Mode,
        id: &str,
    ) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM callback_deliveries d WHERE d.id = $1 AND d.team_id = $2 AND d.mode = $3"
        ))
        .bind(id)
        .bind(team_id)
        .bind(mode.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// The deliveries of one task, newest first.
    pub async fn task_deliveries(&self, task_id: &str) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM callback_deliveries d WHERE d.task_id = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT 20"
        ))
        .bind(task_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// A delivery's attempts, newest first (the latest 100).
    pub async fn delivery_attempts(&self, delivery_id: &str) -> StoreResult<Vec<DeliveryAttempt>> {
        let rows = sqlx::query(
            "SELECT a.at, a.status_code, a.latency_ms, a.error, a.response_snippet, a.request_headers, b.body \
             FROM callback_attempts a LEFT JOIN callback_bodies b \
             ON b.delivery_id = a.delivery_id AND b.digest = a.body_digest \
             WHERE a.delivery_id = $1 ORDER BY a.at DESC, a.id DESC LIMIT 100",
        )
        .bind(delivery_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let headers: Option<String> = r.try_get("request_headers")?;
                let body: Option<String> = r.try_get("body")?;
                let request = match (headers, body) {
                    (Some(headers), Some(body)) => Some(SentRequest {
                        headers: serde_json::from_str(&headers).map_err(|e| {
                            StoreError::Config(format!("bad attempt headers in database: {e}"))
                        })?,
                        body,
                    }),
                    _ => None,
                };
                Ok(DeliveryAttempt {
                    at: r.try_get("at")?,
                    status_code: r.try_get("status_code")?,
                    latency_ms: r.try_get("latency_ms")?,
                    error: r.try_get("error")?,
                    response_snippet: r.try_get("response_snippet")?,
                    request,
                })
            })
            .collect()
    }

    /// Sends a finished delivery again: a new round of attempts, due now, same `webhook-id`.
    /// `InvalidState` while it is still pending.
    pub async fn redeliver(&self, team_id: &str, mode: Mode, id: &str) -> StoreResult<Delivery> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "UPDATE callback_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, \
             finished_at = NULL, updated_at = $1 \
             WHERE id = $2 AND team_id = $3 AND mode = $4 AND status <> 'pending' RETURNING {}",
            *RETURNING_COLUMNS
        ))
        .bind(now)
        .bind(id)
        .bind(team_id)
        .bind(mode.as_str())
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => delivery_from_row(&row),
            None => match self.get_delivery(team_id, mode, id).await? {
                Some(d) => Err(StoreError::InvalidState(d.status)),
                None => Err(StoreError::NotFound),
            },
        }
    }

    /// Drops attempt history older than `before` (finished deliveries keep their summary).
    pub async fn prune_callback_attempts(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM callback_attempts WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        // Bodies as old that no remaining attempt sent (a newer retry may still point at one).
        sqlx::query(
            "DELETE FROM callback_bodies WHERE created_at < $1 AND NOT EXISTS (\
             SELECT 1 FROM callback_attempts a WHERE a.delivery_id = callback_bodies.delivery_id \
             AND a.body_digest = callback_bodies.digest)",
        )
        .bind(before)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
