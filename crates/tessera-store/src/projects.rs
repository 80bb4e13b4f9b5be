//! Projects and batches of the v1 API, partitioned by (team, mode): every method takes the
//! caller's [`Scope`] and reads or writes only that team's rows in that mode.

use serde_json::Value;
use sqlx::{any::AnyRow, Row};
use tessera_core::{
    ids::{BatchId, ProjectId},
    status::BatchStatus,
    tasks::TaskType,
    Scope,
};

use crate::{flag, now_ms, sql::Sql, Store, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub task_type: TaskType,
    pub params: Value,
    pub param_history: Value,
    pub rapid: bool,
    pub studio: bool,
    pub dataset_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A project to create; its team and mode are the scope it is created in.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    pub task_type: TaskType,
    pub params: Value,
    pub param_history: Value,
    pub rapid: bool,
    pub studio: bool,
    pub dataset_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Batch {
    pub id: BatchId,
    pub name: String,
    pub project_id: ProjectId,
    pub project_name: String,
    pub status: BatchStatus,
    pub callback: String,
    pub metadata: Value,
    pub calibration_batch: bool,
    pub self_label_batch: bool,
    pub finalized: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

/// A batch to create in one of the scope's projects.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub project_id: ProjectId,
    pub name: String,
    pub status: BatchStatus,
    pub callback: String,
    pub metadata: Value,
    pub calibration_batch: bool,
    pub self_label_batch: bool,
}

/// Filters of `GET /v1/batches`.
#[derive(Debug, Clone, Default)]
pub struct BatchFilter {
    pub project_id: Option<ProjectId>,
    pub status: Option<BatchStatus>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
}

/// Task counts of a batch by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub pending: i64,
    pub completed: i64,
    pub canceled: i64,
    pub error: i64,
}

pub(crate) fn json_column(row: &AnyRow, column: &str) -> StoreResult<Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Config(format!("bad JSON in {column}: {e}")))
}

const PROJECT_COLUMNS: &str =
    "id, name, type, params, param_history, rapid, studio, dataset_id, created_at, updated_at";

fn project_from_row(row: &AnyRow) -> StoreResult<Project> {
    let task_type: String = row.try_get("type")?;
    Ok(Project {
        id: ProjectId::from_stored(row.try_get("id")?),
        name: row.try_get("name")?,
        task_type: task_type.parse().map_err(|_| {
            StoreError::Config(format!("bad task type in projects.type: {task_type}"))
        })?,
        params: json_column(row, "params")?,
        param_history: json_column(row, "param_history")?,
        rapid: flag(row.try_get("rapid")?),
        studio: flag(row.try_get("studio")?),
        dataset_id: row.try_get("dataset_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const BATCH_COLUMNS: &str = "b.id, b.name, b.project_id, p.name AS project_name, b.status, b.callback, \
    b.metadata, b.calibration_batch, b.self_label_batch, b.finalized, b.created_at, b.updated_at, b.completed_at";

/// `SELECT {BATCH_COLUMNS}` from a batch with its project.
static BATCH_SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {BATCH_COLUMNS} FROM batches b JOIN projects p ON p.id = b.project_id")
});

/// The conditions of `filter` within the scope's team and mode.
fn push_batch_filter<'a>(q: &mut Sql<'a>, scope: &'a Scope, filter: &'a BatchFilter) {
    let mut c = q.conditions();
    c.eq("b.team_id", scope.team_id())
        .eq("b.mode", scope.mode().as_str());
    if let Some(project) = &filter.project_id {
        c.eq("b.project_id", project.as_str());
    }
    if let Some(status) = filter.status {
        c.eq("b.status", status.as_str());
    }
    if let Some(after) = filter.created_after {
        c.and().push("b.created_at >= ").bind(after);
    }
    if let Some(before) = filter.created_before {
        c.and().push("b.created_at <= ").bind(before);
    }
}

fn batch_from_row(row: &AnyRow) -> StoreResult<Batch> {
    let status: String = row.try_get("status")?;
    Ok(Batch {
        id: BatchId::from_stored(row.try_get("id")?),
        name: row.try_get("name")?,
        project_id: ProjectId::from_stored(row.try_get("project_id")?),
        project_name: row.try_get("project_name")?,
        status: BatchStatus::from_word(&status).ok_or_else(|| {
            StoreError::Config(format!("bad batch status in batches.status: {status}"))
        })?,
        callback: row.try_get("callback")?,
        metadata: json_column(row, "metadata")?,
        calibration_batch: flag(row.try_get("calibration_batch")?),
        self_label_batch: flag(row.try_get("self_label_batch")?),
        finalized: flag(row.try_get("finalized")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

impl Store {
    /// Creates a project in `scope`; `Unique(ProjectName)` when the name is taken in this mode.
    pub async fn create_project(&self, scope: &Scope, new: &NewProject) -> StoreResult<Project> {
        let id = ProjectId::generate();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO projects (id, team_id, mode, name, type, params, param_history, rapid, studio, dataset_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .bind(&new.name)
        .bind(new.task_type.as_str())
        .bind(new.params.to_string())
        .bind(new.param_history.to_string())
        .bind(i64::from(new.rapid))
        .bind(i64::from(new.studio))
        .bind(new.dataset_id.as_deref())
        .bind(now)
        .execute(&self.writer)
        .await?;
        self.find_project(scope, &new.name)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The scope's project of this name.
    pub async fn find_project(&self, scope: &Scope, name: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE team_id = $1 AND mode = $2 AND name = $3"
        ))
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .bind(name)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// The scope's projects, oldest first (as they were created).
    pub async fn list_projects(&self, scope: &Scope) -> StoreResult<Vec<Project>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE team_id = $1 AND mode = $2 ORDER BY created_at, id"
        ))
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// Changes a project's params and history with `change` (given the project as it is) in
    /// one transaction that locks the project, so concurrent updates each get their own
    /// version. `NotFound` unless the project is the scope's.
    pub async fn update_project_params(
        &self,
        scope: &Scope,
        project_id: &ProjectId,
        change: impl FnOnce(&Project) -> Result<(Value, Value), String>,
    ) -> StoreResult<Project> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1 AND team_id = $2 AND mode = $3{}",
            self.for_update()
        ))
        .bind(project_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut project = project_from_row(&row)?;
        let (params, history) = change(&project).map_err(StoreError::InvalidState)?;
        let now = now_ms();
        sqlx::query(
            "UPDATE projects SET params = $1, param_history = $2, updated_at = $3 \
             WHERE id = $4 AND team_id = $5 AND mode = $6",
        )
        .bind(params.to_string())
        .bind(history.to_string())
        .bind(now)
        .bind(project_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        project.params = params;
        project.param_history = history;
        project.updated_at = now;
        Ok(project)
    }

    /// Creates a batch in one of the scope's projects: `Unique(BatchName)` when the name is
    /// taken in this mode, `NotFound` when the project is not the scope's.
    pub async fn create_batch(&self, scope: &Scope, new: &NewBatch) -> StoreResult<Batch> {
        let id = BatchId::generate();
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO batches (id, team_id, mode, project_id, name, status, callback, metadata, calibration_batch, self_label_batch, created_at, updated_at) \
             SELECT $1, team_id, mode, id, $2, $3, $4, $5, $6, $7, $8, $8 FROM projects \
             WHERE id = $9 AND team_id = $10 AND mode = $11",
        )
        .bind(id.as_str())
        .bind(&new.name)
        .bind(new.status.as_str())
        .bind(&new.callback)
        .bind(new.metadata.to_string())
        .bind(i64::from(new.calibration_batch))
        .bind(i64::from(new.self_label_batch))
        .bind(now)
        .bind(new.project_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .execute(&self.writer)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.find_batch(scope, &new.name)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The scope's batch of this name, with its project's name.
    pub async fn find_batch(&self, scope: &Scope, name: &str) -> StoreResult<Option<Batch>> {
        let row = sqlx::query(&format!(
            "{} WHERE b.team_id = $1 AND b.mode = $2 AND b.name = $3",
            *BATCH_SELECT
        ))
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .bind(name)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    /// A page of the scope's batches, newest first, and the number of all that match.
    pub async fn list_batches(
        &self,
        scope: &Scope,
        filter: &BatchFilter,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Batch>, i64)> {
        let mut select = Sql::new(self.dialect);
        select.push(&BATCH_SELECT).push(" WHERE ");
        push_batch_filter(&mut select, scope, filter);
        select
            .push(" ORDER BY b.created_at DESC, b.id DESC LIMIT ")
            .bind(limit)
            .push(" OFFSET ")
            .bind(offset);
        let mut count = Sql::new(self.dialect);
        count.push("SELECT COUNT(*) FROM batches b WHERE ");
        push_batch_filter(&mut count, scope, filter);
        let rows = select.query().fetch_all(&self.reader).await?;
        let (total,) = count.query_as::<(i64,)>().fetch_one(&self.reader).await?;
        Ok((
            rows.iter()
                .map(batch_from_row)
                .collect::<StoreResult<_>>()?,
            total,
        ))
    }

    /// Finalizes one of the scope's batches (`staging` → `in_progress`); harmless on one
    /// already in progress, `NotFound` when the batch is not the scope's. A batch whose tasks
    /// are all final completes at once (and calls back).
    pub async fn finalize_batch(&self, scope: &Scope, batch_id: &BatchId) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE batches SET finalized = 1, updated_at = $1, \
             status = CASE WHEN status = 'staging' THEN 'in_progress' ELSE status END \
             WHERE id = $2 AND team_id = $3 AND mode = $4",
        )
        .bind(now)
        .bind(batch_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        crate::batch_completion::complete_batch_if_done(&mut tx, batch_id.as_str(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the metadata of one of the scope's batches; `NotFound` when it is not the
    /// scope's.
    pub async fn set_batch_metadata(
        &self,
        scope: &Scope,
        batch_id: &BatchId,
        metadata: &Value,
    ) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE batches SET metadata = $1, updated_at = $2 \
             WHERE id = $3 AND team_id = $4 AND mode = $5",
        )
        .bind(metadata.to_string())
        .bind(now_ms())
        .bind(batch_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The task counts by status of one of the scope's batches (all zero for another's). The
    /// scope is checked on the batch, so the count still reads the tasks by their batch index.
    pub async fn batch_counts(
        &self,
        scope: &Scope,
        batch_id: &BatchId,
    ) -> StoreResult<BatchCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM tasks WHERE batch_id = $1 \
             AND EXISTS (SELECT 1 FROM batches WHERE id = $1 AND team_id = $2 AND mode = $3) \
             GROUP BY status",
        )
        .bind(batch_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_all(&self.reader)
        .await?;
        let mut counts = BatchCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "pending" => counts.pending = n,
                "completed" => counts.completed = n,
                "canceled" => counts.canceled = n,
                "error" => counts.error = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}
