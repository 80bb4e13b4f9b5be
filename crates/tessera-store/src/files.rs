//! Files uploaded or imported through the v1 API (the bytes live in file storage). Files
//! belong to a team and mode (the [`Scope`]); the storage quota is the team's, both modes
//! together.

use serde_json::Value;
use sqlx::{any::AnyRow, Row};
use tessera_core::{
    ids::FileId,
    storage::{QuotaExceeded, StorageQuota, StorageUsage},
    Scope,
};

use crate::{now_ms, projects::json_column, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct FileRecord {
    pub id: FileId,
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub project_names: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A file to record in a scope; its id was chosen first because its storage key holds it.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: FileId,
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub project_names: Value,
    pub source_url: Option<String>,
}

fn file_from_row(row: &AnyRow) -> StoreResult<FileRecord> {
    Ok(FileRecord {
        id: FileId::from_stored(row.try_get("id")?),
        filename: row.try_get("filename")?,
        mime_type: row.try_get("mime_type")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        storage_key: row.try_get("storage_key")?,
        project_names: json_column(row, "project_names")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A quota value as the schema stores it (BIGINT).
fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn usage_from(bytes: i64, files: i64) -> StorageUsage {
    StorageUsage {
        bytes: u64::try_from(bytes).unwrap_or(0),
        files: u64::try_from(files).unwrap_or(0),
    }
}

impl Store {
    /// What the scope's team stores now, both modes together.
    pub async fn storage_usage(&self, scope: &Scope) -> StoreResult<StorageUsage> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT bytes, files FROM team_storage WHERE team_id = $1")
                .bind(scope.team_id())
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map_or_else(StorageUsage::default, |(b, f)| usage_from(b, f)))
    }

    /// Records a stored file in `scope` if it fits the team's `quota`: the usage row is raised
    /// with a conditional UPDATE in the transaction that inserts the file, so concurrent
    /// uploads (on any replica) can never together pass the quota; the loser gets what is
    /// used now.
    pub async fn insert_file_within_quota(
        &self,
        scope: &Scope,
        new: &NewFile,
        quota: StorageQuota,
    ) -> StoreResult<Result<FileRecord, QuotaExceeded>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO team_storage (team_id, bytes, files, updated_at) VALUES ($1, 0, 0, $2) \
             ON CONFLICT (team_id) DO NOTHING",
        )
        .bind(scope.team_id())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let reserved = sqlx::query(
            "UPDATE team_storage SET bytes = bytes + $2, files = files + 1, updated_at = $3 \
             WHERE team_id = $1 AND bytes + $2 <= $4 AND files + 1 <= $5",
        )
        .bind(scope.team_id())
        .bind(new.size)
        .bind(now)
        .bind(bigint(quota.bytes))
        .bind(bigint(quota.files))
        .execute(&mut *tx)
        .await?;
        if reserved.rows_affected() == 0 {
            let (bytes, files): (i64, i64) =
                sqlx::query_as("SELECT bytes, files FROM team_storage WHERE team_id = $1")
                    .bind(scope.team_id())
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            let usage = usage_from(bytes, files);
            let size = u64::try_from(new.size).unwrap_or(u64::MAX);
            return Ok(Err(quota.admit(usage, size).err().unwrap_or(
                // Only reachable if usage fell between the two statements (files are never
                // deleted today): report the bytes as they stand.
                QuotaExceeded::Bytes {
                    used: usage.bytes,
                    limit: quota.bytes,
                },
            )));
        }
        sqlx::query(
            "INSERT INTO files (id, team_id, mode, filename, mime_type, size, sha256, storage_key, project_names, source_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(new.id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .bind(&new.filename)
        .bind(&new.mime_type)
        .bind(new.size)
        .bind(&new.sha256)
        .bind(&new.storage_key)
        .bind(new.project_names.to_string())
        .bind(new.source_url.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(FileRecord {
            id: new.id.clone(),
            filename: new.filename.clone(),
            mime_type: new.mime_type.clone(),
            size: new.size,
            sha256: new.sha256.clone(),
            storage_key: new.storage_key.clone(),
            project_names: new.project_names.clone(),
            created_at: now,
            updated_at: now,
        }))
    }

    /// The scope's file with this id.
    pub async fn get_file(
        &self,
        scope: &Scope,
        file_id: &FileId,
    ) -> StoreResult<Option<FileRecord>> {
        let row = sqlx::query(
            "SELECT id, filename, mime_type, size, sha256, storage_key, project_names, created_at, updated_at \
             FROM files WHERE id = $1 AND team_id = $2 AND mode = $3",
        )
        .bind(file_id.as_str())
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(file_from_row).transpose()
    }
}
