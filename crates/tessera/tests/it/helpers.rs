//! The test harness: a real Tessera server on a random port against a fresh database
//! (SQLite temp file, or a new PostgreSQL database), a cookie-keeping browser-like client, and
//! a real SMTP server (aiosmtpd) that writes to a maildir.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use reqwest::{header, redirect, StatusCode};
use tessera_server::{
    config::Config,
    crypto::{MasterKey, Purpose},
    Application,
};
use tessera_store::Store;
use tokio::sync::oneshot;

/// Generates a `sqlite` and a `postgres` test from one `async fn(Backend)`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(tessera_postgres_tests),
                ignore = "needs PostgreSQL: set TESSERA_TEST_POSTGRES_URL (scripts/test does when it is reachable)"
            )]
            async fn postgres() {
                let backend = $crate::helpers::Backend::postgres()
                    .expect("TESSERA_TEST_POSTGRES_URL was set when the tests were built, but not now");
                super::$name(backend).await
            }
        }
    };
}

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend, or `None` when it is not configured. With
    /// `TESSERA_REQUIRE_POSTGRES=1` or `CI=true`, a missing server fails instead. (The
    /// PostgreSQL variants of `backend_test!` are compiled as ignored when no URL is set.)
    pub fn postgres() -> Option<Backend> {
        let required = std::env::var("TESSERA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true");
        match std::env::var("TESSERA_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url.trim_end_matches('/').to_owned())),
            _ if required => panic!(
                "PostgreSQL is required (CI=true or TESSERA_REQUIRE_POSTGRES=1) but TESSERA_TEST_POSTGRES_URL is not set"
            ),
            _ => {
                eprintln!("skipping PostgreSQL variant: TESSERA_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::random();
    format!("{prefix}{}{n}{r:08x}", std::process::id())
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    pub dir: PathBuf,
    /// Owned by another TestDb: do not drop the database.
    pub shared: bool,
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        let dir = std::env::temp_dir().join(unique("tessera-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("tessera.db").display()),
            Backend::Postgres(base) => {
                use sqlx::Connection;
                sqlx::any::install_default_drivers();
                let name = unique("tessera_t_");
                let mut admin = sqlx::AnyConnection::connect(&format!("{base}/postgres"))
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.ok();
                format!("{base}/{name}")
            }
        };
        TestDb {
            url,
            dir,
            shared: false,
        }
    }

    /// Another handle on an existing database (a second replica's), with its own data dir.
    pub fn shared(url: &str) -> TestDb {
        let dir = std::env::temp_dir().join(unique("tessera-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        TestDb {
            url: url.to_owned(),
            dir,
            shared: true,
        }
    }

    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.shared {
            return;
        }
        if let Some((base, name)) = self
            .url
            .rsplit_once('/')
            .filter(|_| self.url.starts_with("postgres"))
        {
            let (base, name) = (base.to_owned(), name.to_owned());
            // Dropping needs async I/O; do it on a short-lived runtime of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut admin) =
                        sqlx::AnyConnection::connect(&format!("{base}/postgres")).await
                    {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Knobs a test may turn before the server starts.
#[derive(Default, Clone)]
pub struct Options {
    /// Serve an existing database (a second replica) instead of a fresh one.
    pub database_url: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_retry: Option<&'static str>,
    pub resend_interval: Option<Duration>,
    /// Callback retry schedule (e.g. `100ms,100ms`) instead of the day-long default.
    pub callback_retry: Option<&'static str>,
    pub callback_timeout: Option<Duration>,
    /// How long a labeler holds a claimed task.
    pub label_lease: Option<Duration>,
    /// Refuse callbacks to loopback and private addresses, as production does (tests
    /// otherwise allow them, to reach receivers on 127.0.0.1).
    pub refuse_private_callbacks: bool,
    /// Test tasks per team and hour (default 10,000).
    pub test_tasks_per_hour: Option<u64>,
    /// Email callbacks per team and hour (default 100).
    pub callback_emails_per_hour: Option<u64>,
    /// Serve with this master key instead of a fresh random one.
    pub master_key: Option<MasterKey>,
    /// Bytes and files each team may store, instead of the 5 GiB / 100,000 default.
    pub storage_quota: Option<tessera_core::storage::StorageQuota>,
    /// Connection limits of the HTTP server (defaults: 10s, 60s, 1024).
    pub header_read_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    /// How long invitation links work (default 7 days).
    pub invitation_ttl: Option<Duration>,
    /// How long a session lasts at most (default 14 days).
    pub session_ttl: Option<Duration>,
    /// A dashboard session unused this long ends (default 12 h).
    pub session_idle_timeout: Option<Duration>,
    /// Announce an https public URL (cookies `Secure` and `__Host-`, HSTS), though the test
    /// server itself speaks plain http.
    pub https_public_url: bool,
    /// `--trusted-proxies` (e.g. `127.0.0.1/32`).
    pub trusted_proxies: Option<&'static str>,
    /// A payment provider (a [`LocalStripe`]'s config); none by default.
    pub stripe: Option<tessera_server::config::StripeConfig>,
    /// The platform's AWS identity (a [`crate::emulators::MotoWorld`]'s platform user).
    pub aws: Option<tessera_server::config::PlatformAws>,
    /// `--file-store` (default: the data directory).
    pub file_store: Option<tessera_server::config::FileStore>,
    /// `--support-email` (default: none).
    pub support_email: Option<&'static str>,
}

/// A running Tessera server.
pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub store: Store,
    /// The server's state, to wake its jobs as its own requests would.
    pub state: tessera_server::AppState,
    pub key: MasterKey,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: &Backend) -> TestApp {
        Self::spawn_with(backend, Options::default()).await
    }

    /// Two servers on one fresh database, as two replicas of one installation.
    pub async fn replicas(backend: &Backend) -> (TestApp, TestApp) {
        let a = Self::spawn(backend).await;
        let b = Self::spawn_with(
            backend,
            Options {
                database_url: Some(a.db.url.clone()),
                ..Options::default()
            },
        )
        .await;
        (a, b)
    }

    pub async fn spawn_with(backend: &Backend, options: Options) -> TestApp {
        let db = match &options.database_url {
            Some(url) => TestDb::shared(url),
            None => TestDb::new(backend).await,
        };
        let listen = "127.0.0.1:0".parse().unwrap();
        // Emails carry the public URL, so pick the port first and tell the server about it.
        let key = options.master_key.clone().unwrap_or_else(|| {
            MasterKey::from_hex(&hex::encode(rand::random::<[u8; 32]>())).unwrap()
        });
        let mut config = Config::new(
            listen,
            db.dir.clone(),
            db.url.clone(),
            "http://127.0.0.1/".parse().unwrap(),
            key.clone(),
        );
        config.smtp_url = options.smtp_url.clone();
        if let Some(schedule) = options.mail_retry {
            config.mail_retry = tessera_core::retry::RetrySchedule::parse(schedule).unwrap();
        }
        if let Some(interval) = options.resend_interval {
            config.resend_interval = interval;
        }
        config.allow_private_callbacks = !options.refuse_private_callbacks;
        if let Some(schedule) = options.callback_retry {
            config.callback_retry = tessera_core::retry::RetrySchedule::parse(schedule).unwrap();
        }
        if let Some(timeout) = options.callback_timeout {
            config.callback_timeout = timeout;
        }
        if let Some(lease) = options.label_lease {
            config.label_lease = lease;
        }
        if let Some(max) = options.test_tasks_per_hour {
            config.team_test_tasks_per_hour = max;
        }
        if let Some(max) = options.callback_emails_per_hour {
            config.team_callback_emails_per_hour = max;
        }
        if let Some(quota) = options.storage_quota {
            config.storage_quota = quota;
        }
        if let Some(timeout) = options.header_read_timeout {
            config.header_read_timeout = timeout;
        }
        if let Some(timeout) = options.idle_timeout {
            config.idle_timeout = timeout;
        }
        if let Some(max) = options.max_connections {
            config.max_connections = max;
        }
        if let Some(proxies) = options.trusted_proxies {
            config.trusted_proxies = proxies.parse().unwrap();
        }
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        config.listen = addr;
        config.public_url = format!("http://{addr}/").parse().unwrap();
        if options.https_public_url {
            config.public_url = format!("https://{addr}/").parse().unwrap();
        }
        if let Some(ttl) = options.invitation_ttl {
            config.invitation_ttl = ttl;
        }
        if let Some(ttl) = options.session_ttl {
            config.session_ttl = ttl;
        }
        if let Some(idle) = options.session_idle_timeout {
            config.session_idle_timeout = idle;
        }
        config.stripe = options.stripe.clone();
        config.aws = options.aws.clone();
        if let Some(store) = &options.file_store {
            config.file_store = store.clone();
        }
        config.support_email = options
            .support_email
            .map(|address| tessera_core::Email::parse(address).unwrap());
        let app = Application::build(config).await.expect("server starts");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let store = state.store.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            db,
            store,
            state,
            key,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A browser whose every request carries `X-Forwarded-For: forwarded_for`, as if behind
    /// a load balancer (or a client trying to pass for someone else).
    pub fn browser_forwarded_for(&self, forwarded_for: &str) -> Browser {
        let mut headers = header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            header::HeaderValue::from_str(forwarded_for).unwrap(),
        );
        Browser::with_headers(&self.base, headers)
    }

    /// Signs up a new team through the dashboard and verifies the Admin's address through
    /// the link mailed at sign-up (the real routes); returns the Admin's browser.
    pub async fn sign_up(&self, email: &str, team: &str) -> Browser {
        let b = self.sign_up_unverified(email, team).await;
        self.verify_email(email).await;
        b
    }

    /// The newest email-verification link path mailed to `to`, read from the outbox.
    pub async fn verification_path(&self, to: &str) -> Option<String> {
        verification_path_in(&self.store, &self.key, to).await
    }

    /// Opens the newest verification link mailed to `to` and confirms it, in a browser of its
    /// own (as from a phone's mail app): the signed-in browser's flash and state stay as the
    /// sign-up left them.
    pub async fn verify_email(&self, to: &str) {
        let link = self
            .verification_path(to)
            .await
            .unwrap_or_else(|| panic!("no verification mail to {to}"));
        confirm_verification(&self.base, &link).await;
    }

    /// Signs up a new team through the dashboard, leaving the Admin's address unverified;
    /// returns the Admin's browser.
    pub async fn sign_up_unverified(&self, email: &str, team: &str) -> Browser {
        let mut b = self.browser();
        let r = b
            .post_form(
                "/signup",
                &[
                    ("email", email),
                    ("password", PASSWORD),
                    ("name", "Ada Admin"),
                    ("company", "Acme"),
                    ("team_name", team),
                ],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "sign-up failed: {}",
            r.body
        );
        // A new team's Admin starts in test mode; most tests work with live data.
        let live = b
            .post_form("/mode", &[("mode", "live"), ("back", "/tasks")])
            .await;
        assert_eq!(live.location.as_deref(), Some("/tasks"), "{}", live.body);
        b
    }

    /// The newest invitation link path mailed to `to`, read from the outbox (no SMTP server).
    pub async fn outbox_link(&self, to: &str) -> String {
        let mail = self.store.cross_tenant().list_mail(500, 0).await.unwrap();
        let message = mail
            .iter()
            .find(|m| m.to == to)
            .unwrap_or_else(|| panic!("no mail to {to}"));
        let body = String::from_utf8(
            self.key
                .open(&Purpose::mail_body(&message.to), &message.body_sealed)
                .unwrap(),
        )
        .unwrap();
        invite_path(&body)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Waits until `f` returns `Some`, polling, for at most `secs` seconds.
    pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met within {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub const PASSWORD: &str = "correct horse battery";

/// A response as a test looks at it.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The page with the `<wbr>` break hints removed (the audit log and the callbacks list put
    /// them in long values), so a test can look for a value as the reader sees it.
    pub fn without_wbr(mut self) -> Page {
        self.body = self.body.replace("<wbr>", "");
        self
    }
}

/// A cookie-keeping client that submits forms with the page's CSRF token.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    csrf: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Self::with_headers(base, header::HeaderMap::new())
    }

    /// A browser sending `headers` with every request.
    pub fn with_headers(base: &str, headers: header::HeaderMap) -> Browser {
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .cookie_store(true)
            .redirect(redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            base: base.to_owned(),
            client,
            csrf: None,
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    fn remember_csrf(&mut self, page: &Page) {
        if let Some(token) = extract_between(&page.body, "name=\"csrf_token\" value=\"", "\"") {
            self.csrf = Some(token);
        } else if page
            .set_cookies
            .iter()
            .any(|c| c.contains("tessera_csrf=") || c.contains("tessera_session="))
        {
            // Signed in or out: tokens are bound to the session, as in a browser the next
            // page brings a new one.
            self.csrf = None;
        }
    }

    /// A second handle on this browser's session (shared cookies), e.g. for two requests at
    /// once, as two tabs would send them.
    pub fn same_session(&self) -> Browser {
        Browser {
            base: self.base.clone(),
            client: self.client.clone(),
            csrf: self.csrf.clone(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let page = Self::page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        self.remember_csrf(&page);
        page
    }

    /// GET of a download (an attachment, a PDF): the status, the headers and the raw bytes.
    pub async fn get_bytes(&self, path: &str) -> (StatusCode, header::HeaderMap, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.unwrap().to_vec())
    }

    /// GET, following redirects like a browser.
    pub async fn visit(&mut self, path: &str) -> Page {
        let mut path = path.to_owned();
        for _ in 0..5 {
            let page = self.get(&path).await;
            match (page.status, &page.location) {
                (s, Some(loc)) if s.is_redirection() => path = loc.clone(),
                _ => return page,
            }
        }
        panic!("too many redirects");
    }

    pub async fn ensure_csrf(&mut self) -> String {
        if self.csrf.is_none() {
            // Signed in, /login leads to the home page (its sign-out form carries a token).
            self.visit("/login").await;
        }
        self.csrf.clone().expect("page carries a CSRF token")
    }

    /// Submits a form with the CSRF token added.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.ensure_csrf().await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_raw(path, &all).await
    }

    /// Submits exactly these fields (no CSRF token added).
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .unwrap();
        let page = Self::page(response).await;
        self.remember_csrf(&page);
        page
    }

    /// Submits a form and follows the redirect, returning the page shown after it.
    pub async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.post_form(path, fields).await;
        match (page.status, &page.location) {
            (StatusCode::SEE_OTHER, Some(loc)) => self.visit(&loc.clone()).await,
            _ => page,
        }
    }
}

pub fn extract_between(haystack: &str, start: &str, end: &str) -> Option<String> {
    let from = haystack.find(start)? + start.len();
    let to = haystack[from..].find(end)? + from;
    Some(haystack[from..to].to_owned())
}

/// The id of the invitation row for `email` on the team page (from its resend form).
pub fn invitation_id(team_page: &str, email: &str) -> Option<String> {
    let row = &team_page[team_page.find(&format!("class=\"invited\" data-email=\"{email}\""))?..];
    extract_between(row, "/team/invitations/", "/")
}

/// The user id of the member row for `email` on the team page (from its remove link).
/// The scope of a team's team-level rows (members, invitations, audit log), as the operator
/// has it: tests act on the store directly, with no request to authorise.
pub fn team_scope(team_id: &str) -> tessera_store::Scope {
    tessera_store::Scope::operator(
        tessera_core::ids::TeamId::from_stored(team_id.to_owned()),
        tessera_core::Mode::Live,
    )
}

pub fn member_id(team_page: &str, email: &str) -> Option<String> {
    let row = &team_page[team_page.find(&format!("<tr data-email=\"{email}\""))?..];
    let row = &row[..row.find("</tr>")?];
    extract_between(row, "/team/members/", "/")
}

/// A real SMTP server (aiosmtpd's Mailbox handler) writing every message to a maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: tokio::process::Child,
}

pub fn python() -> String {
    std::env::var("TESSERA_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `localstripe` (Stripe's API and Stripe.js, emulated) on a free port, stopped on drop.
pub struct LocalStripe {
    pub port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The keys the tests give Tessera and Stripe.js (localstripe accepts any).
pub const STRIPE_SECRET_KEY: &str = "sk_test_tessera";
pub const STRIPE_PUBLISHABLE_KEY: &str = "pk_test_tessera";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_tessera_test";

impl LocalStripe {
    pub async fn start() -> LocalStripe {
        let port = free_port();
        // localstripe keeps a pickle of its data in the temp dir: one per instance.
        let dir = std::env::temp_dir().join(unique("localstripe-"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = tokio::process::Command::new(python())
            .args(["-m", "localstripe", "--port", &port.to_string(), "--from-scratch"])
            .env("TMPDIR", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("localstripe starts (scripts/test installs it; TESSERA_TEST_PYTHON names the Python that has it)");
        let stripe = LocalStripe {
            port,
            dir,
            _child: child,
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let up = client
                .get(format!("{}/v1/customers", stripe.url()))
                .bearer_auth(STRIPE_SECRET_KEY)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return stripe;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Tessera's configuration for this localstripe, webhook secret included.
    pub fn config(&self) -> tessera_server::config::StripeConfig {
        let mut config = tessera_server::config::StripeConfig::new(
            STRIPE_SECRET_KEY.into(),
            STRIPE_PUBLISHABLE_KEY.into(),
        );
        config.api_base = self.url().parse().unwrap();
        config.js_url = format!("{}/js.stripe.com/v3/", self.url()).parse().unwrap();
        config.webhook_secret = Some(STRIPE_WEBHOOK_SECRET.into());
        config
    }

    /// What Stripe.js's `confirmCardSetup` does in the browser: confirms the SetupIntent of
    /// `client_secret` with a card, straight to the provider with the publishable key.
    pub async fn confirm_card_setup(&self, client_secret: &str, number: &str) -> serde_json::Value {
        let seti = client_secret.split("_secret_").next().unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/v1/setup_intents/{seti}/confirm", self.url()))
            .json(&serde_json::json!({
                "key": STRIPE_PUBLISHABLE_KEY,
                "use_stripe_sdk": true,
                "client_secret": client_secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"},
                    "billing_details": {"address": {"postal_code": "10001"}},
                },
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            status.is_success(),
            "confirming the card setup: {status} {body}"
        );
        body
    }

    /// Has localstripe send its events, signed, to `url`.
    pub async fn register_webhook(&self, url: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/_config/webhooks/tessera", self.url()))
            .bearer_auth(STRIPE_SECRET_KEY)
            .form(&[("url", url), ("secret", STRIPE_WEBHOOK_SECRET)])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }
}

/// The newest email-verification link path mailed to `to` in `store`'s outbox (sealed under
/// `key`).
pub async fn verification_path_in(store: &Store, key: &MasterKey, to: &str) -> Option<String> {
    let mail = store.cross_tenant().list_mail(500, 0).await.unwrap();
    mail.iter()
        .filter(|m| m.to.eq_ignore_ascii_case(to))
        .find_map(|m| {
            let body = String::from_utf8(
                key.open(&Purpose::mail_body(&m.to), &m.body_sealed)
                    .unwrap(),
            )
            .unwrap();
            let start = body.find("/verify-email/")? + "/verify-email/".len();
            let token: String = body[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            Some(format!("/verify-email/{token}"))
        })
}

/// Opens a verification link on the server at `base` in a browser of its own and confirms it.
pub async fn confirm_verification(base: &str, link: &str) {
    let mut b = Browser::new(base);
    let form = b.get(link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let done = b.post_form(link, &[]).await;
    assert_eq!(
        done.status,
        StatusCode::OK,
        "verification failed: {}",
        done.body
    );
    assert!(done.body.contains("id=\"verify-done\""), "{}", done.body);
}

/// Writes a team and its Admin with plain SQL, as any released schema has them (the store's
/// own writes follow the current schema): for tests that fill a database under an earlier
/// migration. Returns (team id, admin id); `Err` when the database refuses the rows.
pub async fn old_schema_team(
    url: &str,
    name: &str,
    admin_email: &str,
) -> Result<(String, String), sqlx::Error> {
    use sqlx::Connection;
    let team_id = unique("team_");
    let user_id = unique("usr_");
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO teams (id, name, name_key, admin_user_id, created_at) VALUES ($1, $2, $3, $4, 1)",
    )
    .bind(&team_id)
    .bind(name)
    .bind(name.to_lowercase())
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    old_schema_user(&mut tx, &user_id, admin_email, Some((&team_id, "admin"))).await?;
    tx.commit().await?;
    conn.close().await.ok();
    Ok((team_id, user_id))
}

/// Writes an account with plain SQL (see [`old_schema_team`]), in a team with a role or not.
pub async fn old_schema_user(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    email: &str,
    team: Option<(&str, &str)>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, email, email_key, password_hash, name, team_id, role, created_at, joined_team_at) \
         VALUES ($1, $2, $3, 'x', 'Test', $4, $5, 1, 1)",
    )
    .bind(user_id)
    .bind(email)
    .bind(email.to_lowercase())
    .bind(team.map(|(t, _)| t.to_owned()))
    .bind(team.map(|(_, r)| r.to_owned()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Invites `email` with `role` from the dashboard and accepts the emailed link.
pub async fn join_as(app: &TestApp, admin: &mut Browser, email: &str, role: &str) -> Browser {
    let page = admin
        .submit("/team/invitations", &[("emails", email), ("role", role)])
        .await;
    assert!(page.body.contains("Invitation sent"), "{}", page.body);
    let link = app.outbox_link(email).await;
    let mut b = app.browser();
    assert_eq!(b.get(&link).await.status, StatusCode::OK);
    let done = b
        .post_form(
            &link,
            &[
                ("name", "Pat Person"),
                ("company", "Acme"),
                ("job_title", ""),
                ("phone", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    b
}

/// The team of the user signed up as `email`: its id, its scope, and that user as a labeler
/// of the team's own queue (the billing tests complete tasks this way).
pub async fn team_of(
    app: &TestApp,
    email: &str,
) -> (String, tessera_store::Scope, tessera_store::LabelerScope) {
    let user = app
        .store
        .find_user_by_email(&tessera_core::Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let team_id = user.team_id.clone().unwrap();
    let labeler = tessera_store::LabelerScope::operator(
        &user.id,
        tessera_store::Queue::Team(tessera_core::ids::TeamId::from_stored(team_id.clone())),
    );
    (team_id.clone(), team_scope(&team_id), labeler)
}

/// A staff user `support@tessera.test`, created and signed in.
pub async fn staff_browser(app: &TestApp) -> Browser {
    tessera_server::staff::support::create_staff(&app.store, "support@tessera.test", PASSWORD)
        .await
        .unwrap();
    let mut staff = app.browser();
    staff
        .post_form(
            "/login",
            &[("email", "support@tessera.test"), ("password", PASSWORD)],
        )
        .await;
    staff
}

/// A categorization task with the given instruction.
pub fn categorization(instruction: &str) -> serde_json::Value {
    serde_json::json!({
        "attachment": "https://example.com/review.txt",
        "attachment_type": "text",
        "categories": ["yes", "no"],
        "instruction": instruction,
    })
}

/// The labeler claims the next task of its queue and answers it ("yes").
pub async fn complete_next(app: &TestApp, labeler: &tessera_store::LabelerScope) {
    let claim = app
        .store
        .claim_next_task(labeler, 60_000)
        .await
        .unwrap()
        .unwrap();
    app.store
        .submit_task(
            labeler,
            "labeler",
            &claim.task.id,
            &serde_json::json!({"category": "yes"}),
        )
        .await
        .unwrap()
        .unwrap();
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> SmtpServer {
        let maildir = std::env::temp_dir().join(unique("tessera-maildir-"));
        let child = tokio::process::Command::new(python())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python with aiosmtpd (run scripts/test, which installs it into .venv)");
        let server = SmtpServer {
            port,
            maildir,
            child,
        };
        TestApp::eventually(20, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        server
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, decoded to text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for entry in entries.flatten() {
                    if let Ok(raw) = std::fs::read_to_string(entry.path()) {
                        out.push(decode_quoted_printable(&raw));
                    }
                }
            }
        }
        out
    }

    /// Waits for a message to `to` and returns it.
    pub async fn wait_for(&self, to: &str, secs: u64) -> String {
        TestApp::eventually(secs, || async {
            self.messages()
                .into_iter()
                .find(|m| m.contains(&format!("To: {to}")))
        })
        .await
    }

    /// Waits for a message to `to` whose decoded text contains `needle` (an address that
    /// signed up also gets the verification mail) and returns it.
    pub async fn wait_for_containing(&self, to: &str, needle: &str, secs: u64) -> String {
        TestApp::eventually(secs, || async {
            self.messages().into_iter().find(|m| {
                m.contains(&format!("To: {to}")) && decode_quoted_printable(m).contains(needle)
            })
        })
        .await
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Undoes quoted-printable soft line breaks and escapes (enough to read links in mail).
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The invitation link's path (`/invite/<token>`) found in a message.
pub fn invite_path(message: &str) -> String {
    let start = message
        .find("/invite/")
        .expect("message has an invitation link");
    let token: String = message[start + 8..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("/invite/{token}")
}

/// Creates an API key on the dashboard's API Keys page and returns it.
pub async fn create_key(admin: &mut Browser, mode: &str, label: &str) -> String {
    let page = admin
        .submit("/keys", &[("mode", mode), ("label", label)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    extract_between(&page.body, "id=\"secret-value\">", "</code>").expect("the new key is shown")
}

/// A v1 API client authenticating with `key` (HTTP Basic, as the SDK does).
#[derive(Clone)]
pub struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(app: &TestApp, key: &str) -> Api {
        Api {
            base: format!("{}/v1", app.base),
            key: key.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(""));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer {status}: {text}"));
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

/// The id of the first key listed in `mode`'s section of the API Keys page.
pub fn key_id(keys_page: &str, mode: &str) -> String {
    let section = &keys_page[keys_page
        .find(&format!("id=\"mode-{mode}\""))
        .expect("mode section")..];
    let row = &section[section.find("<tr data-key=").expect("a key row")..];
    extract_between(row, "action=\"/keys/", "/reveal\"").expect("reveal form")
}

/// A small pool on a test database, for checks the API does not expose.
pub async fn pg_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}
