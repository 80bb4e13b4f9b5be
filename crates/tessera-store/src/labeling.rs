//! The labeling queue: live tasks wait as `pending`; a labeler claims the oldest one with a
//! lease, and submitting completes it — response, callback delivery and usage record in one
//! transaction (the outbox pattern), so a completed task always calls back and is billed once.

use serde_json::Value;
use tessera_core::Mode;

use crate::{
    callbacks::{complete_batch_if_done, enqueue_task_delivery},
    new_id, now_ms, Store, StoreError, StoreResult, Task,
};

/// Whose queue a labeler works: one team's (its own `labeler` members) or every team's
/// (platform workforce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue<'a> {
    Team(&'a str),
    Everyone,
}

/// Why a task cannot be worked on by this labeler any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimProblem {
    /// Not pending any more (canceled, or completed by someone else): the status it has.
    NotPending(String),
    /// Another labeler holds it, or this labeler's lease ran out and it went back to the queue.
    NotYours,
}

/// What completing a task returns: team, mode, callback URL, project, batch and type.
type CompletedRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

/// How a labeler ends a task.
enum Finish<'a> {
    Completed(&'a Value),
    Error(&'a str),
}

/// A task held by a labeler, and until when.
#[derive(Debug, Clone)]
pub struct Claim {
    pub task: Task,
    pub lease_until: i64,
}

/// Gives back every task `user_id` holds, in the transaction that takes them out of their
/// team or their labeler role: their claims are no longer valid, and the tasks should not wait
/// for the leases to run out (nor block the labeler's next task in a new team).
pub(crate) async fn release_claims(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// The labeler's current claim if it is still valid, else the oldest pending live task of
    /// the queue that nobody holds, claimed for `lease_ms`. `None` when the queue is empty.
    pub async fn claim_next_task(
        &self,
        labeler_id: &str,
        queue: Queue<'_>,
        lease_ms: i64,
    ) -> StoreResult<Option<Claim>> {
        let now = now_ms();
        if let Some(claim) = self.labeler_claim(labeler_id).await? {
            return Ok(Some(claim));
        }
        let lease_until = now + lease_ms;
        let (team_filter, team) = match queue {
            Queue::Team(team_id) => ("team_id = $4 AND ", team_id),
            Queue::Everyone => ("$4 = $4 AND ", ""),
        };
        let claimed: Option<(String,)> = sqlx::query_as(&format!(
            "UPDATE tasks SET claimed_by = $1, lease_until = $2 WHERE id = (\
             SELECT id FROM tasks WHERE {team_filter}mode = 'live' AND status = 'pending' \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at, id LIMIT 1{}) \
             AND status = 'pending' RETURNING id",
            self.skip_locked()
        ))
        .bind(labeler_id)
        .bind(lease_until)
        .bind(now)
        .bind(team)
        .fetch_optional(&self.writer)
        .await?;
        let Some((task_id,)) = claimed else {
            return Ok(None);
        };
        let task = self
            .tasks_by_ids(std::slice::from_ref(&task_id))
            .await?
            .remove(&task_id);
        Ok(task.map(|task| Claim { task, lease_until }))
    }

    /// The task this labeler holds under an unexpired lease, if any.
    pub async fn labeler_claim(&self, labeler_id: &str) -> StoreResult<Option<Claim>> {
        let now = now_ms();
        let held: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, lease_until FROM tasks WHERE claimed_by = $1 AND status = 'pending' \
             AND lease_until >= $2 ORDER BY lease_until DESC LIMIT 1",
        )
        .bind(labeler_id)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        let Some((task_id, lease_until)) = held else {
            return Ok(None);
        };
        let task = self
            .tasks_by_ids(std::slice::from_ref(&task_id))
            .await?
            .remove(&task_id);
        Ok(task.map(|task| Claim { task, lease_until }))
    }

    /// The task if this labeler holds it now; otherwise why not (`NotFound` for no such live
    /// task in the labeler's queue).
    pub async fn claimed_task(
        &self,
        labeler_id: &str,
        queue: Queue<'_>,
        task_id: &str,
    ) -> StoreResult<Result<Claim, ClaimProblem>> {
        // Outside the labeler's queue a task does not exist, whatever its state.
        let task = self
            .tasks_by_ids(&[task_id.to_owned()])
            .await?
            .remove(task_id)
            .filter(|t| t.mode == Mode::Live)
            .filter(|t| match queue {
                Queue::Team(team_id) => t.team_id == team_id,
                Queue::Everyone => true,
            })
            .ok_or(StoreError::NotFound)?;
        let holder: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT claimed_by, lease_until FROM tasks WHERE id = $1")
                .bind(task_id)
                .fetch_optional(&self.writer)
                .await?;
        if task.status != "pending" {
            return Ok(Err(ClaimProblem::NotPending(task.status)));
        }
        match holder {
            Some((Some(by), Some(until))) if by == labeler_id && until >= now_ms() => {
                Ok(Ok(Claim {
                    task,
                    lease_until: until,
                }))
            }
            _ => Ok(Err(ClaimProblem::NotYours)),
        }
    }

    /// Completes a task the labeler holds: the response, `completed_at`, the callback delivery
    /// (when the task has a callback URL), a usage record and the history line, in one
    /// transaction. `Ok(Err(problem))` when the labeler no longer holds a pending task.
    pub async fn submit_task(
        &self,
        labeler_id: &str,
        labeler_label: &str,
        task_id: &str,
        response: &Value,
    ) -> StoreResult<Result<Task, ClaimProblem>> {
        self.finish_claimed(
            labeler_id,
            labeler_label,
            task_id,
            Finish::Completed(response),
        )
        .await
    }

    /// Ends a task the labeler holds as `error` (it cannot be labeled: broken attachment,
    /// contradictory instruction…): the response is `{"error": reason}`, the customer gets the
    /// callback, nothing is billed.
    pub async fn error_task(
        &self,
        labeler_id: &str,
        labeler_label: &str,
        task_id: &str,
        reason: &str,
    ) -> StoreResult<Result<Task, ClaimProblem>> {
        self.finish_claimed(labeler_id, labeler_label, task_id, Finish::Error(reason))
            .await
    }

    async fn finish_claimed(
        &self,
        labeler_id: &str,
        labeler_label: &str,
        task_id: &str,
        finish: Finish<'_>,
    ) -> StoreResult<Result<Task, ClaimProblem>> {
        let now = now_ms();
        let (status, response, completed_at, detail) = match finish {
            Finish::Completed(response) => (
                "completed",
                response.clone(),
                Some(now),
                "labeled".to_owned(),
            ),
            Finish::Error(reason) => (
                "error",
                serde_json::json!({ "error": reason }),
                None,
                reason.to_owned(),
            ),
        };
        let mut tx = self.writer.begin().await?;
        let finished: Option<CompletedRow> = sqlx::query_as(
            "UPDATE tasks SET status = $1, response = $2, completed_at = $3, updated_at = $4, \
             claimed_by = NULL, lease_until = NULL \
             WHERE id = $5 AND mode = 'live' AND status = 'pending' AND claimed_by = $6 AND lease_until >= $4 \
             RETURNING team_id, mode, callback_url, project_id, batch_id, type",
        )
        .bind(status)
        .bind(response.to_string())
        .bind(completed_at)
        .bind(now)
        .bind(task_id)
        .bind(labeler_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((team_id, mode, callback_url, project_id, batch_id, task_type)) = finished else {
            drop(tx);
            return Ok(Err(
                match self
                    .claimed_task(labeler_id, Queue::Everyone, task_id)
                    .await?
                {
                    Ok(_) => ClaimProblem::NotYours,
                    Err(problem) => problem,
                },
            ));
        };
        let mode: Mode = mode
            .parse()
            .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))?;
        if let Some(target) = &callback_url {
            enqueue_task_delivery(&mut tx, &team_id, mode, task_id, target, now).await?;
        }
        if status == "completed" {
            sqlx::query(
                "INSERT INTO usage_records (id, team_id, task_id, project_id, task_type, labeled_by, completed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new_id("use"))
            .bind(&team_id)
            .bind(task_id)
            .bind(project_id)
            .bind(task_type)
            .bind(labeler_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(batch_id) = &batch_id {
            complete_batch_if_done(&mut tx, batch_id, now).await?;
        }
        let task =
            crate::tasks::record_and_read(self, tx, task_id, now, labeler_label, status, &detail)
                .await?;
        Ok(Ok(task))
    }

    /// Gives a held task back to the queue.
    pub async fn release_task(&self, labeler_id: &str, task_id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(task_id)
        .bind(labeler_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live tasks waiting in a queue (for the labeler's page).
    pub async fn queue_length(&self, queue: Queue<'_>) -> StoreResult<i64> {
        let (sql, team) = match queue {
            Queue::Team(team_id) => (
                "SELECT COUNT(*) FROM tasks WHERE team_id = $1 AND mode = 'live' AND status = 'pending'",
                team_id,
            ),
            Queue::Everyone => (
                "SELECT COUNT(*) FROM tasks WHERE $1 = $1 AND mode = 'live' AND status = 'pending'",
                "",
            ),
        };
        let (n,): (i64,) = sqlx::query_as(sql)
            .bind(team)
            .fetch_one(&self.reader)
            .await?;
        Ok(n)
    }

    /// Usage records of a team (billing reads these; tests check there is one per task).
    pub async fn usage_record_count(&self, team_id: &str) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM usage_records WHERE team_id = $1")
            .bind(team_id)
            .fetch_one(&self.reader)
            .await?;
        Ok(n)
    }
}
