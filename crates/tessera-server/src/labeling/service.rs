//! The labeling rules the pages apply: which tasks a labeler sees (their [`LabelerScope`],
//! from the policy), whether they may still work on one, what a response must be before it is
//! sent, and what finishing a task sets off (the callback worker is woken).

use serde_json::Value;
use tessera_core::status::TaskStatus;
use tessera_core::tasks::{
    annotates_nothing, apply_choices, check_response, choice_questions, MAX_RESPONSE_BYTES,
};
use tessera_store::{Claim, ClaimProblem, Holding, LabelerScope, StoreError, Task};

use crate::{
    state::{AppState, Wrote},
    web::{humanize_ms, SignedIn, WebError, WebResult},
};

/// Where the labeler's browser loads a task's attachment from, or why it cannot (see
/// [`crate::integrations::service::attachment_source`]), in the task's team as the labeling
/// policy allows it.
pub(super) async fn attachment_source(
    state: &AppState,
    who: &SignedIn,
    task: &Task,
    url: &str,
) -> (Option<String>, Option<String>) {
    let Some(scope) = tessera_core::Scope::authorized(
        &who.actor,
        tessera_core::Action::LabelTasks,
        task.team_id.as_str(),
        tessera_core::Mode::Live,
    ) else {
        return (None, None);
    };
    let proxy_path = format!("/label/{}/attachment", task.id);
    crate::integrations::service::attachment_source(state, &scope, url, &proxy_path).await
}

/// A live task of the labeler's queue as they see it, and who holds it.
pub(super) struct Labeling {
    pub task: Task,
    pub holding: Holding,
}

impl Labeling {
    /// A task the labeler holds under `claim` (the store hands out claims on pending tasks
    /// only).
    pub fn claimed(claim: Claim) -> Self {
        Self {
            task: claim.task,
            holding: Holding::Mine(claim.lease_until),
        }
    }

    /// Why this labeler cannot work on the task now, if they cannot.
    pub fn problem(&self) -> Option<ClaimProblem> {
        if self.task.status != TaskStatus::Pending {
            return Some(ClaimProblem::NotPending(self.task.status));
        }
        (self.holding == Holding::Other).then_some(ClaimProblem::NotYours)
    }
}

/// The labeling scope of the signed-in person; 403 for anyone the policy does not let label.
pub(super) fn scope(who: &SignedIn) -> WebResult<LabelerScope> {
    who.labeler_scope().ok_or(WebError::Forbidden)
}

/// How long a claim lasts.
pub(super) fn lease_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.label_lease.as_millis()).unwrap_or(600_000)
}

/// How the task's history names the labeler.
fn labeler_label(who: &SignedIn) -> String {
    format!("labeler {}", who.user.email)
}

/// A live task of the labeler's queue, whoever holds it (404 outside the queue).
pub(super) async fn load(state: &AppState, who: &SignedIn, id: &str) -> WebResult<Labeling> {
    let scope = scope(who)?;
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    match state.store.task_for_labeler(&scope, id).await {
        Ok((task, holding)) => {
            who.authorize_labeling(task.team_id.as_str())?;
            Ok(Labeling { task, holding })
        }
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}

/// The labeler's task: the one they hold, else the oldest waiting one, claimed for a lease.
pub(super) async fn next(state: &AppState, who: &SignedIn) -> WebResult<Option<Claim>> {
    let scope = scope(who)?;
    let claim = state.store.claim_next_task(&scope, lease_ms(state)).await?;
    if let Some(claim) = &claim {
        who.authorize_labeling(claim.task.team_id.as_str())?;
    }
    Ok(claim)
}

/// Why a typed response is not sent.
pub(super) enum Refusal {
    /// It is not a response to this task; the message says why.
    Invalid(String),
    /// It annotates nothing, and the labeler has not confirmed that nothing is there.
    ConfirmEmpty,
}

/// The response a labeler typed, with the options they picked on the page's buttons written
/// in (see [`tessera_core::tasks::apply_choices`]), checked against the task: size, JSON, the
/// task type's shape, and (when it annotates nothing) the labeler's confirmation.
pub(super) fn check_submission(
    task: &Task,
    typed: &str,
    picks: &[(String, String)],
    confirmed_empty: bool,
) -> Result<Value, Refusal> {
    if typed.len() > MAX_RESPONSE_BYTES {
        return Err(Refusal::Invalid(format!(
            "The response is {} KiB; it may be at most {} KiB of JSON.",
            typed.len().div_ceil(1024),
            MAX_RESPONSE_BYTES / 1024
        )));
    }
    let mut response: Value = serde_json::from_str(typed)
        .map_err(|e| Refusal::Invalid(format!("The response is not valid JSON: {e}.")))?;
    let task_type = task.task_type;
    let params = task.params.as_object().cloned().unwrap_or_default();
    apply_choices(&choice_questions(task_type, &params), picks, &mut response);
    check_response(task_type, &params, &response).map_err(|e| Refusal::Invalid(e.0))?;
    if annotates_nothing(task_type, &response) && !confirmed_empty {
        return Err(Refusal::ConfirmEmpty);
    }
    Ok(response)
}

/// Completes the task with `response` (its callback, or its batch's, may be queued now).
pub(super) async fn submit(
    state: &AppState,
    who: &SignedIn,
    id: &str,
    response: &Value,
) -> WebResult<Result<Task, ClaimProblem>> {
    let scope = scope(who)?;
    let label = labeler_label(who);
    let done = state
        .store
        .submit_task(&scope, &label, id, response)
        .await?;
    if done.is_ok() {
        state.wake(Wrote::Callbacks);
    }
    Ok(done)
}

/// Ends the task as `error` with `reason` (the customer is called back with it).
pub(super) async fn report_error(
    state: &AppState,
    who: &SignedIn,
    id: &str,
    reason: &str,
) -> WebResult<Result<Task, ClaimProblem>> {
    let scope = scope(who)?;
    let label = labeler_label(who);
    let done = state.store.error_task(&scope, &label, id, reason).await?;
    if done.is_ok() {
        state.wake(Wrote::Callbacks);
    }
    Ok(done)
}

/// Keeps the task for another lease from now, recorded in its history; returns the lease.
pub(super) async fn extend(
    state: &AppState,
    who: &SignedIn,
    id: &str,
) -> WebResult<Result<Claim, ClaimProblem>> {
    let scope = scope(who)?;
    let lease = lease_ms(state);
    let detail = format!("reserved for another {}", humanize_ms(lease));
    let label = labeler_label(who);
    Ok(state
        .store
        .extend_lease(&scope, &label, id, lease, &detail)
        .await?)
}

/// Gives the task back to the queue; `false` when the labeler was not holding it.
pub(super) async fn release(state: &AppState, who: &SignedIn, id: &str) -> WebResult<bool> {
    let scope = scope(who)?;
    Ok(state.store.release_task(&scope, id).await?)
}
