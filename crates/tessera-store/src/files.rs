//! Files uploaded or imported through the v1 API (the bytes live in file storage).

use serde_json::Value;
use sqlx::{any::AnyRow, Row};
use tessera_core::Mode;

use crate::{new_id, now_ms, projects::json_column, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct FileRecord {
    pub id: String,
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub project_names: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: String,
    pub team_id: String,
    pub mode: Mode,
    pub filename: String,
    pub mime_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub project_names: Value,
    pub source_url: Option<String>,
}

/// A fresh file id (also used in its storage key before the row exists).
pub fn new_file_id() -> String {
    new_id("file")
}

fn file_from_row(row: &AnyRow) -> StoreResult<FileRecord> {
    Ok(FileRecord {
        id: row.try_get("id")?,
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

impl Store {
    pub async fn insert_file(&self, new: &NewFile) -> StoreResult<FileRecord> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO files (id, team_id, mode, filename, mime_type, size, sha256, storage_key, project_names, source_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(&new.id)
        .bind(&new.team_id)
        .bind(new.mode.as_str())
        .bind(&new.filename)
        .bind(&new.mime_type)
        .bind(new.size)
        .bind(&new.sha256)
        .bind(&new.storage_key)
        .bind(new.project_names.to_string())
        .bind(new.source_url.as_deref())
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(FileRecord {
            id: new.id.clone(),
            filename: new.filename.clone(),
            mime_type: new.mime_type.clone(),
            size: new.size,
            sha256: new.sha256.clone(),
            storage_key: new.storage_key.clone(),
            project_names: new.project_names.clone(),
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn get_file(
        &self,
        team_id: &str,
        mode: Mode,
        file_id: &str,
    ) -> StoreResult<Option<FileRecord>> {
        let row = sqlx::query(
            "SELECT id, filename, mime_type, size, sha256, storage_key, project_names, created_at, updated_at \
             FROM files WHERE id = $1 AND team_id = $2 AND mode = $3",
        )
        .bind(file_id)
        .bind(team_id)
        .bind(mode.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(file_from_row).transpose()
    }
}
