//! Callback delivery and the labeling queue, end to end: a real receiver (an HTTP server in
//! the test) records what arrives; signatures are checked here, independently of the server's
//! code, with the secrets the dashboard reveals.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    Router,
};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use tessera_core::{ids::TeamId, status::DeliveryStatus, Scope};
use tessera_server::crypto::Purpose;
use tessera_store::Delivery;

use crate::{backend_test, helpers::*};

// ---------------------------------------------------------------------------------------
// The receiver

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
    answered: u16,
}

impl Hit {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the callback body is JSON")
    }

    fn webhook_id(&self) -> String {
        self.header("webhook-id")
    }
}

/// How the receiver answers a path (200 "ok" unless told otherwise).
#[derive(Debug, Clone)]
enum Plan {
    /// Answer `status` (with `Retry-After` when given) to the next `remaining` requests.
    FailFirst {
        remaining: u32,
        status: u16,
        retry_after: Option<&'static str>,
    },
    Always(u16),
    /// 302 to another URL.
    Redirect(String),
}

#[derive(Default)]
struct Inner {
    hits: Vec<Hit>,
    plans: HashMap<String, Plan>,
}

/// An HTTP server on 127.0.0.1 that records every request.
#[derive(Clone)]
struct Receiver {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut inner = inner.lock().unwrap();
    let mut extra: Vec<(&'static str, String)> = Vec::new();
    let status = match inner.plans.get_mut(&path) {
        Some(Plan::FailFirst {
            remaining,
            status,
            retry_after,
        }) if *remaining > 0 => {
            *remaining -= 1;
            if let Some(v) = retry_after {
                extra.push(("retry-after", (*v).to_owned()));
            }
            *status
        }
        Some(Plan::Always(status)) => *status,
        Some(Plan::Redirect(to)) => {
            extra.push(("location", to.clone()));
            302
        }
        _ => 200,
    };
    inner.hits.push(Hit {
        path,
        headers,
        body: body.to_vec(),
        at: Instant::now(),
        answered: status,
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        if status < 300 { "ok" } else { "not now" },
    )
        .into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(record).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            base: format!("http://{addr}"),
            inner,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn plan(&self, path: &str, plan: Plan) {
        self.inner
            .lock()
            .unwrap()
            .plans
            .insert(path.to_owned(), plan);
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        self.inner
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    fn total(&self) -> usize {
        self.inner.lock().unwrap().hits.len()
    }

    /// Waits until `path` got at least `n` requests; returns them all.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Hit> {
        TestApp::eventually(20, || async {
            let hits = self.hits(path);
            (hits.len() >= n).then_some(hits)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Signatures, checked without the server's code

/// How many of the hit's `v1,` signatures verify with this `whsec_…` secret.
fn verified_by(hit: &Hit, secret: &str) -> usize {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", hit.webhook_id(), hit.header("webhook-timestamp")).as_bytes());
    mac.update(&hit.body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    hit.header("webhook-signature")
        .split(' ')
        .filter(|s| *s == expected)
        .count()
}

/// Standard Webhooks headers present, fresh, and signed by exactly `secret`.
fn assert_signed(hit: &Hit, secret: &str, auth: &str) {
    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.header("scale-callback-auth"), auth);
    assert!(hit.webhook_id().starts_with("msg_"), "{}", hit.webhook_id());
    let ts: i64 = hit.header("webhook-timestamp").parse().expect("timestamp");
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!((now - ts).abs() <= 10, "timestamp {ts} vs now {now}");
    assert_eq!(
        verified_by(hit, secret),
        1,
        "signature {:?} does not verify",
        hit.header("webhook-signature")
    );
}

// ---------------------------------------------------------------------------------------
// Dashboard and API helpers

pub(crate) fn html_unescape(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reveals a secret on the API Keys page (`/keys/callback/test/reveal`, …) and returns it.
async fn reveal(admin: &mut Browser, path: &str) -> String {
    let page = admin.submit(path, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    html_unescape(
        &extract_between(&page.body, "id=\"secret-value\">", "</code>")
            .expect("the secret is shown"),
    )
}

/// The team's callback auth key and signing secret for `mode`, as the dashboard shows them.
async fn secrets(admin: &mut Browser, mode: &str) -> (String, String) {
    let auth = reveal(admin, &format!("/keys/callback/{mode}/reveal")).await;
    let signing = reveal(admin, &format!("/keys/signing/{mode}/reveal")).await;
    assert!(signing.starts_with("whsec_"), "{signing}");
    (auth, signing)
}

async fn use_mode(b: &mut Browser, mode: &str) {
    let p = b
        .post_form("/mode", &[("mode", mode), ("back", "/callbacks")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
}

async fn login(app: &TestApp, email: &str) -> Browser {
    let mut b = app.browser();
    let r = b
        .post_form("/login", &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "login {email}: {}", r.body);
    b
}

/// Invites `email` as a labeler from the dashboard and accepts the emailed link.
async fn join_as_labeler(app: &TestApp, admin: &mut Browser, email: &str) -> Browser {
    join_as(app, admin, email, "labeler").await
}

fn with_callback(mut task: Value, url: &str) -> Value {
    task["callback_url"] = json!(url);
    task
}

async fn create_task(api: &Api, fields: Value) -> Value {
    let (status, task) = api.post("/task/categorization", fields).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    task
}

fn id_of(task: &Value) -> String {
    task["task_id"].as_str().unwrap().to_owned()
}

async fn team_id(app: &TestApp, name: &str) -> String {
    app.store
        .cross_tenant()
        .find_teams_by_name(name)
        .await
        .unwrap()
        .remove(0)
        .team
        .id
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.store
        .find_user_by_email(&tessera_core::Email::parse(email).unwrap())
        .await
        .unwrap()
        .expect("user exists")
        .id
}

/// The scope of a delivery's own team and mode: tests read the store as the operator.
pub(crate) fn delivery_scope(d: &Delivery) -> Scope {
    Scope::operator(TeamId::from_stored(d.team_id.clone()), d.mode)
}

/// The scope a task was created in.
pub(crate) async fn task_scope(app: &TestApp, task_id: &str) -> Scope {
    let ids = [task_id.to_owned()];
    let task = app
        .store
        .cross_tenant()
        .tasks_by_ids(&ids)
        .await
        .unwrap()
        .remove(task_id);
    let task = task.expect("the task exists");
    Scope::operator(TeamId::from_stored(task.team_id), task.mode)
}

/// The task's latest delivery once it is no longer pending.
async fn finished_delivery(app: &TestApp, task_id: &str) -> Delivery {
    let scope = task_scope(app, task_id).await;
    TestApp::eventually(20, || async {
        app.store
            .task_deliveries(&scope, task_id)
            .await
            .unwrap()
            .into_iter()
            .next()
            .filter(|d| d.status != DeliveryStatus::Pending)
    })
    .await
}

/// `callback_succeeded` of a task as the API reports it, once it is set.
async fn callback_succeeded(api: &Api, task_id: &str) -> bool {
    TestApp::eventually(20, || async {
        let (_, task) = api.get(&format!("/task/{task_id}")).await;
        task["callback_succeeded"].as_bool()
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Delivery

async fn task_callback_is_signed_and_delivered_once(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("cb@acme.test", "Callback Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let (auth, signing) = secrets(&mut admin, "test").await;
    // The dashboard shows what the store holds.
    assert_eq!(
        tessera_server::staff::support::team_secret(
            &app.store,
            &app.key,
            &team_scope(
                &tessera_server::staff::support::find_team(&app.store, "Callback Co")
                    .await
                    .unwrap()
                    .id
            )
            .with_mode(tessera_core::Mode::Test)
            .unwrap(),
            tessera_core::status::SecretKind::CallbackSigning,
        )
        .await
        .unwrap(),
        signing
    );

    let task = create_task(
        &api,
        with_callback(categorization("Is it positive?"), &rx.url("/hooks/scale")),
    )
    .await;
    let id = id_of(&task);
    let hits = rx.wait_for("/hooks/scale", 1).await;
    let hit = &hits[0];
    assert_signed(hit, &signing, &auth);
    let body = hit.json();
    assert_eq!(body["task_id"], id.as_str());
    assert_eq!(body["task"]["task_id"], id.as_str());
    assert_eq!(body["task"]["status"], "completed");
    assert_eq!(body["task"]["is_test"], true);
    assert_eq!(body["task"]["params"], task["params"]);
    assert_eq!(body["task"]["callback_url"], task["callback_url"]);
    assert_eq!(body["response"], task["response"]);
    assert_eq!(body["response"]["category"], "yes");
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "exactly task, response, task_id: {body}"
    );

    assert!(callback_succeeded(&api, &id).await);
    // The task in the body is the task as the API shows it (before the callback's outcome).
    let (_, mut fetched) = api.get(&format!("/task/{id}")).await;
    fetched
        .as_object_mut()
        .unwrap()
        .remove("callback_succeeded");
    assert_eq!(body["task"], fetched);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.total(), 1, "exactly one POST");
    let delivery = finished_delivery(&app, &id).await;
    assert_eq!(delivery.id.as_str(), hit.webhook_id());
    assert_eq!(
        (
            delivery.status.as_str(),
            delivery.attempts,
            delivery.last_status_code
        ),
        ("succeeded", 1, Some(200))
    );
    app.stop().await;
}
backend_test!(task_callback_is_signed_and_delivered_once);

async fn failed_attempts_are_retried_with_the_same_webhook_id(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("200ms,200ms,200ms"),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan(
        "/flaky",
        Plan::FailFirst {
            remaining: 2,
            status: 500,
            retry_after: None,
        },
    );
    let mut admin = app.sign_up("retry@acme.test", "Retry Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let (auth, signing) = secrets(&mut admin, "test").await;
    let id = id_of(&create_task(&api, with_callback(categorization("r"), &rx.url("/flaky"))).await);

    assert!(callback_succeeded(&api, &id).await);
    let hits = rx.wait_for("/flaky", 3).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let hits_after = rx.hits("/flaky");
    assert_eq!(hits_after.len(), 3, "3 attempts in all");
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let webhook_id = hits[0].webhook_id();
    for hit in &hits {
        assert_eq!(hit.webhook_id(), webhook_id, "stable across retries");
        assert_signed(hit, &signing, &auth);
        assert_eq!(hit.json()["task_id"], id.as_str());
    }

    let delivery = finished_delivery(&app, &id).await;
    assert_eq!(
        (delivery.status.as_str(), delivery.attempts),
        ("succeeded", 3)
    );
    // The Callbacks page (test mode) shows the delivery and its three attempts.
    use_mode(&mut admin, "test").await;
    let list = admin.visit("/callbacks").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body
            .contains(&format!("data-delivery=\"{webhook_id}\"")),
        "{}",
        list.body
    );
    let detail = admin.visit(&format!("/callbacks/{webhook_id}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(
        detail.body.contains("id=\"delivery-state\">succeeded<"),
        "{}",
        detail.body
    );
    let table =
        extract_between(&detail.body, "id=\"attempts\">", "</table>").expect("attempts table");
    let codes: Vec<String> = table
        .split("<tr><td class=\"nowrap\">")
        .skip(1)
        .map(|row| extract_between(row, "</td><td>", "</td>").unwrap())
        .collect();
    assert_eq!(codes, ["200", "500", "500"], "newest first");
    // The live world has none of it.
    use_mode(&mut admin, "live").await;
    let live = admin.visit(&format!("/callbacks/{webhook_id}")).await;
    assert_eq!(live.status, StatusCode::NOT_FOUND);
    app.stop().await;
}
backend_test!(failed_attempts_are_retried_with_the_same_webhook_id);

async fn delivery_gives_up_when_the_schedule_is_used_up(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("100ms,100ms"),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan("/down", Plan::Always(500));
    let mut admin = app.sign_up("down@acme.test", "Down Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let id = id_of(&create_task(&api, with_callback(categorization("d"), &rx.url("/down"))).await);

    let delivery = finished_delivery(&app, &id).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.last_status_code, Some(500));
    assert!(!callback_succeeded(&api, &id).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        rx.hits("/down").len(),
        3,
        "exactly 3 attempts, then nothing"
    );
    let attempts = app
        .store
        .delivery_attempts(&delivery_scope(&delivery), &delivery.id)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(attempts
        .iter()
        .all(|a| a.status_code == Some(500) && a.response_snippet.as_deref() == Some("not now")));
    app.stop().await;
}
backend_test!(delivery_gives_up_when_the_schedule_is_used_up);

/// A receiver that accepts connections and never answers: every attempt waits out its timeout.
async fn hanging_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/hang")
}

async fn a_hanging_receiver_does_not_hold_up_other_teams(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_timeout: Some(Duration::from_secs(4)),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    let hang = hanging_receiver().await;
    let mut stuck = app.sign_up("stuck@acme.test", "Stuck Co").await;
    let stuck_api = Api::new(&app, &create_key(&mut stuck, "test", "cb").await);
    let mut fine = app.sign_up("fine@acme.test", "Fine Co").await;
    let fine_api = Api::new(&app, &create_key(&mut fine, "test", "cb").await);

    // More hanging callbacks than the worker runs at once.
    let mut stuck_ids = Vec::new();
    for i in 0..150 {
        let fields = with_callback(categorization(&format!("s{i}")), &hang);
        stuck_ids.push(id_of(&create_task(&stuck_api, fields).await));
    }
    // Let the worker take the stuck team's callbacks first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let id = id_of(
        &create_task(
            &fine_api,
            with_callback(categorization("f"), &rx.url("/fine")),
        )
        .await,
    );
    let hits = rx.wait_for("/fine", 1).await;
    let waited = started.elapsed();
    assert_eq!(hits[0].json()["task_id"], id.as_str());
    assert!(
        waited < Duration::from_secs(2),
        "another team's callback waited {waited:?} behind a hanging receiver"
    );
    // The stuck team's callbacks are still being attempted (none lost, none done yet).
    let counts = app
        .store
        .cross_tenant()
        .delivery_counts(Some(&team_id(&app, "Stuck Co").await))
        .await
        .unwrap();
    assert_eq!(counts.pending, stuck_ids.len() as i64);
    app.stop().await;
}
backend_test!(a_hanging_receiver_does_not_hold_up_other_teams);

async fn retry_after_is_honoured(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("50ms"),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan(
        "/busy",
        Plan::FailFirst {
            remaining: 1,
            status: 503,
            retry_after: Some("1"),
        },
    );
    let mut admin = app.sign_up("busy@acme.test", "Busy Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let id = id_of(&create_task(&api, with_callback(categorization("b"), &rx.url("/busy"))).await);

    let hits = rx.wait_for("/busy", 2).await;
    assert_eq!((hits[0].answered, hits[1].answered), (503, 200));
    let gap = hits[1].at.duration_since(hits[0].at);
    assert!(
        gap >= Duration::from_millis(990),
        "the retry came {gap:?} after the first attempt, before Retry-After allowed"
    );
    assert_eq!(hits[0].webhook_id(), hits[1].webhook_id());
    assert!(callback_succeeded(&api, &id).await);
    app.stop().await;
}
backend_test!(retry_after_is_honoured);

async fn redirects_are_not_followed(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("10ms"),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan("/moved", Plan::Redirect(rx.url("/elsewhere")));
    let mut admin = app.sign_up("redir@acme.test", "Redirect Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let id = id_of(&create_task(&api, with_callback(categorization("m"), &rx.url("/moved"))).await);

    let delivery = finished_delivery(&app, &id).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.last_status_code, Some(302));
    assert!(!callback_succeeded(&api, &id).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits("/moved").len(), 2);
    assert!(
        rx.hits("/elsewhere").is_empty(),
        "the redirect was followed"
    );
    app.stop().await;
}
backend_test!(redirects_are_not_followed);

async fn private_addresses_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("10ms"),
            refuse_private_callbacks: true,
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("ssrf@acme.test", "Guarded Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    // A literal loopback address, and a name that resolves to one.
    let port = rx.base.rsplit(':').next().unwrap().to_owned();
    let literal =
        id_of(&create_task(&api, with_callback(categorization("s"), &rx.url("/x"))).await);
    let named = id_of(
        &create_task(
            &api,
            with_callback(categorization("s"), &format!("http://localhost:{port}/y")),
        )
        .await,
    );

    for (id, refusal) in [(&literal, "not a public address"), (&named, "non-public")] {
        let delivery = finished_delivery(&app, id).await;
        assert_eq!(delivery.status, DeliveryStatus::Failed);
        assert_eq!(delivery.last_status_code, None);
        let attempts = app
            .store
            .delivery_attempts(&delivery_scope(&delivery), &delivery.id)
            .await
            .unwrap();
        assert_eq!(attempts.len(), 2);
        for a in &attempts {
            let error = a.error.as_deref().unwrap_or_default();
            assert!(error.contains(refusal), "{id}: {error}");
        }
        assert!(!callback_succeeded(&api, id).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.total(), 0, "the receiver was reached");
    app.stop().await;
}
backend_test!(private_addresses_are_refused);

async fn team_default_callback_url_applies_unless_the_task_has_one(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("default@acme.test", "Default Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let saved = admin
        .submit(
            "/team/details",
            &[
                ("name", "Default Co"),
                ("default_callback_url", &rx.url("/team-default")),
            ],
        )
        .await;
    assert!(saved.body.contains("Team details saved."), "{}", saved.body);

    let plain = id_of(&create_task(&api, categorization("no url")).await);
    let own =
        id_of(&create_task(&api, with_callback(categorization("own"), &rx.url("/own"))).await);
    let defaults = rx.wait_for("/team-default", 1).await;
    let owns = rx.wait_for("/own", 1).await;
    assert!(callback_succeeded(&api, &plain).await);
    assert!(callback_succeeded(&api, &own).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits("/team-default").len(), 1);
    assert_eq!(rx.hits("/own").len(), 1);
    assert_eq!(defaults[0].json()["task_id"], plain.as_str());
    assert_eq!(owns[0].json()["task_id"], own.as_str());
    app.stop().await;
}
backend_test!(team_default_callback_url_applies_unless_the_task_has_one);

async fn email_callback_goes_to_the_mail_outbox(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_emails_per_hour: Some(3),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("mailcb@acme.test", "Mail Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    // A stranger's address is refused: test keys must not make Tessera a mail relay.
    let (status, body) = api
        .post(
            "/task/categorization",
            with_callback(categorization("relay"), "hooks@receiver.test"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a callback address of your team"),
        "{body}"
    );
    let (status, _) = api
        .post(
            "/batches",
            json!({"project": "none", "name": "b", "callback": "hooks@receiver.test"}),
        )
        .await;
    assert_ne!(status, StatusCode::OK);
    let refused = admin
        .post_form("/callbacks/test", &[("url", "hooks@receiver.test")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("not a callback address of your team"));

    // A Manager adds the address; it receives a confirmation link and nothing else until
    // the link is opened and confirmed.
    let added = admin
        .submit("/callbacks/emails", &[("email", "hooks@receiver.test")])
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(added
        .body
        .contains("A confirmation link was sent to hooks@receiver.test"));
    assert!(added.body.contains("Pending"));
    // No mail bombing through confirmations: one link per address per ten minutes.
    let again = admin
        .post_form("/callbacks/emails", &[("email", "hooks@receiver.test")])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(
        again.body.contains("sent to hooks@receiver.test recently"),
        "{}",
        again.body
    );
    let confirmations = app
        .store
        .cross_tenant()
        .list_mail(100, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to == "hooks@receiver.test")
        .count();
    assert_eq!(confirmations, 1);
    let (status, _) = api
        .post(
            "/task/categorization",
            with_callback(categorization("relay"), "hooks@receiver.test"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a pending address gets nothing"
    );
    let confirmation = app
        .store
        .cross_tenant()
        .list_mail(100, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.to == "hooks@receiver.test")
        .expect("a confirmation mail");
    let text = String::from_utf8(
        app.key
            .open(
                &Purpose::mail_body(&confirmation.to),
                &confirmation.body_sealed,
            )
            .unwrap(),
    )
    .unwrap();
    let token: String = text
        .split("/callbacks/emails/verify/")
        .nth(1)
        .expect("a link")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let link = format!("/callbacks/emails/verify/{token}");
    let mut owner = app.browser();
    let form = owner.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Mail Co"), "{}", form.body);
    assert_eq!(
        owner.get("/callbacks/emails/verify/nonsense").await.status,
        StatusCode::NOT_FOUND
    );
    let done = owner.post_form(&link, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Address confirmed"));
    assert_eq!(
        owner.post_form(&link, &[]).await.status,
        StatusCode::NOT_FOUND,
        "single use"
    );
    assert!(admin
        .visit("/callbacks/emails")
        .await
        .body
        .contains("Verified"));

    let task = create_task(
        &api,
        with_callback(categorization("by mail"), "hooks@receiver.test"),
    )
    .await;
    let id = id_of(&task);
    assert_eq!(task["callback_url"], "hooks@receiver.test");

    let delivery = finished_delivery(&app, &id).await;
    assert_eq!(delivery.status, DeliveryStatus::Succeeded);
    assert!(callback_succeeded(&api, &id).await);
    let mail = TestApp::eventually(10, || async {
        app.store
            .cross_tenant()
            .list_mail(100, 0)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.to == "hooks@receiver.test" && m.subject.contains(&id))
    })
    .await;
    assert!(mail.subject.contains(&id), "{}", mail.subject);
    let sealed: Value = serde_json::from_slice(
        &app.key
            .open(&Purpose::mail_body(&mail.to), &mail.body_sealed)
            .unwrap(),
    )
    .unwrap();
    let body: Value = serde_json::from_str(sealed["text"].as_str().unwrap()).unwrap();
    assert_eq!(body["task_id"], id.as_str());
    assert_eq!(body["task"]["status"], "completed");
    assert_eq!(body["response"], task["response"]);

    // A member's own address works without confirmation.
    create_task(
        &api,
        with_callback(categorization("me"), "mailcb@acme.test"),
    )
    .await;
    // The hourly email budget (3 here): the next is 429 with Retry-After.
    create_task(
        &api,
        with_callback(categorization("3"), "hooks@receiver.test"),
    )
    .await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/task/categorization", app.base))
        .basic_auth(&key, Some(""))
        .json(&with_callback(categorization("4"), "hooks@receiver.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    // Web callbacks are not held up by it.
    create_task(&api, categorization("web")).await;

    // Removing the address stops it at once.
    let page = admin.visit("/callbacks/emails").await;
    let row_id = extract_between(&page.body, "action=\"/callbacks/emails/", "/remove\"").unwrap();
    let removed = admin
        .submit(&format!("/callbacks/emails/{row_id}/remove"), &[])
        .await;
    assert!(removed.body.contains("removed"), "{}", removed.body);
    let (status, _) = api
        .post(
            "/task/categorization",
            with_callback(categorization("x"), "hooks@receiver.test"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // ... and so does a redelivery of a callback mailed before: checked again when sent.
    admin
        .post_form("/mode", &[("mode", "test"), ("back", "/callbacks")])
        .await;
    let redelivered = admin
        .post_form(&format!("/test/callbacks/{}/redeliver", delivery.id), &[])
        .await;
    assert_eq!(
        redelivered.status,
        StatusCode::SEE_OTHER,
        "{}",
        redelivered.body
    );
    let refused = TestApp::eventually(10, || async {
        app.store
            .delivery_attempts(&delivery_scope(&delivery), &delivery.id)
            .await
            .unwrap()
            .into_iter()
            .find(|a| {
                a.error
                    .as_deref()
                    .is_some_and(|e| e.contains("no longer a callback address"))
            })
    })
    .await;
    assert!(refused.status_code.is_none());
    app.stop().await;
}
backend_test!(email_callback_goes_to_the_mail_outbox);

/// Test tasks are free and call back at once: each team gets a budget per hour (429 with
/// Retry-After past it); live keys and other teams are not affected.
async fn test_tasks_have_an_hourly_budget_per_team(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            test_tasks_per_hour: Some(3),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("budget@acme.test", "Budget Co").await;
    let test_key = create_key(&mut admin, "test", "ci").await;
    let api = Api::new(&app, &test_key);
    for n in 0..3 {
        create_task(&api, categorization(&n.to_string())).await;
    }
    let response = reqwest::Client::new()
        .post(format!("{}/v1/task/categorization", app.base))
        .basic_auth(&test_key, Some(""))
        .json(&categorization("over"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status_code"], 429);
    assert!(
        body["error"].as_str().unwrap().contains("3 test tasks"),
        "{body}"
    );
    let live = Api::new(&app, &create_key(&mut admin, "live", "prod").await);
    create_task(&live, categorization("live")).await;
    let mut other = app.sign_up("other@acme.test", "Other Co").await;
    let other = Api::new(&app, &create_key(&mut other, "test", "").await);
    create_task(&other, categorization("other")).await;
    app.stop().await;
}
backend_test!(test_tasks_have_an_hourly_budget_per_team);

// ---------------------------------------------------------------------------------------
// Batches, the dashboard, rotation

async fn completed_batch_calls_back_with_its_counts(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("batch@acme.test", "Batch Co").await;
    let key = create_key(&mut admin, "live", "cb").await;
    let api = Api::new(&app, &key);
    let (auth, signing) = secrets(&mut admin, "live").await;
    let mut labeler = join_as_labeler(&app, &mut admin, "lab@batch.test").await;
    let (s, p) = api
        .post(
            "/projects",
            json!({"type": "categorization", "name": "reviews"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (s, b) = api
        .post(
            "/batches",
            json!({"project": "reviews", "name": "week-1", "callback": rx.url("/batch")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut fields = categorization(&format!("batch task {n}"));
        fields["batch"] = json!("week-1");
        ids.push(id_of(&create_task(&api, fields).await));
    }

    // One labeled, one canceled, then finalized: one still pending, so not complete yet.
    let first = label_next(&mut labeler).await;
    assert_eq!(first, ids[0]);
    submit_ok(&mut labeler, &first, json!({"category": "no"})).await;
    let (s, _) = api
        .post(&format!("/task/{}/cancel", ids[1]), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = api.post("/batches/week-1/finalize", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "in_progress");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        rx.hits("/batch").is_empty(),
        "called back before completion"
    );

    // The last task completes the batch.
    let last = label_next(&mut labeler).await;
    assert_eq!(last, ids[2]);
    submit_ok(&mut labeler, &last, json!({"category": "yes"})).await;
    let hits = rx.wait_for("/batch", 1).await;
    assert_signed(&hits[0], &signing, &auth);
    assert_eq!(
        hits[0].json(),
        json!({"batch": "week-1", "status": "completed", "stats": {"completed": 2, "canceled": 1, "error": 0}})
    );
    let (_, batch) = api.get("/batches/week-1").await;
    assert_eq!(batch["status"], "completed");
    assert!(batch["completed_at"].is_string());
    let (_, status) = api.get("/batches/week-1/status").await;
    assert_eq!(
        (
            status["completed"].as_i64(),
            status["canceled"].as_i64(),
            status["pending"].as_i64()
        ),
        (Some(2), Some(1), Some(0))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.hits("/batch").len(), 1, "one batch callback");
    app.stop().await;
}
backend_test!(completed_batch_calls_back_with_its_counts);

async fn dashboard_redelivers_and_sends_test_callbacks(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("dash@acme.test", "Dash Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let (auth, signing) = secrets(&mut admin, "test").await;
    let team = team_id(&app, "Dash Co").await;
    let id = id_of(&create_task(&api, with_callback(categorization("x"), &rx.url("/re"))).await);
    let first = rx.wait_for("/re", 1).await.remove(0);
    assert!(callback_succeeded(&api, &id).await);
    let webhook_id = first.webhook_id();
    finished_delivery(&app, &id).await;

    use_mode(&mut admin, "test").await;
    admin.visit(&format!("/callbacks/{webhook_id}")).await;
    let p = admin
        .post_form(&format!("/test/callbacks/{webhook_id}/redeliver"), &[])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/test/callbacks/{webhook_id}").as_str()),
        "back to the page in the mode it showed"
    );
    let again = rx.wait_for("/re", 2).await;
    assert_eq!(
        again[1].webhook_id(),
        webhook_id,
        "redelivery keeps the webhook-id"
    );
    assert_signed(&again[1], &signing, &auth);
    assert_eq!(again[1].json()["task_id"], id.as_str());
    let mut detail = admin.visit(&format!("/callbacks/{webhook_id}")).await;
    for _ in 0..100 {
        if detail.body.contains("id=\"delivery-state\">succeeded<") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        detail = admin.visit(&format!("/callbacks/{webhook_id}")).await;
    }
    assert!(
        detail.body.contains("id=\"delivery-state\">succeeded<"),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("Redeliver"));
    let missing = admin
        .post_form("/callbacks/msg_doesnotexist/redeliver", &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Send test callback to any URL: the headers of a real callback, but throwaway secrets
    // (Members may send tests, and must not obtain the real secrets this way).
    let p = admin
        .post_form("/callbacks/test", &[("url", &rx.url("/probe"))])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let test_id = extract_between(&p.body, "data-test-delivery=\"", "\"").expect("the result");
    let probe = rx.wait_for("/probe", 1).await.remove(0);
    assert_eq!(probe.webhook_id(), test_id);
    assert_eq!(probe.json()["test"], true);
    assert_eq!(probe.header("x-tessera-test-secrets"), "throwaway");
    assert_ne!(
        probe.header("scale-callback-auth"),
        auth,
        "the real auth key leaked"
    );
    assert!(probe
        .header("scale-callback-auth")
        .starts_with("throwaway_"));
    assert_eq!(
        verified_by(&probe, &signing),
        0,
        "signed with the real secret"
    );
    // A Member sending a test to their own URL gets no real secret either.
    let member_email = "member@dash.test";
    admin
        .submit(
            "/team/invitations",
            &[("emails", member_email), ("role", "member")],
        )
        .await;
    let mut member = app.browser();
    let link = app.outbox_link(member_email).await;
    member.get(&link).await;
    let joined = member
        .post_form(
            &link,
            &[
                ("name", "Mem Ber"),
                ("company", "Dash"),
                ("job_title", ""),
                ("phone", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    let p = member
        .post_form("/callbacks/test", &[("url", &rx.url("/member-probe"))])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let probe = rx.wait_for("/member-probe", 1).await.remove(0);
    let (live_auth, live_signing) = secrets(&mut admin, "live").await;
    assert_ne!(probe.header("scale-callback-auth"), live_auth);
    assert_eq!(verified_by(&probe, &live_signing), 0);
    // To the team's default callback URL (configured by a Manager): the real secrets.
    let configured = rx.url("/configured");
    admin
        .submit(
            "/team/details",
            &[("name", "Dash Co"), ("default_callback_url", &configured)],
        )
        .await;
    let p = member
        .post_form("/callbacks/test", &[("url", &configured)])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let probe = rx.wait_for("/configured", 1).await.remove(0);
    // The member's dashboard is in live mode: the live secrets.
    assert_signed(&probe, &live_signing, &live_auth);
    assert_eq!(probe.header("x-tessera-test-secrets"), "");

    // A bad URL: the form again with the message; nothing queued.
    let before = app
        .store
        .cross_tenant()
        .delivery_counts(Some(&team))
        .await
        .unwrap();
    for bad in ["ftp://nope.example.com/x", "", "not an address"] {
        let p = admin.post_form("/callbacks/test", &[("url", bad)]).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{bad}: {}", p.body);
        assert!(p.body.contains("class=\"error\""), "{}", p.body);
        assert!(
            p.body.contains(&format!("name=\"url\" value=\"{bad}\"")),
            "{}",
            p.body
        );
    }
    let after = app
        .store
        .cross_tenant()
        .delivery_counts(Some(&team))
        .await
        .unwrap();
    assert_eq!(before, after);
    app.stop().await;
}
backend_test!(dashboard_redelivers_and_sends_test_callbacks);

async fn rotated_signing_secret_signs_beside_the_new_one(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("rot@acme.test", "Rotate Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let (auth, old) = secrets(&mut admin, "test").await;
    // A callback first, so the worker has the secrets cached when the rotation happens.
    create_task(
        &api,
        with_callback(categorization("warm"), &rx.url("/warm")),
    )
    .await;
    let warm = rx.wait_for("/warm", 1).await.remove(0);
    assert_eq!(verified_by(&warm, &old), 1);
    let page = admin.submit("/keys/signing/test/rotate", &[]).await;
    let rotated_at = std::time::Instant::now();
    assert!(
        page.body.contains("signing secret was replaced"),
        "{}",
        page.body
    );
    let new = reveal(&mut admin, "/keys/signing/test/reveal").await;
    assert_ne!(old, new);
    // The live secret is a different one, untouched.
    let live = reveal(&mut admin, "/keys/signing/live/reveal").await;
    assert!(live != old && live != new);

    // Within the cache's 5 s bound (plus the callback's own trip), callbacks carry the new
    // signature beside the old one.
    let mut n = 0;
    let hit = loop {
        n += 1;
        let path = format!("/rot{n}");
        create_task(&api, with_callback(categorization("rot"), &rx.url(&path))).await;
        let hit = rx.wait_for(&path, 1).await.remove(0);
        if verified_by(&hit, &new) == 1 {
            break hit;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(6),
            "no callback carried the new signature within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let header = hit.header("webhook-signature");
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 2, "{header}");
    assert!(parts.iter().all(|p| p.starts_with("v1,")), "{header}");
    assert_ne!(parts[0], parts[1]);
    assert_eq!(verified_by(&hit, &old), 1, "{header}");
    assert_eq!(verified_by(&hit, &new), 1, "{header}");
    assert_eq!(verified_by(&hit, &live), 0);
    assert_eq!(hit.header("scale-callback-auth"), auth);
    app.stop().await;
}
backend_test!(rotated_signing_secret_signs_beside_the_new_one);

// ---------------------------------------------------------------------------------------
// The labeling queue

/// Next task: the id of the task the labeler is sent to.
async fn label_next(labeler: &mut Browser) -> String {
    labeler.visit("/label").await;
    let p = labeler.post_form("/label/next", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let location = p.location.unwrap();
    location
        .strip_prefix("/label/")
        .unwrap_or_else(|| panic!("sent to {location}, not a task"))
        .to_owned()
}

async fn submit(labeler: &mut Browser, id: &str, response: &str) -> Page {
    labeler
        .post_form(&format!("/label/{id}"), &[("response", response)])
        .await
}

async fn submit_ok(labeler: &mut Browser, id: &str, response: Value) {
    let p = submit(labeler, id, &response.to_string()).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/label"));
}

fn queue_length(page: &Page) -> i64 {
    extract_between(&page.body, "id=\"queue-length\">", "<")
        .expect("queue length shown")
        .parse()
        .unwrap()
}

async fn live_status(api: &Api, id: &str) -> Value {
    let (s, task) = api.get(&format!("/task/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{task}");
    task
}

async fn labeling_queue_claims_validates_and_completes(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let rx = Receiver::start().await;
    let mut admin = app.sign_up("q@a.test", "Queue A").await;
    let mut admin_b = app.sign_up("q@b.test", "Queue B").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "q").await);
    let test = Api::new(&app, &create_key(&mut admin, "test", "q").await);
    let live_b = Api::new(&app, &create_key(&mut admin_b, "live", "q").await);
    let team_a = team_id(&app, "Queue A").await;
    let (auth, signing) = secrets(&mut admin, "live").await;

    // Team B's task is the oldest of all; team A's test task is never queued.
    let b1 = id_of(&create_task(&live_b, categorization("SECRET-OF-B")).await);
    let a1 = id_of(
        &create_task(
            &live,
            with_callback(categorization("Is A1 positive?"), &rx.url("/labeled")),
        )
        .await,
    );
    create_task(&test, categorization("test mode")).await;
    let a2 = id_of(&create_task(&live, categorization("A2")).await);
    let a3 = id_of(&create_task(&live, categorization("A3")).await);

    let mut lee = join_as_labeler(&app, &mut admin, "lee@a.test").await;
    let mut kim = join_as_labeler(&app, &mut admin, "kim@a.test").await;
    let page = lee.visit("/label").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(queue_length(&page), 3, "team A's live pending tasks only");

    // The oldest of the team's; a second labeler gets the next one; asking again keeps yours.
    assert_eq!(label_next(&mut lee).await, a1);
    assert_eq!(label_next(&mut kim).await, a2);
    assert_eq!(label_next(&mut lee).await, a1);
    let view = lee.visit(&format!("/label/{a1}")).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(view.body.contains("Is A1 positive?") && view.body.contains("review.txt"));
    let other = kim.get(&format!("/label/{a1}")).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert!(!other.body.contains("Is A1 positive?"));
    let foreign = lee.get(&format!("/label/{b1}")).await;
    assert_ne!(foreign.status, StatusCode::OK);
    assert!(!foreign.body.contains("SECRET-OF-B"));

    // The editor starts with nothing chosen, and that is not an answer: a labeler who
    // presses Submit without looking is told to choose.
    let template = extract_between(&view.body, "aria-label=\"Response JSON\"", "</textarea>")
        .expect("the response editor");
    let template = html_unescape(template.split_once('>').unwrap().1);
    assert_eq!(
        serde_json::from_str::<Value>(&template).unwrap(),
        json!({"category": null})
    );
    let bad = submit(&mut lee, &a1, &template).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        html_unescape(&bad.body).contains("Choose a category: one of yes, no."),
        "{}",
        bad.body
    );
    // Fields the type's response does not have are refused by name, not passed on.
    let bad = submit(&mut lee, &a1, r#"{"category": "no", "extra": 1}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        html_unescape(&bad.body).contains(
            "Unknown field \"extra\" in the response; a categorization response has only \"category\"."
        ),
        "{}",
        bad.body
    );
    assert!(
        html_unescape(&bad.body).contains(r#"{"category": "no", "extra": 1}</textarea>"#),
        "the typed response is kept: {}",
        bad.body
    );

    // Invalid responses: the form again with the message; the task stays pending.
    let bad = submit(&mut lee, &a1, "{not json").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("The response is not valid JSON"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("{not json</textarea>"), "{}", bad.body);
    let bad = submit(&mut lee, &a1, r#"{"category": "maybe"}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        html_unescape(&bad.body).contains("\"maybe\" is not one of the categories: yes, no."),
        "{}",
        bad.body
    );
    let bad = submit(&mut lee, &a1, "[1, 2]").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(live_status(&live, &a1).await["status"], "pending");
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_a))
            .await
            .unwrap(),
        0
    );

    // A valid response completes the task, calls back and is billed once.
    submit_ok(&mut lee, &a1, json!({"category": "no"})).await;
    let done = live_status(&live, &a1).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["response"], json!({"category": "no"}));
    assert!(done["completed_at"].is_string());
    let hit = rx.wait_for("/labeled", 1).await.remove(0);
    assert_signed(&hit, &signing, &auth);
    assert_eq!(hit.json()["response"], json!({"category": "no"}));
    assert_eq!(hit.json()["task"]["status"], "completed");
    assert!(callback_succeeded(&live, &a1).await);
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_a))
            .await
            .unwrap(),
        1
    );
    let history = admin.visit(&format!("/tasks/{a1}")).await;
    let history = extract_between(&history.body, "id=\"history\"", "</table>").unwrap();
    assert!(history.contains("labeler lee@a.test"), "{history}");
    // Submitting again changes nothing.
    let again = submit(&mut lee, &a1, r#"{"category": "yes"}"#).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        live_status(&live, &a1).await["response"],
        json!({"category": "no"})
    );
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_a))
            .await
            .unwrap(),
        1
    );

    // The customer cancels the task Kim holds: her submit is refused and writes nothing.
    let (s, _) = live.post(&format!("/task/{a2}/cancel"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let refused = submit(&mut kim, &a2, r#"{"category": "yes"}"#).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains("The customer canceled this task"),
        "{}",
        refused.body
    );
    let canceled = live_status(&live, &a2).await;
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled.get("response").is_none() && canceled.get("completed_at").is_none());
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_a))
            .await
            .unwrap(),
        1
    );

    // One left in team A's queue; then it is empty although team B's task still waits.
    assert_eq!(queue_length(&kim.visit("/label").await), 1);
    assert_eq!(label_next(&mut kim).await, a3);

    // An imageannotation with no boxes is not sent silently: the labeler is asked to confirm.
    let (s, image) = live
        .post(
            "/task/imageannotation",
            json!({"attachment": "https://example.com/street.png",
                   "geometries": {"box": {"objects_to_annotate": ["car"]}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{image}");
    let image = id_of(&image);
    assert_eq!(label_next(&mut lee).await, image);
    let page = lee.visit(&format!("/label/{image}")).await;
    assert!(
        !page.body.contains("Submit with no"),
        "no confirmation before it is needed"
    );
    let none = json!({"annotations": [], "global_attributes": {}}).to_string();
    let asked = submit(&mut lee, &image, &none).await;
    assert_eq!(asked.status, StatusCode::BAD_REQUEST);
    assert!(
        asked.body.contains("This response has no boxes"),
        "{}",
        asked.body
    );
    assert!(
        asked.body.contains("name=\"confirm_empty\" value=\"1\"")
            && asked.body.contains("Submit with no boxes"),
        "{}",
        asked.body
    );
    assert_eq!(live_status(&live, &image).await["status"], "pending");
    let confirmed = lee
        .post_form(
            &format!("/label/{image}"),
            &[("response", &none), ("confirm_empty", "1")],
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.body
    );
    let done = live_status(&live, &image).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["response"]["annotations"], json!([]));
    lee.visit("/label").await;
    let empty = lee.post_form("/label/next", &[]).await;
    assert_eq!(empty.location.as_deref(), Some("/label"));
    assert!(lee
        .visit("/label")
        .await
        .body
        .contains("No tasks are waiting"));
    assert_eq!(live_status(&live_b, &b1).await["status"], "pending");
    app.stop().await;
}
backend_test!(labeling_queue_claims_validates_and_completes);

async fn labeling_leases_expire_and_release_returns_tasks(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            label_lease: Some(Duration::from_millis(2_000)),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("lease@a.test", "Lease Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "q").await);
    let team = team_id(&app, "Lease Co").await;
    let t = id_of(&create_task(&live, categorization("lease")).await);
    let mut lee = join_as_labeler(&app, &mut admin, "lee@lease.test").await;
    let mut kim = join_as_labeler(&app, &mut admin, "kim@lease.test").await;

    // The page shows the lease's end to the second and the Extend button (the countdown runs
    // in app.js from the time left).
    assert_eq!(label_next(&mut lee).await, t);
    let view = lee.visit(&format!("/label/{t}")).await;
    let until = extract_between(&view.body, "<time id=\"lease-until\">", "</time>").unwrap();
    assert!(
        until.len() == "12:34:56 UTC".len() && until.ends_with(" UTC"),
        "{until}"
    );
    assert!(view.body.contains("data-lease-left-ms=\""), "{}", view.body);
    assert!(
        view.body
            .contains(&format!("formaction=\"/label/{t}/extend\"")),
        "{}",
        view.body
    );

    // Lee's lease runs out and Kim takes the task: Lee's late submission is refused, with the
    // task page and what Lee typed, not a bare error.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    assert_eq!(label_next(&mut kim).await, t);
    let late = submit(&mut lee, &t, r#"{"category": "yes"}"#).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    let body = html_unescape(&late.body);
    assert!(
        body.contains("You do not hold this task any more"),
        "{body}"
    );
    assert!(
        body.contains(r#"{"category": "yes"}</textarea>"#),
        "the typed response is kept: {body}"
    );
    assert!(body.contains("lease"), "{body}");
    assert_eq!(live_status(&live, &t).await["status"], "pending");
    // Extending a task another labeler holds is refused the same way.
    let taken = lee
        .post_form(
            &format!("/label/{t}/extend"),
            &[("response", r#"{"category": "no"}"#)],
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(html_unescape(&taken.body).contains(r#"{"category": "no"}</textarea>"#));

    // Kim extends her lease: another full lease from now, the typed text shown again, and a
    // line in the task's history.
    let before = app
        .store
        .labeler_claim(&tessera_store::LabelerScope::operator(
            &user_id(&app, "kim@lease.test").await,
            tessera_store::Queue::Everyone,
        ))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let extended = kim
        .post_form(
            &format!("/label/{t}/extend"),
            &[("response", r#"{"category": "maybe"}"#)],
        )
        .await;
    assert_eq!(extended.status, StatusCode::OK, "{}", extended.body);
    let body = html_unescape(&extended.body);
    assert!(
        body.contains("Reserved for you for another 2 seconds"),
        "{body}"
    );
    assert!(
        body.contains(r#"{"category": "maybe"}</textarea>"#),
        "{body}"
    );
    let after = app
        .store
        .labeler_claim(&tessera_store::LabelerScope::operator(
            &user_id(&app, "kim@lease.test").await,
            tessera_store::Queue::Everyone,
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        after.lease_until >= before.lease_until + 500,
        "{} -> {}",
        before.lease_until,
        after.lease_until
    );
    let history = admin.visit(&format!("/tasks/{t}")).await;
    let history = extract_between(&history.body, "id=\"history\"", "</table>").unwrap();
    assert!(
        history.contains("labeler kim@lease.test") && history.contains("lease extended"),
        "{history}"
    );

    // Kim releases it; Lee can take it again at once.
    let released = kim.post_form(&format!("/label/{t}/release"), &[]).await;
    assert_eq!(released.status, StatusCode::SEE_OTHER);
    assert!(kim
        .visit("/label")
        .await
        .body
        .contains("Task released back to the queue."));
    assert_eq!(label_next(&mut lee).await, t);
    // Lee's lease runs out, but nobody takes the task: Lee's work is not lost, the late
    // submission re-claims and completes it.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    submit_ok(&mut lee, &t, json!({"category": "yes"})).await;
    let done = live_status(&live, &t).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["response"], json!({"category": "yes"}));
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team))
            .await
            .unwrap(),
        1
    );
    let history = admin.visit(&format!("/tasks/{t}")).await;
    let history = extract_between(&history.body, "id=\"history\"", "</table>").unwrap();
    assert!(history.contains("after the lease ran out"), "{history}");

    // Extend after the lease ran out with nobody else on the task re-claims it.
    let t2 = id_of(&create_task(&live, categorization("lease 2")).await);
    assert_eq!(label_next(&mut kim).await, t2);
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let reclaimed = kim
        .post_form(&format!("/label/{t2}/extend"), &[("response", "{}")])
        .await;
    assert_eq!(reclaimed.status, StatusCode::OK, "{}", reclaimed.body);
    assert_eq!(label_next(&mut kim).await, t2, "Kim holds it again");
    submit_ok(&mut kim, &t2, json!({"category": "no"})).await;

    // Race: the late submission and another labeler's claim, at once, many times. Exactly one
    // wins each time; the task is never both completed by Lee and held by Kim.
    for round in 0..6 {
        let task = id_of(&create_task(&live, categorization(&format!("race {round}"))).await);
        assert_eq!(label_next(&mut lee).await, task);
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        kim.visit("/label").await;
        let body = json!({"category": "yes"}).to_string();
        let (late, claim) = tokio::join!(
            submit(&mut lee, &task, &body),
            kim.post_form("/label/next", &[])
        );
        let status = live_status(&live, &task).await;
        let kim_got_it = claim.location.as_deref() == Some(&format!("/label/{task}")[..]);
        if late.status == StatusCode::SEE_OTHER {
            assert_eq!(status["status"], "completed", "round {round}");
            assert!(!kim_got_it, "round {round}: Kim holds a completed task");
        } else {
            assert_eq!(
                late.status,
                StatusCode::CONFLICT,
                "round {round}: {}",
                late.body
            );
            assert_eq!(status["status"], "pending", "round {round}");
            assert!(
                kim_got_it,
                "round {round}: refused, yet Kim does not hold it"
            );
            submit_ok(&mut kim, &task, json!({"category": "no"})).await;
        }
    }
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team))
            .await
            .unwrap(),
        8
    );
    app.stop().await;
}
backend_test!(labeling_leases_expire_and_release_returns_tasks);

/// `n` boxes labeled "car", as the box annotator writes them (pretty-printed).
fn boxes(n: usize) -> String {
    let annotations: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type": "box", "label": "car", "left": i % 640, "top": i / 640,
                   "width": 12 + i % 50, "height": 9 + i % 40})
        })
        .collect();
    serde_json::to_string_pretty(&json!({"annotations": annotations, "global_attributes": {}}))
        .unwrap()
}

async fn dense_tasks_can_be_submitted(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("dense@a.test", "Dense Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "q").await);
    let image = || {
        json!({"attachment": "https://example.com/crowd.png",
               "geometries": {"box": {"objects_to_annotate": ["car"]}}})
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, task) = live.post("/task/imageannotation", image()).await;
        assert_eq!(s, StatusCode::OK, "{task}");
        ids.push(id_of(&task));
    }
    let mut lee = join_as_labeler(&app, &mut admin, "lee@dense.test").await;

    // 2,000 boxes: far past the 64 KiB of other dashboard forms, well within the API's 1 MiB.
    let t = label_next(&mut lee).await;
    assert_eq!(t, ids[0]);
    let dense = boxes(2_000);
    assert!(
        dense.len() > 200 * 1024 && dense.len() < 1024 * 1024,
        "{}",
        dense.len()
    );
    submit_ok(&mut lee, &t, serde_json::from_str(&dense).unwrap()).await;
    let done = live_status(&live, &t).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["response"]["annotations"].as_array().unwrap().len(),
        2_000
    );

    // Past 1 MiB of JSON: the page again, with what was typed and the limit.
    let t = label_next(&mut lee).await;
    let huge = boxes(12_000);
    assert!(
        huge.len() > 1024 * 1024 && huge.len() < 3 * 1024 * 1024,
        "{}",
        huge.len()
    );
    let refused = submit(&mut lee, &t, &huge).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("it may be at most 1024 KiB of JSON"),
        "{}",
        &refused.body[..2000.min(refused.body.len())]
    );
    assert!(html_unescape(&refused.body).contains(&format!("{huge}</textarea>")));

    // A form past what the server reads at all (3 MiB and more): the task page with the editor
    // and how large a response may be; nothing is written and the lease is kept.
    let padding = "x".repeat(3 * 1024 * 1024 + 100 * 1024);
    let oversized = submit(&mut lee, &t, &padding).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        oversized.body.contains("Your response was not received")
            && oversized.body.contains("at most 1024 KiB of JSON"),
        "{}",
        oversized.body
    );
    assert!(oversized.body.contains("aria-label=\"Response JSON\""));
    assert!(!oversized.body.contains("The form is too large"));
    assert_eq!(live_status(&live, &t).await["status"], "pending");
    assert_eq!(label_next(&mut lee).await, t, "still held");
    // Oversized and without a CSRF token: the same page, and still nothing changes.
    let forged = lee
        .post_raw(&format!("/label/{t}"), &[("response", &padding)])
        .await;
    assert_eq!(forged.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(live_status(&live, &t).await["status"], "pending");
    // Small enough, but without a token: refused as any forged form.
    let forged = lee
        .post_raw(&format!("/label/{t}"), &[("response", &boxes(3))])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(live_status(&live, &t).await["status"], "pending");
    submit_ok(&mut lee, &t, serde_json::from_str(&boxes(3)).unwrap()).await;

    // Other dashboard forms keep the 64 KiB limit.
    let long = "y".repeat(100 * 1024);
    let profile = admin.post_form("/profile", &[("name", &long)]).await;
    assert_eq!(profile.status, StatusCode::BAD_REQUEST);
    assert!(
        profile.body.contains("The form is too large"),
        "{}",
        profile.body
    );
    app.stop().await;
}
backend_test!(dense_tasks_can_be_submitted);

async fn workforce_labels_every_team_and_nothing_else(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin_a = app.sign_up("w@a.test", "Work A").await;
    let mut admin_b = app.sign_up("w@b.test", "Work B").await;
    let live_a = Api::new(&app, &create_key(&mut admin_a, "live", "w").await);
    let live_b = Api::new(&app, &create_key(&mut admin_b, "live", "w").await);
    let test_a = Api::new(&app, &create_key(&mut admin_a, "test", "w").await);
    let (team_a, team_b) = (team_id(&app, "Work A").await, team_id(&app, "Work B").await);
    create_task(&test_a, categorization("test mode never queued")).await;
    let b1 = id_of(&create_task(&live_b, categorization("B1")).await);
    let a1 = id_of(&create_task(&live_a, categorization("A1")).await);
    let b2 = id_of(&create_task(&live_b, categorization("SECRET-B2")).await);

    tessera_server::staff::support::create_labeler(&app.store, "crowd@tessera.test", PASSWORD)
        .await
        .unwrap();
    let mut crowd = login(&app, "crowd@tessera.test").await;
    assert_eq!(
        queue_length(&crowd.visit("/label").await),
        3,
        "every team's queue"
    );
    for path in [
        "/team",
        "/tasks",
        "/keys",
        "/callbacks",
        "/projects",
        "/team/details",
    ] {
        assert_eq!(
            crowd.get(path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let p = crowd
        .post_form("/callbacks/test", &[("url", "a@b.test")])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Oldest first, across teams.
    assert_eq!(label_next(&mut crowd).await, b1);
    submit_ok(&mut crowd, &b1, json!({"category": "yes"})).await;
    assert_eq!(label_next(&mut crowd).await, a1);
    submit_ok(&mut crowd, &a1, json!({"category": "no"})).await;
    assert_eq!(live_status(&live_b, &b1).await["status"], "completed");
    assert_eq!(
        live_status(&live_a, &a1).await["response"],
        json!({"category": "no"})
    );
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_a))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_b))
            .await
            .unwrap(),
        1
    );
    let history = admin_a.visit(&format!("/tasks/{a1}")).await;
    assert!(history.body.contains("labeler crowd@tessera.test"));

    // Nobody else sees B2 through the labeling pages: a team labeler of A, a member of A,
    // and not even B's own Admin (who is not a labeler).
    let mut lee = join_as_labeler(&app, &mut admin_a, "lee@work.test").await;
    for (who, b) in [
        ("labeler of A", &mut lee),
        ("admin of A", &mut admin_a),
        ("admin of B", &mut admin_b),
    ] {
        let p = b.get(&format!("/label/{b2}")).await;
        assert!(
            [
                StatusCode::FORBIDDEN,
                StatusCode::NOT_FOUND,
                StatusCode::CONFLICT
            ]
            .contains(&p.status),
            "{who}: {}",
            p.status
        );
        assert!(!p.body.contains("SECRET-B2"), "{who} saw the task");
    }
    assert_eq!(
        lee.get("/label/ffffffffffffffffffffffff").await.status,
        StatusCode::NOT_FOUND
    );
    // A labeler moved to another team while holding a task: the task goes back to its
    // team's queue at once, and the labeler works the new team's queue.
    assert_eq!(label_next(&mut crowd).await, b2);
    let released = crowd.post_form(&format!("/label/{b2}/release"), &[]).await;
    assert_eq!(released.status, StatusCode::SEE_OTHER);
    let a2 = id_of(&create_task(&live_a, categorization("SECRET-A2")).await);
    assert_eq!(label_next(&mut lee).await, a2);
    tessera_server::staff::support::move_user(
        &app.store,
        "lee@work.test",
        "Work B",
        Some("labeler"),
        &tessera_server::staff::support::Operator::cli(),
    )
    .await
    .unwrap();
    let mut lee = login(&app, "lee@work.test").await;
    let p = lee.get(&format!("/label/{a2}")).await;
    assert!(
        [
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT
        ]
        .contains(&p.status),
        "{}",
        p.status
    );
    assert!(!p.body.contains("SECRET-A2"));
    let p = submit(&mut lee, &a2, r#"{"category": "yes"}"#).await;
    assert!([
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::CONFLICT
    ]
    .contains(&p.status));
    assert_eq!(live_status(&live_a, &a2).await["status"], "pending");
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team_a))
            .await
            .unwrap(),
        1
    );
    assert_eq!(label_next(&mut lee).await, b2, "team B's queue now");
    assert_eq!(label_next(&mut crowd).await, a2, "released by the move");
    app.stop().await;
}
backend_test!(workforce_labels_every_team_and_nothing_else);

/// The detail page shows what each attempt sent — the exact body and the request headers,
/// secrets masked — not a body built from the task as it is now (which would carry
/// `callback_succeeded`, set only after the callback was sent).
async fn detail_page_shows_each_attempts_exact_request(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("200ms,200ms"),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan(
        "/exact",
        Plan::FailFirst {
            remaining: 1,
            status: 503,
            retry_after: None,
        },
    );
    let mut admin = app.sign_up("exact@acme.test", "Exact Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let (auth, _) = secrets(&mut admin, "test").await;
    let id = id_of(&create_task(&api, with_callback(categorization("x"), &rx.url("/exact"))).await);
    let hits = rx.wait_for("/exact", 2).await;
    assert!(callback_succeeded(&api, &id).await);
    let delivery = finished_delivery(&app, &id).await;
    use_mode(&mut admin, "test").await;
    let page = admin.visit(&format!("/callbacks/{}", delivery.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Built from the task"), "{}", page.body);
    assert!(
        !page.body.contains("id=\"delivery-body\""),
        "no body built now"
    );

    let bodies: Vec<String> = page
        .body
        .split("<pre class=\"json attempt-body\">")
        .skip(1)
        .map(|rest| html_unescape(&rest[..rest.find("</pre>").unwrap()]))
        .collect();
    assert_eq!(bodies.len(), 2, "one body per attempt: {}", page.body);
    for (shown, hit) in bodies.iter().zip(hits.iter().rev()) {
        assert_eq!(shown.as_bytes(), hit.body.as_slice(), "the exact body sent");
    }
    assert!(
        !bodies[0].contains("callback_succeeded\":true"),
        "{}",
        bodies[0]
    );
    let header = |name: &str| {
        let at = page
            .body
            .find(&format!("<dt><code>{name}</code></dt>"))
            .unwrap_or_else(|| panic!("header {name} shown: {}", page.body));
        html_unescape(
            &extract_between(&page.body[at..], "<dd class=\"break\"><code>", "</code>").unwrap(),
        )
    };
    assert_eq!(header("scale-callback-auth"), format!("{}…", &auth[..4]));
    assert!(
        !page.body.contains(&auth),
        "the auth key is never shown whole"
    );
    let signature = header("webhook-signature");
    assert!(
        signature.starts_with("v1,") && signature.ends_with('…'),
        "{signature}"
    );
    assert_eq!(
        signature.chars().count(),
        "v1,".len() + 4 + 1,
        "{signature}"
    );
    assert!(!page.body.contains(&hits[0].header("webhook-signature")));
    assert_eq!(header("webhook-id"), delivery.id.as_str());
    assert_eq!(header("content-type"), "application/json");
    app.stop().await;
}
backend_test!(detail_page_shows_each_attempts_exact_request);

/// "Send test callback" answers with the receiver's response at once and never retries: a
/// dead URL fails once (not for a day), a 500 is shown with its body, a success with its
/// status, latency and body; each is listed as a test delivery with its one attempt.
async fn test_callbacks_answer_at_once_and_are_never_retried(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("100ms,100ms,100ms"),
            callback_timeout: Some(Duration::from_secs(2)),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan("/down", Plan::Always(500));
    let mut admin = app.sign_up("tester@acme.test", "Tester Co").await;
    let team = team_id(&app, "Tester Co").await;

    let ok = admin
        .post_form("/callbacks/test", &[("url", &rx.url("/up"))])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(rx.hits("/up").len(), 1, "sent before the answer");
    assert!(ok.body.contains("Delivered to"), "{}", ok.body);
    assert!(ok.body.contains("id=\"test-status\">200<"), "{}", ok.body);
    assert!(ok.body.contains("id=\"test-response\">ok<"), "{}", ok.body);
    assert!(ok.body.contains("id=\"test-latency\">"), "{}", ok.body);

    let failed = admin
        .post_form("/callbacks/test", &[("url", &rx.url("/down"))])
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.body);
    assert!(failed.body.contains("Not delivered to"), "{}", failed.body);
    assert!(
        failed.body.contains("id=\"test-status\">500<"),
        "{}",
        failed.body
    );
    assert!(
        failed.body.contains("id=\"test-response\">not now<"),
        "{}",
        failed.body
    );

    // Nothing listens on this port: the error, at once.
    let dead_url = format!("http://127.0.0.1:{}/gone", free_port());
    let dead = admin
        .post_form("/callbacks/test", &[("url", &dead_url)])
        .await;
    assert_eq!(dead.status, StatusCode::OK, "{}", dead.body);
    assert!(
        dead.body.contains("id=\"test-error\">could not connect"),
        "{}",
        dead.body
    );
    let dead_id = extract_between(&dead.body, "data-test-delivery=\"", "\"").unwrap();

    // Never retried: after several retry intervals, still one attempt each, none pending.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.hits("/down").len(), 1, "a failed test is not retried");
    let counts = app
        .store
        .cross_tenant()
        .delivery_counts(Some(&team))
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.succeeded, counts.failed), (0, 1, 2));
    // The dashboard starts in live mode.
    let scope = Scope::operator(TeamId::from_stored(team.clone()), tessera_core::Mode::Live);
    let dead_id = tessera_core::ids::DeliveryId::from_stored(dead_id);
    let attempts = app.store.delivery_attempts(&scope, &dead_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    let list = admin.visit("/callbacks").await;
    assert!(
        list.body
            .contains(&format!("data-delivery=\"{dead_id}\" data-kind=\"test\"")),
        "{}",
        list.body
    );

    // The outbound guard still applies (production refuses loopback).
    let guarded = TestApp::spawn_with(
        &backend,
        Options {
            refuse_private_callbacks: true,
            ..Options::default()
        },
    )
    .await;
    let mut other = guarded.sign_up("guard@acme.test", "Guarded").await;
    let refused = other
        .post_form("/callbacks/test", &[("url", &rx.url("/guarded"))])
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(
        refused.body.contains("Not delivered to"),
        "{}",
        refused.body
    );
    assert!(rx.hits("/guarded").is_empty());
    guarded.stop().await;
    app.stop().await;
}
backend_test!(test_callbacks_answer_at_once_and_are_never_retried);

/// Cancel retries on a pending delivery: it is failed at once, the worker never sends it again
/// (its retry schedule would have), the task's `callback_succeeded` reads false, the audit log
/// says who did it, and a finished delivery has nothing left to cancel. People without
/// SendCallbacks (Labelers) are refused; the form is only on a pending delivery's page.
async fn cancel_retries_stops_a_pending_delivery(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            callback_retry: Some("300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms"),
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.plan("/never", Plan::Always(500));
    let mut admin = app.sign_up("cancel@acme.test", "Cancel Co").await;
    let key = create_key(&mut admin, "test", "cb").await;
    let api = Api::new(&app, &key);
    let id = id_of(&create_task(&api, with_callback(categorization("c"), &rx.url("/never"))).await);
    let webhook_id = rx.wait_for("/never", 1).await[0].webhook_id();

    use_mode(&mut admin, "test").await;
    let pending = admin.visit(&format!("/test/callbacks/{webhook_id}")).await;
    assert_eq!(pending.status, StatusCode::OK);
    assert!(
        pending.body.contains("id=\"cancel-retries\""),
        "{}",
        pending.body
    );
    assert!(
        pending.body.contains(&format!(
            "action=\"/test/callbacks/{webhook_id}/cancel\" data-confirm="
        )),
        "the form asks first and stays in test mode"
    );

    let mut labeler = join_as(&app, &mut admin, "labeler.cancel@acme.test", "labeler").await;
    let refused = labeler
        .post_form(&format!("/test/callbacks/{webhook_id}/cancel"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let done = admin
        .post_form(&format!("/test/callbacks/{webhook_id}/cancel"), &[])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/test/callbacks/{webhook_id}").as_str())
    );
    let scope = task_scope(&app, &id).await;
    let delivery = app
        .store
        .get_delivery(&scope, &webhook_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.next_attempt_at, None);
    assert_eq!(
        delivery.last_error.as_deref(),
        Some("retries canceled by cancel@acme.test")
    );
    // An attempt may have been in flight while canceling; after it, nothing more is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = rx.hits("/never").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.hits("/never").len(), sent, "never sent again");
    assert!(!callback_succeeded(&api, &id).await);
    let still = app
        .store
        .get_delivery(&scope, &webhook_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still.status,
        DeliveryStatus::Failed,
        "an in-flight outcome does not revive it"
    );

    let page = admin.visit(&format!("/test/callbacks/{webhook_id}")).await;
    assert!(
        page.body.contains("id=\"delivery-state\">failed<"),
        "{}",
        page.body
    );
    assert!(page.body.contains("retries canceled by cancel@acme.test"));
    assert!(
        !page.body.contains("id=\"cancel-retries\""),
        "nothing left to cancel"
    );
    let again = admin
        .post_form(&format!("/test/callbacks/{webhook_id}/cancel"), &[])
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let warned = admin.visit(&format!("/test/callbacks/{webhook_id}")).await;
    assert!(
        warned
            .body
            .contains("already finished; there are no retries to cancel"),
        "{}",
        warned.body
    );

    let audit = admin
        .visit("/team/audit?action=callback.retries_canceled")
        .await;
    assert_eq!(audit.status, StatusCode::OK);
    let table = extract_between(&audit.body, "id=\"audit\">", "</table>").expect("audit table");
    assert_eq!(
        table.matches("<tr><td class=\"when\">").count(),
        1,
        "{table}"
    );
    let text = table.replace("<wbr>", "");
    assert!(text.contains("cancel@acme.test"), "{table}");
    assert!(text.contains(&webhook_id), "{table}");
    app.stop().await;
}
backend_test!(cancel_retries_stops_a_pending_delivery);
