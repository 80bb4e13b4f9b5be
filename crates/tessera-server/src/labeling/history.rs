//! A labeler's own history: the tasks they completed, newest first, a page at a time, each
//! opening read-only (instruction, attachment, the response they sent, its boxes drawn).
//! Who may read it is the labeling policy's answer (the labeler's [`LabelerScope`]): the same
//! people who label, and only tasks of the queue they label now.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;
use serde_json::Value;
use tessera_store::Task;

use super::{pages::with_attachment_images, service};
use crate::{
    state::AppState,
    web::{format_time, render, Layout, Path, SignedIn, WebError, WebResult},
};

/// Tasks a page of the history lists.
pub const PAGE_SIZE: i64 = 25;

/// Characters of an instruction the list shows (the task page has all of it).
const INSTRUCTION_PREVIEW: usize = 120;

struct HistoryRow {
    id: String,
    task_type: String,
    completed: String,
    instruction: String,
}

#[derive(Template)]
#[template(path = "label_history.html")]
struct HistoryPage {
    layout: Layout,
    rows: Vec<HistoryRow>,
    next_cursor: Option<String>,
    first_page: bool,
}

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    cursor: Option<String>,
}

/// The start of an instruction, cut at a character boundary, with an ellipsis when cut.
fn preview(text: &str) -> String {
    match text.char_indices().nth(INSTRUCTION_PREVIEW) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_owned(),
    }
}

pub(super) async fn history(
    State(state): State<AppState>,
    who: SignedIn,
    Query(query): Query<HistoryQuery>,
) -> WebResult<Response> {
    let scope = service::scope(&who)?;
    let cursor = query.cursor.filter(|c| c.len() <= 100);
    let page = state
        .store
        .labeled_tasks(&scope, cursor.as_deref(), PAGE_SIZE)
        .await?;
    let rows = page
        .tasks
        .iter()
        .map(|task| HistoryRow {
            id: task.id.clone(),
            task_type: task.task_type.as_str().to_owned(),
            completed: task.completed_at.map(format_time).unwrap_or_default(),
            instruction: preview(task.instruction.as_deref().unwrap_or_default()),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &HistoryPage {
            layout: Layout::signed_in("Your completed tasks", &who, "/label"),
            rows,
            next_cursor: page.next_cursor,
            first_page: cursor.is_none(),
        },
    ))
}

#[derive(Template)]
#[template(path = "label_done.html")]
struct DonePage {
    layout: Layout,
    id: String,
    task_type: String,
    instruction: String,
    attachment: Option<String>,
    /// The attachment as an image, when it is a public http(s) URL: a bucket's object is
    /// only signed or proxied for the labeler holding the pending task.
    image: Option<String>,
    completed: String,
    response: String,
}

/// An attachment the read-only page may load straight from the customer's host.
fn public_image(task: &Task, attachment: Option<&str>) -> Option<String> {
    let url = attachment?;
    let public = (url.starts_with("https://") || url.starts_with("http://"))
        && tessera_core::integrations::parse_location(url).is_none();
    let image_type = task.params.get("attachment_type").and_then(Value::as_str) == Some("image")
        || task.params.get("geometries").is_some()
        || task.params.get("objects_to_annotate").is_some();
    (public && image_type).then(|| url.to_owned())
}

/// One completed task, read-only: 404 unless this labeler completed it, in their queue.
pub(super) async fn done(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let scope = service::scope(&who)?;
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    let task = state
        .store
        .labeled_task(&scope, &id)
        .await?
        .ok_or(WebError::NotFound)?;
    who.authorize_labeling(&task.team_id)?;
    let attachment = task
        .params
        .get("attachment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let page = DonePage {
        layout: Layout::signed_in(format!("Completed task {}", task.id), &who, "/label"),
        image: public_image(&task, attachment.as_deref()),
        attachment,
        id: task.id.clone(),
        task_type: task.task_type.as_str().to_owned(),
        instruction: task.instruction.clone().unwrap_or_default(),
        completed: task.completed_at.map(format_time).unwrap_or_default(),
        response: task
            .response
            .as_ref()
            .and_then(|r| serde_json::to_string_pretty(r).ok())
            .unwrap_or_default(),
    };
    Ok(with_attachment_images(render(StatusCode::OK, &page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_instruction_is_cut_at_a_character() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(200);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), INSTRUCTION_PREVIEW + 1);
        assert!(cut.ends_with('…'));
    }
}
