//! The labeling pages and their forms: thin handlers over `service`, and the task page's
//! view (lease countdown, response editor, box annotator, choice buttons, Submit & next).

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::{FromRequest, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{Map, Value};
use tessera_core::status::TaskStatus;
use tessera_core::tasks::{response_template, TaskType, MAX_RESPONSE_BYTES};
use tessera_store::{ClaimProblem, Holding, Queue, Task};

use super::choices::{question_views, shows_image, QuestionView, ResponseForm};
use super::service::{self, Labeling, Refusal};
use crate::{
    state::AppState,
    web::{
        csrf::OversizedForm, humanize_ms, page, redirect_with_flash, render, Form, Layout, Path,
        SignedIn, WebError, WebResult,
    },
};

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
    let scope = service::scope(who)?;
    let waiting = state.store.queue_length(&scope).await?;
    let current = state
        .store
        .labeler_claim(&scope)
        .await?
        .map(|c| c.task.id.to_string());
    Ok(QueuePage {
        layout: Layout::signed_in("Labeling", who, "/label"),
        waiting,
        current,
        scope: match scope.queue() {
            Queue::Everyone => "every team's",
            Queue::Team(_) => "your team's",
        },
        message,
    })
}

pub(super) async fn queue(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    Ok(page(&queue_page(&state, &who, None).await?))
}

pub(super) async fn next(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    match service::next(&state, &who).await? {
        Some(claim) => Ok(Redirect::to(&format!("/label/{}", claim.task.id)).into_response()),
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
    /// Where the browser loads the attachment from: the URL itself, a signed URL of the
    /// team's bucket, or Tessera's proxy route.
    attachment_src: Option<String>,
    /// Why a storage attachment cannot be shown (the labeler can report the task with it).
    attachment_problem: Option<String>,
    params: String,
    response: String,
    /// The lease, when this labeler holds the task.
    lease: Option<LeaseView>,
    /// Why the labeler does not hold the task (and what they can still do).
    hold_note: Option<String>,
    /// The task is pending and nobody else holds it: Submit and Extend are offered.
    workable: bool,
    created: PageTime,
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
    /// The pick-from-a-list questions (categories, taxonomies, a comparison's choices), shown
    /// as radio buttons or check boxes.
    questions: Vec<QuestionView>,
    /// The attachment shown inline on a task answered with buttons, when it is an image the
    /// browser can load.
    inline_image: Option<String>,
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

/// What the page says about a task the labeler cannot work on any more, if so.
fn problem_message(problem: &ClaimProblem) -> String {
    match problem {
        ClaimProblem::NotPending(TaskStatus::Canceled) => {
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

/// The box annotator's labels: an imageannotation task that asks for boxes on an image the
/// browser can load (a public URL, a signed URL, the proxy), with at least one label.
fn box_labels(task: &Task, params: &Map<String, Value>, image_loads: bool) -> Option<Vec<String>> {
    if task.task_type != TaskType::ImageAnnotation || !image_loads {
        return None;
    }
    let labels = params
        .get("geometries")
        .and_then(|g| g.get("box"))
        .and_then(|b| b.get("objects_to_annotate"))
        .and_then(Value::as_array)?;
    let labels: Vec<String> = labels
        .iter()
        .filter_map(|l| match l {
            Value::String(s) => Some(s.clone()),
            other => other
                .get("choice")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect();
    (!labels.is_empty()).then_some(labels)
}

/// The type's shape with nothing chosen: submitting it unchanged is refused (or, with no
/// annotations, asks for confirmation).
fn response_skeleton(task: &Task, params: &Map<String, Value>) -> String {
    serde_json::to_string_pretty(&response_template(task.task_type, params)).unwrap_or_default()
}

/// The lease countdown (the labeler holds the task) or the note that it ran out while nobody
/// took the task; neither when the labeler cannot work on it.
fn lease_and_note(
    state: &AppState,
    workable: bool,
    holding: Holding,
) -> (Option<LeaseView>, Option<String>) {
    match (workable, holding) {
        (false, _) => (None, None),
        (true, Holding::Mine(until)) => (
            Some(LeaseView {
                until: format_clock(until),
                left_ms: (until - tessera_store::now_ms()).max(0),
                lease_ms: service::lease_ms(state),
            }),
            None,
        ),
        (true, _) => (
            None,
            Some("Your reservation ran out, but nobody else has taken this task: you can still submit it, or press Extend to reserve it again.".to_owned()),
        ),
    }
}

/// The task page: `response` is what the labeler typed (the template when `None`).
async fn task_page(
    state: &AppState,
    who: &SignedIn,
    labeling: &Labeling,
    response: Option<String>,
    error: Option<String>,
) -> TaskPage {
    let task = &labeling.task;
    let params = task.params.as_object().cloned().unwrap_or_default();
    let attachment = params
        .get("attachment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // A link to the customer's bucket only for the labeler holding the pending task (a
    // refusal page for a task someone else holds, or that ended, shows the URL as text).
    let holder = labeling.problem().is_none() && matches!(labeling.holding, Holding::Mine(_));
    let (attachment_src, attachment_problem) = match attachment.as_deref() {
        Some(url) if holder || tessera_core::integrations::parse_location(url).is_none() => {
            service::attachment_source(state, who, task, url).await
        }
        _ => (None, None),
    };
    let box_labels = box_labels(task, &params, attachment_src.is_some());
    let response = response.unwrap_or_else(|| response_skeleton(task, &params));
    let questions = question_views(task, &params, &response, &[]);
    let inline_image = attachment_src
        .clone()
        .filter(|_| !questions.is_empty() && shows_image(&params));
    let workable = labeling.problem().is_none();
    let (lease, hold_note) = lease_and_note(state, workable, labeling.holding);
    TaskPage {
        layout: Layout::signed_in(format!("Label task {}", task.id), who, "/label"),
        id: task.id.to_string(),
        task_type: task.task_type.as_str().to_owned(),
        instruction: task.instruction.clone().unwrap_or_default(),
        attachment,
        attachment_src,
        attachment_problem,
        nothing: if box_labels.is_some() {
            "boxes"
        } else {
            "annotations"
        },
        box_labels,
        params: serde_json::to_string_pretty(&task.params).unwrap_or_default(),
        questions,
        inline_image,
        response,
        lease,
        hold_note,
        workable,
        created: PageTime::at(task.created_at),
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

/// The task page again, as the task is now, with why the labeler's action was refused.
async fn refused(
    state: &AppState,
    who: &SignedIn,
    id: &str,
    typed: Option<String>,
    problem: &ClaimProblem,
) -> WebResult<Response> {
    let labeling = service::load(state, who, id).await?;
    let page = task_page(state, who, &labeling, typed, Some(problem_message(problem))).await;
    Ok(show(StatusCode::CONFLICT, &page))
}

/// Sends the labeler back to the queue with why this task is not theirs any more (opening a
/// task page they do not hold).
async fn dropped(state: &AppState, who: &SignedIn, problem: ClaimProblem) -> WebResult<Response> {
    let message = match problem {
        ClaimProblem::NotPending(TaskStatus::Canceled) => {
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

pub(super) async fn task(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let labeling = service::load(&state, &who, &id).await?;
    match (labeling.problem(), labeling.holding) {
        (None, Holding::Mine(_)) => Ok(show(
            StatusCode::OK,
            &task_page(&state, &who, &labeling, None, None).await,
        )),
        (Some(problem), _) => dropped(&state, &who, problem).await,
        (None, _) => dropped(&state, &who, ClaimProblem::NotYours).await,
    }
}

/// The labeling page shows the customer's attachment, which lives on the customer's host: its
/// policy lets images load from http(s) sources (everything else stays as strict as elsewhere).
pub(super) fn with_attachment_images(mut response: Response) -> Response {
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
pub(super) enum Submitted<T> {
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
async fn too_large(
    state: &AppState,
    who: &SignedIn,
    labeling: &Labeling,
    limit: usize,
) -> Response {
    let message = format!(
        "Your response was not received: the form was larger than {} MiB, so it could not be kept either. A response may be at most {} KiB of JSON; shorten it (fewer or simpler annotations) and submit again.",
        limit / (1024 * 1024),
        MAX_RESPONSE_BYTES / 1024
    );
    show(
        StatusCode::PAYLOAD_TOO_LARGE,
        &task_page(state, who, labeling, None, Some(message)).await,
    )
}

/// Shows what the labeler picked on the choice buttons again (the editor shows their text).
fn keep_picks(page: &mut TaskPage, task: &Task, picks: &[(String, String)]) {
    let params = task.params.as_object().cloned().unwrap_or_default();
    page.questions = question_views(task, &params, &page.response, picks);
}

pub(super) async fn submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    form: Submitted<Vec<(String, String)>>,
) -> WebResult<Response> {
    let labeling = service::load(&state, &who, &id).await?;
    let input = match form {
        Submitted::Form(pairs) => ResponseForm::from(pairs),
        Submitted::TooLarge(limit) => return Ok(too_large(&state, &who, &labeling, limit).await),
    };
    let typed_text = input.response.clone().unwrap_or_default();
    let typed = Some(typed_text.clone());
    if let Some(problem) = labeling.problem() {
        let mut page = task_page(
            &state,
            &who,
            &labeling,
            typed,
            Some(problem_message(&problem)),
        )
        .await;
        keep_picks(&mut page, &labeling.task, &input.picks);
        return Ok(show(StatusCode::CONFLICT, &page));
    }
    let checked = service::check_submission(
        &labeling.task,
        &typed_text,
        &input.picks,
        input.confirm_empty,
    );
    let response = match checked {
        Ok(response) => response,
        Err(refusal) => {
            let mut page = task_page(&state, &who, &labeling, typed, None).await;
            keep_picks(&mut page, &labeling.task, &input.picks);
            match refusal {
                Refusal::Invalid(message) => page.error = Some(message),
                Refusal::ConfirmEmpty => {
                    page.error = Some(format!(
                        "This response has no {0}. If there really is nothing to annotate, press \u{201c}Submit with no {0}\u{201d}; otherwise add them first.",
                        page.nothing
                    ));
                    page.confirm_empty = true;
                }
            }
            return Ok(show(StatusCode::BAD_REQUEST, &page));
        }
    };
    match service::submit(&state, &who, &id, &response).await? {
        Ok(task) if input.and_next => next_after(&state, &who, &task.id).await,
        Ok(task) => Ok(redirect_with_flash(
            "/label",
            &format!("Task {} submitted. Thank you!", task.id),
        )),
        // Changed since it was read: show it as it is now.
        Err(problem) => refused(&state, &who, &id, typed, &problem).await,
    }
}

/// Submit & next: the labeler's next task (claimed as Next task does), or the queue when
/// nothing is waiting; either way the page says the task was submitted.
async fn next_after(state: &AppState, who: &SignedIn, submitted: &str) -> WebResult<Response> {
    Ok(match service::next(state, who).await? {
        Some(claim) => redirect_with_flash(
            &format!("/label/{}", claim.task.id),
            &format!("Task {submitted} submitted. This is your next task."),
        ),
        None => redirect_with_flash(
            "/label",
            &format!("Task {submitted} submitted. Thank you! No more tasks are waiting."),
        ),
    })
}

/// Extend: the labeler keeps the task for another lease from now (also re-claiming it when
/// the lease ran out and nobody took it), recorded in the task's history; the page comes back
/// with what they typed and picked (Extend is a button of the response form, so both are
/// sent along).
pub(super) async fn extend(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    form: Submitted<Vec<(String, String)>>,
) -> WebResult<Response> {
    let labeling = service::load(&state, &who, &id).await?;
    let input = match form {
        Submitted::Form(pairs) => ResponseForm::from(pairs),
        Submitted::TooLarge(limit) => return Ok(too_large(&state, &who, &labeling, limit).await),
    };
    let typed = input.response;
    match service::extend(&state, &who, &id).await? {
        Ok(claim) => {
            let lease_until = claim.lease_until;
            let labeling = Labeling::claimed(claim);
            let mut page = task_page(&state, &who, &labeling, typed, None).await;
            keep_picks(&mut page, &labeling.task, &input.picks);
            page.notice = Some(format!(
                "Reserved for you for another {}, until {}.",
                humanize_ms(service::lease_ms(&state)),
                format_clock(lease_until)
            ));
            Ok(show(StatusCode::OK, &page))
        }
        Err(problem) => refused(&state, &who, &id, typed, &problem).await,
    }
}

#[derive(Deserialize)]
pub(super) struct ErrorInput {
    #[serde(default)]
    reason: String,
}

/// The task cannot be labeled: it ends as `error` with the reason, and the customer is
/// called back with it.
pub(super) async fn report_error(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(input): Form<ErrorInput>,
) -> WebResult<Response> {
    let labeling = service::load(&state, &who, &id).await?;
    if let Some(problem) = labeling.problem() {
        let page = task_page(
            &state,
            &who,
            &labeling,
            None,
            Some(problem_message(&problem)),
        )
        .await;
        return Ok(show(StatusCode::CONFLICT, &page));
    }
    let reason = match tessera_core::clean_text("The reason", &input.reason, 1000, true) {
        Ok(r) => r,
        Err(e) => {
            let page = task_page(&state, &who, &labeling, None, Some(e.0)).await;
            return Ok(show(StatusCode::BAD_REQUEST, &page));
        }
    };
    match service::report_error(&state, &who, &id, &reason).await? {
        Ok(task) => Ok(redirect_with_flash(
            "/label",
            &format!("Task {} reported as not labelable.", task.id),
        )),
        Err(problem) => refused(&state, &who, &id, None, &problem).await,
    }
}

/// Proxy mode: the attachment of a task the labeler holds, streamed from the team's bucket.
pub(super) async fn attachment(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let labeling = service::load(&state, &who, &id).await?;
    // Only under the labeler's own lease (after it ran out, Extend takes it again).
    if labeling.problem().is_some() || !matches!(labeling.holding, Holding::Mine(_)) {
        return Err(WebError::NotFound);
    }
    let task = &labeling.task;
    let url = task
        .params
        .get("attachment")
        .and_then(Value::as_str)
        .ok_or(WebError::NotFound)?;
    let scope = tessera_core::Scope::authorized(
        &who.actor,
        tessera_core::Action::LabelTasks,
        task.team_id.as_str(),
        tessera_core::Mode::Live,
    )
    .ok_or(WebError::NotFound)?;
    Ok(crate::integrations::attachments::stream(&state, &scope, url).await)
}

pub(super) async fn release(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let message = if service::release(&state, &who, &id).await? {
        "Task released back to the queue."
    } else {
        "You were not holding that task."
    };
    Ok(redirect_with_flash("/label", message))
}
