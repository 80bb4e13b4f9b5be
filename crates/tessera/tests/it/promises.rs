//! What the README promises, each held to a test: address limits per request, invitation and
//! session expiry, the 64 KiB read of callback responses, a successful Report error, and file
//! imports under the outbound guard. (Graceful SIGTERM is in `durability`, where the real
//! process runs.)

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{backend_test, helpers::*};

/// At most 20 addresses per invite form and 50 per API call: one more is refused whole.
async fn invitations_take_at_most_20_addresses_a_form_and_50_a_call(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("many@acme.test", "Many").await;
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("m{i}@many.test"))
            .collect::<Vec<_>>()
    };
    let page = admin
        .submit(
            "/team/invitations",
            &[("emails", &list(21).join(",")), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("20"), "{}", page.body);
    let live = Api::new(&app, &create_key(&mut admin, "live", "").await);
    let (status, body) = live
        .post(
            "/teams/invite",
            json!({"emails": list(51), "team_role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("50"), "{body}");
    assert!(app
        .store
        .cross_tenant()
        .list_mail(200, 0)
        .await
        .unwrap()
        .iter()
        .all(|m| !m.to.ends_with("@many.test")));
    // 20 and 50 are fine.
    let page = admin
        .submit(
            "/team/invitations",
            &[("emails", &list(20).join(",")), ("role", "member")],
        )
        .await;
    assert!(page.body.contains("Invitation sent"), "{}", page.body);
    let (status, _) = live
        .post(
            "/teams/invite",
            json!({"emails": list(50), "team_role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
backend_test!(invitations_take_at_most_20_addresses_a_form_and_50_a_call);

/// An invitation link stops working when it expires; a session ends at its absolute expiry
/// even while in use.
async fn invitations_and_sessions_expire(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            invitation_ttl: Some(Duration::from_secs(2)),
            session_ttl: Some(Duration::from_secs(3)),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("exp@acme.test", "Expiry").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "late@acme.test"), ("role", "member")],
        )
        .await;
    let link = app.outbox_link("late@acme.test").await;
    let mut late = app.browser();
    assert_eq!(
        late.get(&link).await.status,
        StatusCode::OK,
        "valid at first"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        admin.get("/team").await.status,
        StatusCode::OK,
        "the session is still on"
    );
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let page = late.get(&link).await;
    assert!(page.body.contains("Invitation expired"), "{}", page.body);
    let page = late
        .post_form(
            &link,
            &[
                ("name", "Late"),
                ("company", ""),
                ("job_title", ""),
                ("phone", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_ne!(
        page.status,
        StatusCode::SEE_OTHER,
        "an expired link created an account"
    );
    // Three seconds after sign-in the session is over, although it was used a moment ago.
    let page = admin.get("/team").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.unwrap().starts_with("/login"));
    app.stop().await;
}
backend_test!(invitations_and_sessions_expire);

/// A receiver that answers 200 and then streams a body without end: at most 64 KiB of it is
/// read (the attempt ends at once, succeeded) and 1 KiB kept for the dashboard.
async fn callback_responses_are_read_up_to_64_kib(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("big@acme.test", "Big Responses").await;
    let api = Api::new(&app, &create_key(&mut admin, "test", "").await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64 * 1024];
        let _ = conn.read(&mut request).await;
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
        // 64 MiB at most, so the test ends even if the server kept reading.
        for _ in 0..4096 {
            if conn.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            count.fetch_add(16 * 1024, Ordering::SeqCst);
        }
    });
    let mut task = categorization("big");
    task["callback_url"] = json!(url);
    let (status, task) = api.post("/task/categorization", task).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    let scope = crate::callbacks::task_scope(&app, &id).await;
    let delivery = TestApp::eventually(10, || async {
        app.store
            .task_deliveries(&scope, &id)
            .await
            .unwrap()
            .into_iter()
            .next()
            .filter(|d| d.status.as_str() != "pending")
    })
    .await;
    assert_eq!(delivery.status.as_str(), "succeeded");
    let attempts = app
        .store
        .delivery_attempts(&scope, &delivery.id)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    let snippet = attempts[0].response_snippet.clone().unwrap_or_default();
    assert!(
        !snippet.is_empty() && snippet.len() <= 1024,
        "{} bytes kept",
        snippet.len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < 8 * 1024 * 1024,
        "the server kept reading: {sent} bytes"
    );
    app.stop().await;
}
backend_test!(callback_responses_are_read_up_to_64_kib);

/// Report error: the task ends `error` with the labeler's reason, the customer is called back
/// with it, and the finalized batch counts it under `error`.
async fn report_error_ends_the_task_and_counts_in_the_batch(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("err@acme.test", "Errors Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "").await);
    // A receiver for the task's and the batch's callbacks.
    let hits: Arc<std::sync::Mutex<Vec<(String, Value)>>> = Arc::default();
    let seen = hits.clone();
    let receiver = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
        let seen = seen.clone();
        async move {
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            seen.lock().unwrap().push((uri.path().to_owned(), body));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    live.post("/projects", json!({"type": "categorization", "name": "p"}))
        .await;
    let (status, batch) = live
        .post(
            "/batches",
            json!({"project": "p", "name": "b", "callback": format!("{base}/batch")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let mut fields = categorization("unlabelable");
    fields["project"] = json!("p");
    fields["batch"] = json!("b");
    fields["callback_url"] = json!(format!("{base}/task"));
    let (status, task) = live.post("/task/categorization", fields).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    let (status, _) = live.post("/batches/b/finalize", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // A labeler of the team claims it and reports it.
    admin
        .submit(
            "/team/invitations",
            &[("emails", "lab@errors.test"), ("role", "labeler")],
        )
        .await;
    let link = app.outbox_link("lab@errors.test").await;
    let mut labeler = app.browser();
    labeler.get(&link).await;
    let joined = labeler
        .post_form(
            &link,
            &[
                ("name", "La Beler"),
                ("company", ""),
                ("job_title", ""),
                ("phone", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    labeler.visit("/label").await;
    let next = labeler.post_form("/label/next", &[]).await;
    assert_eq!(
        next.location.as_deref(),
        Some(format!("/label/{id}").as_str())
    );
    labeler.visit(&format!("/label/{id}")).await;
    let reason = "The attachment is blank.";
    let done = labeler
        .post_form(&format!("/label/{id}/error"), &[("reason", reason)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(labeler
        .visit("/label")
        .await
        .body
        .contains("reported as not labelable"));

    let (_, after) = live.get(&format!("/task/{id}")).await;
    assert_eq!(after["status"], "error", "{after}");
    let calls = TestApp::eventually(10, || async {
        let hits = hits.lock().unwrap().clone();
        (hits.iter().any(|(p, _)| p == "/task") && hits.iter().any(|(p, _)| p == "/batch"))
            .then_some(hits)
    })
    .await;
    let (_, task_call) = calls.iter().find(|(p, _)| p == "/task").unwrap();
    assert_eq!(task_call["task"]["status"], "error");
    assert!(
        task_call.to_string().contains(reason),
        "the reason reaches the customer: {task_call}"
    );
    let (_, batch_call) = calls.iter().find(|(p, _)| p == "/batch").unwrap();
    assert_eq!(batch_call["stats"]["error"], 1, "{batch_call}");
    assert_eq!(batch_call["stats"]["completed"], 0, "{batch_call}");
    // Nothing is billed for it.
    let team = app
        .store
        .get_user(
            &app.store
                .find_user_by_email(&tessera_core::Email::parse("err@acme.test").unwrap())
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap()
        .team_id
        .unwrap();
    assert_eq!(
        app.store
            .usage_record_count(&team_scope(&team))
            .await
            .unwrap(),
        0
    );
    app.stop().await;
}
backend_test!(report_error_ends_the_task_and_counts_in_the_batch);

/// With the outbound guard on (production's default), a file import from a loopback address
/// is refused, and so is one from a name that resolves to it.
async fn file_imports_go_through_the_outbound_guard(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            refuse_private_callbacks: true,
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("guard@acme.test", "Guarded Files").await;
    let api = Api::new(&app, &create_key(&mut admin, "test", "").await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                .await;
        }
    });
    for url in [
        format!("http://127.0.0.1:{port}/internal"),
        format!("http://localhost:{port}/internal"),
        format!("http://[::ffff:127.0.0.1]:{port}/internal"),
    ] {
        let (status, body) = api.post("/files/import", json!({"file_url": url})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["status_code"], 400);
    }
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "an internal address was fetched"
    );
    app.stop().await;
}
backend_test!(file_imports_go_through_the_outbound_guard);
