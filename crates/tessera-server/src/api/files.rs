//! `/v1/files`: upload (multipart) and import (by URL, through the outbound guard). Bytes are
//! stored under `DATA_DIR/files/<team>/<mode>/<file id>`; the returned `attachment_url`
//! (`scaledata://<team>/<file id>`) can be used as a task attachment.

use axum::{
    extract::{multipart::MultipartRejection, Multipart, State},
    Json,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_core::Action;
use tessera_store::{new_file_id, FileRecord, NewFile};

use super::{
    auth::ApiCaller,
    wire::{iso, string_field, ApiError, ApiResult, JsonBody},
};
use crate::{outbound, state::AppState};

/// Largest file accepted by upload or import.
pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;

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

async fn store_bytes(
    state: &AppState,
    caller: &ApiCaller,
    filename: String,
    mime_type: String,
    bytes: Vec<u8>,
    project_names: Vec<String>,
    source_url: Option<String>,
) -> ApiResult<Json<Value>> {
    let id = new_file_id();
    let storage_key = format!("{}/{}/{id}", caller.team_id, caller.mode);
    let path = state.config.data_dir.join("files").join(&storage_key);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(ApiError::internal)?;
    }
    let partial = path.with_extension("partial");
    tokio::fs::write(&partial, &bytes)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(ApiError::internal)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let record = state
        .store
        .insert_file(&NewFile {
            id,
            team_id: caller.team_id.clone(),
            mode: caller.mode,
            filename,
            mime_type,
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            sha256,
            storage_key,
            project_names: json!(project_names),
            source_url,
        })
        .await?;
    Ok(Json(file_json(&caller.team_id, &record)))
}

fn project_names(value: Option<String>) -> Vec<String> {
    value.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Upload a file (`multipart/form-data` with a `file` part and optional fields such as
/// `project_name`). At most 50 MiB.
#[utoipa::path(
    post, path = "/v1/files/upload", tag = "files",
    request_body(content_type = "multipart/form-data", description = "A `file` part and optional `project_name`"),
    responses((status = 200, description = "{id, attachment_url, …}", body = serde_json::Value), (status = 400, body = super::ErrorBody), (status = 413, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
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
    let mut file: Option<(String, String, Vec<u8>)> = None;
    let mut project_name = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("The multipart body is malformed: {e}.")))?;
        let Some(mut field) = field else { break };
        match field.name().unwrap_or_default() {
            "file" => {
                let filename = clean_filename(field.file_name().unwrap_or("file"));
                let mime = field
                    .content_type()
                    .map(str::to_owned)
                    .unwrap_or_else(|| guess_mime(&filename).to_owned());
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| {
                    ApiError::bad_request(format!("The upload was interrupted: {e}."))
                })? {
                    if bytes.len() + chunk.len() > MAX_FILE_BYTES {
                        return Err(ApiError::new(
                            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                            format!("Files are limited to {} MiB.", MAX_FILE_BYTES / 1024 / 1024),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((filename, mime, bytes));
            }
            "project_name" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::bad_request(format!("Bad project_name field: {e}.")))?;
                super::wire::check_len("project_name", &text, 1000)?;
                project_name = Some(text);
            }
            _ => {}
        }
    }
    let (filename, mime, bytes) = file.ok_or_else(|| {
        ApiError::bad_request("Please include the file as a multipart part named \"file\".")
    })?;
    store_bytes(
        &state,
        &caller,
        filename,
        mime,
        bytes,
        project_names(project_name),
        None,
    )
    .await
}

/// Import a file from a URL (`{"file_url", "project_name"}`). The URL must be public unless
/// the operator allows private targets; a URL that cannot be fetched gives 400.
#[utoipa::path(
    post, path = "/v1/files/import", tag = "files", request_body = serde_json::Value,
    responses((status = 200, description = "{id, attachment_url, …}", body = serde_json::Value), (status = 400, body = super::ErrorBody)),
    security(("basic" = []), ("bearer" = []))
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
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| cannot(describe(&e)))? {
        if bytes.len() + chunk.len() > MAX_FILE_BYTES {
            return Err(cannot(format!(
                "the file is larger than {} MiB.",
                MAX_FILE_BYTES / 1024 / 1024
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let filename = clean_filename(
        url.path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("file"),
    );
    let mime = mime
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| guess_mime(&filename).to_owned());
    store_bytes(
        &state,
        &caller,
        filename,
        mime,
        bytes,
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
