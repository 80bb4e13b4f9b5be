//! A labeler's own history: the tasks they completed, most recent first. Read from the usage
//! records, which name the labeler of every completed task (written in the completing
//! transaction, once per task), so the history needs no column of its own and cannot
//! disagree with what was billed.
//!
//! Only tasks in the labeler's current queue are listed: a labeler who left a team no longer
//! reads that team's tasks, even the ones they labeled.

use crate::{labeling::Queue, LabelerScope, Store, StoreResult, Task};

/// One page of a labeler's completed tasks.
#[derive(Debug, Clone)]
pub struct LabeledPage {
    /// Newest completion first.
    pub tasks: Vec<Task>,
    /// Where the next (older) page starts, when there is one: `completed_at.task_id`.
    pub next_cursor: Option<String>,
}

/// A cursor from [`LabeledPage::next_cursor`]; `None` for one not made by it.
fn parse_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (at, id) = cursor.split_once('.')?;
    Some((at.parse().ok()?, id))
}

/// The filter on the usage record's team for the labeler's queue, and its value (`$n = $n`
/// keeps the placeholders numbered the same for every queue).
fn queue_filter(labeler: &LabelerScope, n: usize) -> (String, String) {
    match labeler.queue() {
        Queue::Team(team) => (format!("u.team_id = ${n}"), team.as_str().to_owned()),
        Queue::Everyone => (format!("${n} = ${n}"), String::new()),
    }
}

impl Store {
    /// The labeler's completed tasks in their queue, newest completion first, `limit` a page,
    /// from `cursor` (a [`LabeledPage::next_cursor`]; an unreadable one starts at the newest).
    pub async fn labeled_tasks(
        &self,
        labeler: &LabelerScope,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<LabeledPage> {
        let (before_at, before_id) = cursor.and_then(parse_cursor).unwrap_or((i64::MAX, ""));
        let (team_filter, team) = queue_filter(labeler, 5);
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT u.task_id, u.completed_at FROM usage_records u \
             WHERE u.labeled_by = $1 AND {team_filter} \
             AND (u.completed_at < $2 OR (u.completed_at = $2 AND u.task_id < $3) OR $3 = '') \
             AND u.completed_at <= $2 \
             ORDER BY u.completed_at DESC, u.task_id DESC LIMIT $4"
        ))
        .bind(labeler.labeler_id())
        .bind(before_at)
        .bind(before_id)
        .bind(limit + 1)
        .bind(team)
        .fetch_all(&self.reader)
        .await?;
        let page_len = usize::try_from(limit).unwrap_or(0);
        let next_cursor = (rows.len() > page_len)
            .then(|| rows.get(page_len.saturating_sub(1)))
            .flatten()
            .map(|(id, at)| format!("{at}.{id}"));
        let ids: Vec<String> = rows.into_iter().take(page_len).map(|(id, _)| id).collect();
        let mut found = self.cross_tenant().tasks_by_ids(&ids).await?;
        let tasks = ids.iter().filter_map(|id| found.remove(id)).collect();
        Ok(LabeledPage { tasks, next_cursor })
    }

    /// A task this labeler completed, in their queue; `None` for any other task (one they
    /// did not label does not exist for them here).
    pub async fn labeled_task(
        &self,
        labeler: &LabelerScope,
        task_id: &str,
    ) -> StoreResult<Option<Task>> {
        let (team_filter, team) = queue_filter(labeler, 3);
        let labeled: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT u.task_id FROM usage_records u \
             WHERE u.task_id = $1 AND u.labeled_by = $2 AND {team_filter}"
        ))
        .bind(task_id)
        .bind(labeler.labeler_id())
        .bind(team)
        .fetch_optional(&self.reader)
        .await?;
        let Some((id,)) = labeled else {
            return Ok(None);
        };
        Ok(self
            .cross_tenant()
            .tasks_by_ids(std::slice::from_ref(&id))
            .await?
            .remove(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_read_back_or_ignored() {
        assert_eq!(parse_cursor("1700.tsk_a"), Some((1700, "tsk_a")));
        assert_eq!(parse_cursor("x.tsk_a"), None);
        assert_eq!(parse_cursor("1700"), None);
    }
}
