//! The rules of tasks, shared by the v1 API and the dashboard: what a create request may
//! carry, how tags and metadata are checked, and what an audit records.

use serde_json::{json, Value};

use crate::api::wire::{check_len, iso, ApiError, ApiResult};

pub const MAX_UNIQUE_ID: usize = 512;
pub const MAX_INSTRUCTION: usize = 100_000;
pub const MAX_TAGS: usize = 100;
pub const MAX_TAG_LEN: usize = 128;
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Top-level fields of a create request that are not task params.
pub const TOP_LEVEL: [&str; 7] = [
    "project",
    "batch",
    "instruction",
    "callback_url",
    "unique_id",
    "metadata",
    "tags",
];
/// Legacy top-level fields passed through as they came.
pub const PASSTHROUGH: [&str; 2] = ["urgency", "priority"];

pub fn parse_tags(value: Option<&Value>) -> ApiResult<Option<Vec<String>>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(one)) => vec![Value::String(one.clone())],
        Some(_) => return Err(ApiError::bad_request("tags must be a list of strings.")),
    };
    let tags = items
        .into_iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ApiError::bad_request("tags must be a list of strings."))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    check_tags(&tags)?;
    Ok(Some(tags))
}

pub fn check_tags(tags: &[String]) -> ApiResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "A task has at most {MAX_TAGS} tags."
        )));
    }
    for tag in tags {
        if tag.is_empty() {
            return Err(ApiError::bad_request("Tags must not be empty."));
        }
        check_len("A tag", tag, MAX_TAG_LEN)?;
    }
    Ok(())
}

pub fn check_metadata(metadata: &Value) -> ApiResult<()> {
    if !metadata.is_object() {
        return Err(ApiError::bad_request("metadata must be a JSON object."));
    }
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::bad_request(format!(
            "metadata must be at most {} KiB of JSON.",
            MAX_METADATA_BYTES / 1024
        )));
    }
    Ok(())
}

/// One entry of a task's `audits` list.
pub fn audit_entry(auditor: &str, accepted: bool, comments: Option<&str>) -> Value {
    json!({
        "audited_by": auditor,
        "audited_at": iso(tessera_store::now_ms()),
        "audit_result": if accepted { "accepted" } else { "rejected" },
        "comments": comments,
    })
}

pub fn dedup(tags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}
