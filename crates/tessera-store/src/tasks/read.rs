//! Reading tasks: one of a scope by id or by unique_id, its history, and (for workers) tasks
//! of any team by id.

use std::{collections::HashMap, str::FromStr};

use serde_json::Value;
use sqlx::{any::AnyRow, Row};
use tessera_core::Scope;

use super::{
    columns::{sized_columns, TASK_SELECT},
    Task, TaskEvent,
};
use crate::{projects::json_column, sql::Sql, CrossTenant, Store, StoreError, StoreResult};

fn optional_json(row: &AnyRow, column: &str) -> StoreResult<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Config(format!("bad JSON in {column}: {e}")))
    })
    .transpose()
}

/// A column holding one of a closed set of words (status, type, mode); a word the code does
/// not know is a broken row, reported, not a panic.
fn word<T: FromStr>(row: &AnyRow, column: &str) -> StoreResult<T> {
    let text: String = row.try_get(column)?;
    parse_word(column, &text)
}

fn optional_word<T: FromStr>(row: &AnyRow, column: &str) -> StoreResult<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| parse_word(column, &t)).transpose()
}

fn parse_word<T: FromStr>(column: &str, text: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Config(format!("unknown value \"{text}\" in tasks.{column}")))
}

/// Decodes a row of [`TASK_SELECT`] (PostgreSQL's pages and every single-task read).
pub(super) fn task_from_row(row: &AnyRow) -> StoreResult<Task> {
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
        mode: word(row, "mode")?,
        task_type: word(row, "type")?,
        status: word(row, "status")?,
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
        callback_succeeded: callback.map(crate::flag),
        customer_review_status: optional_word(row, "customer_review_status")?,
        audits: json_column(row, "audits")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

impl Store {
    pub async fn get_task(&self, scope: &Scope, task_id: &str) -> StoreResult<Option<Task>> {
        Ok(self
            .read_task_sized(scope, task_id)
            .await?
            .map(|(task, _)| task))
    }

    /// A task from the database, with the length of its stored text (what caching it costs).
    pub(crate) async fn read_task_sized(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<(Task, usize)>> {
        let mut q = Sql::new(self.dialect);
        q.push(&TASK_SELECT).push(" WHERE ");
        q.conditions()
            .eq("t.id", task_id)
            .eq("t.team_id", scope.team_id())
            .eq("t.mode", scope.mode().as_str());
        let Some(row) = q.query().fetch_optional(&self.reader).await? else {
            return Ok(None);
        };
        let mut bytes = 0;
        for column in sized_columns() {
            let text: Option<&str> = row.try_get(column)?;
            bytes += text.map_or(0, str::len);
        }
        Ok(Some((task_from_row(&row)?, bytes)))
    }

    /// The task that holds `unique_id` in this scope.
    pub async fn find_task_by_unique_id(
        &self,
        scope: &Scope,
        unique_id: &str,
    ) -> StoreResult<Option<Task>> {
        let mut q = Sql::new(self.dialect);
        q.push(&TASK_SELECT).push(" WHERE ");
        q.conditions()
            .eq("t.team_id", scope.team_id())
            .eq("t.mode", scope.mode().as_str())
            .eq("t.unique_id", unique_id);
        let row = q.query().fetch_optional(&self.writer).await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// The history of a task of this scope, oldest first (empty for a task outside it).
    pub async fn task_events(&self, scope: &Scope, task_id: &str) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query(
            "SELECT e.at, e.actor, e.event, e.detail FROM task_events e \
             JOIN tasks t ON t.id = e.task_id \
             WHERE e.task_id = $1 AND t.team_id = $2 AND t.mode = $3 ORDER BY e.at, e.id",
        )
        .bind(task_id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
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

impl CrossTenant {
    /// Tasks by id, keyed by id, whatever their team: the callback worker builds each
    /// claimed delivery's body from its task, and a labeler's queue may span every team.
    pub async fn tasks_by_ids(&self, ids: &[String]) -> StoreResult<HashMap<String, Task>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut q = Sql::new(self.store.dialect);
            q.push(&TASK_SELECT)
                .push(" WHERE t.id IN (")
                .list(chunk)
                .push(")");
            for row in q.query().fetch_all(&self.store.reader).await? {
                let task = task_from_row(&row)?;
                found.insert(task.id.clone(), task);
            }
        }
        Ok(found)
    }
}
