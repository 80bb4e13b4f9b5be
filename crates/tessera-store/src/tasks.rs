//! Tasks of the v1 API: creation, reads, keyset-paginated listing with filters, and the
//! changes the API allows (cancel, unique_id, metadata, tags, audit).

use serde_json::{json, Value};
use sqlx::{any::AnyRow, Row};
use tessera_core::Mode;

use crate::{
    batch_completion::complete_batch_if_done,
    callbacks::new_delivery_id,
    new_id, now_ms,
    projects::json_column,
    sql::Sql,
    task_insert::{self, TaskRow},
    Dialect, Store, StoreError, StoreResult,
};

/// A task as the API shows it (JSON fields already parsed). Deserialized from the JSON
/// objects of SQLite's page query, whose keys are the aliases of [`TASK_COLUMNS`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Task {
    pub id: String,
    pub team_id: String,
    pub mode: Mode,
    #[serde(rename = "type")]
    pub task_type: String,
    pub status: String,
    pub project_name: Option<String>,
    pub batch_name: Option<String>,
    pub unique_id: Option<String>,
    pub callback_url: Option<String>,
    pub instruction: Option<String>,
    pub params: Value,
    pub metadata: Value,
    pub tags: Option<Vec<String>>,
    pub response: Option<Value>,
    pub extra: Value,
    #[serde(deserialize_with = "optional_flag")]
    pub callback_succeeded: Option<bool>,
    pub customer_review_status: Option<String>,
    pub audits: Value,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// The schema's 0/1 flags, as JSON numbers.
fn optional_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(<Option<i64> as serde::Deserialize>::deserialize(d)?.map(crate::flag))
}

/// A task to insert. Test-mode tasks arrive already completed, with their response.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub team_id: String,
    pub mode: Mode,
    pub task_type: String,
    pub status: String,
    pub project: Option<(String, String)>,
    pub batch: Option<(String, String)>,
    pub unique_id: Option<String>,
    pub callback_url: Option<String>,
    pub instruction: Option<String>,
    pub params: Value,
    pub metadata: Value,
    pub tags: Option<Vec<String>>,
    pub response: Option<Value>,
    pub extra: Value,
}

/// Filters of `GET /v1/tasks`; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<String>,
    pub task_type: Option<String>,
    pub project_id: Option<String>,
    pub batch_id: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub completed_after: Option<i64>,
    pub completed_before: Option<i64>,
    pub updated_after: Option<i64>,
    pub updated_before: Option<i64>,
    pub review_statuses: Vec<String>,
    pub unique_ids: Vec<String>,
    pub tags: Vec<String>,
}

impl TaskFilter {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.task_type.is_none()
            && self.project_id.is_none()
            && self.batch_id.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
            && self.completed_after.is_none()
            && self.completed_before.is_none()
            && self.updated_after.is_none()
            && self.updated_before.is_none()
            && self.review_statuses.is_empty()
            && self.unique_ids.is_empty()
            && self.tags.is_empty()
    }
}

/// One page of tasks, newest first.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// All tasks matching the filter, whatever the page.
    pub total: i64,
    /// Where the next page starts (`created_at`, `id` of the last task shown).
    pub next: Option<(i64, String)>,
}

/// A history line of a task, for the dashboard.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    pub at: i64,
    pub actor: String,
    pub event: String,
    pub detail: String,
}

/// A 24-hex-digit task id, the shape Scale's ids have.
pub fn new_task_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

const TASK_COLUMNS: &str = "t.id, t.team_id, t.mode, t.type, t.status, p.name AS project_name, b.name AS batch_name, \
    t.unique_id, t.callback_url, t.instruction, t.params, t.metadata, t.tags, t.response, t.extra, \
    t.callback_succeeded, t.customer_review_status, t.audits, t.created_at, t.updated_at, t.completed_at";
/// The columns whose length makes up most of a task's size.
const TEXT_COLUMNS: [&str; 8] = [
    "instruction",
    "params",
    "metadata",
    "tags",
    "response",
    "extra",
    "audits",
    "callback_url",
];
const TASK_FROM: &str =
    "tasks t LEFT JOIN projects p ON p.id = t.project_id LEFT JOIN batches b ON b.id = t.batch_id";
/// `SELECT {TASK_COLUMNS} FROM {TASK_FROM}`, the start of every task read.
static TASK_SELECT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM}"));

fn optional_json(row: &AnyRow, column: &str) -> StoreResult<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Config(format!("bad JSON in {column}: {e}")))
    })
    .transpose()
}

fn task_from_row(row: &AnyRow) -> StoreResult<Task> {
    let mode: String = row.try_get("mode")?;
    let tags = optional_json(row, "tags")?.map(|v| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    });
    let callback: Option<i64> = row.try_get("callback_succeeded")?;
    Ok(Task {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        mode: mode
            .parse()
            .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))?,
        task_type: row.try_get("type")?,
        status: row.try_get("status")?,
        project_name: row.try_get("project_name")?,
        batch_name: row.try_get("batch_name")?,
        unique_id: row.try_get("unique_id")?,
        callback_url: row.try_get("callback_url")?,
        instruction: row.try_get("instruction")?,
        params: json_column(row, "params")?,
        metadata: json_column(row, "metadata")?,
        tags,
        response: optional_json(row, "response")?,
        extra: json_column(row, "extra")?,
        callback_succeeded: callback.map(|v| v != 0),
        customer_review_status: row.try_get("customer_review_status")?,
        audits: json_column(row, "audits")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// The fields of a [`Task`] in SQLite's page query: column alias, and whether the column
/// holds JSON text.
const DOC_FIELDS: [(&str, bool); 21] = [
    ("id", false),
    ("team_id", false),
    ("mode", false),
    ("type", false),
    ("status", false),
    ("project_name", false),
    ("batch_name", false),
    ("unique_id", false),
    ("callback_url", false),
    ("instruction", false),
    ("params", true),
    ("metadata", true),
    ("tags", true),
    ("response", true),
    ("extra", true),
    ("callback_succeeded", false),
    ("customer_review_status", false),
    ("audits", true),
    ("created_at", false),
    ("updated_at", false),
    ("completed_at", false),
];

/// `json_object('id', id, …)` over the columns of a task page row: SQLite returns a page as
/// one JSON array of these (see `list_tasks`).
static SQLITE_TASK_OBJECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let fields: Vec<String> = DOC_FIELDS
        .iter()
        .map(|(name, json)| {
            if *json {
                format!("'{name}', json({name})")
            } else {
                format!("'{name}', {name}")
            }
        })
        .collect();
    format!("json_object({})", fields.join(", "))
});

/// The conditions of `filter` within one team and mode.
fn push_filter<'a>(q: &mut Sql<'a>, team_id: &'a str, mode: Mode, filter: &'a TaskFilter) {
    let mut c = q.conditions();
    c.eq("t.team_id", team_id).eq("t.mode", mode.as_str());
    let equal = [
        ("t.status", &filter.status),
        ("t.type", &filter.task_type),
        ("t.project_id", &filter.project_id),
        ("t.batch_id", &filter.batch_id),
    ];
    for (column, value) in equal {
        if let Some(v) = value {
            c.eq(column, v);
        }
    }
    let bounds = [
        ("t.created_at >= ", filter.created_after),
        ("t.created_at <= ", filter.created_before),
        ("t.completed_at >= ", filter.completed_after),
        ("t.completed_at <= ", filter.completed_before),
        ("t.updated_at >= ", filter.updated_after),
        ("t.updated_at <= ", filter.updated_before),
    ];
    for (condition, value) in bounds {
        if let Some(v) = value {
            c.and().push(condition).bind(v);
        }
    }
    c.is_in("t.customer_review_status", &filter.review_statuses)
        .is_in("t.unique_id", &filter.unique_ids);
    if !filter.tags.is_empty() {
        c.and()
            .push("t.id IN (SELECT task_id FROM task_tags WHERE team_id = ")
            .bind(team_id)
            .push(" AND mode = ")
            .bind(mode.as_str())
            .push(" AND tag IN (")
            .list(&filter.tags)
            .push("))");
    }
}

/// The changes [`Store::change_task`] makes to one task row.
enum TaskChange<'a> {
    /// A pending task is canceled; a labeler holding it loses it, the claim ends with it.
    Cancel { clear_unique_id: bool },
    /// Sets or clears the unique_id.
    UniqueId(Option<&'a str>),
    /// Replaces the metadata (JSON text).
    Metadata(String),
}

impl<'a> TaskChange<'a> {
    /// The `SET` assignments of the change.
    fn push_set(&self, q: &mut Sql<'a>) {
        match self {
            TaskChange::Cancel { clear_unique_id } => {
                q.push("status = 'canceled', ");
                if *clear_unique_id {
                    q.push("unique_id = NULL, ");
                }
                q.push("claimed_by = NULL, lease_until = NULL");
            }
            TaskChange::UniqueId(Some(u)) => {
                q.push("unique_id = ").bind(*u);
            }
            TaskChange::UniqueId(None) => {
                q.push("unique_id = NULL");
            }
            TaskChange::Metadata(m) => {
                q.push("metadata = ").bind(m.clone());
            }
        }
    }

    /// The status the task must be in for the change to apply.
    fn only_if_status(&self) -> Option<&'static str> {
        match self {
            TaskChange::Cancel { .. } => Some("pending"),
            TaskChange::UniqueId(_) | TaskChange::Metadata(_) => None,
        }
    }

    /// The history line: event and detail.
    fn history(&self) -> (&'static str, String) {
        match self {
            TaskChange::Cancel { .. } => ("canceled", String::new()),
            TaskChange::UniqueId(Some(u)) => ("unique_id", format!("set to {u}")),
            TaskChange::UniqueId(None) => ("unique_id", "cleared".to_owned()),
            TaskChange::Metadata(_) => ("metadata", "replaced".to_owned()),
        }
    }
}

async fn insert_tags(
    conn: &mut sqlx::AnyConnection,
    task_id: &str,
    team_id: &str,
    mode: Mode,
    tags: &[String],
) -> StoreResult<()> {
    let mut seen = std::collections::HashSet::new();
    for tag in tags.iter().filter(|t| seen.insert(t.as_str())) {
        sqlx::query("INSERT INTO task_tags (task_id, team_id, mode, tag) VALUES ($1, $2, $3, $4)")
            .bind(task_id)
            .bind(team_id)
            .bind(mode.as_str())
            .bind(tag)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Ends a change to a task: records the history line, announces the change to other
/// replicas, reads the task back as changed, commits, and evicts the old version from this
/// replica's read cache.
pub(crate) async fn record_and_read(
    store: &Store,
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    task_id: &str,
    at: i64,
    actor: &str,
    event: &str,
    detail: &str,
) -> StoreResult<Task> {
    sqlx::query("INSERT INTO task_events (id, task_id, at, actor, event, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(new_id("tev"))
        .bind(task_id)
        .bind(at)
        .bind(actor)
        .bind(event)
        .bind(detail)
        .execute(&mut *tx)
        .await?;
    store.announce_task_changes(&mut tx, &[task_id]).await?;
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1"
    ))
    .bind(task_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    store.tasks_changed([task_id]);
    task_from_row(&row)
}

impl Store {
    /// Inserts a task with its tag index rows, the team's task count, and (completed at
    /// creation with a callback URL) its callback delivery, all committed together — in a
    /// batch with other concurrent creations (`task_insert`). A completed task may complete
    /// its finalized batch. `Unique(TaskUniqueId)` when its `unique_id` is taken in this
    /// mode.
    pub async fn insert_task(&self, new: &NewTask) -> StoreResult<Task> {
        let id = new_task_id();
        let now = now_ms();
        let completed_at = (new.status == "completed").then_some(now);
        let mut seen = std::collections::HashSet::new();
        let tag_index: Vec<String> = new
            .tags
            .iter()
            .flatten()
            .filter(|t| seen.insert(t.as_str()))
            .cloned()
            .collect();
        let row = TaskRow {
            id: id.clone(),
            team_id: new.team_id.clone(),
            mode: new.mode.as_str(),
            task_type: new.task_type.clone(),
            status: new.status.clone(),
            project_id: new.project.as_ref().map(|(id, _)| id.clone()),
            batch_id: new.batch.as_ref().map(|(id, _)| id.clone()),
            unique_id: new.unique_id.clone(),
            callback_url: new.callback_url.clone(),
            instruction: new.instruction.clone(),
            params: new.params.to_string(),
            metadata: new.metadata.to_string(),
            response: new.response.as_ref().map(Value::to_string),
            extra: new.extra.to_string(),
            tags: new.tags.as_ref().map(|t| json!(t).to_string()),
            tag_index,
            at: now,
            completed_at,
            delivery_id: new_delivery_id(),
        };
        // Through the group-commit writer when it runs (see `task_insert`), else alone.
        let queue = self.task_writer_queue();
        let written = match queue {
            Some(queue) => queue.insert(row).await,
            None => task_insert::insert_alone(&self.writer, self.dialect, row).await,
        };
        let callback_url = written?;
        Ok(Task {
            id,
            team_id: new.team_id.clone(),
            mode: new.mode,
            task_type: new.task_type.clone(),
            status: new.status.clone(),
            project_name: new.project.as_ref().map(|(_, name)| name.clone()),
            batch_name: new.batch.as_ref().map(|(_, name)| name.clone()),
            unique_id: new.unique_id.clone(),
            callback_url,
            instruction: new.instruction.clone(),
            params: new.params.clone(),
            metadata: new.metadata.clone(),
            tags: new.tags.clone(),
            response: new.response.clone(),
            extra: new.extra.clone(),
            callback_succeeded: None,
            customer_review_status: None,
            audits: json!([]),
            created_at: now,
            updated_at: now,
            completed_at,
        })
    }

    pub async fn get_task(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
    ) -> StoreResult<Option<Task>> {
        Ok(self
            .read_task_sized(team_id, mode, task_id)
            .await?
            .map(|(task, _)| task))
    }

    /// A task from the database, with the length of its stored text (what caching it costs).
    pub(crate) async fn read_task_sized(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
    ) -> StoreResult<Option<(Task, usize)>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1 AND t.team_id = $2 AND t.mode = $3"
        ))
        .bind(task_id)
        .bind(team_id)
        .bind(mode.as_str())
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut bytes = 0;
        for column in TEXT_COLUMNS {
            let text: Option<&str> = row.try_get(column)?;
            bytes += text.map_or(0, str::len);
        }
        Ok(Some((task_from_row(&row)?, bytes)))
    }

    /// Tasks by id, whatever their team (for workers), keyed by id.
    pub async fn tasks_by_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Task>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q = Sql::new(self.dialect);
            q.push(&TASK_SELECT)
                .push(" WHERE t.id IN (")
                .list(chunk)
                .push(")");
            for row in q.query().fetch_all(&self.reader).await? {
                let task = task_from_row(&row)?;
                found.insert(task.id.clone(), task);
            }
        }
        Ok(found)
    }

    /// The task that holds `unique_id` in this team and mode.
    pub async fn find_task_by_unique_id(
        &self,
        team_id: &str,
        mode: Mode,
        unique_id: &str,
    ) -> StoreResult<Option<Task>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.team_id = $1 AND t.mode = $2 AND t.unique_id = $3"
        ))
        .bind(team_id)
        .bind(mode.as_str())
        .bind(unique_id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// A page of tasks, newest first, starting after `after` (keyset pagination), with the
    /// total number of matches.
    pub async fn list_tasks(
        &self,
        team_id: &str,
        mode: Mode,
        filter: &TaskFilter,
        limit: i64,
        after: Option<(i64, String)>,
    ) -> StoreResult<TaskPage> {
        let mut select = Sql::new(self.dialect);
        if self.dialect == Dialect::Sqlite {
            // One row holding the page as JSON, in the page's order (see below).
            select
                .push("SELECT json_group_array(")
                .push(&SQLITE_TASK_OBJECT)
                .push(" ORDER BY created_at DESC, id DESC) FROM (");
        }
        select.push(&TASK_SELECT).push(" WHERE ");
        push_filter(&mut select, team_id, mode, filter);
        if let Some((at, id)) = &after {
            select
                .push(" AND (t.created_at < ")
                .bind(*at)
                .push(" OR (t.created_at = ")
                .bind(*at)
                .push(" AND t.id < ")
                .bind(id)
                .push("))");
        }
        select
            .push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
            .bind(limit + 1);
        if self.dialect == Dialect::Sqlite {
            select.push(")");
        }
        // Pages are the heaviest reads: a few at a time, the rest queue here in order, rather
        // than every request competing for the CPU inside the database.
        let _permit = self.page_permits.acquire().await;
        let mut tasks: Vec<Task> = match self.dialect {
            // One row holding the page as JSON, not a row per task: sqlx hands every SQLite row
            // over between threads and converts every column for the Any driver, which made
            // up most of a page's cost.
            Dialect::Sqlite => {
                let page: String = select.query().fetch_one(&self.reader).await?.try_get(0)?;
                serde_json::from_str(&page)
                    .map_err(|e| StoreError::Config(format!("bad task page JSON: {e}")))?
            }
            // PostgreSQL streams rows on one socket; building the JSON there (json_agg)
            // measured slower than decoding the rows here.
            Dialect::Postgres => select
                .query()
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(task_from_row)
                .collect::<StoreResult<_>>()?,
        };
        let has_more = tasks.len() as i64 > limit;
        tasks.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if has_more {
            tasks.last().map(|t| (t.created_at, t.id.clone()))
        } else {
            None
        };

        let total = if filter.is_empty() {
            let row: Option<(i64,)> =
                sqlx::query_as("SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM task_counts WHERE team_id = $1 AND mode = $2")
                    .bind(team_id)
                    .bind(mode.as_str())
                    .fetch_optional(&self.reader)
                    .await?;
            row.map_or(0, |r| r.0)
        } else {
            let mut count = Sql::new(self.dialect);
            count.push("SELECT COUNT(*) FROM tasks t WHERE ");
            push_filter(&mut count, team_id, mode, filter);
            count.query().fetch_one(&self.reader).await?.try_get(0)?
        };
        Ok(TaskPage { tasks, total, next })
    }

    /// Runs one change on a task and records it in the task's history; `NotFound` when the
    /// task is not in this team and mode.
    async fn change_task(
        &self,
        (team_id, mode, task_id): (&str, Mode, &str),
        change: TaskChange<'_>,
        actor: &str,
    ) -> StoreResult<Task> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut update = Sql::new(self.dialect);
        update.push("UPDATE tasks SET ");
        change.push_set(&mut update);
        update
            .push(", updated_at = ")
            .bind(now)
            .push(" WHERE id = ")
            .bind(task_id)
            .push(" AND team_id = ")
            .bind(team_id)
            .push(" AND mode = ")
            .bind(mode.as_str());
        if let Some(status) = change.only_if_status() {
            update.push(" AND status = ").bind(status);
        }
        let done = update.query().execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            let status: Option<(String,)> = sqlx::query_as(
                "SELECT status FROM tasks WHERE id = $1 AND team_id = $2 AND mode = $3",
            )
            .bind(task_id)
            .bind(team_id)
            .bind(mode.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match status {
                Some((status,)) => StoreError::InvalidState(status),
                None => StoreError::NotFound,
            });
        }
        if change.only_if_status() == Some("pending") {
            // The task became final: its batch may now be complete.
            let batch: Option<(Option<String>,)> =
                sqlx::query_as("SELECT batch_id FROM tasks WHERE id = $1")
                    .bind(task_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((Some(batch_id),)) = batch {
                complete_batch_if_done(&mut tx, &batch_id, now).await?;
            }
        }
        let (event, detail) = change.history();
        record_and_read(self, tx, task_id, now, actor, event, &detail).await
    }

    /// Cancels a pending task (optionally freeing its unique_id). `InvalidState` with the
    /// current status when it is not pending.
    pub async fn cancel_task(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
        clear_unique_id: bool,
        actor: &str,
    ) -> StoreResult<Task> {
        self.change_task(
            (team_id, mode, task_id),
            TaskChange::Cancel { clear_unique_id },
            actor,
        )
        .await
    }

    pub async fn set_task_unique_id(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
        unique_id: Option<&str>,
        actor: &str,
    ) -> StoreResult<Task> {
        self.change_task(
            (team_id, mode, task_id),
            TaskChange::UniqueId(unique_id),
            actor,
        )
        .await
    }

    /// Replaces a task's metadata.
    pub async fn set_task_metadata(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
        metadata: &Value,
        actor: &str,
    ) -> StoreResult<Task> {
        self.change_task(
            (team_id, mode, task_id),
            TaskChange::Metadata(metadata.to_string()),
            actor,
        )
        .await
    }

    /// Changes a task's tags with `change` (given the current tags) in one transaction that
    /// locks the task, so concurrent additions and removals are never lost.
    pub async fn update_task_tags(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
        actor: &str,
        change: impl FnOnce(Vec<String>) -> Result<Vec<String>, String>,
    ) -> StoreResult<Task> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(Option<String>,)> = sqlx::query_as(&format!(
            "SELECT tags FROM tasks WHERE id = $1 AND team_id = $2 AND mode = $3{}",
            self.for_update()
        ))
        .bind(task_id)
        .bind(team_id)
        .bind(mode.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (current,) = row.ok_or(StoreError::NotFound)?;
        let current: Vec<String> = current
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let tags = change(current).map_err(StoreError::InvalidState)?;
        let now = now_ms();
        sqlx::query("UPDATE tasks SET tags = $1, updated_at = $2 WHERE id = $3")
            .bind(json!(tags).to_string())
            .bind(now)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM task_tags WHERE task_id = $1")
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        insert_tags(&mut tx, task_id, team_id, mode, &tags).await?;
        record_and_read(self, tx, task_id, now, actor, "tags", &tags.join(", ")).await
    }

    /// Records a customer audit (accept or reject) of a completed task: appends `entry` to
    /// its audits and sets its review status. `InvalidState` unless the task is completed.
    pub async fn audit_task(
        &self,
        team_id: &str,
        mode: Mode,
        task_id: &str,
        accepted: bool,
        entry: Value,
        auditor: &str,
    ) -> StoreResult<Task> {
        // Read-modify-write of the audits list under the row lock, so concurrent audits
        // never drop each other's entry.
        let mut tx = self.writer.begin().await?;
        let row: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT status, audits FROM tasks WHERE id = $1 AND team_id = $2 AND mode = $3{}",
            self.for_update()
        ))
        .bind(task_id)
        .bind(team_id)
        .bind(mode.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (status, audits) = row.ok_or(StoreError::NotFound)?;
        if status != "completed" {
            return Err(StoreError::InvalidState(status));
        }
        let result = if accepted { "accepted" } else { "rejected" };
        let mut audits: Vec<Value> = serde_json::from_str(&audits).unwrap_or_default();
        let comments = entry
            .get("comments")
            .and_then(Value::as_str)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        audits.push(entry);
        let now = now_ms();
        sqlx::query("UPDATE tasks SET audits = $1, customer_review_status = $2, updated_at = $3 WHERE id = $4")
            .bind(Value::Array(audits).to_string())
            .bind(result)
            .bind(now)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        record_and_read(
            self,
            tx,
            task_id,
            now,
            auditor,
            "audited",
            &format!("{result}{comments}"),
        )
        .await
    }

    /// The task's history, oldest first.
    pub async fn task_events(&self, task_id: &str) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query(
            "SELECT at, actor, event, detail FROM task_events WHERE task_id = $1 ORDER BY at, id",
        )
        .bind(task_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TaskEvent {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    event: r.try_get("event")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
