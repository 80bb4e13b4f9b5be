//! Proxy mode: an attachment in a team's bucket streamed through Tessera, so the bucket needs
//! no CORS rules and is never exposed to labelers' browsers. Served from Tessera's origin, so
//! only media types are shown inline, sandboxed; anything else downloads.

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use object_store::Attribute;
use tessera_core::integrations::AccessProblem;
use tessera_store::Scope;

use super::{clients::diagnose, service};
use crate::state::AppState;

/// Media types a browser may show inline from Tessera's origin (images but SVG, video, audio:
/// no HTML, no SVG, which could carry script; PDFs download, Chrome will not show them
/// sandboxed).
fn shown_inline(base: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
    };
    let Some((kind, sub)) = base.split_once('/') else {
        return false;
    };
    if !token(kind) || !token(sub) {
        return false;
    }
    (kind == "image" && sub != "svg+xml") || kind == "video" || kind == "audio"
}

/// `image/png; charset=x` → `image/png`, lower case.
fn base_type(content_type: &str) -> String {
    content_type
        .split([';', ','])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A type from the object's name, for objects stored without one.
fn guess_type(key: &str) -> &'static str {
    let ext = key.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Streams the attachment at `url` (a storage URL of the scope's team) to the browser; a
/// page-sized explanation when it cannot be read.
pub async fn stream(state: &AppState, scope: &Scope, url: &str) -> Response {
    match try_stream(state, scope, url).await {
        Ok(response) => response,
        Err(problem) => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("The attachment could not be read: {problem}"),
        )
            .into_response(),
    }
}

async fn try_stream(state: &AppState, scope: &Scope, url: &str) -> Result<Response, AccessProblem> {
    let resolved =
        service::resolve(state, scope, url)
            .await?
            .ok_or_else(|| AccessProblem::Other {
                detail: "this attachment is not in a connected bucket".into(),
            })?;
    let location = &resolved.location;
    let result = resolved
        .client
        .get(&location.key)
        .await
        .map_err(|e| diagnose(location.provider, &location.bucket, Some(&location.key), &e))?;
    let stored_type = result
        .attributes
        .get(&Attribute::ContentType)
        .map(|v| v.to_string())
        .filter(|t| !t.is_empty() && t != "binary/octet-stream");
    let content_type = stored_type.unwrap_or_else(|| guess_type(&location.key).to_owned());
    // Only the normalised base type is sent (no parameters or lists a browser might read
    // its own way), and only media is shown inline.
    let base = base_type(&content_type);
    let inline = shown_inline(&base);
    let content_type = if inline {
        base
    } else {
        "application/octet-stream".to_owned()
    };
    let size = result.meta.size;
    let mut response = Response::new(Body::from_stream(result.into_stream()));
    let headers = response.headers_mut();
    let value = |v: &str| {
        HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(header::CONTENT_TYPE, value(&content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(if inline { "inline" } else { "attachment" }),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_is_shown_inline() {
        assert!(shown_inline("image/png"));
        assert_eq!(base_type("Video/MP4; codecs=avc1"), "video/mp4");
        assert!(shown_inline(&base_type("video/mp4; codecs=avc1")));
        assert_eq!(
            base_type("image/png,text/html"),
            "image/png",
            "only the first type is sent"
        );
        assert!(!shown_inline("text/html"));
        assert!(!shown_inline("image/svg+xml"));
        assert!(!shown_inline("application/javascript"));
        assert!(
            !shown_inline("application/pdf"),
            "Chrome shows no sandboxed PDF: download"
        );
        assert_eq!(guess_type("a/b/cat.PNG"), "image/png");
        assert_eq!(guess_type("page.html"), "application/octet-stream");
    }
}
