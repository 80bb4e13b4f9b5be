//! `/v1/files`: uploads and imports stream to disk under the per-file limit, and leave no
//! file behind when refused.

use std::path::{Path, PathBuf};

use reqwest::{multipart, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_core::storage::StorageQuota;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{backend_test, helpers::*};

const MIB: usize = 1024 * 1024;
const MAX_FILE: usize = 50 * MIB;

/// A v1 client that can also send multipart bodies.
struct Files {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Files {
    async fn new(app: &TestApp, email: &str, team: &str) -> Files {
        let mut admin = app.sign_up(email, team).await;
        let key = create_key(&mut admin, "test", "").await;
        Files {
            base: format!("{}/v1", app.base),
            key,
            client: reqwest::Client::new(),
        }
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer {status}: {text}"));
        (status, json)
    }

    async fn upload(&self, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let form = multipart::Form::new().text("project_name", "").part(
            "file",
            multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let response = self
            .client
            .post(format!("{}/files/upload", self.base))
            .basic_auth(&self.key, Some(""))
            .multipart(form)
            .send()
            .await
            .unwrap();
        Self::answer(response).await
    }

    async fn import(&self, url: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/files/import", self.base))
            .basic_auth(&self.key, Some(""))
            .json(&json!({ "file_url": url }))
            .send()
            .await
            .unwrap();
        Self::answer(response).await
    }
}

/// Every regular file under `DATA_DIR/files`, partial uploads included.
fn stored_files(app: &TestApp) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.db.dir.join("files"), &mut out);
    out.sort();
    out
}

/// A file server on 127.0.0.1: `/<n>` answers `n` bytes with a `Content-Length`,
/// `/stream/<n>` answers `n` bytes delimited by closing the connection (no length stated, as
/// a streaming server would).
pub async fn file_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                let (streamed, size) = match path.strip_prefix("/stream/") {
                    Some(n) => (true, n.parse::<usize>().unwrap_or(0)),
                    None => (false, path[1..].parse::<usize>().unwrap_or(0)),
                };
                let head = if streamed {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n")
                };
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

async fn uploads_stream_to_disk_within_the_file_limit(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let files = Files::new(&app, "stream@acme.test", "Stream").await;

    // A file at the limit is stored whole, with its size and hash.
    let content: Vec<u8> = (0..MAX_FILE).map(|i| (i % 251) as u8).collect();
    let digest = hex::encode(Sha256::digest(&content));
    let (status, file) = files.upload("big.bin", content).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["size"], MAX_FILE);
    let row = app
        .store
        .get_file(
            &team_scope(&team_of(&file))
                .with_mode(tessera_core::Mode::Test)
                .unwrap(),
            &tessera_core::ids::FileId::from_stored(file["id"].as_str().unwrap().to_owned()),
        )
        .await
        .unwrap()
        .expect("the row exists");
    assert_eq!(row.sha256, digest);
    let on_disk = stored_files(&app);
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    assert_eq!(
        std::fs::metadata(&on_disk[0]).unwrap().len(),
        MAX_FILE as u64
    );
    assert_eq!(
        hex::encode(Sha256::digest(std::fs::read(&on_disk[0]).unwrap())),
        digest
    );

    // One byte more is refused with a JSON 413, and nothing of it stays on disk.
    let (status, error) = files.upload("over.bin", vec![7u8; MAX_FILE + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert_eq!(error["status_code"], 413);
    assert!(
        error["error"].as_str().unwrap().contains("50 MiB"),
        "{error}"
    );
    assert_eq!(stored_files(&app), on_disk, "no new file, no partial file");

    // A body declared larger than any upload may be is refused before it is read, in JSON.
    let (status, error) = declared_too_large(&app, &files.key).await;
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["status_code"], 413);
    assert_eq!(stored_files(&app), on_disk);
    app.stop().await;
}
backend_test!(uploads_stream_to_disk_within_the_file_limit);

/// Sends only the head of an upload whose `Content-Length` is 60 MiB; returns the answer.
async fn declared_too_large(app: &TestApp, key: &str) -> (u16, Value) {
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/files/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\nContent-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        B64.encode(format!("{key}:")),
        60 * MIB
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| panic!("non-JSON answer: {text}")),
    )
}

async fn imports_stream_to_disk_within_the_file_limit(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let files = Files::new(&app, "imports@acme.test", "Imports").await;
    let server = file_server().await;

    let (status, file) = files.import(&format!("{server}/1000")).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["size"], 1000);
    let (status, file) = files.import(&format!("{server}/stream/{MAX_FILE}")).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["size"], MAX_FILE);
    let on_disk = stored_files(&app);
    assert_eq!(on_disk.len(), 2, "{on_disk:?}");

    // Over the limit: refused by its stated length, or while streaming when none is stated.
    for url in [
        format!("{server}/{}", MAX_FILE + 1),
        format!("{server}/stream/{}", MAX_FILE + 1),
    ] {
        let (status, error) = files.import(&url).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{url}: {error}");
        assert_eq!(error["status_code"], 413);
        assert!(
            error["error"].as_str().unwrap().contains("50 MiB"),
            "{error}"
        );
        assert_eq!(stored_files(&app), on_disk, "{url}: nothing left on disk");
    }
    app.stop().await;
}
backend_test!(imports_stream_to_disk_within_the_file_limit);

fn with_quota(bytes: u64, files: u64) -> Options {
    Options {
        storage_quota: Some(StorageQuota { bytes, files }),
        ..Options::default()
    }
}

fn assert_over_quota(answer: &(StatusCode, Value), needle: &str) {
    let (status, error) = answer;
    assert_eq!(*status, StatusCode::FORBIDDEN, "{error}");
    assert_eq!(error["status_code"], 403);
    let text = error["error"].as_str().unwrap();
    assert!(text.contains("quota"), "{text}");
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
}

/// The team id of a stored file, from its `attachment_url`.
fn team_of(file: &Value) -> String {
    let url = file["attachment_url"].as_str().unwrap();
    url.trim_start_matches("scaledata://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

async fn storage_quotas_hold_per_team(backend: Backend) {
    let app = TestApp::spawn_with(&backend, with_quota(10_000, 3)).await;
    let server = file_server().await;

    // Bytes: what fits is stored up to the last byte; what does not is refused with the
    // used and allowed amounts, and leaves nothing behind.
    let bytes = Files::new(&app, "bytes@acme.test", "Bytes").await;
    let (status, first) = bytes.upload("a.bin", vec![1; 6000]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let team = team_of(&first);
    let on_disk = stored_files(&app);
    let over = bytes.upload("b.bin", vec![2; 5000]).await;
    assert_over_quota(
        &over,
        "6000 bytes (5.9 KiB) stored of 10000 bytes (9.8 KiB) allowed",
    );
    assert_over_quota(&over, "at most 4000 bytes");
    assert_over_quota(&bytes.import(&format!("{server}/5000")).await, "6000 bytes");
    assert_over_quota(
        &bytes.import(&format!("{server}/stream/5000")).await,
        "6000 bytes",
    );
    assert_eq!(
        stored_files(&app),
        on_disk,
        "refused files leave nothing on disk"
    );
    let usage = app.store.storage_usage(&team_scope(&team)).await.unwrap();
    assert_eq!((usage.bytes, usage.files), (6000, 1));

    let (status, file) = bytes.import(&format!("{server}/4000")).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    let full = stored_files(&app);
    assert_over_quota(&bytes.upload("c.bin", vec![3; 1]).await, "10000 bytes");
    assert_over_quota(&bytes.import(&format!("{server}/1")).await, "10000 bytes");
    assert_eq!(stored_files(&app), full);
    let usage = app.store.storage_usage(&team_scope(&team)).await.unwrap();
    assert_eq!((usage.bytes, usage.files), (10_000, 2));

    // Files: the count is a limit of its own, for uploads and imports alike.
    let count = Files::new(&app, "count@acme.test", "Count").await;
    for i in 0..3 {
        let (status, file) = count.upload(&format!("{i}.txt"), vec![b'x'; 10]).await;
        assert_eq!(status, StatusCode::OK, "another team is unaffected: {file}");
    }
    let before = stored_files(&app);
    assert_over_quota(
        &count.upload("3.txt", vec![b'x'; 10]).await,
        "3 files stored of 3 allowed",
    );
    assert_over_quota(
        &count.import(&format!("{server}/10")).await,
        "3 files stored of 3 allowed",
    );
    assert_eq!(stored_files(&app), before);

    // The usage row matches the file rows, and the schema refuses a negative usage.
    use sqlx::Connection;
    let mut db = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let (sum, n): (i64, i64) =
        sqlx::query_as("SELECT CAST(SUM(size) AS BIGINT), COUNT(*) FROM files WHERE team_id = $1")
            .bind(&team)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!((sum, n), (10_000, 2));
    let negative = sqlx::query("UPDATE team_storage SET bytes = bytes - 20000 WHERE team_id = $1")
        .bind(&team)
        .execute(&mut db)
        .await;
    assert!(negative.is_err(), "CHECK (bytes >= 0) holds");
    db.close().await.unwrap();
    app.stop().await;
}
backend_test!(storage_quotas_hold_per_team);

async fn concurrent_uploads_never_pass_the_quota(backend: Backend) {
    let app = TestApp::spawn_with(&backend, with_quota(100_000, 1000)).await;
    let files = std::sync::Arc::new(Files::new(&app, "race@acme.test", "Race").await);
    let server = file_server().await;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..24 {
        let files = files.clone();
        let server = server.clone();
        racers.spawn(async move {
            if i % 3 == 0 {
                files.import(&format!("{server}/7000")).await
            } else {
                files.upload(&format!("{i}.bin"), vec![9; 7000]).await
            }
        });
    }
    let mut stored = 0;
    let mut team = None;
    while let Some(answer) = racers.join_next().await {
        let answer = answer.unwrap();
        if answer.0 == StatusCode::OK {
            stored += 1;
            team = Some(team_of(&answer.1));
        } else {
            assert_over_quota(&answer, "allowed");
        }
    }
    // 14 files of 7000 bytes fit in 100,000; the 15th never does, whatever the interleaving.
    assert_eq!(stored, 14);
    let usage = app
        .store
        .storage_usage(&team_scope(&team.unwrap()))
        .await
        .unwrap();
    assert_eq!((usage.bytes, usage.files), (98_000, 14));
    let on_disk = stored_files(&app);
    assert_eq!(on_disk.len(), 14, "{on_disk:?}");
    let total: u64 = on_disk
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(total, 98_000);
    app.stop().await;
}
backend_test!(concurrent_uploads_never_pass_the_quota);
