//! The labeler's pages: the queue (Next task claims the oldest pending live task under a
//! lease), the task view with instruction, attachment, params and a response editor checked
//! against the task type, Submit (completes the task, its callback and usage record in one
//! transaction) and Release.

use askama::Template;
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};

use crate::web::{Form, Path};
use serde::Deserialize;
use serde_json::Value;
use tessera_core::tasks::{check_response, synthetic_response, TaskType, MAX_RESPONSE_BYTES};
use tessera_store::{Claim, ClaimProblem, StoreError};

use crate::{
    state::AppState,
    web::{format_time, page, redirect_with_flash, render, Layout, SignedIn, WebError, WebResult},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/label", get(queue))
        .route("/label/next", post(next))
        .route("/label/{id}", get(task).post(submit))
        .route("/label/{id}/release", post(release))
        .route("/label/{id}/error", post(report_error))
}

#[derive(Template)]
#[template(path = "label.html")]
struct QueuePage {
    layout: Layout,
    waiting: i64,
    current: Option<String>,
    scope: &'static str,
    message: Option<String>,
}

async fn queue_page(
    state: &AppState,
    who: &SignedIn,
    message: Option<String>,
) -> WebResult<QueuePage> {
    let queue = who.labeling_queue().ok_or(WebError::Forbidden)?;
    let waiting = state.store.queue_length(queue).await?;
    let current = state
        .store
        .labeler_claim(&who.user.id)
        .await?
        .map(|c| c.task.id);
    Ok(QueuePage {
        layout: Layout::signed_in("Labeling", who, "/label"),
        waiting,
        current,
        scope: match queue {
            tessera_store::Queue::Everyone => "every team's",
            tessera_store::Queue::Team(_) => "your team's",
        },
        message,
    })
}

async fn queue(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    Ok(page(&queue_page(&state, &who, None).await?))
}

async fn next(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    let queue = who.labeling_queue().ok_or(WebError::Forbidden)?;
    let lease_ms = i64::try_from(state.config.label_lease.as_millis()).unwrap_or(600_000);
    match state
        .store
        .claim_next_task(&who.user.id, queue, lease_ms)
        .await?
    {
        Some(claim) => {
            who.authorize_labeling(&claim.task.team_id)?;
            Ok(axum::response::IntoResponse::into_response(
                axum::response::Redirect::to(&format!("/label/{}", claim.task.id)),
            ))
        }
        None => Ok(redirect_with_flash(
            "/label",
            "No tasks are waiting. Try again in a moment.",
        )),
    }
}

#[derive(Template)]
#[template(path = "label_task.html")]
struct TaskPage {
    layout: Layout,
    id: String,
    task_type: String,
    instruction: String,
    attachment: Option<String>,
    attachment_is_link: bool,
    params: String,
    response: String,
    lease_until: String,
    created: String,
    error: Option<String>,
    /// Labels for the box annotator (imageannotation tasks that ask for boxes on an http(s)
    /// image); `None` shows the JSON editor alone.
    box_labels: Option<Vec<String>>,
}

fn task_page(
    who: &SignedIn,
    claim: &Claim,
    response: Option<String>,
    error: Option<String>,
) -> TaskPage {
    let task = &claim.task;
    let params = task.params.as_object().cloned().unwrap_or_default();
    let attachment = params
        .get("attachment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let attachment_is_link = attachment
        .as_deref()
        .is_some_and(|a| a.starts_with("https://") || a.starts_with("http://"));
    let box_labels = (task.task_type == TaskType::ImageAnnotation.as_str() && attachment_is_link)
        .then(|| {
            params
                .get("geometries")
                .and_then(|g| g.get("box"))
                .and_then(|b| b.get("objects_to_annotate"))
                .and_then(Value::as_array)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|l| match l {
                            Value::String(s) => Some(s.clone()),
                            other => other
                                .get("choice")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        })
                        .collect::<Vec<_>>()
                })
        })
        .flatten()
        .filter(|labels| !labels.is_empty());
    let draws_boxes = box_labels.is_some();
    let template = || {
        if draws_boxes {
            // Boxes are drawn on the image; start from an empty response.
            return serde_json::to_string_pretty(
                &serde_json::json!({"annotations": [], "global_attributes": {}}),
            )
            .unwrap_or_default();
        }
        task.task_type
            .parse::<TaskType>()
            .map(|t| synthetic_response(t, &params))
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_else(|_| "{}".into())
    };
    TaskPage {
        layout: Layout::signed_in(format!("Label task {}", task.id), who, "/label"),
        id: task.id.clone(),
        task_type: task.task_type.clone(),
        instruction: task.instruction.clone().unwrap_or_default(),
        attachment_is_link,
        attachment,
        box_labels,
        params: serde_json::to_string_pretty(&task.params).unwrap_or_default(),
        response: response.unwrap_or_else(template),
        lease_until: format_time(claim.lease_until),
        created: format_time(task.created_at),
        error,
    }
}

/// Sends the labeler back to the queue with why this task is not theirs any more.
async fn dropped(state: &AppState, who: &SignedIn, problem: ClaimProblem) -> WebResult<Response> {
    let message = match problem {
        ClaimProblem::NotPending(status) if status == "canceled" => {
            "The customer canceled this task; it was dropped from your queue.".to_owned()
        }
        ClaimProblem::NotPending(status) => format!("This task is {status}; there is nothing left to label."),
        ClaimProblem::NotYours => {
            "You do not hold this task (your lease ran out, or another labeler has it). Take the next task.".to_owned()
        }
    };
    Ok(render(
        StatusCode::CONFLICT,
        &queue_page(state, who, Some(message)).await?,
    ))
}

async fn load(
    state: &AppState,
    who: &SignedIn,
    id: &str,
) -> WebResult<Result<Claim, ClaimProblem>> {
    let queue = who.labeling_queue().ok_or(WebError::Forbidden)?;
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    match state.store.claimed_task(&who.user.id, queue, id).await {
        Ok(Ok(claim)) => {
            who.authorize_labeling(&claim.task.team_id)?;
            Ok(Ok(claim))
        }
        Ok(Err(problem)) => Ok(Err(problem)),
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}

async fn task(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    match load(&state, &who, &id).await? {
        Ok(claim) => Ok(with_attachment_images(page(&task_page(
            &who, &claim, None, None,
        )))),
        Err(problem) => dropped(&state, &who, problem).await,
    }
}

/// The labeling page shows the customer's attachment, which lives on the customer's host: its
/// policy lets images load from http(s) sources (everything else stays as strict as elsewhere).
fn with_attachment_images(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

#[derive(Deserialize)]
struct SubmitInput {
    #[serde(default)]
    response: String,
}

async fn submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(input): Form<SubmitInput>,
) -> WebResult<Response> {
    let claim = match load(&state, &who, &id).await? {
        Ok(claim) => claim,
        Err(problem) => return dropped(&state, &who, problem).await,
    };
    let invalid = |message: String| {
        Ok(with_attachment_images(render(
            StatusCode::BAD_REQUEST,
            &task_page(&who, &claim, Some(input.response.clone()), Some(message)),
        )))
    };
    if input.response.len() > MAX_RESPONSE_BYTES {
        return invalid("The response must be at most 1 MiB of JSON.".into());
    }
    let response: Value = match serde_json::from_str(&input.response) {
        Ok(v) => v,
        Err(e) => return invalid(format!("The response is not valid JSON: {e}.")),
    };
    let task_type = match claim.task.task_type.parse::<TaskType>() {
        Ok(t) => t,
        Err(_) => return invalid("This task's type cannot be labeled here.".into()),
    };
    let params = claim.task.params.as_object().cloned().unwrap_or_default();
    if let Err(e) = check_response(task_type, &params, &response) {
        return invalid(e.0);
    }
    let labeler = format!("labeler {}", who.user.email);
    match state
        .store
        .submit_task(&who.user.id, &labeler, &id, &response)
        .await?
    {
        Ok(task) => {
            // The task's callback, or its batch's, may be queued now.
            state.callbacks_queued.notify_one();
            Ok(redirect_with_flash(
                "/label",
                &format!("Task {} submitted. Thank you!", task.id),
            ))
        }
        Err(problem) => dropped(&state, &who, problem).await,
    }
}

#[derive(Deserialize)]
struct ErrorInput {
    #[serde(default)]
    reason: String,
}

/// The task cannot be labeled: it ends as `error` with the reason, and the customer is
/// called back with it.
async fn report_error(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(input): Form<ErrorInput>,
) -> WebResult<Response> {
    let claim = match load(&state, &who, &id).await? {
        Ok(claim) => claim,
        Err(problem) => return dropped(&state, &who, problem).await,
    };
    let reason = match tessera_core::clean_text("The reason", &input.reason, 1000, true) {
        Ok(r) => r,
        Err(e) => {
            return Ok(with_attachment_images(render(
                StatusCode::BAD_REQUEST,
                &task_page(&who, &claim, None, Some(e.0)),
            )))
        }
    };
    let labeler = format!("labeler {}", who.user.email);
    match state
        .store
        .error_task(&who.user.id, &labeler, &id, &reason)
        .await?
    {
        Ok(task) => {
            // The task's callback, or its batch's, may be queued now.
            state.callbacks_queued.notify_one();
            Ok(redirect_with_flash(
                "/label",
                &format!("Task {} reported as not labelable.", task.id),
            ))
        }
        Err(problem) => dropped(&state, &who, problem).await,
    }
}

async fn release(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    who.labeling_queue().ok_or(WebError::Forbidden)?;
    let message = if state.store.release_task(&who.user.id, &id).await? {
        "Task released back to the queue."
    } else {
        "You were not holding that task."
    };
    Ok(redirect_with_flash("/label", message))
}
