//! Callback delivery across real `tessera serve` processes: a server killed with SIGKILL in
//! the middle of delivering loses nothing (its restart delivers every callback, the ones it
//! held once their lease ends), and two replicas on one PostgreSQL database deliver each
//! callback exactly once.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::StatusCode, Router};
use tessera_store::Store;
use tokio::{process::Child, sync::watch, task::JoinSet};

use crate::helpers::{
    confirm_verification, invite_path, verification_path_in, Backend, Browser, TestDb, PASSWORD,
};

/// Time per request at the receiver, so that deliveries are in flight for a while.
const RECEIVER_DELAY: Duration = Duration::from_millis(20);
/// Time allowed for one callback attempt. The lease is this plus at least 5 s more (see
/// `lease_for` in the worker), so a killed server's deliveries are retried ~7 s after claim.
const CALLBACK_TIMEOUT: &str = "2s";

// ------------------------------------------------------------------------------ receiver

/// A callback receiver in the test: records the `task_id` of every callback it answers.
///
/// While `hold_after` is set, it answers only that many callbacks in all; later ones are held
/// (neither recorded nor answered) until [`Receiver::release`], then answered 503 — so a
/// server killed meanwhile has deliveries in flight, and none of them counts as arrived.
struct Receiver {
    addr: SocketAddr,
    inner: Arc<ReceiverInner>,
}

struct ReceiverInner {
    seen: Mutex<HashMap<String, usize>>,
    /// Callbacks let through (answered or about to be).
    admitted: AtomicUsize,
    /// Callbacks waiting for the release right now.
    held: AtomicUsize,
    hold_after: AtomicUsize,
    released: watch::Sender<bool>,
}

impl Receiver {
    async fn start(hold_after: Option<usize>) -> Receiver {
        let (released, _) = watch::channel(hold_after.is_none());
        let inner = Arc::new(ReceiverInner {
            seen: Mutex::new(HashMap::new()),
            admitted: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            hold_after: AtomicUsize::new(hold_after.unwrap_or(usize::MAX)),
            released,
        });
        let app = Router::new().fallback(receive).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, inner }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Task id → how many times its callback arrived.
    fn seen(&self) -> HashMap<String, usize> {
        self.inner.seen.lock().unwrap().clone()
    }

    fn held(&self) -> usize {
        self.inner.held.load(Ordering::SeqCst)
    }

    /// From now on every callback is answered (held ones with 503).
    fn release(&self) {
        self.inner.hold_after.store(usize::MAX, Ordering::SeqCst);
        self.inner.released.send_replace(true);
    }
}

async fn receive(State(inner): State<Arc<ReceiverInner>>, body: Bytes) -> StatusCode {
    if inner.admitted.fetch_add(1, Ordering::SeqCst) >= inner.hold_after.load(Ordering::SeqCst) {
        inner.held.fetch_add(1, Ordering::SeqCst);
        let mut released = inner.released.subscribe();
        let _ = released.wait_for(|r| *r).await;
        inner.held.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    tokio::time::sleep(RECEIVER_DELAY).await;
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(task_id) = json["task_id"].as_str() else {
        return StatusCode::BAD_REQUEST;
    };
    *inner
        .seen
        .lock()
        .unwrap()
        .entry(task_id.to_owned())
        .or_default() += 1;
    StatusCode::OK
}

// ------------------------------------------------------------------------------ servers

/// The environment every `tessera` process of one test shares: one master key, so replicas
/// and the admin CLI read each other's sealed secrets.
struct Cluster {
    db: TestDb,
    master_key: String,
    /// `TESSERA_LOG` of the servers.
    log: &'static str,
}

/// A running `tessera serve` process.
struct Server {
    child: Child,
    base: String,
}

impl Cluster {
    async fn new(backend: &Backend) -> Cluster {
        Cluster {
            db: TestDb::new(backend).await,
            master_key: hex::encode(rand::random::<[u8; 32]>()),
            log: "warn",
        }
    }

    fn command(&self, data_dir: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.env("TESSERA_MASTER_KEY", &self.master_key)
            .env("TESSERA_DATA_DIR", data_dir)
            .env("TESSERA_DATABASE_URL", &self.db.url)
            .env("TESSERA_LOG", self.log)
            .kill_on_drop(true);
        cmd
    }

    /// Runs `tessera admin …`; returns its stdout.
    async fn admin(&self, args: &[&str]) -> String {
        let out = self
            .command(&self.db.dir)
            .arg("admin")
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "tessera admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A team with a test API key; returns the key.
    async fn team_key(&self) -> String {
        self.admin(&[
            "create-team",
            "--name",
            "Durable",
            "--admin-email",
            "admin@durable.test",
            "--password",
            PASSWORD,
        ])
        .await;
        let key = self
            .admin(&["create-api-key", "--team", "Durable", "--mode", "test"])
            .await;
        key.lines().last().unwrap_or_default().to_owned()
    }

    /// Starts `tessera serve` (replica `n` gets a data dir of its own) and waits until it
    /// answers `/healthz`.
    async fn serve(&self, n: usize) -> Server {
        let dir = self.db.dir.join(format!("replica-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let child = self
            .command(&dir)
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--allow-private-callbacks",
                "--callback-timeout",
                CALLBACK_TIMEOUT,
                "--callback-retry-schedule",
                &["1s"; 30].join(","),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            base: format!("http://{addr}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await {
                if r.status().is_success() {
                    return server;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "tessera serve exited with {status}: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "tessera serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Server {
    /// SIGKILL: no graceful shutdown, no outcome written after this.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Creates `count` test-mode categorization tasks with `callback_url`, 16 at a time, spread
/// over `bases` in turn; returns their ids in creation order.
async fn create_tasks(
    bases: &[String],
    key: &str,
    callback_url: &str,
    count: usize,
) -> Vec<String> {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..16 {
        let (client, next, bases) = (client.clone(), next.clone(), bases.to_vec());
        let (key, callback_url) = (key.to_owned(), callback_url.to_owned());
        workers.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= count {
                    return ids;
                }
                let base = &bases[n % bases.len()];
                let r = client
                    .post(format!("{base}/v1/task/categorization"))
                    .basic_auth(&key, Some(""))
                    .json(&serde_json::json!({
                        "callback_url": callback_url,
                        "attachment": format!("https://example.com/{n}.jpg"),
                        "attachment_type": "image",
                        "categories": ["a", "b"],
                    }))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(status, 200, "creating a task: {body}");
                ids.push((n, body["task_id"].as_str().unwrap().to_owned()));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(ids) = workers.join_next().await {
        all.extend(ids.unwrap());
    }
    all.sort();
    assert_eq!(all.len(), count);
    all.into_iter().map(|(_, id)| id).collect()
}

/// Waits until every task's callback arrived and every delivery is finished; returns what
/// the receiver saw. Panics after `limit` with what is missing.
async fn wait_for_all(
    receiver: &Receiver,
    store: &Store,
    ids: &[String],
    limit: Duration,
) -> HashMap<String, usize> {
    let deadline = Instant::now() + limit;
    loop {
        let seen = receiver.seen();
        let counts = store.cross_tenant().delivery_counts(None).await.unwrap();
        let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
        if missing == 0 && counts.pending == 0 {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "after {limit:?}: {missing} of {} callbacks never arrived; deliveries {counts:?}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every task ends with `callback_succeeded: true` and every delivery succeeded.
async fn assert_all_succeeded(store: &Store, ids: &[String]) {
    let tasks = store.cross_tenant().tasks_by_ids(ids).await.unwrap();
    assert_eq!(tasks.len(), ids.len());
    let not = tasks
        .values()
        .filter(|t| t.callback_succeeded != Some(true))
        .count();
    assert_eq!(not, 0, "tasks without callback_succeeded = true");
    let counts = store.cross_tenant().delivery_counts(None).await.unwrap();
    assert_eq!(
        (counts.succeeded, counts.pending, counts.failed),
        (ids.len() as i64, 0, 0)
    );
}

// ------------------------------------------------------------------------------ tests

/// SIGKILL in the middle of delivering 300 callbacks, then a restart on the same database:
/// every callback arrives (at least once) and every task ends with `callback_succeeded`.
async fn sigkill_mid_delivery_loses_nothing(backend: Backend) {
    const TASKS: usize = 300;
    const ANSWERED_BEFORE_KILL: usize = 50;
    let started = Instant::now();
    let cluster = Cluster::new(&backend).await;
    let key = cluster.team_key().await;
    let receiver = Receiver::start(Some(ANSWERED_BEFORE_KILL)).await;
    let mut server = cluster.serve(0).await;
    let store = cluster.db.store().await;

    let ids = create_tasks(
        std::slice::from_ref(&server.base),
        &key,
        &receiver.url(),
        TASKS,
    )
    .await;
    // Kill only once deliveries are under way: some answered, more held in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.seen().values().sum::<usize>() < ANSWERED_BEFORE_KILL || receiver.held() == 0 {
        assert!(Instant::now() < deadline, "deliveries did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().await;
    let in_flight = receiver.held();
    let arrived = receiver.seen().len();
    assert!(in_flight > 0, "deliveries were in flight at the kill");
    assert!(
        arrived > 0 && arrived < TASKS,
        "some but not all callbacks arrived before the kill: {arrived}"
    );
    let pending = store
        .cross_tenant()
        .delivery_counts(None)
        .await
        .unwrap()
        .pending;
    assert!(
        pending >= (TASKS - arrived) as i64,
        "the outbox still holds every callback not yet answered: {pending} pending, {arrived} arrived"
    );

    receiver.release();
    let mut restarted = cluster.serve(0).await;
    let seen = wait_for_all(&receiver, &store, &ids, Duration::from_secs(40)).await;
    assert_all_succeeded(&store, &ids).await;
    let duplicates = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "sigkill ({backend:?}): {arrived} arrived and {in_flight} in flight at the kill; \
         all {TASKS} after the restart ({duplicates} twice) in {:?}",
        started.elapsed()
    );
    restarted.kill().await;
    store.close().await;
}

crate::backend_test!(sigkill_mid_delivery_loses_nothing);

/// Two `tessera serve` processes on one PostgreSQL database, tasks created through both:
/// each of 500 callbacks arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tessera_postgres_tests),
    ignore = "needs PostgreSQL: set TESSERA_TEST_POSTGRES_URL"
)]
async fn two_replicas_deliver_each_callback_once() {
    const TASKS: usize = 500;
    let backend = Backend::postgres().expect("TESSERA_TEST_POSTGRES_URL was set at build time");
    let cluster = Cluster::new(&backend).await;
    let key = cluster.team_key().await;
    let receiver = Receiver::start(None).await;
    let mut a = cluster.serve(0).await;
    let mut b = cluster.serve(1).await;
    let store = cluster.db.store().await;

    let ids = create_tasks(
        &[a.base.clone(), b.base.clone()],
        &key,
        &receiver.url(),
        TASKS,
    )
    .await;
    let seen = wait_for_all(&receiver, &store, &ids, Duration::from_secs(40)).await;
    // Anything sent twice would arrive within the receiver's delay; give it ample time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen_later = receiver.seen();
    assert_eq!(
        seen, seen_later,
        "callbacks arrived after the last delivery finished"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "callbacks delivered more than once: {twice:?}"
    );
    assert_eq!(seen.len(), TASKS);
    assert_all_succeeded(&store, &ids).await;
    a.kill().await;
    b.kill().await;
    store.close().await;
}

/// An attempt's outcome on a claimed delivery, made under the lease it was claimed with
/// plus `lease_delta` ms (non-zero: a lease that is no longer the delivery's).
fn outcome(
    claimed: &tessera_store::ClaimedDelivery,
    next: tessera_store::NextStep,
    lease_delta: i64,
) -> tessera_store::DeliveryOutcome {
    use tessera_store::{DeliveryAttempt, DeliveryOutcome, NextStep};
    let d = &claimed.delivery;
    let ok = next == NextStep::Succeeded;
    DeliveryOutcome {
        delivery_id: d.id.clone(),
        claimed_until: d.next_attempt_at.unwrap() + lease_delta,
        task_id: d.task_id.clone(),
        attempt: DeliveryAttempt {
            at: tessera_store::now_ms(),
            status_code: Some(if ok { 200 } else { 500 }),
            latency_ms: 3,
            error: (!ok).then(|| "the receiver answered 500".into()),
            response_snippet: Some("ok".into()),
            request: Some(tessera_store::SentRequest {
                headers: vec![("content-type".into(), "application/json".into())],
                body: format!("{{\"delivery\":\"{}\"}}", d.id),
            }),
        },
        next,
    }
}

/// The outbox's bookkeeping, batched: an outcome counts only under the lease its attempt was
/// made under (its attempt is kept either way), a finished delivery sets the task's
/// `callback_succeeded`, and a later round's failure never undoes a success.
async fn outcomes_are_kept_only_under_their_lease(backend: Backend) {
    use tessera_core::{ids::TeamId, Mode, Scope};
    use tessera_store::{Delivery, NextStep};

    let cluster = Cluster::new(&backend).await;
    cluster.team_key().await;
    let store = cluster.db.store().await;
    let team = store
        .cross_tenant()
        .find_teams_by_name("Durable")
        .await
        .unwrap()
        .remove(0)
        .team;
    store
        .seed_callbacks(
            &Scope::operator(TeamId::from_stored(team.id.clone()), Mode::Test),
            3,
            "http://127.0.0.1:9/hook",
        )
        .await
        .unwrap();
    let outbox = store.cross_tenant();
    let scope = tessera_core::Scope::operator(
        tessera_core::ids::TeamId::from_stored(team.id.clone()),
        Mode::Test,
    );
    let mut claimed = outbox.claim_due_deliveries(10, 60_000, &[]).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|c| c.task.is_some()));
    claimed.sort_by(|a, b| a.delivery.id.cmp(&b.delivery.id));
    assert!(
        outbox
            .claim_due_deliveries(10, 60_000, &[])
            .await
            .unwrap()
            .is_empty(),
        "claimed deliveries are not due"
    );
    outbox
        .finish_deliveries(&[
            outcome(&claimed[0], NextStep::Succeeded, 0),
            // Another worker holds it now (a different lease): only the attempt is kept.
            outcome(&claimed[1], NextStep::Succeeded, -1),
            outcome(&claimed[2], NextStep::GiveUp, 0),
        ])
        .await
        .unwrap();
    let get = |id: tessera_core::ids::DeliveryId| {
        let (store, scope) = (&store, &scope);
        async move {
            store
                .get_delivery(scope, id.as_str())
                .await
                .unwrap()
                .unwrap()
        }
    };
    let succeeded = |d: Delivery| {
        let store = &store;
        async move {
            let id = d.task_id.unwrap();
            store
                .cross_tenant()
                .tasks_by_ids(std::slice::from_ref(&id))
                .await
                .unwrap()[&id]
                .callback_succeeded
        }
    };
    let d0 = get(claimed[0].delivery.id.clone()).await;
    let d1 = get(claimed[1].delivery.id.clone()).await;
    let d2 = get(claimed[2].delivery.id.clone()).await;
    assert_eq!(
        (d0.status.as_str(), d0.attempts, d0.last_status_code),
        ("succeeded", 1, Some(200))
    );
    assert_eq!((d1.status.as_str(), d1.attempts), ("pending", 0));
    assert_eq!(d1.next_attempt_at, claimed[1].delivery.next_attempt_at);
    assert_eq!(
        (d2.status.as_str(), d2.attempts, d2.last_error.as_deref()),
        ("failed", 1, Some("the receiver answered 500"))
    );
    assert_eq!(
        (
            succeeded(d0.clone()).await,
            succeeded(d1.clone()).await,
            succeeded(d2.clone()).await
        ),
        (Some(true), None, Some(false))
    );
    for c in &claimed {
        let attempts = store
            .delivery_attempts(&scope, &c.delivery.id)
            .await
            .unwrap();
        assert_eq!(attempts.len(), 1, "every attempt is kept");
    }

    // A new round for the delivered one fails: its task stays called back successfully. The
    // failed one succeeds on its new round: now its task is.
    store.redeliver(&scope, d0.id.as_str()).await.unwrap();
    store.redeliver(&scope, d2.id.as_str()).await.unwrap();
    let mut again = outbox.claim_due_deliveries(10, 60_000, &[]).await.unwrap();
    again.sort_by(|a, b| a.delivery.id.cmp(&b.delivery.id));
    assert_eq!(
        again.iter().map(|c| &c.delivery.id).collect::<Vec<_>>(),
        [&d0.id, &d2.id]
    );
    outbox
        .finish_deliveries(&[
            outcome(&again[0], NextStep::GiveUp, 0),
            outcome(&again[1], NextStep::Succeeded, 0),
        ])
        .await
        .unwrap();
    let d0 = get(d0.id).await;
    let d2 = get(d2.id).await;
    assert_eq!(
        (d0.status.as_str(), d2.status.as_str()),
        ("failed", "succeeded")
    );
    assert_eq!(
        (succeeded(d0).await, succeeded(d2).await),
        (Some(true), Some(true))
    );
    store.close().await;
}

crate::backend_test!(outcomes_are_kept_only_under_their_lease);

/// With the README's default log level and no SMTP, neither invitation tokens nor mail
/// bodies reach the log: the CSRF warning used to log the raw path `/invite/<token>`, and
/// the mail worker the whole body with the link.
async fn invitation_tokens_stay_out_of_the_log(backend: Backend) {
    let mut cluster = Cluster::new(&backend).await;
    cluster.log = "info,sqlx=warn";
    let mut server = cluster.serve(0).await;
    let mut admin = Browser::new(&server.base);
    let signed_up = admin
        .post_form(
            "/signup",
            &[
                ("email", "logs@acme.test"),
                ("password", PASSWORD),
                ("name", "Lo Gs"),
                ("company", "Acme"),
                ("team_name", "Logs"),
            ],
        )
        .await;
    assert_eq!(
        signed_up.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_up.body
    );
    let store = cluster.db.store().await;
    let key = tessera_server::crypto::MasterKey::from_hex(&cluster.master_key).unwrap();
    let verify = verification_path_in(&store, &key, "logs@acme.test")
        .await
        .expect("a verification link");
    confirm_verification(&server.base, &verify).await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "new@acme.test"), ("role", "member")],
        )
        .await;
    let mail = loop {
        let all = store.cross_tenant().list_mail(10, 0).await.unwrap();
        if let Some(m) = all
            .into_iter()
            .find(|m| m.to == "new@acme.test" && m.status.as_str() == "held")
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body = String::from_utf8(
        key.open(
            &tessera_server::crypto::Purpose::mail_body(&mail.to),
            &mail.body_sealed,
        )
        .unwrap(),
    )
    .unwrap();
    let link = invite_path(&body);
    let token = link.trim_start_matches("/invite/").to_owned();
    assert!(token.len() > 20, "{link}");
    // A form without its CSRF token: refused and logged, by route.
    let refused = reqwest::Client::new()
        .post(format!("{}{link}", server.base))
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().await;
    let log = std::fs::read_to_string(cluster.db.dir.join("replica-0").join("server.log")).unwrap();
    assert!(log.contains("CSRF"), "the refusal is logged: {log}");
    assert!(log.contains("mail kept in the outbox"), "{log}");
    assert!(
        !log.contains(&token),
        "the invitation token is in the log:\n{log}"
    );
    assert!(
        !log.contains("Accept the invitation"),
        "a mail body is in the log:\n{log}"
    );
}
crate::backend_test!(invitation_tokens_stay_out_of_the_log);

/// SIGTERM while a request is in flight (its body half sent): the server stops accepting new
/// connections, finishes that request — 200 with the created task — and exits 0.
async fn sigterm_finishes_the_request_in_flight(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::new(&backend).await;
    let key = cluster.team_key().await;
    let mut server = cluster.serve(0).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body = r#"{"attachment":"https://example.com/a.txt","attachment_type":"text","categories":["a","b"]}"#;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{key}:"),
    );
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/task/categorization HTTP/1.1\r\nhost: {addr}\r\nauthorization: Basic {auth}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id().expect("running").to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer served...
    let refused = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new connection was served after SIGTERM: {refused:?}"
    );
    // ...but the request in flight completes.
    conn.write_all(&body.as_bytes()[20..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the answer came")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"task_id\""), "{answer}");
    let exit = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
}
crate::backend_test!(sigterm_finishes_the_request_in_flight);
