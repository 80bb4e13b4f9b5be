//! `/v1/files`: upload (multipart) and import (by URL, through the outbound guard). Bytes are
//! stored under `DATA_DIR/files/<team>/<mode>/<file id>`; the returned `attachment_url`
//! (`scaledata://<team>/<file id>`) can be used as a task attachment.

use axum::{
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        Multipart, Request, State,
    },
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use tessera_core::storage::{QuotaExceeded, StorageQuota, StorageUsage};
use tessera_core::Action;
use tessera_store::{new_file_id, remove_blob, FileRecord, NewFile, PartialFile, WriteError};

use crate::api::{
    auth::ApiCaller,
    wire::{iso, string_field, ApiError, ApiResult, JsonBody},
    ErrorBody,
};
use crate::{outbound, state::AppState};

pub use tessera_core::storage::MAX_FILE_BYTES;

fn file_json(team_id: &str, file: &FileRecord) -> Value {
    json!({
        "id": file.id,
        "attachment_url": format!("scaledata://{team_id}/{}", file.id),
        "mime_type": file.mime_type,
        "size": file.size,
        "project_names": file.project_names,
        "created_at": iso(file.created_at),
        "updated_at": iso(file.updated_at),
    })
}

/// A MIME type from the filename's extension, for parts that do not state one.
fn guess_mime(filename: &str) -> &'static str {
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

fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// A file received into a partial file, with what the request said about it.
struct Received {
    filename: String,
    mime_type: String,
    partial: PartialFile,
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Files are limited to {} MiB.", MAX_FILE_BYTES / 1024 / 1024),
    )
}

/// The request-body limit answers an oversized `Content-Length` with a plain-text 413 before
/// any handler runs; the v1 API answers with JSON errors only.
pub async fn json_body_limit(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/v1/");
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if api && response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The request body is too large: files are limited to {} MiB, other requests to 1 MiB.",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        )
        .into_response();
    }
    response
}

/// A team's storage quota is used up: 403, saying what is used and what is allowed.
fn over_quota(err: &QuotaExceeded) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, err.to_string())
}

/// The team's storage as a request found it, and the largest file that may be written.
struct Room {
    quota: StorageQuota,
    usage: StorageUsage,
    cap: u64,
}

impl Room {
    /// Reads the team's usage and refuses at once when not even one more byte or file fits,
    /// before anything is read or written.
    async fn check(state: &AppState, caller: &ApiCaller) -> ApiResult<Room> {
        let quota = state.config.storage_quota;
        let usage = state.store.storage_usage(&caller.team_id).await?;
        quota.admit(usage, 1).map_err(|e| over_quota(&e))?;
        Ok(Room {
            quota,
            usage,
            cap: quota.largest_file(usage),
        })
    }

    /// Why writing stopped: the file passed the per-file limit (413) or the free quota (403).
    fn write_error(&self, err: WriteError) -> ApiError {
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

/// Moves a received file to its final name and records it within the team's quota (the
/// reservation that holds under concurrency); a file that cannot be recorded is removed again.
async fn store_received(
    state: &AppState,
    caller: &ApiCaller,
    received: Received,
    project_names: Vec<String>,
    source_url: Option<String>,
) -> ApiResult<Json<Value>> {
    let id = new_file_id();
    let storage_key = format!("{}/{}/{id}", caller.team_id, caller.mode);
    let blob = received
        .partial
        .persist(&state.files, &storage_key)
        .await
        .map_err(ApiError::internal)?;
    let inserted = state
        .store
        .insert_file_within_quota(
            &NewFile {
                id,
                team_id: caller.team_id.clone(),
                mode: caller.mode,
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
        Ok(Ok(record)) => Ok(Json(file_json(&caller.team_id, &record))),
        Ok(Err(exceeded)) => {
            remove_blob(&blob.path).await;
            Err(over_quota(&exceeded))
        }
        Err(err) => {
            remove_blob(&blob.path).await;
            Err(err.into())
        }
    }
}

fn project_names(value: Option<String>) -> Vec<String> {
    value.into_iter().filter(|p| !p.is_empty()).collect()
}

/// A multipart read that failed: 413 when the body passed the request limit, else 400.
fn multipart_error(err: &MultipartError, what: &str) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::bad_request(format!("{what}: {}.", err.body_text()))
    }
}

/// Streams a `file` part into a partial file, chunk by chunk.
async fn receive_part(
    state: &AppState,
    field: &mut Field<'_>,
    room: &Room,
) -> ApiResult<PartialFile> {
    let mut partial = state
        .files
        .begin(room.cap)
        .await
        .map_err(ApiError::internal)?;
    loop {
        let failed = match field.chunk().await {
            Ok(Some(chunk)) => match partial.write(&chunk).await {
                Ok(()) => continue,
                Err(err) => room.write_error(err),
            },
            Ok(None) => return Ok(partial),
            Err(err) => multipart_error(&err, "The upload was interrupted"),
        };
        partial.discard().await;
        return Err(failed);
    }
}

/// Reads every part; the file (the last `file` part) is streamed to disk as it arrives.
async fn read_parts(
    state: &AppState,
    room: &Room,
    multipart: &mut Multipart,
    file: &mut Option<Received>,
    project_name: &mut Option<String>,
) -> ApiResult<()> {
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, "The multipart body is malformed"))?
    {
        match field.name().unwrap_or_default() {
            "file" => {
                let filename = clean_filename(field.file_name().unwrap_or("file"));
                let mime_type = field
                    .content_type()
                    .map(str::to_owned)
                    .unwrap_or_else(|| guess_mime(&filename).to_owned());
                if let Some(earlier) = file.take() {
                    earlier.partial.discard().await;
                }
                let partial = receive_part(state, &mut field, room).await?;
                *file = Some(Received {
                    filename,
                    mime_type,
                    partial,
                });
            }
            "project_name" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| multipart_error(&e, "Bad project_name field"))?;
                crate::api::wire::check_len("project_name", &text, 1000)?;
                *project_name = Some(text);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Upload a file (`multipart/form-data` with a `file` part and optional fields such as
/// `project_name`). At most 50 MiB (413) and within the team's storage quota (403); the
/// bytes stream to disk as they arrive.
#[utoipa::path(
    post, path = "/v1/files/upload", tag = "files",
    request_body(content_type = "multipart/form-data", description = "A `file` part and optional `project_name`"),
    responses((status = 200, description = "{id, attachment_url, …}", body = serde_json::Value), (status = 400, body = ErrorBody), (status = 403, description = "Storage quota used up", body = ErrorBody), (status = 413, body = ErrorBody)),
)]
pub async fn upload_file(
    State(state): State<AppState>,
    caller: ApiCaller,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "Send the file as multipart/form-data with a part named \"file\" ({}).",
            e.body_text()
        ))
    })?;
    let room = Room::check(&state, &caller).await?;
    let mut file = None;
    let mut project_name = None;
    if let Err(err) = read_parts(&state, &room, &mut multipart, &mut file, &mut project_name).await
    {
        if let Some(received) = file {
            received.partial.discard().await;
        }
        return Err(err);
    }
    let received = file.ok_or_else(|| {
        ApiError::bad_request("Please include the file as a multipart part named \"file\".")
    })?;
    store_received(&state, &caller, received, project_names(project_name), None).await
}

/// Import a file from a URL (`{"file_url", "project_name"}`). The URL must be public unless
/// the operator allows private targets; a URL that cannot be fetched gives 400, a file over
/// 50 MiB 413, a file past the team's storage quota 403. The response streams to disk as it
/// arrives.
#[utoipa::path(
    post, path = "/v1/files/import", tag = "files", request_body = serde_json::Value,
    responses((status = 200, description = "{id, attachment_url, …}", body = serde_json::Value), (status = 400, body = ErrorBody), (status = 403, description = "Storage quota used up", body = ErrorBody), (status = 413, body = ErrorBody)),
)]
pub async fn import_file(
    State(state): State<AppState>,
    caller: ApiCaller,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::EditProjects)?;
    let body = body.object()?;
    let file_url = string_field(&body, "file_url", tessera_core::team::MAX_URL_LEN)?
        .ok_or_else(|| ApiError::bad_request("Please include \"file_url\"."))?;
    let project_name = string_field(&body, "project_name", 1000)?;
    let url = outbound::check_url(&file_url, state.config.allow_private_callbacks)
        .map_err(|e| ApiError::bad_request(format!("Cannot import file_url: {e}")))?;
    let room = Room::check(&state, &caller).await?;
    let cannot = |why: String| ApiError::bad_request(format!("Could not fetch file_url: {why}"));
    let mut response = state
        .outbound
        .get(url.clone())
        .send()
        .await
        .map_err(|e| cannot(describe(&e)))?;
    if !response.status().is_success() {
        return Err(cannot(format!(
            "the server answered HTTP {}.",
            response.status().as_u16()
        )));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_FILE_BYTES)
    {
        return Err(too_large());
    }
    if let Some(size) = response.content_length() {
        room.quota
            .admit(room.usage, size)
            .map_err(|e| over_quota(&e))?;
    }
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let mut partial = state
        .files
        .begin(room.cap)
        .await
        .map_err(ApiError::internal)?;
    loop {
        let failed = match response.chunk().await {
            Ok(Some(chunk)) => match partial.write(&chunk).await {
                Ok(()) => continue,
                Err(err) => room.write_error(err),
            },
            Ok(None) => break,
            Err(err) => cannot(describe(&err)),
        };
        partial.discard().await;
        return Err(failed);
    }
    let filename = clean_filename(
        url.path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("file"),
    );
    let mime_type = mime
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| guess_mime(&filename).to_owned());
    let received = Received {
        filename,
        mime_type,
        partial,
    };
    store_received(
        &state,
        &caller,
        received,
        project_names(project_name),
        Some(file_url),
    )
    .await
}

/// A short reason for a failed fetch, without internal detail.
fn describe(err: &reqwest::Error) -> String {
    let mut text = format!("{err}");
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    if err.is_timeout() {
        "the request timed out.".into()
    } else if text.contains("non-public") {
        "the host resolves only to private addresses, which are not allowed.".into()
    } else if err.is_connect() {
        "could not connect to the host.".into()
    } else {
        format!("{text}.")
    }
}
