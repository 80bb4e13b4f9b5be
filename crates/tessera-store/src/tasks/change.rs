//! Changes to a task of a scope: cancel, unique_id, metadata (one `UPDATE` each, through
//! [`TaskChange`]), tags and audits (read-modify-write under the row lock). Every change
//! records a history line, announces itself to other replicas and evicts the cached copy.

use serde_json::{json, Value};
use tessera_core::{
    status::{ReviewStatus, TaskStatus},
    Scope,
};

use super::{columns::TASK_SELECT, distinct, read::task_from_row, Task};
use crate::{
    batch_completion::complete_batch_if_done, new_id, now_ms, sql::Sql, Store, StoreError,
    StoreResult,
};

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
                q.push("status = ")
                    .bind(TaskStatus::Canceled.as_str())
                    .push(", ");
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
    fn only_if_status(&self) -> Option<TaskStatus> {
        match self {
            TaskChange::Cancel { .. } => Some(TaskStatus::Pending),
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

/// Ends a change to a task: records the history line, announces the change to other
/// replicas, reads the task back as changed, commits, and evicts the old version from this
/// replica's read cache. The caller has already checked the task is in its scope (the
/// labeling queue's, or a tenant's).
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
    let mut read = Sql::new(store.dialect);
    read.push(&TASK_SELECT).push(" WHERE t.id = ").bind(task_id);
    let row = read.query().fetch_one(&mut *tx).await?;
    tx.commit().await?;
    store.tasks_changed([task_id]);
    task_from_row(&row)
}

impl Store {
    /// Runs one change on a task and records it in the task's history; `NotFound` when the
    /// task is not in `scope`.
    async fn change_task(
        &self,
        scope: &Scope,
        task_id: &str,
        change: TaskChange<'_>,
        actor: &str,
    ) -> StoreResult<Task> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut update = Sql::new(self.dialect);
        update.push("UPDATE tasks SET ");
        change.push_set(&mut update);
        update.push(", updated_at = ").bind(now).push(" WHERE ");
        let mut c = update.conditions();
        c.eq("id", task_id)
            .eq("team_id", scope.team_id())
            .eq("mode", scope.mode().as_str());
        if let Some(status) = change.only_if_status() {
            c.eq("status", status.as_str());
        }
        let done = update.query().execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            let status: Option<(String,)> = sqlx::query_as(
                "SELECT status FROM tasks WHERE id = $1 AND team_id = $2 AND mode = $3",
            )
            .bind(task_id)
            .bind(scope.team_id())
            .bind(scope.mode().as_str())
            .fetch_optional(&mut *tx)
            .await?;
            return Err(match status {
                Some((status,)) => StoreError::InvalidState(status),
                None => StoreError::NotFound,
            });
        }
        if change.only_if_status() == Some(TaskStatus::Pending) {
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
        scope: &Scope,
        task_id: &str,
        clear_unique_id: bool,
        actor: &str,
    ) -> StoreResult<Task> {
        let change = TaskChange::Cancel { clear_unique_id };
        self.change_task(scope, task_id, change, actor).await
    }

    /// Sets (or, with `None`, clears) a task's unique_id; `Unique(TaskUniqueId)` when another
    /// task of the scope holds it.
    pub async fn set_task_unique_id(
        &self,
        scope: &Scope,
        task_id: &str,
        unique_id: Option<&str>,
        actor: &str,
    ) -> StoreResult<Task> {
        let change = TaskChange::UniqueId(unique_id);
        self.change_task(scope, task_id, change, actor).await
    }

    /// Replaces a task's metadata.
    pub async fn set_task_metadata(
        &self,
        scope: &Scope,
        task_id: &str,
        metadata: &Value,
        actor: &str,
    ) -> StoreResult<Task> {
        let change = TaskChange::Metadata(metadata.to_string());
        self.change_task(scope, task_id, change, actor).await
    }

    /// Changes a task's tags with `change` (given the current tags) in one transaction that
    /// locks the task, so concurrent additions and removals are never lost.
    pub async fn update_task_tags(
        &self,
        scope: &Scope,
        task_id: &str,
        actor: &str,
        change: impl FnOnce(Vec<String>) -> Result<Vec<String>, String>,
    ) -> StoreResult<Task> {
        let mut tx = self.writer.begin().await?;
        let (current,): (Option<String>,) =
            self.locked_task(&mut tx, scope, task_id, "tags").await?;
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
        for tag in distinct(&tags) {
            sqlx::query(
                "INSERT INTO task_tags (task_id, team_id, mode, tag) VALUES ($1, $2, $3, $4)",
            )
            .bind(task_id)
            .bind(scope.team_id())
            .bind(scope.mode().as_str())
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        }
        record_and_read(self, tx, task_id, now, actor, "tags", &tags.join(", ")).await
    }

    /// Records a customer audit (accept or reject) of a completed task: appends `entry` to
    /// its audits and sets its review status. `InvalidState` unless the task is completed.
    pub async fn audit_task(
        &self,
        scope: &Scope,
        task_id: &str,
        accepted: bool,
        entry: Value,
        auditor: &str,
    ) -> StoreResult<Task> {
        // Read-modify-write of the audits list under the row lock, so concurrent audits
        // never drop each other's entry.
        let mut tx = self.writer.begin().await?;
        let (status, audits): (String, String) = self
            .locked_task(&mut tx, scope, task_id, "status, audits")
            .await?;
        if status != TaskStatus::Completed.as_str() {
            return Err(StoreError::InvalidState(status));
        }
        let result = if accepted {
            ReviewStatus::Accepted
        } else {
            ReviewStatus::Rejected
        };
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
            .bind(result.as_str())
            .bind(now)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        let detail = format!("{result}{comments}");
        record_and_read(self, tx, task_id, now, auditor, "audited", &detail).await
    }

    /// Reads `columns` (a static list) of the scope's task `task_id` in `tx`, locking the row
    /// where the database can, for a read-modify-write; `NotFound` outside the scope.
    async fn locked_task<T>(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        scope: &Scope,
        task_id: &str,
        columns: &'static str,
    ) -> StoreResult<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let row: Option<T> = sqlx::query_as(&format!(
            "SELECT {columns} FROM tasks WHERE id = $1 AND team_id = $2 AND mode = $3{}",
            self.for_update()
        ))
        .bind(task_id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&mut **tx)
        .await?;
        row.ok_or(StoreError::NotFound)
    }
}
