//! The HTTP server's connection handling, spoken to over raw TCP: header-read and idle
//! timeouts (slowloris), the connection cap, graceful shutdown of an in-flight request.

use std::time::Duration;

use base64::Engine;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{sleep, timeout, Instant},
};

use crate::{
    backend_test,
    helpers::{create_key, Backend, Options, TestApp},
};

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: tessera.test\r\n\r\n";

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads one response (head and its Content-Length body); `None` when the connection closes
/// first.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(text);
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How long until the server closes the connection (end of stream or reset), if it does
/// within `limit`. Anything the server sends first is skipped.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

async fn header_read_timeout_closes_slow_requests(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            header_read_timeout: Some(Duration::from_millis(700)),
            idle_timeout: Some(Duration::from_secs(30)),
            ..Options::default()
        },
    )
    .await;

    // A complete request is answered as usual.
    let mut ok = TcpStream::connect(addr(&app)).await.unwrap();
    ok.write_all(GET_HEALTHZ).await.unwrap();
    let response = read_response(&mut ok).await.expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Half a request, then nothing: closed once the header-read timeout has passed.
    let mut half = TcpStream::connect(addr(&app)).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: tessera.test\r\nX-Slow: ")
        .await
        .unwrap();
    let closed = closed_within(&mut half, Duration::from_secs(5))
        .await
        .expect("a half-sent request is closed");
    assert!(
        closed >= Duration::from_millis(500),
        "closed after {closed:?}"
    );

    // A head trickled a byte at a time never finishes either: the clock is not reset by
    // each byte.
    let trickle = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut read, mut write) = trickle.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await;
        for _ in 0..60 {
            if write.write_all(b"a").await.is_err() {
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = closed_within(&mut read, Duration::from_secs(4))
        .await
        .expect("a trickled request head is closed");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
    writer.abort();

    // A connection that never sends anything is closed too.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5))
        .await
        .is_some());
    app.stop().await;
}
backend_test!(header_read_timeout_closes_slow_requests);

async fn idle_keep_alive_connections_are_closed(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            header_read_timeout: Some(Duration::from_millis(500)),
            idle_timeout: Some(Duration::from_millis(1500)),
            ..Options::default()
        },
    )
    .await;
    let mut conn = TcpStream::connect(addr(&app)).await.unwrap();
    conn.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_response(&mut conn).await.is_some());
    // Idle for longer than the header-read timeout but within the idle limit: the
    // connection is still there for the next request.
    sleep(Duration::from_millis(1000)).await;
    conn.write_all(GET_HEALTHZ).await.unwrap();
    let second = read_response(&mut conn)
        .await
        .expect("kept alive within the idle limit");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Then silent: closed once the idle limit has passed.
    let closed = closed_within(&mut conn, Duration::from_secs(5))
        .await
        .expect("an idle connection is closed");
    assert!(
        closed >= Duration::from_millis(1200),
        "closed after {closed:?}"
    );
    app.stop().await;
}
backend_test!(idle_keep_alive_connections_are_closed);

async fn connections_beyond_the_cap_wait(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            max_connections: Some(1),
            ..Options::default()
        },
    )
    .await;
    let mut first = TcpStream::connect(addr(&app)).await.unwrap();
    first.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_response(&mut first).await.is_some());

    // The first connection (idle, kept alive) holds the only slot: the second is not served.
    let mut second = TcpStream::connect(addr(&app)).await.unwrap();
    second.write_all(GET_HEALTHZ).await.unwrap();
    assert!(
        timeout(Duration::from_millis(800), read_response(&mut second))
            .await
            .is_err(),
        "a connection beyond the cap is served concurrently"
    );
    // Once the first closes, the waiting one is served.
    drop(first);
    let response = timeout(Duration::from_secs(5), read_response(&mut second))
        .await
        .expect("served once a slot is free")
        .expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    app.stop().await;
}
backend_test!(connections_beyond_the_cap_wait);

async fn graceful_shutdown_finishes_a_slow_request(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("slow@example.com", "Slow Co").await;
    let key = create_key(&mut admin, "test", "slow").await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    let body = br#"{"type": "imageannotation", "name": "slow-project", "params": {}}"#;
    let head = format!(
        "POST /v1/projects HTTP/1.1\r\nHost: tessera.test\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let address = addr(&app);
    let mut conn = TcpStream::connect(&address).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    sleep(Duration::from_millis(200)).await;

    // Shut down while the request body is still arriving.
    let stopping = tokio::spawn(app.stop());
    sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(&address).await.is_err(),
        "no new connections once shutting down"
    );
    assert!(!stopping.is_finished(), "waits for the in-flight request");

    conn.write_all(&body[10..]).await.unwrap();
    let response = timeout(Duration::from_secs(10), read_response(&mut conn))
        .await
        .expect("answered")
        .expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops once the request is answered")
        .unwrap();
}
backend_test!(graceful_shutdown_finishes_a_slow_request);

/// Runs `tessera serve ARGS` on a throwaway data dir; it must refuse to start.
pub async fn serve_refuses(args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(crate::helpers::unique("tessera-serve-"));
    let output = timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("refuses at once instead of serving")
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn serve_refuses_bad_connection_limits() {
    assert!(serve_refuses(&["--max-connections", "0"])
        .await
        .contains("--max-connections"));
    assert!(serve_refuses(&["--idle-timeout", "0s"])
        .await
        .contains("must be longer than zero"));
    assert!(serve_refuses(&["--header-read-timeout", "soon"])
        .await
        .contains("is not a duration"));
}
