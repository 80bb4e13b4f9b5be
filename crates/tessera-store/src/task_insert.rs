//! Group commit for task creation: tasks created concurrently are written by one writer, as
//! many as are waiting (up to [`MAX_BATCH`]) at a time — the tasks, their tag index rows, the
//! team's count, the callback deliveries of tasks completed at creation, and the check of a
//! finalized batch such a task completes — on SQLite in one transaction of a statement per
//! kind of row, on PostgreSQL in one statement. Rows travel as JSON parameters, so the
//! statement text (and its prepared statement) is the same whatever the batch size.
//!
//! A lone request is written at once (a batch of one), so nothing waits for a batch to fill;
//! under load the batch grows while the previous one commits. On SQLite — one write
//! connection, and sqlx hands every statement to that connection's thread — the statements
//! per task become statements per batch; on PostgreSQL it saves a commit per task.
//!
//! If a batch fails (a duplicate `unique_id`, say), its tasks are written again one at a
//! time, so each request gets its own answer and one bad task never fails another.

use std::collections::BTreeMap;

use sqlx::AnyPool;
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{
    batch_completion::complete_batch_if_done,
    tasks::{insert_tasks_sql, INSERT_ROW_FIELDS},
    Dialect, StoreError, StoreResult,
};

/// Tasks written in one transaction at most.
const MAX_BATCH: usize = 64;
/// Creations waiting for the writer at most; more wait to be queued (back-pressure).
const QUEUE: usize = 1024;
/// Rows the per-team task count is spread over (see the `task_counts` table).
pub(crate) const COUNT_SHARDS: u8 = 16;

/// One task row to insert, as the insert's JSON parameter carries it: its field names are
/// the `insert_from` names of the table description (`tasks::columns`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct TaskRow {
    pub id: String,
    pub team_id: String,
    pub mode: &'static str,
    #[serde(rename = "type")]
    pub task_type: &'static str,
    pub status: &'static str,
    pub project_id: Option<String>,
    pub batch_id: Option<String>,
    pub unique_id: Option<String>,
    /// As stored: the tasks service has already applied the team's default.
    pub callback_url: Option<String>,
    pub instruction: Option<String>,
    pub params: String,
    pub metadata: String,
    pub response: Option<String>,
    pub extra: String,
    /// The tags as the task shows them (JSON text), if any.
    pub tags: Option<String>,
    /// The same tags without repeats: the rows of the tag index.
    #[serde(skip)]
    pub tag_index: Vec<String>,
    pub at: i64,
    pub completed_at: Option<i64>,
    /// The API key that created it, if one did.
    pub created_by_key: Option<String>,
    /// The id its callback delivery gets if it completed at creation with a callback URL.
    pub delivery_id: String,
}

/// Whether the task was written.
type Reply = oneshot::Sender<StoreResult<()>>;

/// The queue in front of the task writer.
#[derive(Clone)]
pub(crate) struct InsertQueue {
    queue: mpsc::Sender<(TaskRow, Reply)>,
}

impl InsertQueue {
    /// Starts the writer on the runtime; it ends once every clone of the queue is dropped
    /// and the tasks still queued are written. One writer: on SQLite there is one write
    /// connection anyway, and on PostgreSQL one batch at a time measured faster than several
    /// side by side (they contend for the team row that every new task's foreign key locks).
    pub(crate) fn start(pool: AnyPool, dialect: Dialect) -> (Self, JoinHandle<()>) {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(pool, Statements::new(dialect), waiting));
        (Self { queue }, writer)
    }

    /// Inserts the task with everything written alongside it (see the module doc).
    pub(crate) async fn insert(&self, row: TaskRow) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Config("the task writer has stopped".into());
        self.queue.send((row, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Writes one task in its own transaction, with the writer's statements (a batch of one):
/// the path of a store whose writer is not running (see [`crate::Store::start_task_writer`]).
pub(crate) async fn insert_alone(
    pool: &AnyPool,
    dialect: Dialect,
    row: TaskRow,
) -> StoreResult<()> {
    insert_rows(pool, &Statements::new(dialect), std::slice::from_ref(&row)).await
}

async fn write_batches(
    pool: AnyPool,
    sql: Statements,
    mut waiting: mpsc::Receiver<(TaskRow, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rows, replies): (Vec<TaskRow>, Vec<Reply>) = batch.drain(..).unzip();
        match insert_rows(&pool, &sql, &rows).await {
            Ok(()) => {
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) if rows.len() == 1 => {
                let _ = replies.into_iter().next().map(|r| r.send(Err(err)));
            }
            Err(_) => {
                for (row, reply) in rows.into_iter().zip(replies) {
                    let result = insert_rows(&pool, &sql, std::slice::from_ref(&row)).await;
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// `FROM … AS {alias}` over a JSON array of objects with these columns (name, SQL type),
/// bound as parameter number `param` on PostgreSQL (anonymous on SQLite: statements using
/// this have one such source). A batch of any size is then one statement with one
/// parameter, prepared once instead of once per batch size.
fn json_rows(dialect: Dialect, columns: &[(&str, &str)], param: usize, alias: &str) -> String {
    match dialect {
        Dialect::Postgres => {
            let typed: Vec<String> = columns.iter().map(|(c, t)| format!("{c} {t}")).collect();
            format!(
                "json_to_recordset(CAST(${param} AS JSON)) AS {alias}({})",
                typed.join(", ")
            )
        }
        Dialect::Sqlite => {
            let fields: Vec<String> = columns
                .iter()
                .map(|(c, _)| format!("json_extract(value, '$.{c}') AS {c}"))
                .collect();
            format!(
                "(SELECT {} FROM json_each(?)) AS {alias}",
                fields.join(", ")
            )
        }
    }
}

/// A callback delivery queued with its task.
#[derive(serde::Serialize)]
struct DeliveryRow<'a> {
    id: String,
    team_id: &'a str,
    mode: &'a str,
    task_id: &'a str,
    target: &'a str,
    at: i64,
}

const DELIVERY_FIELDS: [(&str, &str); 6] = [
    ("id", "TEXT"),
    ("team_id", "TEXT"),
    ("mode", "TEXT"),
    ("task_id", "TEXT"),
    ("target", "TEXT"),
    ("at", "BIGINT"),
];

/// A row of the tag index.
#[derive(serde::Serialize)]
struct TagRow<'a> {
    task_id: &'a str,
    team_id: &'a str,
    mode: &'a str,
    tag: &'a str,
}

const TAG_FIELDS: [(&str, &str); 4] = [
    ("task_id", "TEXT"),
    ("team_id", "TEXT"),
    ("mode", "TEXT"),
    ("tag", "TEXT"),
];

fn tag_rows(rows: &[TaskRow]) -> Vec<TagRow<'_>> {
    rows.iter()
        .flat_map(|row| {
            row.tag_index.iter().map(|tag| TagRow {
                task_id: &row.id,
                team_id: &row.team_id,
                mode: row.mode,
                tag,
            })
        })
        .collect()
}

/// The batch's statements, built once when the writer starts: their text never changes.
enum Statements {
    /// A transaction: the tasks, then their deliveries, then their tag rows.
    Sqlite {
        tasks: String,
        deliveries: String,
        tags: String,
    },
    /// All of it in one statement.
    Postgres { batch: String },
}

impl Statements {
    fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Sqlite => Statements::Sqlite {
                tasks: insert_tasks_sql(&json_rows(dialect, &INSERT_ROW_FIELDS, 1, "r")),
                deliveries: format!(
                    "INSERT INTO callback_deliveries (id, team_id, mode, kind, task_id, target, status, \
                     next_attempt_at, created_at, updated_at) \
                     SELECT r.id, r.team_id, r.mode, 'task', r.task_id, r.target, 'pending', r.at, r.at, r.at \
                     FROM {}",
                    json_rows(dialect, &DELIVERY_FIELDS, 1, "r")
                ),
                tags: format!(
                    "INSERT INTO task_tags (task_id, team_id, mode, tag) \
                     SELECT r.task_id, r.team_id, r.mode, r.tag FROM {}",
                    json_rows(dialect, &TAG_FIELDS, 1, "r")
                ),
            },
            Dialect::Postgres => Statements::Postgres {
                batch: postgres_batch_sql(),
            },
        }
    }
}

/// The batches that a task of `rows` completed in at creation: each may now be complete.
fn batches_to_check(rows: &[TaskRow]) -> Vec<(&str, i64)> {
    let mut batches: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        if let (Some(batch_id), Some(at)) = (&row.batch_id, row.completed_at) {
            batches.insert(batch_id, at);
        }
    }
    batches.into_iter().collect()
}

fn encode<T: serde::Serialize>(rows: &T) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(|e| StoreError::Config(format!("task batch: {e}")))
}

/// Writes `rows` in one transaction.
async fn insert_rows(pool: &AnyPool, sql: &Statements, rows: &[TaskRow]) -> StoreResult<()> {
    let (tasks_sql, deliveries_sql, tags_sql) = match sql {
        Statements::Postgres { batch } => {
            return insert_rows_in_one_statement(pool, batch, rows).await
        }
        Statements::Sqlite {
            tasks,
            deliveries,
            tags,
        } => (tasks, deliveries, tags),
    };
    let mut tx = pool.begin().await?;
    sqlx::query(tasks_sql)
        .bind(encode(&rows)?)
        .execute(&mut *tx)
        .await?;
    add_to_counts(&mut tx, rows).await?;
    let deliveries = delivery_rows(rows);
    if !deliveries.is_empty() {
        sqlx::query(deliveries_sql)
            .bind(encode(&deliveries)?)
            .execute(&mut *tx)
            .await?;
    }
    let tags = tag_rows(rows);
    if !tags.is_empty() {
        sqlx::query(tags_sql)
            .bind(encode(&tags)?)
            .execute(&mut *tx)
            .await?;
    }
    for (batch_id, at) in batches_to_check(rows) {
        complete_batch_if_done(&mut tx, batch_id, at).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The team's task count, one row per (team, mode) of the batch, locked in key order so that
/// concurrent batches never wait on each other in a cycle.
async fn add_to_counts(conn: &mut sqlx::AnyConnection, rows: &[TaskRow]) -> StoreResult<()> {
    let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for row in rows {
        *counts.entry((row.team_id.as_str(), row.mode)).or_default() += 1;
    }
    for ((team_id, mode), n) in counts {
        sqlx::query(
            "INSERT INTO task_counts (team_id, mode, shard, total) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (team_id, mode, shard) DO UPDATE SET total = task_counts.total + excluded.total",
        )
        .bind(team_id)
        .bind(mode)
        .bind(i64::from(rand::random::<u8>() % COUNT_SHARDS))
        .bind(n)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The callbacks of tasks that completed at creation (test mode) with a callback URL: the
/// outbox row is written with the task.
fn delivery_rows(rows: &[TaskRow]) -> Vec<DeliveryRow<'_>> {
    rows.iter()
        .filter(|row| row.completed_at.is_some())
        .filter_map(|row| {
            row.callback_url.as_deref().map(|target| DeliveryRow {
                id: row.delivery_id.clone(),
                team_id: &row.team_id,
                mode: row.mode,
                task_id: &row.id,
                target,
                at: row.at,
            })
        })
        .collect()
}

/// PostgreSQL: the same writes as [`insert_rows`] as one statement (data-modifying `WITH`),
/// so a batch costs one round trip and commits on its own. Parameters: the task rows, the
/// count shard, the tag rows.
fn postgres_batch_sql() -> String {
    format!(
        "WITH r AS (SELECT * FROM {source}), \
         inserted AS ({insert} RETURNING id, team_id, mode, callback_url, completed_at, created_at), \
         counted AS (INSERT INTO task_counts (team_id, mode, shard, total) \
           SELECT team_id, mode, $2, COUNT(*) FROM inserted GROUP BY team_id, mode ORDER BY team_id, mode \
           ON CONFLICT (team_id, mode, shard) DO UPDATE SET total = task_counts.total + excluded.total), \
         delivered AS (INSERT INTO callback_deliveries (id, team_id, mode, kind, task_id, target, status, \
           next_attempt_at, created_at, updated_at) \
           SELECT r.delivery_id, i.team_id, i.mode, 'task', i.id, i.callback_url, 'pending', i.created_at, i.created_at, i.created_at \
           FROM inserted i JOIN r ON r.id = i.id \
           WHERE i.completed_at IS NOT NULL AND i.callback_url IS NOT NULL), \
         tagged AS (INSERT INTO task_tags (task_id, team_id, mode, tag) \
           SELECT g.task_id, g.team_id, g.mode, g.tag FROM {tags} JOIN inserted i ON i.id = g.task_id) \
         SELECT id FROM inserted",
        source = json_rows(Dialect::Postgres, &INSERT_ROW_FIELDS, 1, "r"),
        insert = insert_tasks_sql("r"),
        tags = json_rows(Dialect::Postgres, &TAG_FIELDS, 3, "g"),
    )
}

async fn insert_rows_in_one_statement(
    pool: &AnyPool,
    sql: &str,
    rows: &[TaskRow],
) -> StoreResult<()> {
    let query = sqlx::query(sql)
        .bind(encode(&rows)?)
        .bind(i64::from(rand::random::<u8>() % COUNT_SHARDS))
        .bind(encode(&tag_rows(rows))?);
    let batches = batches_to_check(rows);
    if batches.is_empty() {
        query.execute(pool).await?;
    } else {
        // A test task completing in a finalized batch may complete it: same transaction.
        let mut tx = pool.begin().await?;
        query.execute(&mut *tx).await?;
        for (batch_id, at) in batches {
            complete_batch_if_done(&mut tx, batch_id, at).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_row_carries_every_field_the_insert_reads() {
        let row = TaskRow {
            id: "t".into(),
            team_id: "team".into(),
            mode: "test",
            task_type: "categorization",
            status: "pending",
            project_id: None,
            batch_id: None,
            unique_id: None,
            callback_url: None,
            instruction: None,
            params: "{}".into(),
            metadata: "{}".into(),
            response: None,
            extra: "{}".into(),
            tags: None,
            tag_index: Vec::new(),
            at: 1,
            completed_at: None,
            created_by_key: None,
            delivery_id: "d".into(),
        };
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&row) else {
            panic!("a row is a JSON object");
        };
        let mut sent: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut read: Vec<&str> = INSERT_ROW_FIELDS.iter().map(|(name, _)| *name).collect();
        sent.sort_unstable();
        read.sort_unstable();
        assert_eq!(sent, read);
    }
}
