//! The labeling queue: live tasks wait as `pending`; a labeler claims the oldest one with a
//! lease, and submitting completes it — response, callback delivery and usage record in one
//! transaction (the outbox pattern), so a completed task always calls back and is billed once.

use serde_json::Value;
use tessera_core::ids::{TeamId, UserId};
use tessera_core::status::TaskStatus;
use tessera_core::{can, Action, Actor, Mode};

use crate::{
    batch_completion::complete_batch_if_done, callbacks::enqueue_task_delivery, now_ms, Scope,
    Store, StoreError, StoreResult, Task,
};

/// Whose queue a labeler works: one team's (its own `labeler` members) or every team's
/// (platform workforce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queue {
    Team(TeamId),
    Everyone,
}

/// The labeling lane's scope: one labeler, and the queue the policy lets them work.
///
/// Labeling is not a tenant [`Scope`]: the platform workforce labels every team's tasks
/// (`Queue::Everyone`), and a claim belongs to the labeler, whichever team the task is in.
/// Nor is it [`crate::CrossTenant`]: a team's labeler must only ever see their own team's
/// queue. So the labeler methods take this scope, which (like `Scope`) only the policy makes
/// ([`LabelerScope::authorized`]): it carries the labeler the claims are keyed by and the
/// queue that admits tasks, and a handler without it cannot reach the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelerScope {
    labeler: UserId,
    queue: Queue,
}

impl LabelerScope {
    /// The queue `actor` labels, if the policy lets them label: every team's for the platform
    /// workforce, their own team's for a team member allowed to label.
    pub fn authorized(actor: &Actor) -> Option<Self> {
        let queue = match actor {
            Actor::Workforce { .. } => Queue::Everyone,
            Actor::TeamUser { team_id, .. } if can(actor, Action::LabelTasks, Some(team_id)) => {
                Queue::Team(TeamId::from_stored(team_id.clone()))
            }
            _ => return None,
        };
        Some(Self {
            labeler: UserId::from_stored(actor.user_id().to_owned()),
            queue,
        })
    }

    /// A labeler scope without a policy decision: for tests (as [`Scope::operator`]). Nothing
    /// that serves a request calls this.
    pub fn operator(labeler_id: &str, queue: Queue) -> Self {
        Self {
            labeler: UserId::from_stored(labeler_id.to_owned()),
            queue,
        }
    }

    /// The labeler whose claims these are (as the claim columns hold the id).
    pub fn labeler_id(&self) -> &str {
        self.labeler.as_str()
    }

    /// Whose tasks this labeler sees (the queue page says which).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Whether a task of `team_id` is in this labeler's queue.
    fn admits(&self, team_id: &str) -> bool {
        match &self.queue {
            Queue::Team(team) => team.as_str() == team_id,
            Queue::Everyone => true,
        }
    }
}

/// Why a task cannot be worked on by this labeler any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimProblem {
    /// Not pending any more (canceled, or completed by someone else): the status it has.
    NotPending(TaskStatus),
    /// Another labeler holds it, or this labeler's lease ran out and it went back to the queue.
    NotYours,
}

/// What finishing a task returns: team, mode, callback URL, project, batch and type.
type FinishedRow = (
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

/// The columns a [`Finish`] writes, and the history line's detail.
struct Outcome {
    status: TaskStatus,
    response: Value,
    completed_at: Option<i64>,
    detail: String,
}

impl Finish<'_> {
    fn outcome(&self, now: i64) -> Outcome {
        match self {
            Finish::Completed(response) => Outcome {
                status: TaskStatus::Completed,
                response: (*response).clone(),
                completed_at: Some(now),
                detail: "labeled".to_owned(),
            },
            Finish::Error(reason) => Outcome {
                status: TaskStatus::Error,
                response: serde_json::json!({ "error": reason }),
                completed_at: None,
                detail: (*reason).to_owned(),
            },
        }
    }
}

/// A task status read from the database (a word the schema does not allow is an error, not
/// a guess).
fn parse_status(raw: &str) -> StoreResult<TaskStatus> {
    raw.parse()
        .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))
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
    /// A task by id whatever its team (cross-tenant: the workforce's queue is every team's);
    /// the labeler methods check it against their queue.
    async fn labeling_task(&self, task_id: &str) -> StoreResult<Option<Task>> {
        Ok(self
            .cross_tenant()
            .tasks_by_ids(&[task_id.to_owned()])
            .await?
            .remove(task_id))
    }

    /// The labeler's current claim if it is still valid, else the oldest pending live task of
    /// their queue that nobody holds, claimed for `lease_ms`. `None` when the queue is empty.
    pub async fn claim_next_task(
        &self,
        labeler: &LabelerScope,
        lease_ms: i64,
    ) -> StoreResult<Option<Claim>> {
        let now = now_ms();
        if let Some(claim) = self.labeler_claim(labeler).await? {
            return Ok(Some(claim));
        }
        let lease_until = now + lease_ms;
        let (team_filter, team) = match &labeler.queue {
            Queue::Team(team_id) => ("team_id = $4 AND ", team_id.as_str()),
            Queue::Everyone => ("$4 = $4 AND ", ""),
        };
        let claimed: Option<(String,)> = sqlx::query_as(&format!(
            "UPDATE tasks SET claimed_by = $1, lease_until = $2 WHERE id = (\
             SELECT id FROM tasks WHERE {team_filter}mode = 'live' AND status = 'pending' \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at, id LIMIT 1{}) \
             AND status = 'pending' RETURNING id",
            self.skip_locked()
        ))
        .bind(labeler.labeler_id())
        .bind(lease_until)
        .bind(now)
        .bind(team)
        .fetch_optional(&self.writer)
        .await?;
        let Some((task_id,)) = claimed else {
            return Ok(None);
        };
        let task = self.labeling_task(&task_id).await?;
        Ok(task.map(|task| Claim { task, lease_until }))
    }

    /// The task this labeler holds under an unexpired lease, if any (a claim is the
    /// labeler's own: its task was in their queue when they took it, and leaving a team gives
    /// every claim back, see `release_claims`).
    pub async fn labeler_claim(&self, labeler: &LabelerScope) -> StoreResult<Option<Claim>> {
        let now = now_ms();
        let held: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, lease_until FROM tasks WHERE claimed_by = $1 AND status = 'pending' \
             AND lease_until >= $2 ORDER BY lease_until DESC LIMIT 1",
        )
        .bind(labeler.labeler_id())
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        let Some((task_id, lease_until)) = held else {
            return Ok(None);
        };
        let task = self.labeling_task(&task_id).await?;
        Ok(task.map(|task| Claim { task, lease_until }))
    }

    /// A live task of the labeler's queue and who holds it now, whatever its state
    /// (`NotFound` for no such live task in the queue: outside it a task does not exist).
    pub async fn task_for_labeler(
        &self,
        labeler: &LabelerScope,
        task_id: &str,
    ) -> StoreResult<(Task, Holding)> {
        let task = self
            .labeling_task(task_id)
            .await?
            .filter(|t| t.mode == Mode::Live)
            .filter(|t| labeler.admits(t.team_id.as_str()))
            .ok_or(StoreError::NotFound)?;
        let holder: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT claimed_by, lease_until FROM tasks WHERE id = $1")
                .bind(task_id)
                .fetch_optional(&self.writer)
                .await?;
        let (by, until) = holder.unwrap_or_default();
        Ok((
            task,
            holding(labeler.labeler_id(), by.as_deref(), until, now_ms()),
        ))
    }

    /// The task if this labeler holds it now; otherwise why not (`NotFound` for no such live
    /// task in the labeler's queue).
    pub async fn claimed_task(
        &self,
        labeler: &LabelerScope,
        task_id: &str,
    ) -> StoreResult<Result<Claim, ClaimProblem>> {
        let (task, holding) = self.task_for_labeler(labeler, task_id).await?;
        if task.status != TaskStatus::Pending {
            return Ok(Err(ClaimProblem::NotPending(task.status)));
        }
        match holding {
            Holding::Mine(lease_until) => Ok(Ok(Claim { task, lease_until })),
            Holding::Free | Holding::Other => Ok(Err(ClaimProblem::NotYours)),
        }
    }

    /// Locks a live task's row for the rest of `tx` (PostgreSQL; SQLite has one writer) and
    /// says whether the labeler may work on it: in their queue (`NotFound` otherwise),
    /// pending, and held by them or by nobody (a lease that ran out with nobody taking the
    /// task since still lets its labeler finish). `Ok(Ok(true))` when the labeler's own lease
    /// still runs, `Ok(Ok(false))` when the task is free and would be re-claimed.
    async fn lock_for_labeler(
        &self,
        tx: &mut sqlx::AnyConnection,
        labeler: &LabelerScope,
        task_id: &str,
        now: i64,
    ) -> StoreResult<Result<bool, ClaimProblem>> {
        let row: Option<(String, String, Option<String>, Option<i64>)> =
            sqlx::query_as(&format!(
                "SELECT team_id, status, claimed_by, lease_until FROM tasks WHERE id = $1 AND mode = 'live'{}",
                self.for_update()
            ))
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (_, status, by, until) = row
            .filter(|(team_id, ..)| labeler.admits(team_id))
            .ok_or(StoreError::NotFound)?;
        let status = parse_status(&status)?;
        if status != TaskStatus::Pending {
            return Ok(Err(ClaimProblem::NotPending(status)));
        }
        Ok(
            match holding(labeler.labeler_id(), by.as_deref(), until, now) {
                Holding::Mine(_) => Ok(true),
                Holding::Free => Ok(false),
                Holding::Other => Err(ClaimProblem::NotYours),
            },
        )
    }

    /// Extends the labeler's lease on a task to `lease_ms` from now, re-claiming it when the
    /// lease ran out and nobody took the task since; recorded in the task's history
    /// (`detail` says for how long). `Ok(Err(problem))` when the task is not pending any more
    /// or another labeler holds it.
    pub async fn extend_lease(
        &self,
        labeler: &LabelerScope,
        labeler_label: &str,
        task_id: &str,
        lease_ms: i64,
        detail: &str,
    ) -> StoreResult<Result<Claim, ClaimProblem>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let still_mine = match self
            .lock_for_labeler(&mut tx, labeler, task_id, now)
            .await?
        {
            Ok(still_mine) => still_mine,
            Err(problem) => return Ok(Err(problem)),
        };
        let lease_until = now + lease_ms;
        sqlx::query(
            "UPDATE tasks SET claimed_by = $1, lease_until = $2 WHERE id = $3 AND status = 'pending'",
        )
        .bind(labeler.labeler_id())
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
        labeler: &LabelerScope,
        labeler_label: &str,
        task_id: &str,
        response: &Value,
    ) -> StoreResult<Result<Task, ClaimProblem>> {
        self.finish_claimed(labeler, labeler_label, task_id, Finish::Completed(response))
            .await
    }

    /// Ends a task the labeler holds (as [`Store::submit_task`] defines it) as `error` (it
    /// cannot be labeled: broken attachment, contradictory instruction…): the response is
    /// `{"error": reason}`, the customer gets the callback, nothing is billed.
    pub async fn error_task(
        &self,
        labeler: &LabelerScope,
        labeler_label: &str,
        task_id: &str,
        reason: &str,
    ) -> StoreResult<Result<Task, ClaimProblem>> {
        self.finish_claimed(labeler, labeler_label, task_id, Finish::Error(reason))
            .await
    }

    async fn finish_claimed(
        &self,
        labeler: &LabelerScope,
        labeler_label: &str,
        task_id: &str,
        finish: Finish<'_>,
    ) -> StoreResult<Result<Task, ClaimProblem>> {
        let now = now_ms();
        let outcome = finish.outcome(now);
        // Re-claim (when the lease ran out and nobody took the task since) and finish in one
        // transaction, with the row locked: a labeler claiming it meanwhile waits, then finds
        // it finished; one who claimed it first makes this refuse.
        let mut tx = self.writer.begin().await?;
        let still_mine = match self
            .lock_for_labeler(&mut tx, labeler, task_id, now)
            .await?
        {
            Ok(still_mine) => still_mine,
            Err(problem) => return Ok(Err(problem)),
        };
        let detail = if still_mine {
            outcome.detail.clone()
        } else {
            format!(
                "{} (after the lease ran out; nobody else held the task)",
                outcome.detail
            )
        };
        let finished: Option<FinishedRow> = sqlx::query_as(
            "UPDATE tasks SET status = $1, response = $2, completed_at = $3, updated_at = $4, \
             claimed_by = NULL, lease_until = NULL \
             WHERE id = $5 AND mode = 'live' AND status = 'pending' \
             AND (claimed_by = $6 OR claimed_by IS NULL OR lease_until < $4) \
             RETURNING team_id, mode, callback_url, project_id, batch_id, type",
        )
        .bind(outcome.status.as_str())
        .bind(outcome.response.to_string())
        .bind(outcome.completed_at)
        .bind(now)
        .bind(task_id)
        .bind(labeler.labeler_id())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(finished) = finished else {
            return Ok(Err(ClaimProblem::NotYours));
        };
        let billed = outcome.status == TaskStatus::Completed;
        after_finish(&mut tx, labeler, task_id, finished, billed, now).await?;
        let status = outcome.status.as_str();
        let task =
            crate::tasks::record_and_read(self, tx, task_id, now, labeler_label, status, &detail)
                .await?;
        Ok(Ok(task))
    }

    /// Gives a held task back to the queue.
    pub async fn release_task(&self, labeler: &LabelerScope, task_id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2",
        )
        .bind(task_id)
        .bind(labeler.labeler_id())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Live tasks waiting in the labeler's queue (for the labeler's page).
    pub async fn queue_length(&self, labeler: &LabelerScope) -> StoreResult<i64> {
        let (sql, team) = match &labeler.queue {
            Queue::Team(team_id) => (
                "SELECT COUNT(*) FROM tasks WHERE team_id = $1 AND mode = 'live' AND status = 'pending'",
                team_id.as_str(),
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

    /// Usage records of the scope's team, both modes (billing reads these; tests check there
    /// is one per task).
    pub async fn usage_record_count(&self, scope: &Scope) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM usage_records WHERE team_id = $1")
            .bind(scope.team_id())
            .fetch_one(&self.reader)
            .await?;
        Ok(n)
    }
}

/// What a finished task sets off, in its transaction: the callback delivery (when the task
/// has a callback URL), the usage record (`billed`: completed, not ended as `error`), and the
/// completion of its batch when this was the batch's last open task.
async fn after_finish(
    tx: &mut sqlx::AnyConnection,
    labeler: &LabelerScope,
    task_id: &str,
    (team_id, mode, callback_url, project_id, batch_id, task_type): FinishedRow,
    billed: bool,
    now: i64,
) -> StoreResult<()> {
    let mode: Mode = mode
        .parse()
        .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))?;
    if let Some(target) = &callback_url {
        enqueue_task_delivery(&mut *tx, &team_id, mode, task_id, target, now).await?;
    }
    if billed {
        crate::billing::record_usage(
            &mut *tx,
            &team_id,
            task_id,
            project_id.as_deref(),
            &task_type,
            labeler.labeler_id(),
            now,
        )
        .await?;
    }
    if let Some(batch_id) = &batch_id {
        complete_batch_if_done(&mut *tx, batch_id, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::Role;

    fn team_user(role: Role) -> Actor {
        Actor::TeamUser {
            user_id: "usr_1".into(),
            team_id: "team_a".into(),
            role,
        }
    }

    #[test]
    fn only_the_policy_makes_a_labeler_scope_and_it_names_the_right_queue() {
        let workforce = Actor::Workforce {
            user_id: "usr_w".into(),
        };
        let scope = LabelerScope::authorized(&workforce).expect("the workforce labels");
        assert_eq!(scope.queue(), &Queue::Everyone);
        assert_eq!(scope.labeler_id(), "usr_w");
        assert!(scope.admits("team_a") && scope.admits("team_b"));

        let scope = LabelerScope::authorized(&team_user(Role::Labeler)).expect("a team labeler");
        assert_eq!(
            scope.queue(),
            &Queue::Team(TeamId::from_stored("team_a".into()))
        );
        assert!(scope.admits("team_a"));
        assert!(!scope.admits("team_b"), "another team's task");

        for role in [Role::Member, Role::Manager, Role::Admin] {
            assert_eq!(LabelerScope::authorized(&team_user(role)), None, "{role:?}");
        }
        let staff = Actor::Staff {
            user_id: "usr_s".into(),
        };
        assert_eq!(LabelerScope::authorized(&staff), None);
    }
}
