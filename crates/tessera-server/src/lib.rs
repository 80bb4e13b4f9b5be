//! The Tessera server: dashboard, (later) the v1 API, and background workers, as a library so
//! the binary stays thin and integration tests start the real app on a random port.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod audit;
pub mod authz;
pub mod batches;
pub mod billing;
pub mod callbacks;
pub mod config;
pub mod crypto;
pub mod files;
pub mod health;
pub mod housekeeping;
pub mod integrations;
pub mod invitations;
pub mod jobs;
pub mod keys;
pub mod labeling;
pub mod mail;
pub mod onboarding;
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
pub mod ttl;
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
    // The pages that show one mode's data, also under `/test/…` (`web::session::MODE_SCOPED`).
    let mode_scoped = || {
        Router::new()
            .merge(projects::router())
            .merge(batches::router())
            .merge(tasks::router())
            .merge(callbacks::router())
    };
    let dashboard = Router::new()
        .merge(accounts::router())
        .merge(onboarding::router())
        .merge(team::router())
        .merge(invitations::router())
        .merge(keys::router())
        .merge(mode_scoped())
        .nest(
            "/test",
            mode_scoped().layer(axum::Extension(web::session::TestUrl)),
        )
        .merge(labeling::router())
        .merge(audit::router())
        .merge(billing::router())
        .merge(integrations::router())
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
        .merge(billing::webhook_router())
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
        let files = config
            .file_store
            .open(&config.data_dir)
            .map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        Ok(Self {
            listener,
            state: AppState::new(store, config, files),
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
        let callbacks = callbacks::worker::CallbackWorker::new(state.clone()).job();
        let upkeep = housekeeping::Housekeeping::new(state.clone());
        let mut workers = vec![
            Component::spawn(
                "mail worker",
                jobs::run(jobs::Batches(mail), stop_rx.clone()),
            ),
            Component::spawn("callback worker", jobs::run(callbacks, stop_rx.clone())),
            Component::spawn("housekeeping", jobs::run(upkeep, stop_rx.clone())),
            Component::spawn(
                "period close",
                jobs::run(
                    jobs::Batches(billing::jobs::PeriodClose::new(state.clone())),
                    stop_rx.clone(),
                ),
            ),
            Component::spawn(
                "spend alerts",
                jobs::run(
                    jobs::Batches(billing::jobs::SpendAlerts::new(state.clone())),
                    stop_rx.clone(),
                ),
            ),
            Component::spawn("task cache follower", {
                let store = state.store.clone();
                let mut stop = stop_rx.clone();
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
        if let Some(provider) = state.payments.clone() {
            workers.push(Component::spawn(
                "charges",
                jobs::run(
                    jobs::Batches(billing::jobs::Charges::new(state.clone(), provider)),
                    stop_rx,
                ),
            ));
        }
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
