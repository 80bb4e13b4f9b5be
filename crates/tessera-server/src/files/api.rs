//! `/v1/files`: upload (multipart) and import (by URL, through the outbound guard). Bytes are
//! stored under `DATA_DIR/files/<team>/<mode>/<file id>`; the returned `attachment_url`
//! (`scaledata://<team>/<file id>`) can be used as a task attachment.

use std::future::Future;

use axum::{
    body::Bytes,
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        Multipart, Request, State,
    },
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::Value;
use tessera_core::Scope;
use tessera_store::{FileRecord, PartialFile};
use utoipa::ToSchema;

use super::service::{
    attachment_url, clean_filename, guess_mime, project_names, store_received, too_large, Received,
    Room,
};
use crate::api::{
    wire::{iso, string_field, ApiError, ApiResult, JsonBody},
    ErrorBody,
};
use crate::authz::{perm, Authorized};
use crate::{outbound, state::AppState};

pub use tessera_core::storage::MAX_FILE_BYTES;

/// A stored file as the API returns it (Scale's File).
// Fields in alphabetical order: the order the keys have always had on the wire.
#[derive(Serialize, ToSchema)]
pub struct FileBody {
    /// `scaledata://<team>/<file id>`: what a task's attachment may name.
    attachment_url: String,
    created_at: String,
    id: String,
    mime_type: String,
    /// The names of the projects the file was uploaded for.
    #[schema(value_type = Vec<String>)]
    project_names: Value,
    /// In bytes.
    size: i64,
    updated_at: String,
}

impl FileBody {
    fn new(scope: &Scope, file: FileRecord) -> Self {
        Self {
            attachment_url: attachment_url(scope, &file),
            created_at: iso(file.created_at),
            id: file.id.into_string(),
            mime_type: file.mime_type,
            project_names: file.project_names,
            size: file.size,
            updated_at: iso(file.updated_at),
        }
    }
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
    stream_to_disk(state, room, field, |err: MultipartError| {
        multipart_error(&err, "The upload was interrupted")
    })
    .await
}

/// A body that arrives in chunks: an upload's file part or an imported URL's response.
trait Chunks: Send {
    type Error;
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
}

impl Chunks for Field<'_> {
    type Error = MultipartError;
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, MultipartError>> + Send {
        self.chunk()
    }
}

impl Chunks for reqwest::Response {
    type Error = reqwest::Error;
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, reqwest::Error>> + Send {
        self.chunk()
    }
}

/// Writes the chunks of `source` into a new partial file within `room`; a failed read is
/// answered with `read_failed`'s error. The partial file is discarded on any error.
async fn stream_to_disk<C: Chunks>(
    state: &AppState,
    room: &Room,
    source: &mut C,
    read_failed: impl Fn(C::Error) -> ApiError + Send,
) -> ApiResult<PartialFile> {
    let mut partial = state
        .files
        .begin(room.cap)
        .await
        .map_err(ApiError::internal)?;
    loop {
        let failed = match source.next_chunk().await {
            Ok(Some(chunk)) => match partial.write(&chunk).await {
                Ok(()) => continue,
                Err(err) => room.write_error(err),
            },
            Ok(None) => return Ok(partial),
            Err(err) => read_failed(err),
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
    responses((status = 200, body = FileBody), (status = 400, body = ErrorBody), (status = 403, description = "Storage quota used up", body = ErrorBody), (status = 413, body = ErrorBody)),
)]
pub async fn upload_file(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<FileBody>> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "Send the file as multipart/form-data with a part named \"file\" ({}).",
            e.body_text()
        ))
    })?;
    let room = Room::check(&state, &scope).await?;
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
    let record =
        store_received(&state, &scope, received, project_names(project_name), None).await?;
    Ok(Json(FileBody::new(&scope, record)))
}

/// Import a file from a URL (`{"file_url", "project_name"}`). The URL must be public unless
/// the operator allows private targets; a URL that cannot be fetched gives 400, a file over
/// 50 MiB 413, a file past the team's storage quota 403. The response streams to disk as it
/// arrives.
#[utoipa::path(
    post, path = "/v1/files/import", tag = "files", request_body = serde_json::Value,
    responses((status = 200, body = FileBody), (status = 400, body = ErrorBody), (status = 403, description = "Storage quota used up", body = ErrorBody), (status = 413, body = ErrorBody)),
)]
pub async fn import_file(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::EditProjects>,
    body: JsonBody,
) -> ApiResult<Json<FileBody>> {
    let body = body.object()?;
    let file_url = string_field(&body, "file_url", tessera_core::team::MAX_URL_LEN)?
        .ok_or_else(|| ApiError::bad_request("Please include \"file_url\"."))?;
    let project_name = string_field(&body, "project_name", 1000)?;
    let url = outbound::check_url(&file_url, state.config.allow_private_callbacks)
        .map_err(|e| ApiError::bad_request(format!("Cannot import file_url: {e}")))?;
    let room = Room::check(&state, &scope).await?;
    let (partial, mime) = fetch(&state, &room, url.clone()).await?;
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
    let names = project_names(project_name);
    let record = store_received(&state, &scope, received, names, Some(file_url)).await?;
    Ok(Json(FileBody::new(&scope, record)))
}

/// A fetch of `file_url` that failed: 400 with the reason.
fn cannot_fetch(why: String) -> ApiError {
    ApiError::bad_request(format!("Could not fetch file_url: {why}"))
}

/// Fetches `url` into a partial file, chunk by chunk, refusing at once a response whose
/// announced length passes the per-file limit or the quota; with the MIME type the server
/// stated, if any.
async fn fetch(
    state: &AppState,
    room: &Room,
    url: url::Url,
) -> ApiResult<(PartialFile, Option<String>)> {
    let mut response = state
        .outbound
        .get(url)
        .send()
        .await
        .map_err(|e| cannot_fetch(describe(&e)))?;
    if !response.status().is_success() {
        return Err(cannot_fetch(format!(
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
        room.admit(size)?;
    }
    let mime = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let partial = stream_to_disk(state, room, &mut response, |err: reqwest::Error| {
        cannot_fetch(describe(&err))
    })
    .await?;
    Ok((partial, mime))
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_core::{
        ids::{FileId, TeamId},
        Action, Actor, Mode,
    };

    use super::*;

    /// The body is byte for byte what the `json!` map it replaced produced.
    #[test]
    fn the_body_keeps_its_wire_shape() {
        let team = TeamId::generate();
        let key = Actor::ApiKey {
            key_id: "key".into(),
            team_id: team.to_string(),
            mode: Mode::Test,
        };
        let scope = Scope::authorized(&key, Action::EditProjects, team.as_str(), Mode::Test)
            .expect("a key acts in its own team");
        let file = FileRecord {
            id: FileId::generate(),
            filename: "a.png".into(),
            mime_type: "image/png".into(),
            size: 12,
            sha256: "00".into(),
            storage_key: "k".into(),
            project_names: json!(["p"]),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_123,
        };
        let old = json!({
            "id": file.id,
            "attachment_url": format!("scaledata://{}/{}", scope.team_id(), file.id),
            "mime_type": file.mime_type, "size": file.size, "project_names": file.project_names,
            "created_at": iso(file.created_at), "updated_at": iso(file.updated_at),
        });
        let new = serde_json::to_string(&FileBody::new(&scope, file)).unwrap();
        assert_eq!(new, old.to_string());
    }
}
