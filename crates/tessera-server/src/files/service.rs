//! The rules of files, whichever way they arrive (upload or import): names and types, where
//! the bytes are kept, and the team's storage quota, checked before anything is read and
//! held under concurrency when the file is recorded.

use axum::http::StatusCode;
use serde_json::json;
use tessera_core::{
    ids::FileId,
    storage::{QuotaExceeded, StorageQuota, StorageUsage, MAX_FILE_BYTES},
    Scope,
};
use tessera_store::{FileRecord, NewFile, PartialFile, WriteError};

use crate::api::wire::{ApiError, ApiResult};
use crate::state::AppState;

/// A MIME type from the filename's extension, for parts that do not state one.
pub fn guess_mime(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

/// The last path segment of a client's filename, without control characters, at most 255
/// characters (`file` when nothing is left).
pub fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// The URL a task attachment names a stored file by.
pub fn attachment_url(scope: &Scope, file: &FileRecord) -> String {
    format!("scaledata://{}/{}", scope.team_id(), file.id)
}

/// A file received into a partial file, with what the request said about it.
pub struct Received {
    pub filename: String,
    pub mime_type: String,
    pub partial: PartialFile,
}

/// A file over the per-file limit: 413.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Files are limited to {} MiB.", MAX_FILE_BYTES / 1024 / 1024),
    )
}

/// A team's storage quota is used up: 403, saying what is used and what is allowed.
pub fn over_quota(err: &QuotaExceeded) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, err.to_string())
}

/// The team's storage as a request found it, and the largest file that may be written.
pub struct Room {
    pub quota: StorageQuota,
    pub usage: StorageUsage,
    pub cap: u64,
}

impl Room {
    /// Reads the team's usage and refuses at once when not even one more byte or file fits,
    /// before anything is read or written.
    pub async fn check(state: &AppState, scope: &Scope) -> ApiResult<Room> {
        let quota = state.config.storage_quota;
        let usage = state.store.storage_usage(scope).await?;
        quota.admit(usage, 1).map_err(|e| over_quota(&e))?;
        Ok(Room {
            quota,
            usage,
            cap: quota.largest_file(usage),
        })
    }

    /// Refuses a file whose announced size would pass the quota, before it is fetched.
    pub fn admit(&self, size: u64) -> ApiResult<()> {
        self.quota
            .admit(self.usage, size)
            .map_err(|e| over_quota(&e))
    }

    /// Why writing stopped: the file passed the per-file limit (413) or the free quota (403).
    pub fn write_error(&self, err: WriteError) -> ApiError {
        match err {
            WriteError::TooLarge { cap } if cap < MAX_FILE_BYTES => {
                match self.quota.admit(self.usage, cap.saturating_add(1)) {
                    Err(exceeded) => over_quota(&exceeded),
                    Ok(()) => too_large(),
                }
            }
            WriteError::TooLarge { .. } => too_large(),
            WriteError::Io(err) => ApiError::internal(err),
        }
    }
}

/// Moves a received file to its final name (`<team>/<mode>/<file id>`) and records it within
/// the team's quota (the reservation that holds under concurrency); a file that cannot be
/// recorded is removed again.
pub async fn store_received(
    state: &AppState,
    scope: &Scope,
    received: Received,
    project_names: Vec<String>,
    source_url: Option<String>,
) -> ApiResult<FileRecord> {
    let id = FileId::generate();
    let storage_key = format!("{}/{}/{id}", scope.team_id(), scope.mode());
    let blob = received
        .partial
        .persist(&state.files, &storage_key)
        .await
        .map_err(ApiError::internal)?;
    let inserted = state
        .store
        .insert_file_within_quota(
            scope,
            &NewFile {
                id,
                filename: received.filename,
                mime_type: received.mime_type,
                size: i64::try_from(blob.size).unwrap_or(i64::MAX),
                sha256: blob.sha256,
                storage_key,
                project_names: json!(project_names),
                source_url,
            },
            state.config.storage_quota,
        )
        .await;
    match inserted {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(exceeded)) => {
            state.files.remove(&blob.location).await;
            Err(over_quota(&exceeded))
        }
        Err(err) => {
            state.files.remove(&blob.location).await;
            Err(err.into())
        }
    }
}

/// The project names a file is filed under: the one given, if not empty.
pub fn project_names(value: Option<String>) -> Vec<String> {
    value.into_iter().filter(|p| !p.is_empty()).collect()
}
