//! The labeling queue: live tasks wait as `pending`; a labeler claims the oldest one with a
//! lease, and submitting completes it — response, callback delivery and usage record in one
//! transaction (the outbox pattern), so a completed task always calls back and is billed once.

use serde_json::Value;
use tessera_core::Mode;

use crate::{
    batch_completion::complete_batch_if_done, callbacks::enqueue_task_delivery, new_id, now_ms,
    Store, StoreError, StoreResult, Task,
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

/// Who holds a pending task, as one labeler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// This labeler, under a lease that ends then (epoch ms).
    Mine(i64),
    /// Nobody: never claimed, released, or the last lease ran out and nobody took it since.
    Free,
    /// Another labeler, under an unexpired lease.
    Other,
}

/// Who holds the task now, from its claim columns.
fn holding(
    labeler_id: &str,
    claimed_by: Option<&str>,
    lease_until: Option<i64>,
    now: i64,
) -> Holding {
    match (claimed_by, lease_until) {
        (Some(by), Some(until)) if until >= now => {
            if by == labeler_id {
                Holding::Mine(until)
            } else {
                Holding::Other
            }
        }
        _ => Holding::Free,
    }
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
            .cross_tenant()
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
            .cross_tenant()
            .tasks_by_ids(std::slice::from_ref(&task_id))
            .await?
            .remove(&task_id);
        Ok(task.map(|task| Claim { task, lease_until }))
    }

    /// A live task of the labeler's queue and who holds it now, whatever its state
    /// (`NotFound` for no such live task in the queue: outside it a task does not exist).
    pub async fn task_for_labeler(
        &self,
        labeler_id: &str,
        queue: Queue<'_>,
        task_id: &str,
    ) -> StoreResult<(Task, Holding)> {
        let task = self
            .cross_tenant()
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
        let (by, until) = holder.unwrap_or_default();
        Ok((task, holding(labeler_id, by.as_deref(), until, now_ms())))
    }

    /// The task if this labeler holds it now; otherwise why not (`NotFound` for no such live
    /// task in the labeler's queue).
    pub async fn claimed_task(
        &self,
        labeler_id: &str,
        queue: Queue<'_>,
        task_id: &str,
    ) -> StoreResult<Result<Claim, ClaimProblem>> {
        let (task, holding) = self.task_for_labeler(labeler_id, queue, task_id).await?;
        if task.status != tessera_core::status::TaskStatus::Pending {
            return Ok(Err(ClaimProblem::NotPending(
                task.status.as_str().to_owned(),
            )));
        }
        match holding {
            Holding::Mine(lease_until) => Ok(Ok(Claim { task, lease_until })),
            Holding::Free | Holding::Other => Ok(Err(ClaimProblem::NotYours)),
        }
    }

    /// Locks a live task's row for the rest of `tx` (PostgreSQL; SQLite has one writer) and
    /// says whether `labeler_id` may work on it: pending, and held by them or by nobody (a
    /// lease that ran out with nobody taking the task since still lets its labeler finish).
    /// `Ok(Ok(true))` when the labeler's own lease still runs, `Ok(Ok(false))` when the task
    /// is free and would be re-claimed.
    async fn lock_for_labeler(
        &self,
        tx: &mut sqlx::AnyConnection,
        labeler_id: &str,
        task_id: &str,
        now: i64,
    ) -> StoreResult<Result<bool, ClaimProblem>> {
        let row: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(&format!(
            "SELECT status, claimed_by, lease_until FROM tasks WHERE id = $1 AND mode = 'live'{}",
            self.for_update()
        ))
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (status, by, until) = row.ok_or(StoreError::NotFound)?;
        if status != "pending" {
            return Ok(Err(ClaimProblem::NotPending(status)));
        }
        Ok(match holding(labeler_id, by.as_deref(), until, now) {
            Holding::Mine(_) => Ok(true),
            Holding::Free => Ok(false),
            Holding::Other => Err(ClaimProblem::NotYours),
        })
    }

    /// Extends the labeler's lease on a task to `lease_ms` from now, re-claiming it when the
    /// lease ran out and nobody took the task since; recorded in the task's history
    /// (`detail` says for how long). `Ok(Err(problem))` when the task is not pending any more
    /// or another labeler holds it.
    pub async fn extend_lease(
        &self,
        labeler_id: &str,
        labeler_label: &str,
        task_id: &str,
        lease_ms: i64,
        detail: &str,
    ) -> StoreResult<Result<Claim, ClaimProblem>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let still_mine = match self
            .lock_for_labeler(&mut tx, labeler_id, task_id, now)
            .await?
        {
            Ok(still_mine) => still_mine,
            Err(problem) => return Ok(Err(problem)),
        };
        let lease_until = now + lease_ms;
        sqlx::query(
            "UPDATE tasks SET claimed_by = $1, lease_until = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(labeler_id)
        .bind(lease_until)
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
        let event = if still_mine {
            "lease extended"
        } else {
            "re-claimed after the lease ran out"
        };
        let task =
            crate::tasks::record_and_read(self, tx, task_id, now, labeler_label, event, detail)
                .await?;
        Ok(Ok(Claim { task, lease_until }))
    }

    /// Completes a task the labeler holds, or held until a lease that ran out with nobody
    /// taking the task since (their work is not lost): the response, `completed_at`, the
    /// callback delivery (when the task has a callback URL), a usage record and the history
    /// line, in one transaction. `Ok(Err(problem))` when the task is not pending any more or
    /// another labeler holds it.
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

    /// Ends a task the labeler holds (as [`Store::submit_task`] defines it) as `error` (it cannot be labeled: broken attachment,
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
        // Re-claim (when the lease ran out and nobody took the task since) and finish in one
        // transaction, with the row locked: a labeler claiming it meanwhile waits, then finds
        // it finished; one who claimed it first makes this refuse.
        let mut tx = self.writer.begin().await?;
        let still_mine = match self
            .lock_for_labeler(&mut tx, labeler_id, task_id, now)
            .await?
        {
            Ok(still_mine) => still_mine,
            Err(problem) => return Ok(Err(problem)),
        };
        let detail = if still_mine {
            detail
        } else {
            format!("{detail} (after the lease ran out; nobody else held the task)")
        };
        let finished: Option<CompletedRow> = sqlx::query_as(
            "UPDATE tasks SET status = $1, response = $2, completed_at = $3, updated_at = $4, \
             claimed_by = NULL, lease_until = NULL \
             WHERE id = $5 AND mode = 'live' AND status = 'pending' \
             AND (claimed_by = $6 OR claimed_by IS NULL OR lease_until < $4) \
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
            return Ok(Err(ClaimProblem::NotYours));
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
