//! The callback outbox: deliveries written in the transaction that finalises a task (or a
//! batch), claimed by workers with a lease, finished with the attempt's outcome.
//!
//! A pending delivery's `next_attempt_at` is its due time; a worker claiming it moves that
//! time to the end of its lease, so a worker that dies mid-attempt only delays the delivery
//! until the lease runs out — nothing is lost, and no other worker takes it meanwhile.

mod claims;

use sqlx::{any::AnyRow, Row};
use tessera_core::{ids::DeliveryId, Mode, Scope};

use crate::{now_ms, sql::Sql, tasks::Task, CrossTenant, Store, StoreError, StoreResult};

pub use tessera_core::status::{DeliveryKind, DeliveryStatus};

/// A callback delivery as the dashboard and the worker see it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: DeliveryId,
    pub team_id: String,
    pub mode: Mode,
    pub kind: DeliveryKind,
    pub task_id: Option<String>,
    pub batch_id: Option<String>,
    pub target: String,
    pub payload: Option<String>,
    pub status: DeliveryStatus,
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
    pub delivery_id: DeliveryId,
    /// The lease the attempt was made under: the outcome is kept only if the delivery is
    /// still held under it (another worker took it over otherwise).
    pub claimed_until: i64,
    pub task_id: Option<String>,
    pub attempt: DeliveryAttempt,
    pub next: NextStep,
}

/// A delivery to queue outside a task completion (batch and test callbacks), in the scope
/// the method is given.
#[derive(Debug, Clone)]
pub struct NewDelivery {
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
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        id: DeliveryId::from_stored(row.try_get("id")?),
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
        status: DeliveryStatus::from_word(&status)
            .ok_or_else(|| StoreError::Config(format!("bad delivery status {status}")))?,
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
    DeliveryId::generate().into_string()
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
    /// Queues a batch or test callback of the scope's team and mode.
    pub async fn enqueue_delivery(
        &self,
        scope: &Scope,
        new: &NewDelivery,
    ) -> StoreResult<Delivery> {
        self.insert_delivery(scope, new, 0).await
    }

    /// Records a delivery its caller attempts at once (a test callback sent while the person
    /// waits): pending and held under a lease of `lease_ms`, as if claimed, so no worker takes
    /// it meanwhile; the caller finishes it with [`CrossTenant::finish_deliveries`].
    pub async fn start_delivery_now(
        &self,
        scope: &Scope,
        new: &NewDelivery,
        lease_ms: i64,
    ) -> StoreResult<Delivery> {
        self.insert_delivery(scope, new, lease_ms).await
    }

    /// A pending delivery, first due `due_in_ms` from now.
    async fn insert_delivery(
        &self,
        scope: &Scope,
        new: &NewDelivery,
        due_in_ms: i64,
    ) -> StoreResult<Delivery> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO callback_deliveries (id, team_id, mode, kind, batch_id, target, payload, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9) RETURNING {}",
            *RETURNING_COLUMNS
        ))
        .bind(new_delivery_id())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
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

    /// The scope's deliveries, newest first, optionally of one status.
    pub async fn list_deliveries(
        &self,
        scope: &Scope,
        status: Option<DeliveryStatus>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<DeliveryPage> {
        let mut q = Sql::new(self.dialect);
        q.push(&DELIVERY_SELECT).push(" WHERE ");
        let mut c = q.conditions();
        c.eq("d.team_id", scope.team_id())
            .eq("d.mode", scope.mode().as_str());
        if let Some(status) = status {
            c.eq("d.status", status.as_str());
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
            deliveries
                .last()
                .map(|d| (d.created_at, d.id.as_str().to_owned()))
        } else {
            None
        };
        Ok(DeliveryPage { deliveries, next })
    }

    /// The scope's delivery counts by status.
    pub async fn delivery_counts(&self, scope: &Scope) -> StoreResult<DeliveryCounts> {
        count_deliveries(self, Some(scope.team_id()), Some(scope.mode())).await
    }

    /// One of the scope's deliveries.
    pub async fn get_delivery(&self, scope: &Scope, id: &str) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM callback_deliveries d WHERE d.id = $1 AND d.team_id = $2 AND d.mode = $3"
        ))
        .bind(id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// The deliveries of one of the scope's tasks, newest first.
    pub async fn task_deliveries(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM callback_deliveries d \
             WHERE d.task_id = $1 AND d.team_id = $2 AND d.mode = $3 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT 20"
        ))
        .bind(task_id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// The attempts of one of the scope's deliveries, newest first (the latest 100).
    pub async fn delivery_attempts(
        &self,
        scope: &Scope,
        delivery_id: &DeliveryId,
    ) -> StoreResult<Vec<DeliveryAttempt>> {
        let rows = sqlx::query(
            "SELECT a.at, a.status_code, a.latency_ms, a.error, a.response_snippet, a.request_headers, b.body \
             FROM callback_attempts a JOIN callback_deliveries d ON d.id = a.delivery_id \
             LEFT JOIN callback_bodies b ON b.delivery_id = a.delivery_id AND b.digest = a.body_digest \
             WHERE a.delivery_id = $1 AND d.team_id = $2 AND d.mode = $3 \
             ORDER BY a.at DESC, a.id DESC LIMIT 100",
        )
        .bind(delivery_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Sends one of the scope's finished deliveries again: a new round of attempts, due now,
    /// same `webhook-id`. `InvalidState` while it is still pending.
    pub async fn redeliver(&self, scope: &Scope, id: &str) -> StoreResult<Delivery> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "UPDATE callback_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, \
             finished_at = NULL, updated_at = $1 \
             WHERE id = $2 AND team_id = $3 AND mode = $4 AND status <> 'pending' RETURNING {}",
            *RETURNING_COLUMNS
        ))
        .bind(now)
        .bind(id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&self.writer)
        .await?;
        match row {
            Some(row) => delivery_from_row(&row),
            None => match self.get_delivery(scope, id).await? {
                Some(d) => Err(StoreError::InvalidState(d.status.as_str().to_owned())),
                None => Err(StoreError::NotFound),
            },
        }
    }

    /// Stops retrying one of the scope's pending deliveries: it becomes `failed` now, with
    /// `reason` as its last result (each attempt keeps its own status code), and a task's
    /// `callback_succeeded` reads false as after the last retry. Workers claim only pending
    /// deliveries, so it is never sent again unless redelivered; an attempt in flight when it
    /// is canceled is recorded, but its outcome no longer changes the delivery (the finish
    /// requires a pending delivery under the worker's lease). `InvalidState` once finished.
    pub async fn cancel_delivery_retries(
        &self,
        scope: &Scope,
        id: &str,
        reason: &str,
    ) -> StoreResult<Delivery> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE callback_deliveries SET status = 'failed', next_attempt_at = NULL, \
             finished_at = $1, updated_at = $1, last_status_code = NULL, last_error = $2 \
             WHERE id = $3 AND team_id = $4 AND mode = $5 AND status = 'pending' RETURNING {}",
            *RETURNING_COLUMNS
        ))
        .bind(now)
        .bind(reason)
        .bind(id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return match self.get_delivery(scope, id).await? {
                Some(d) => Err(StoreError::InvalidState(d.status.as_str().to_owned())),
                None => Err(StoreError::NotFound),
            };
        };
        let delivery = delivery_from_row(&row)?;
        let task: Vec<&str> = delivery.task_id.as_deref().into_iter().collect();
        if let Some(task_id) = task.first() {
            sqlx::query(
                "UPDATE tasks SET callback_succeeded = 0 WHERE id = $1 AND team_id = $2 \
                 AND callback_succeeded IS NULL",
            )
            .bind(*task_id)
            .bind(scope.team_id())
            .execute(&mut *tx)
            .await?;
            // `callback_succeeded` is part of the task: readers' caches must drop it.
            self.announce_task_changes(&mut tx, &task).await?;
        }
        tx.commit().await?;
        self.tasks_changed(task);
        Ok(delivery)
    }
}

impl CrossTenant {
    /// Deliveries by status over every team, or over one team in both modes: the benchmark's
    /// and the operator's view of the whole outbox, which no request of a team asks for.
    pub async fn delivery_counts(&self, team_id: Option<&str>) -> StoreResult<DeliveryCounts> {
        count_deliveries(&self.store, team_id, None).await
    }
}

/// Deliveries by status, of one team and mode when given.
async fn count_deliveries(
    store: &Store,
    team_id: Option<&str>,
    mode: Option<Mode>,
) -> StoreResult<DeliveryCounts> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM callback_deliveries \
         WHERE ($1 = '' OR team_id = $1) AND ($2 = '' OR mode = $2) GROUP BY status",
    )
    .bind(team_id.unwrap_or_default())
    .bind(mode.map(Mode::as_str).unwrap_or_default())
    .fetch_all(&store.reader)
    .await?;
    let mut counts = DeliveryCounts::default();
    for (status, n) in rows {
        match DeliveryStatus::from_word(&status) {
            Some(DeliveryStatus::Pending) => counts.pending = n,
            Some(DeliveryStatus::Succeeded) => counts.succeeded = n,
            Some(DeliveryStatus::Failed) => counts.failed = n,
            None => {}
        }
    }
    Ok(counts)
}

fn attempt_from_row(r: &AnyRow) -> StoreResult<DeliveryAttempt> {
    let headers: Option<String> = r.try_get("request_headers")?;
    let body: Option<String> = r.try_get("body")?;
    let request = match (headers, body) {
        (Some(headers), Some(body)) => Some(SentRequest {
            headers: serde_json::from_str(&headers)
                .map_err(|e| StoreError::Config(format!("bad attempt headers in database: {e}")))?,
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
}
