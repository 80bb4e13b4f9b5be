//! The labeler's pages: the queue (Next task claims the oldest pending live task under a
//! lease), the task view with instruction, attachment, params, the lease's countdown with
//! Extend, and a response editor checked against the task type, Submit (completes the task,
//! its callback and usage record in one transaction; also after the lease ran out, while
//! nobody else took the task) and Release. Every refusal shows the task page again with the
//! labeler's typed response.

use askama::Template;
use axum::{
    extract::{DefaultBodyLimit, FromRequest, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};

use crate::web::{
    csrf::{OversizedForm, MAX_RESPONSE_FORM_BYTES},
    humanize_ms, Form, Path,
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;
use tessera_core::tasks::{
    annotates_nothing, check_response, response_template, TaskType, MAX_RESPONSE_BYTES,
};
use tessera_store::{Claim, ClaimProblem, Holding, StoreError, Task};

use crate::{
    state::AppState,
    web::{format_time, page, redirect_with_flash, render, Layout, SignedIn, WebError, WebResult},
};

pub fn router() -> Router<AppState> {
    // The routes that carry a response take what the API takes (csrf::RESPONSE_FORM_ROUTES).
    let response_limit = DefaultBodyLimit::max(MAX_RESPONSE_FORM_BYTES);
    Router::new()
        .route("/label", get(queue))
        .route("/label/next", post(next))
        .route("/label/{id}", get(task).post(submit).layer(response_limit))
        .route("/label/{id}/extend", post(extend).layer(response_limit))
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

/// The lease, as the task page shows it (and app.js counts it down).
struct LeaseView {
    /// When it ends, `HH:MM:SS UTC`.
    until: String,
    /// Milliseconds left when the page was made (the countdown does not trust the browser's
    /// clock).
    left_ms: i64,
    /// The lease length, for when to warn.
    lease_ms: i64,
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
    /// The lease, when this labeler holds the task.
    lease: Option<LeaseView>,
    /// Why the labeler does not hold the task (and what they can still do).
    hold_note: Option<String>,
    /// The task is pending and nobody else holds it: Submit and Extend are offered.
    workable: bool,
    created: String,
    error: Option<String>,
    /// A confirmation (lease extended).
    notice: Option<String>,
    /// The response annotates nothing: offer "Submit with no …".
    confirm_empty: bool,
    /// What there is none of ("boxes", "annotations").
    nothing: &'static str,
    max_response_bytes: usize,
    /// Labels for the box annotator (imageannotation tasks that ask for boxes on an http(s)
    /// image); `None` shows the JSON editor alone.
    box_labels: Option<Vec<String>>,
}

/// Formats epoch milliseconds as `HH:MM:SS UTC`: a lease is minutes long, so its end needs
/// the seconds.
fn format_clock(ms: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn lease_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.label_lease.as_millis()).unwrap_or(600_000)
}

/// What the page says about a task the labeler cannot work on any more, if so.
fn problem_message(problem: &ClaimProblem) -> String {
    match problem {
        ClaimProblem::NotPending(status) if status == "canceled" => {
            "The customer canceled this task; your response was not sent (it is kept below if you want to copy it).".to_owned()
        }
        ClaimProblem::NotPending(status) => format!(
            "This task is {status}; there is nothing left to label. Your response was not sent (it is kept below)."
        ),
        ClaimProblem::NotYours => {
            "You do not hold this task any more: another labeler took it after your reservation ran out. Your response was not sent; it is kept below so you can copy it. Take the next task.".to_owned()
        }
    }
}

/// Why this labeler cannot work on the task now, if they cannot.
fn problem_of(task: &Task, holding: Holding) -> Option<ClaimProblem> {
    if task.status != tessera_core::status::TaskStatus::Pending {
        return Some(ClaimProblem::NotPending(task.status.as_str().to_owned()));
    }
    (holding == Holding::Other).then_some(ClaimProblem::NotYours)
}

/// The task page: `response` is what the labeler typed (the template when `None`).
fn task_page(
    state: &AppState,
    who: &SignedIn,
    task: &Task,
    holding: Holding,
    response: Option<String>,
    error: Option<String>,
) -> TaskPage {
    let params = task.params.as_object().cloned().unwrap_or_default();
    let attachment = params
        .get("attachment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let attachment_is_link = attachment
        .as_deref()
        .is_some_and(|a| a.starts_with("https://") || a.starts_with("http://"));
    let box_labels = (task.task_type == TaskType::ImageAnnotation && attachment_is_link)
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
    // The type's shape with nothing chosen: submitting it unchanged is refused (or, with no
    // annotations, asks for confirmation).
    let template = || {
        serde_json::to_string_pretty(&response_template(task.task_type, &params))
            .unwrap_or_default()
    };
    let problem = problem_of(task, holding);
    let (lease, hold_note) = match (&problem, holding) {
        (Some(_), _) => (None, None),
        (None, Holding::Mine(until)) => (
            Some(LeaseView {
                until: format_clock(until),
                left_ms: (until - tessera_store::now_ms()).max(0),
                lease_ms: lease_ms(state),
            }),
            None,
        ),
        (None, _) => (
            None,
            Some("Your reservation ran out, but nobody else has taken this task: you can still submit it, or press Extend to reserve it again.".to_owned()),
        ),
    };
    TaskPage {
        layout: Layout::signed_in(format!("Label task {}", task.id), who, "/label"),
        id: task.id.clone(),
        task_type: task.task_type.as_str().to_owned(),
        instruction: task.instruction.clone().unwrap_or_default(),
        attachment_is_link,
        attachment,
        nothing: if box_labels.is_some() {
            "boxes"
        } else {
            "annotations"
        },
        box_labels,
        params: serde_json::to_string_pretty(&task.params).unwrap_or_default(),
        response: response.unwrap_or_else(template),
        lease,
        hold_note,
        workable: problem.is_none(),
        created: format_time(task.created_at),
        error,
        notice: None,
        confirm_empty: false,
        max_response_bytes: MAX_RESPONSE_BYTES,
    }
}

/// Shows the task page with `status` (the attachment may load from the customer's host).
fn show(status: StatusCode, page: &TaskPage) -> Response {
    with_attachment_images(render(status, page))
}

/// Sends the labeler back to the queue with why this task is not theirs any more (opening a
/// task page they do not hold).
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

/// A live task of the labeler's queue, whoever holds it (404 outside the queue).
async fn load(state: &AppState, who: &SignedIn, id: &str) -> WebResult<(Task, Holding)> {
    let queue = who.labeling_queue().ok_or(WebError::Forbidden)?;
    if id.len() > 64 {
        return Err(WebError::NotFound);
    }
    match state.store.task_for_labeler(&who.user.id, queue, id).await {
        Ok((task, holding)) => {
            who.authorize_labeling(&task.team_id)?;
            Ok((task, holding))
        }
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}

async fn task(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let (task, holding) = load(&state, &who, &id).await?;
    match (problem_of(&task, holding), holding) {
        (None, Holding::Mine(_)) => Ok(show(
            StatusCode::OK,
            &task_page(&state, &who, &task, holding, None, None),
        )),
        (Some(problem), _) => dropped(&state, &who, problem).await,
        (None, _) => dropped(&state, &who, ClaimProblem::NotYours).await,
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

/// A form that carries a labeler's response, or the mark that it was too large to read (see
/// [`OversizedForm`]): then it was not CSRF-checked either, so the handler must only show the
/// page.
enum Submitted<T> {
    Form(T),
    TooLarge(usize),
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Submitted<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(oversized) = request.extensions().get::<OversizedForm>() {
            return Ok(Submitted::TooLarge(oversized.limit));
        }
        Form::<T>::from_request(request, state)
            .await
            .map(|Form(form)| Submitted::Form(form))
    }
}

/// The page for a form too large to read: the editor (with the template: the typed text
/// never arrived) and how large a response may be.
fn too_large(
    state: &AppState,
    who: &SignedIn,
    task: &Task,
    holding: Holding,
    limit: usize,
) -> Response {
    let message = format!(
        "Your response was not received: the form was larger than {} MiB, so it could not be kept either. A response may be at most {} KiB of JSON; shorten it (fewer or simpler annotations) and submit again.",
        limit / (1024 * 1024),
        MAX_RESPONSE_BYTES / 1024
    );
    show(
        StatusCode::PAYLOAD_TOO_LARGE,
        &task_page(state, who, task, holding, None, Some(message)),
    )
}

#[derive(Deserialize)]
struct SubmitInput {
    #[serde(default)]
    response: String,
    /// "Submit with no boxes": the labeler confirms an empty annotation list.
    #[serde(default)]
    confirm_empty: Option<String>,
}

async fn submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    form: Submitted<SubmitInput>,
) -> WebResult<Response> {
    let (task, holding) = load(&state, &who, &id).await?;
    let input = match form {
        Submitted::Form(input) => input,
        Submitted::TooLarge(limit) => return Ok(too_large(&state, &who, &task, holding, limit)),
    };
    let again = |status: StatusCode, task: &Task, holding: Holding, message: String| {
        let page = task_page(
            &state,
            &who,
            task,
            holding,
            Some(input.response.clone()),
            Some(message),
        );
        show(status, &page)
    };
    if let Some(problem) = problem_of(&task, holding) {
        return Ok(again(
            StatusCode::CONFLICT,
            &task,
            holding,
            problem_message(&problem),
        ));
    }
    let invalid = |message: String| Ok(again(StatusCode::BAD_REQUEST, &task, holding, message));
    if input.response.len() > MAX_RESPONSE_BYTES {
        return invalid(format!(
            "The response is {} KiB; it may be at most {} KiB of JSON.",
            input.response.len().div_ceil(1024),
            MAX_RESPONSE_BYTES / 1024
        ));
    }
    let response: Value = match serde_json::from_str(&input.response) {
        Ok(v) => v,
        Err(e) => return invalid(format!("The response is not valid JSON: {e}.")),
    };
    let task_type = task.task_type;
    let params = task.params.as_object().cloned().unwrap_or_default();
    if let Err(e) = check_response(task_type, &params, &response) {
        return invalid(e.0);
    }
    if annotates_nothing(task_type, &response) && input.confirm_empty.is_none() {
        let mut page = task_page(
            &state,
            &who,
            &task,
            holding,
            Some(input.response.clone()),
            None,
        );
        page.error = Some(format!(
            "This response has no {0}. If there really is nothing to annotate, press \u{201c}Submit with no {0}\u{201d}; otherwise add them first.",
            page.nothing
        ));
        page.confirm_empty = true;
        return Ok(show(StatusCode::BAD_REQUEST, &page));
    }
    let labeler = format!("labeler {}", who.user.email);
    match state
        .store
        .submit_task(&who.user.id, &labeler, &id, &response)
        .await?
    {
        Ok(task) => {
            // The task's callback, or its batch's, may be queued now.
            state.wake(crate::state::Wrote::Callbacks);
            Ok(redirect_with_flash(
                "/label",
                &format!("Task {} submitted. Thank you!", task.id),
            ))
        }
        Err(problem) => {
            // Changed since it was read: show it as it is now.
            let (task, holding) = load(&state, &who, &id).await?;
            Ok(again(
                StatusCode::CONFLICT,
                &task,
                holding,
                problem_message(&problem),
            ))
        }
    }
}

#[derive(Deserialize)]
struct ExtendInput {
    /// The editor's text, sent along (Extend is a button of the response form) so it is
    /// shown again.
    response: Option<String>,
}

/// Extend: the labeler keeps the task for another lease from now (also re-claiming it when
/// the lease ran out and nobody took it), recorded in the task's history; the page comes back
/// with what they typed.
async fn extend(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    form: Submitted<ExtendInput>,
) -> WebResult<Response> {
    let (task, holding) = load(&state, &who, &id).await?;
    let typed = match form {
        Submitted::Form(input) => input.response,
        Submitted::TooLarge(limit) => return Ok(too_large(&state, &who, &task, holding, limit)),
    };
    let lease = lease_ms(&state);
    let labeler = format!("labeler {}", who.user.email);
    let detail = format!("reserved for another {}", humanize_ms(lease));
    match state
        .store
        .extend_lease(&who.user.id, &labeler, &id, lease, &detail)
        .await?
    {
        Ok(Claim { task, lease_until }) => {
            let mut page = task_page(&state, &who, &task, Holding::Mine(lease_until), typed, None);
            page.notice = Some(format!(
                "Reserved for you for another {}, until {}.",
                humanize_ms(lease),
                format_clock(lease_until)
            ));
            Ok(show(StatusCode::OK, &page))
        }
        Err(problem) => {
            let (task, holding) = load(&state, &who, &id).await?;
            let page = task_page(
                &state,
                &who,
                &task,
                holding,
                typed,
                Some(problem_message(&problem)),
            );
            Ok(show(StatusCode::CONFLICT, &page))
        }
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
    let (task, holding) = load(&state, &who, &id).await?;
    if let Some(problem) = problem_of(&task, holding) {
        let page = task_page(
            &state,
            &who,
            &task,
            holding,
            None,
            Some(problem_message(&problem)),
        );
        return Ok(show(StatusCode::CONFLICT, &page));
    }
    let reason = match tessera_core::clean_text("The reason", &input.reason, 1000, true) {
        Ok(r) => r,
        Err(e) => {
            let page = task_page(&state, &who, &task, holding, None, Some(e.0));
            return Ok(show(StatusCode::BAD_REQUEST, &page));
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
            state.wake(crate::state::Wrote::Callbacks);
            Ok(redirect_with_flash(
                "/label",
                &format!("Task {} reported as not labelable.", task.id),
            ))
        }
        Err(problem) => {
            let (task, holding) = load(&state, &who, &id).await?;
            let page = task_page(
                &state,
                &who,
                &task,
                holding,
                None,
                Some(problem_message(&problem)),
            );
            Ok(show(StatusCode::CONFLICT, &page))
        }
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
