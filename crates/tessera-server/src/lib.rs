//! The Tessera server: dashboard, (later) the v1 API, and background workers, as a library so
//! the binary stays thin and integration tests start the real app on a random port.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod audit;
pub mod authz;
pub mod batches;
pub mod callbacks;
pub mod config;
pub mod crypto;
pub mod files;
pub mod health;
pub mod invitations;
pub mod keys;
pub mod labeling;
pub mod mail;
pub mod outbound;
pub mod paging;
pub mod projects;
pub mod quota;
pub mod ratelimit;
pub mod serve;
pub mod staff;
pub mod state;
pub mod tasks;
pub mod team;
pub mod web;

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{
    extract::{MatchedPath, Request},
    http::{header, HeaderValue},
    middleware, Router,
};
use tessera_store::Store;
use tokio::{net::TcpListener, sync::watch};
use tower_http::{
    limit::RequestBodyLimitLayer,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

pub use config::Config;
pub use state::AppState;

/// Largest request body accepted anywhere: a file upload (the file plus room for the other
/// multipart fields). It bounds bytes on the wire, not memory: uploads stream to disk. JSON
/// bodies (1 MiB) and dashboard forms (64 KiB) are limited further.
pub const MAX_BODY_BYTES: usize = files::MAX_FILE_BYTES as usize + 64 * 1024;

/// Every route, with the middleware that applies to it.
pub fn router(state: AppState) -> Router {
    let dashboard = Router::new()
        .merge(accounts::router())
        .merge(team::router())
        .merge(invitations::router())
        .merge(keys::router())
        .merge(projects::router())
        .merge(batches::router())
        .merge(tasks::router())
        .merge(callbacks::router())
        .merge(labeling::router())
        .merge(audit::router())
        .merge(staff::router())
        // Unknown pages get the 404 page, in the signed-in frame for people signed in.
        .fallback(health::not_found)
        .layer(middleware::from_fn(web::clear_flash))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            web::framed_errors,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            web::csrf::protect,
        ));
    Router::new()
        .merge(health::router())
        .merge(api::router().layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .merge(dashboard)
        .layer(
            TraceLayer::new_for_http()
                // Log the route template, never the raw path: invitation links carry tokens.
                .make_span_with(|request: &Request| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map(MatchedPath::as_str)
                        .unwrap_or("(unmatched)");
                    tracing::info_span!("http", method = %request.method(), route = %route)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::from_fn(files::json_body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Invitation links carry a token in the path: never leak it in a Referer.
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
            ),
        ))
        .layer(middleware::map_response_with_state(state.clone(), strict_transport_security))
        .with_state(state)
}

/// Under an https public URL, browsers are told to use https only (HSTS, one year); over
/// plain http the header would be ignored, so it is not sent.
async fn strict_transport_security(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if state.config.secure_cookies() {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// A bound, migrated, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listen address (port 0
    /// picks a free port, which tests use).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database_url)
            .await
            .context("connecting to the database")?;
        store.migrate().await.context("migrating the database")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        Ok(Self {
            listener,
            state: AppState::new(store, config),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Starts the background components, serves until `shutdown` completes, then stops in a
    /// deliberate order: stop accepting requests and let in-flight ones finish; drain the task
    /// writer (every queued creation is written); stop the workers, each after its current
    /// pass; record API key use; close the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let task_writer = state
            .store
            .start_task_writer()
            .context("starting the task writer")?;
        tracing::info!(component = "task writer", "started");
        let (stop_tx, stop_rx) = watch::channel(false);
        let mail = mail::worker::MailWorker::new(state.clone())?;
        let callbacks = callbacks::worker::CallbackWorker::new(state.clone());
        let workers = [
            Component::spawn("mail worker", mail.run(stop_rx.clone())),
            Component::spawn("callback worker", callbacks.run(stop_rx.clone())),
            Component::spawn("housekeeping", housekeeping(state.clone(), stop_rx.clone())),
            Component::spawn("task cache follower", {
                let store = state.store.clone();
                let mut stop = stop_rx;
                async move {
                    store
                        .cross_tenant()
                        .follow_task_changes(async move {
                            let _ = stop.wait_for(|stopped| *stopped).await;
                        })
                        .await;
                }
            }),
        ];
        let limits = state.config.connection_limits();
        serve::serve(self.listener, router(state.clone()), limits, shutdown).await;
        tracing::info!(component = "http server", "stopped");
        task_writer.stop().await;
        tracing::info!(component = "task writer", "stopped");
        let _ = stop_tx.send(true);
        for worker in workers {
            worker.stop().await;
        }
        state.api_keys.flush_uses(&state.store).await;
        state.store.close().await;
        Ok(())
    }
}

/// A background task of the application, named so that its start and stop are logged.
struct Component {
    name: &'static str,
    task: tokio::task::JoinHandle<()>,
}

impl Component {
    fn spawn(name: &'static str, run: impl Future<Output = ()> + Send + 'static) -> Self {
        let task = tokio::spawn(run);
        tracing::info!(component = name, "started");
        Self { name, task }
    }

    /// Waits for the task to end (its stop signal has been sent).
    async fn stop(self) {
        if let Err(err) = self.task.await {
            tracing::warn!(component = self.name, error = %err, "ended abnormally");
        }
        tracing::info!(component = self.name, "stopped");
    }
}

/// How often API key use is written to the database ("last used" on the keys page).
const KEY_USE_FLUSH: Duration = Duration::from_secs(15);
/// How often expired sessions, stale rate-limit events and old callback attempts are dropped.
const PRUNE_EVERY: u32 = 20;
/// How long the attempts of a callback stay on the dashboard.
const CALLBACK_ATTEMPTS_KEPT_MS: i64 = 30 * 86_400_000;

/// A partial upload untouched this long was left by a crash (requests time out after 30 s).
const STALE_PARTIAL_FILE: Duration = Duration::from_secs(3600);

/// Background upkeep: records API key use every few seconds; prunes expired sessions, stale
/// rate-limit events and partial uploads left by a crash at start and every few minutes.
async fn housekeeping(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut ticks: u32 = 0;
    loop {
        state.api_keys.flush_uses(&state.store).await;
        if ticks.is_multiple_of(PRUNE_EVERY) {
            if let Err(err) = state
                .store
                .cross_tenant()
                .prune_expired(
                    ratelimit::Limit::LONGEST_WINDOW_MS,
                    i64::try_from(state.config.session_idle_timeout.as_millis())
                        .unwrap_or(i64::MAX),
                )
                .await
            {
                tracing::warn!(error = %err, "housekeeping failed");
            }
            let before = tessera_store::now_ms() - CALLBACK_ATTEMPTS_KEPT_MS;
            if let Err(err) = state.store.prune_callback_attempts(before).await {
                tracing::warn!(error = %err, "pruning callback attempts failed");
            }
            match state.files.sweep_partials(STALE_PARTIAL_FILE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed stale partial uploads"),
                Err(err) => tracing::warn!(error = %err, "sweeping partial uploads failed"),
            }
        }
        ticks = ticks.wrapping_add(1);
        tokio::select! {
            _ = tokio::time::sleep(KEY_USE_FLUSH) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}
