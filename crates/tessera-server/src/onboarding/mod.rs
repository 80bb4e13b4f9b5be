//! The Get started home (`/`): a new team's path from sign-up to a received test callback on
//! one page — a test key made inline, copy-paste `curl` and Python SDK snippets with this
//! server's `/v1` address and that key, a test task sent with a click, its callback, the
//! team's default callback URL and an invitation — each step ticked off once it is done.
//! Every step runs in test mode (whatever the dashboard shows) and goes through the same
//! services and policy as the keys, team and API pages.

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_core::{
    status::DeliveryStatus, tasks::TaskType, team::parse_callback_url, Action, AuditAction,
    Invalid, Mode, Scope,
};
use tessera_store::{ApiKey, TaskFilter};

use crate::{
    audit,
    keys::service::{self as keys, Created, KeyRequest},
    state::AppState,
    tasks::service::{self as tasks, CreateError, CreateRequest},
    web::{
        page, redirect_with_flash, render, session::in_mode, ClientIp, Form, Layout, SignedIn,
        Viewer, WebError, WebResult,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/get-started/key", post(create_key))
        .route("/get-started/reveal", post(reveal_key))
        .route("/get-started/task", post(send_task))
        .route("/get-started/callback", post(set_callback_url))
}

/// The label of the key the page makes.
const KEY_LABEL: &str = "Get started";

/// What the test task sent from the page (and by the snippets) asks.
fn sample_task() -> Value {
    json!({
        "instruction": "Is this review positive?",
        "attachment_type": "text",
        "attachment": "The labels came back in minutes and were spot on.",
        "categories": ["positive", "negative"],
    })
}

/// One step of the checklist.
struct Step {
    done: bool,
}

#[derive(Template)]
#[template(path = "get_started.html")]
struct GetStartedPage {
    layout: Layout,
    api_base: String,
    /// The key shown in the snippets: the real one right after it was made or revealed,
    /// otherwise its prefix with a placeholder tail.
    key_in_snippet: String,
    key_revealed: bool,
    test_key: Option<ApiKey>,
    may_manage_keys: bool,
    may_create_tasks: bool,
    may_edit_callback: bool,
    may_invite: bool,
    key_step: Step,
    task_step: Step,
    callback_step: Step,
    default_callback_step: Step,
    invite_step: Step,
    last_task: Option<TaskSummary>,
    last_delivery: Option<DeliverySummary>,
    default_callback_url: String,
    callback_error: Option<String>,
    task_error: Option<String>,
    form_nonce: String,
    curl: String,
    python: String,
    done_count: usize,
}

struct TaskSummary {
    id: String,
    status: &'static str,
    created: PageTime,
    href: String,
}

struct DeliverySummary {
    id: String,
    status: &'static str,
    target: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: String,
    href: String,
}

/// The scope of `action` in the person's team, in test mode.
fn test_scope(who: &SignedIn, action: Action) -> Option<Scope> {
    let team = who.user.team_id.as_deref()?;
    Scope::authorized(&who.actor, action, team, Mode::Test)
}

/// The newest test key that still works (not expired, not rolled): the one the snippets use.
async fn newest_test_key(state: &AppState, scope: &Scope) -> WebResult<Option<ApiKey>> {
    let now = tessera_store::now_ms();
    Ok(state
        .store
        .list_api_keys(scope)
        .await?
        .into_iter()
        .filter(|k| k.mode == Mode::Test && k.rolled.is_none())
        .filter(|k| tessera_core::keys::key_refusal(now, k.expires_at, None).is_none())
        .max_by_key(|k| k.created_at))
}

/// Errors the forms on the page show next to their step.
#[derive(Default)]
struct Problems {
    callback: Option<(String, String)>,
    task: Option<String>,
}

async fn get_started_page(
    state: &AppState,
    who: &SignedIn,
    revealed: Option<String>,
    problems: Problems,
) -> WebResult<GetStartedPage> {
    let view = test_scope(who, Action::ViewTasks).ok_or(WebError::Forbidden)?;
    let manage_keys = test_scope(who, Action::ManageApiKeys);
    let test_key = match &manage_keys {
        Some(scope) => newest_test_key(state, scope).await?,
        None => None,
    };
    let last_task = state
        .store
        .list_tasks(&view, &TaskFilter::default(), 1, None)
        .await?
        .tasks
        .into_iter()
        .next();
    let last_delivery = match test_scope(who, Action::ViewCallbacks) {
        Some(scope) => state
            .store
            .list_deliveries(&scope, None, None, 1)
            .await?
            .deliveries
            .into_iter()
            .next(),
        None => None,
    };
    let team = state.store.get_team(&view).await?;
    let members = crate::team::service::roster(&state.store, &view).await?;
    let invited = members.members.len() > 1 || !members.invitations.is_empty();
    let api_base = state.config.link("/v1");
    let key_revealed = revealed.is_some();
    let key_in_snippet = revealed.unwrap_or_else(|| match &test_key {
        Some(key) => format!("{}…", key.prefix),
        None => "YOUR_TEST_KEY".to_owned(),
    });
    let (callback_value, callback_error) = match problems.callback {
        Some((value, error)) => (value, Some(error)),
        None => (team.default_callback_url.clone().unwrap_or_default(), None),
    };
    let steps = [
        test_key.is_some(),
        last_task.is_some(),
        last_delivery
            .as_ref()
            .is_some_and(|d| d.status == DeliveryStatus::Succeeded),
        team.default_callback_url.is_some(),
        invited,
    ];
    Ok(GetStartedPage {
        layout: Layout::signed_in("Get started", who, "/"),
        curl: curl_snippet(&api_base, &key_in_snippet),
        python: python_snippet(&api_base, &key_in_snippet),
        api_base,
        key_in_snippet,
        key_revealed,
        test_key,
        may_manage_keys: manage_keys.is_some(),
        may_create_tasks: test_scope(who, Action::EditProjects).is_some(),
        may_edit_callback: test_scope(who, Action::EditTeamDetails).is_some(),
        may_invite: test_scope(who, Action::InviteMember).is_some(),
        key_step: Step { done: steps[0] },
        task_step: Step { done: steps[1] },
        callback_step: Step { done: steps[2] },
        default_callback_step: Step { done: steps[3] },
        invite_step: Step { done: steps[4] },
        last_task: last_task.map(|t| TaskSummary {
            href: in_mode(&format!("/tasks/{}", t.id), Mode::Test),
            id: t.id,
            status: t.status.as_str(),
            created: PageTime::at(t.created_at),
        }),
        last_delivery: last_delivery.map(|d| DeliverySummary {
            href: in_mode(&format!("/callbacks/{}", d.id), Mode::Test),
            id: d.id.to_string(),
            status: d.status.as_str(),
            target: d.target,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error.unwrap_or_default(),
        }),
        default_callback_url: callback_value,
        callback_error,
        task_error: problems.task,
        form_nonce: crate::crypto::random_token(),
        done_count: steps.iter().filter(|done| **done).count(),
    })
}

/// The `curl` line that sends the sample task.
fn curl_snippet(api_base: &str, key: &str) -> String {
    let body = serde_json::to_string(&sample_task()).unwrap_or_default();
    format!(
        "curl {api_base}/task/categorization \\\n  -u '{key}:' \\\n  -H 'Content-Type: application/json' \\\n  -d '{body}'"
    )
}

/// The same task through the official Python SDK (`pip install scaleapi`).
fn python_snippet(api_base: &str, key: &str) -> String {
    let task = sample_task();
    let field = |name: &str| task[name].to_string();
    format!(
        "import scaleapi\nfrom scaleapi.tasks import TaskType\n\nclient = scaleapi.ScaleClient(\"{key}\", api_instance_url=\"{api_base}\")\ntask = client.create_task(\n    TaskType.Categorization,\n    instruction={},\n    attachment_type={},\n    attachment={},\n    categories={},\n)\nprint(task.id, task.status)",
        field("instruction"),
        field("attachment_type"),
        field("attachment"),
        task["categories"],
    )
}

/// `/`: the Get started page for people who work with tasks; everyone else goes to the page
/// their role is for.
async fn home(State(state): State<AppState>, Viewer(who): Viewer) -> WebResult<Response> {
    let Some(who) = who else {
        return Ok(Redirect::to("/login").into_response());
    };
    if who.must_set_up_two_factor {
        return Ok(Redirect::to(crate::web::session::TWO_FACTOR_SETUP_PATH).into_response());
    }
    if test_scope(&who, Action::ViewTasks).is_none() {
        // Never back here: `home_path` picks `/` only for people who see tasks.
        let home = match crate::accounts::home_path(&who) {
            "/" => "/profile",
            other => other,
        };
        return Ok(Redirect::to(home).into_response());
    }
    Ok(page(
        &get_started_page(&state, &who, None, Problems::default()).await?,
    ))
}

#[derive(Deserialize, Default)]
struct KeyInput {
    #[serde(default)]
    form_nonce: String,
}

/// Makes a test key and shows the page with it in the snippets (the same form sent twice
/// makes one key, as on the keys page).
async fn create_key(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<KeyInput>,
) -> WebResult<Response> {
    let scope = test_scope(&who, Action::ManageApiKeys).ok_or(WebError::Forbidden)?;
    let form_nonce =
        keys::parse_form_nonce(&input.form_nonce).map_err(|Invalid(m)| WebError::BadRequest(m))?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyCreated,
        KEY_LABEL,
        "Test key (Get started)".into(),
    );
    let request = KeyRequest {
        label: KEY_LABEL,
        created_by: Some(&who.user.id),
        expiry: tessera_core::keys::KeyExpiry::Never,
        form_nonce,
        event,
    };
    let master = &state.config.master_key;
    let value = match keys::create_api_key_once(&state.store, master, &scope, request).await? {
        Created::New(_, value) => value,
        // The same form again: its key, if it still works (shown again, audited as a reveal).
        Created::Again {
            key,
            deleted: false,
        } if key.rolled.is_none()
            && tessera_core::keys::key_refusal(tessera_store::now_ms(), key.expires_at, None)
                .is_none() =>
        {
            let event = audit::event(
                &who,
                &ip,
                AuditAction::ApiKeyRevealed,
                &key.prefix,
                format!("Test key {} (Get started, form sent again)", key.label),
            );
            state.store.record_audit(&scope, &event).await?;
            keys::reveal_api_key(master, &key).map_err(WebError::Internal)?
        }
        Created::Again { .. } => {
            return Ok(redirect_with_flash(
                "/",
                "That key was deleted, rolled or has expired since.",
            ))
        }
    };
    Ok(no_store(page(
        &get_started_page(&state, &who, Some(value), Problems::default()).await?,
    )))
}

/// Shows the newest test key in the snippets (audited as a reveal, as on the keys page).
async fn reveal_key(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
) -> WebResult<Response> {
    let scope = test_scope(&who, Action::ManageApiKeys).ok_or(WebError::Forbidden)?;
    let Some(key) = newest_test_key(&state, &scope).await? else {
        return Ok(redirect_with_flash("/", "Create a test key first."));
    };
    let value = keys::reveal_api_key(&state.config.master_key, &key).map_err(WebError::Internal)?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::ApiKeyRevealed,
        &key.prefix,
        format!("Test key {} (Get started)", key.label),
    );
    state.store.record_audit(&scope, &event).await?;
    Ok(no_store(page(
        &get_started_page(&state, &who, Some(value), Problems::default()).await?,
    )))
}

/// A page that shows a key is never kept by the browser (no Back, no reload from cache).
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Sends the sample task in test mode, as the snippets do: it completes at once and its
/// callback goes to the team's default callback URL.
async fn send_task(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    let scope = test_scope(&who, Action::EditProjects).ok_or(WebError::Forbidden)?;
    let again = |message: String| async {
        let problems = Problems {
            task: Some(message),
            ..Problems::default()
        };
        let page = get_started_page(&state, &who, None, problems).await?;
        Ok::<_, WebError>(render(StatusCode::BAD_REQUEST, &page))
    };
    if let Err(secs) = state.test_tasks.take(&scope) {
        return again(format!(
            "Your team created its {} test tasks for this hour; try again in {secs} s.",
            state.test_tasks.max()
        ))
        .await;
    }
    let Value::Object(mut params) = sample_task() else {
        unreachable!("the sample task is an object")
    };
    let instruction = params
        .remove("instruction")
        .and_then(|v| v.as_str().map(str::to_owned));
    let request = CreateRequest {
        task_type: TaskType::Categorization,
        unique_id: None,
        instruction,
        callback_url: None,
        metadata: json!({"source": "get started"}),
        tags: None,
        project: None,
        batch: None,
        params,
        extra: Map::new(),
    };
    let created =
        match tasks::create_task(&state.store, &state.team_defaults, &scope, request).await {
            Ok(created) => created,
            Err(CreateError::Refused(message) | CreateError::UniqueIdTaken(message)) => {
                return again(message).await
            }
            Err(CreateError::Store(err)) => return Err(err.into()),
        };
    if let Some(wrote) = created.wrote {
        state.wake(wrote);
    }
    let note = if created.task.callback_url.is_some() {
        "Test task sent. It completed at once; its callback is on its way."
    } else {
        "Test task sent. It completed at once; set a default callback URL to receive its callback."
    };
    Ok(redirect_with_flash("/", note))
}

#[derive(Deserialize, Default)]
struct CallbackInput {
    #[serde(default)]
    default_callback_url: String,
}

/// Sets the team's default callback URL (the team details page's field, with its audit).
async fn set_callback_url(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<CallbackInput>,
) -> WebResult<Response> {
    let scope = test_scope(&who, Action::EditTeamDetails).ok_or(WebError::Forbidden)?;
    let url = match parse_callback_url(&input.default_callback_url) {
        Ok(url) => url,
        Err(Invalid(message)) => {
            let shown: String = input.default_callback_url.chars().take(2048).collect();
            let problems = Problems {
                callback: Some((shown, message)),
                ..Problems::default()
            };
            let page = get_started_page(&state, &who, None, problems).await?;
            return Ok(render(StatusCode::BAD_REQUEST, &page));
        }
    };
    let before = state.store.get_team(&scope).await?;
    let changes = crate::team::service::detail_changes(&before, &before.name, url.as_deref());
    if changes.is_empty() {
        return Ok(redirect_with_flash("/", "Nothing changed."));
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::TeamDetailsChanged,
        &before.name,
        changes.join("; "),
    );
    state
        .store
        .update_team_details(&scope, &before.name, url.as_deref(), event)
        .await?;
    state.team_defaults.forget(scope.team_id());
    Ok(redirect_with_flash(
        "/",
        "Default callback URL saved: tasks sent without a callback_url report there.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_name_the_server_and_the_key() {
        let curl = curl_snippet("http://127.0.0.1:8080/v1", "test_abc");
        assert!(curl.starts_with("curl http://127.0.0.1:8080/v1/task/categorization"));
        assert!(curl.contains("-u 'test_abc:'"));
        assert!(curl.contains(r#""categories":["positive","negative"]"#));
        let python = python_snippet("http://127.0.0.1:8080/v1", "test_abc");
        assert!(python.contains(
            r#"scaleapi.ScaleClient("test_abc", api_instance_url="http://127.0.0.1:8080/v1")"#
        ));
        assert!(python.contains(r#"categories=["positive","negative"]"#));
    }
}
