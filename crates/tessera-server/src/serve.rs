//! The HTTP/1 accept loop. `axum::serve` has no header-read timeout, no idle limit and no
//! connection cap, so one client holding many half-sent requests (slowloris) or idle
//! keep-alive connections could exhaust the server. This loop serves each connection with
//! hyper directly and adds the three limits, while keeping graceful shutdown and
//! `ConnectInfo<SocketAddr>` (client IPs for rate limits and the audit log).
//!
//! The two timeouts are kept by a small per-connection watcher rather than hyper's own
//! `header_read_timeout`, because hyper starts that clock as soon as it waits for a request,
//! so it would also close every idle keep-alive connection after the (short) header timeout.
//! Here, as in Go's `ReadHeaderTimeout`/`IdleTimeout`:
//! - a new connection must deliver a complete request head within the header-read timeout;
//! - between requests, a keep-alive connection may stay silent for the idle timeout; once the
//!   first byte of the next request arrives, its head must be complete within the header-read
//!   timeout;
//! - while a request is being handled or its response sent, neither clock runs (the request
//!   timeout layer bounds handlers).

use std::{
    convert::Infallible,
    future::{poll_fn, Future},
    io,
    net::SocketAddr,
    pin::{pin, Pin},
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::ConnectInfo,
    http::Request,
    Router,
};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tower::ServiceExt;

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// Connection limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time allowed for a request line and headers to arrive, counted from the connection's
    /// start or from the first byte of a later request.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets every
/// connection finish its current request (idle ones close at once) and returns when all
/// connections are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    // Every connection holds a receiver: `closed()` on the sender tells when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        // Take a slot before accepting, so excess connections wait in the kernel's backlog
        // instead of costing a task and buffers each.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.as_mut() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.as_mut() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(connection(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    stop_rx.clone(),
                    slot,
                ));
            }
            Err(err) => accept_failed(err).await,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    stop_tx.closed().await;
}

/// Per-connection errors (the peer gave up during the handshake) are routine; anything else
/// (out of file descriptors) gets a pause so the loop does not spin.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection, enforcing the timeouts; `_slot` frees its place when it ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let exchange = Exchange::begin(&activity);
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| WatchedBody {
                    body,
                    _exchange: exchange,
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watcher below keeps the header-read clock (see the module doc).
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut watcher = Watcher::new(activity, limits);
    let mut closing = false;
    loop {
        tokio::select! {
            // The connection first: it updates the activity the watcher then reads.
            biased;
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|stopped| *stopped), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            expired = poll_fn(|cx| watcher.poll(cx, closing)) => match expired {
                // A request head that never finished arriving gets no answer.
                Expired::HeaderRead => break,
                Expired::Idle => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            },
        }
    }
}

/// "No time recorded" in [`Activity::head_since`].
const NONE: u64 = u64::MAX;

/// What a connection is doing, shared by its socket, its service and its watcher (all
/// polled by the connection's one task; atomics only make it `Sync`).
struct Activity {
    start: Instant,
    /// Requests received and not yet fully answered (0 or 1: HTTP/1 answers in order).
    in_flight: AtomicU32,
    /// When the bytes of the next request head started arriving (ms since `start`), or
    /// `NONE` while none have.
    head_since: AtomicU64,
    /// When the connection last became idle (ms since `start`).
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicU32::new(0),
            // A new connection owes its first request head at once.
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Bytes arrived: between requests, they start the next request's head.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }
}

/// One request from a complete head to the end of its response body.
struct Exchange(Arc<Activity>);

impl Exchange {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_since.store(NONE, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(self.0.now_ms(), Ordering::Relaxed);
        }
    }
}

/// A response body that ends its exchange when hyper has sent it (and drops it).
struct WatchedBody {
    body: Body,
    _exchange: Exchange,
}

impl hyper::body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Which clock ran out.
enum Expired {
    HeaderRead,
    Idle,
}

/// One timer per connection, moved to whichever deadline applies now.
struct Watcher {
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
}

impl Watcher {
    fn new(activity: Arc<Activity>, limits: ConnectionLimits) -> Self {
        let armed = activity.start + limits.header_read_timeout;
        Self {
            activity,
            limits,
            sleep: Box::pin(tokio::time::sleep_until(armed)),
            armed,
        }
    }

    /// Ready when the current deadline has passed. Polled after the connection on every wake
    /// of its task, so it sees each change of activity as it happens. After a graceful close
    /// (`closing`) only the header-read clock still applies.
    fn poll(&mut self, cx: &mut Context<'_>, closing: bool) -> Poll<Expired> {
        let activity = &self.activity;
        if activity.in_flight.load(Ordering::Relaxed) > 0 {
            return Poll::Pending;
        }
        let head_since = activity.head_since.load(Ordering::Relaxed);
        let (deadline, expired) = if head_since != NONE {
            (
                activity.at(head_since) + self.limits.header_read_timeout,
                Expired::HeaderRead,
            )
        } else if !closing {
            (
                activity.at(activity.idle_since.load(Ordering::Relaxed)) + self.limits.idle_timeout,
                Expired::Idle,
            )
        } else {
            return Poll::Pending;
        };
        if deadline != self.armed {
            self.sleep.as_mut().reset(deadline);
            self.armed = deadline;
        }
        self.sleep.as_mut().poll(cx).map(|()| expired)
    }
}
