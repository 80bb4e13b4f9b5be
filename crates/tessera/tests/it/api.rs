//! The v1 API through HTTP: keys (dashboard and CLI), modes, the error contract, listing and
//! paging, and the task life cycle. The official SDK drives the same API in `sdk-tests/`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{backend_test, helpers::*};

fn image_task(label: &str) -> Value {
    json!({"attachment": "https://example.com/a.png", "geometries": {"box": {"objects_to_annotate": [label]}}})
}

async fn keys_modes_and_reveal(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("keys@acme.test", "Keys Team").await;
    let test_key = create_key(&mut admin, "test", "ci").await;
    let live_key = create_key(&mut admin, "live", "prod").await;
    assert!(
        test_key.starts_with("test_") && test_key.len() >= 5 + 32,
        "{test_key}"
    );
    assert!(live_key.starts_with("live_"));
    let test = Api::new(&app, &test_key);
    let live = Api::new(&app, &live_key);

    // Test mode: completes at once with a synthetic response; live mode: pending.
    let (status, task) = test.post("/task/imageannotation", image_task("car")).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["status"], "completed");
    assert_eq!(task["is_test"], true);
    assert_eq!(task["response"]["annotations"][0]["label"], "car");
    let (_, live_task) = live.post("/task/imageannotation", image_task("bus")).await;
    assert_eq!(live_task["status"], "pending");
    assert!(live_task.get("is_test").is_none() && live_task.get("response").is_none());

    // Separate worlds.
    let test_id = task["task_id"].as_str().unwrap();
    assert_eq!(
        live.get(&format!("/task/{test_id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(live.get("/tasks").await.1["total"], 1);
    assert_eq!(test.get("/tasks").await.1["total"], 1);
    let (s, _) = test
        .post(
            "/projects",
            json!({"type": "imageannotation", "name": "shared/name", "params": {}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        live.get("/projects/shared%2Fname").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, e) = live
        .post(
            "/task/imageannotation",
            json!({"attachment": "a", "geometries": {"box": {}}, "project": "shared/name"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // The same name is free in the other mode.
    assert_eq!(
        live.post(
            "/projects",
            json!({"type": "imageannotation", "name": "shared/name"})
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(test.get("/projects").await.1.as_array().unwrap().len(), 1);

    // Bearer works too; bad keys do not.
    let bearer = reqwest::Client::new()
        .get(format!("{}/v1/tasks", app.base))
        .bearer_auth(&test_key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    for bad in ["", "test_nope", "Basic", "not base64 at all"] {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/tasks", app.base))
            .header(
                "authorization",
                if bad.is_empty() {
                    "Basic".to_owned()
                } else {
                    format!("Basic {bad}")
                },
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status_code"], 401);
        assert!(body["error"].as_str().unwrap().len() > 5);
    }
    assert_eq!(
        Api::new(&app, "test_wrong").get("/tasks").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Reveal is audited; the page lists keys by prefix, never in full.
    let page = admin.visit("/keys").await;
    assert!(!page.body.contains(&test_key) && !page.body.contains(&live_key));
    let revealed = admin
        .submit(&format!("/keys/{}/reveal", key_id(&page.body, "test")), &[])
        .await;
    assert!(revealed.body.contains(&test_key));
    let callback = admin.submit("/keys/callback/test/reveal", &[]).await;
    assert!(callback.body.contains("Test callback auth key"));
    // Shown once: a reload does not reveal (or audit) it again.
    assert!(!admin
        .visit("/keys")
        .await
        .body
        .contains("id=\"secret-value\""));
    let log = admin.visit("/team/audit").await.without_wbr();
    assert!(
        log.body.contains("api_key.created")
            && log.body.contains("api_key.revealed")
            && log.body.contains("callback_auth_key.revealed")
    );

    // Deleting a key refuses its next request.
    assert_eq!(live.get("/tasks").await.0, StatusCode::OK);
    let live_id = key_id(&admin.visit("/keys").await.body, "live");
    let deleted = admin.submit(&format!("/keys/{live_id}/delete"), &[]).await;
    assert!(deleted
        .body
        .contains("deleted. Requests with it are refused from now on."));
    assert_eq!(live.get("/tasks").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(test.get("/tasks").await.0, StatusCode::OK);
    app.stop().await;
}
backend_test!(keys_modes_and_reveal);

async fn deleted_keys_stop_on_other_replicas_within_the_bound(backend: Backend) {
    let (a, b) = TestApp::replicas(&backend).await;
    let mut admin = a.sign_up("rep@acme.test", "Replicas").await;
    let key = create_key(&mut admin, "test", "").await;
    assert_eq!(
        Api::new(&b, &key).get("/tasks").await.0,
        StatusCode::OK,
        "replica B knows the key"
    );
    let id = key_id(&admin.visit("/keys").await.body, "test");
    admin.submit(&format!("/keys/{id}/delete"), &[]).await;
    assert_eq!(
        Api::new(&a, &key).get("/tasks").await.0,
        StatusCode::UNAUTHORIZED,
        "at once where deleted"
    );
    let started = std::time::Instant::now();
    TestApp::eventually(10, || async {
        (Api::new(&b, &key).get("/tasks").await.0 == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let bound = tessera_server::keys::cache::KEY_CACHE_TTL + Duration::from_secs(1);
    assert!(
        started.elapsed() <= bound,
        "replica B refused after {:?}",
        started.elapsed()
    );
    b.stop().await;
    a.stop().await;
}
backend_test!(deleted_keys_stop_on_other_replicas_within_the_bound);

/// `GET /v1/task/{id}` is served from a read cache: a change is seen at once on the replica
/// that made it, and on another replica at once on PostgreSQL (NOTIFY), within the cache's
/// expiry on SQLite — also after the PostgreSQL listener lost its connection.
async fn task_changes_reach_cached_reads_on_every_replica(backend: Backend) {
    let (a, b) = TestApp::replicas(&backend).await;
    let mut admin = a.sign_up("cache@acme.test", "Cached").await;
    let key = create_key(&mut admin, "live", "").await;
    let (api_a, api_b) = (Api::new(&a, &key), Api::new(&b, &key));
    let mut body = image_task("car");
    body["metadata"] = json!({"round": 0});
    let (_, task) = api_a.post("/task/imageannotation", body).await;
    let id = task["task_id"].as_str().unwrap().to_owned();
    let path = format!("/task/{id}");
    let bound = match backend {
        Backend::Sqlite => tessera_store::SQLITE_TASK_CACHE_TTL + Duration::from_secs(1),
        // Far below the 30 s expiry: only the notification can explain it.
        Backend::Postgres(_) => Duration::from_secs(3),
    };
    // PostgreSQL: the pids of the replicas' change listeners, once both listen.
    let listeners = |gone: Vec<i32>| {
        let url = a.db.url.clone();
        let postgres = matches!(backend, Backend::Postgres(_));
        async move {
            if !postgres {
                return Some(Vec::new());
            }
            let pids: Vec<(i32,)> = sqlx::query_as(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .fetch_all(&pg_pool(&url).await)
            .await
            .unwrap();
            let pids: Vec<i32> = pids
                .into_iter()
                .map(|(p,)| p)
                .filter(|p| !gone.contains(p))
                .collect();
            (pids.len() >= 2).then_some(pids)
        }
    };
    let mut listening = TestApp::eventually(10, || listeners(Vec::new())).await;

    for round in 0..2 {
        // Both replicas read (and cache) the task, then A changes it.
        for api in [&api_a, &api_b] {
            for _ in 0..3 {
                assert_eq!(api.get(&path).await.1["metadata"]["round"], json!(round));
            }
        }
        let next = json!({"round": round + 1});
        let (s, changed) = api_a
            .post(&format!("/task/{id}/setMetadata"), next.clone())
            .await;
        assert_eq!(s, StatusCode::OK, "{changed}");
        assert_eq!(api_a.get(&path).await.1["metadata"], next, "at once on A");
        let started = std::time::Instant::now();
        TestApp::eventually(10, || async {
            (api_b.get(&path).await.1["metadata"] == next).then_some(())
        })
        .await;
        assert!(
            started.elapsed() <= bound,
            "B saw round {} after {:?}",
            round + 1,
            started.elapsed()
        );
        if let Backend::Postgres(_) = backend {
            // Cut every listener's connection: the replicas must notice, reconnect, and
            // never serve a change they did not hear about.
            for pid in &listening {
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(*pid)
                    .execute(&pg_pool(&a.db.url).await)
                    .await
                    .unwrap();
            }
            let gone = listening.clone();
            listening = TestApp::eventually(10, || listeners(gone.clone())).await;
        }
    }

    // A cancel made on B reaches A's cached copy too.
    let (s, _) = api_b.post(&format!("/task/{id}/cancel"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api_b.get(&path).await.1["status"], "canceled");
    TestApp::eventually(bound.as_secs() + 1, || async {
        (api_a.get(&path).await.1["status"] == "canceled").then_some(())
    })
    .await;
    b.stop().await;
    a.stop().await;
}
backend_test!(task_changes_reach_cached_reads_on_every_replica);

/// Concurrent creations are written in batches: a duplicate `unique_id` in a batch fails only
/// its own request (409 naming the first task), and the team's count stays exact.
async fn concurrent_creations_each_get_their_own_answer(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("burst@acme.test", "Burst").await;
    let key = create_key(&mut admin, "test", "").await;
    let api = Api::new(&app, &key);
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..40 {
        let api = api.clone();
        requests.spawn(async move {
            let mut body = image_task("car");
            if i % 2 == 0 {
                body["unique_id"] = json!("same-for-all");
            }
            body["metadata"] = json!({"i": i});
            api.post("/task/imageannotation", body).await
        });
    }
    let answers = requests.join_all().await;
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    let conflicts: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        ok.len(),
        21,
        "20 without unique_id and one with it: {answers:?}"
    );
    assert_eq!(conflicts.len(), 19, "{answers:?}");
    let holder = ok
        .iter()
        .find(|t| t["unique_id"] == "same-for-all")
        .expect("one task holds the unique_id");
    for conflict in &conflicts {
        assert_eq!(conflict["status_code"], 409);
        assert!(
            conflict["error"]
                .as_str()
                .unwrap()
                .contains(holder["task_id"].as_str().unwrap()),
            "{conflict}"
        );
    }
    let (_, page) = api.get("/tasks?limit=100").await;
    assert_eq!(page["total"], 21);
    assert_eq!(page["docs"].as_array().unwrap().len(), 21);
    for task in &ok {
        let (s, read) = api
            .get(&format!("/task/{}", task["task_id"].as_str().unwrap()))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(read["metadata"], task["metadata"]);
    }

    // Tags and batches go in with their task.
    for (path, body) in [
        (
            "/projects",
            json!({"type": "imageannotation", "name": "burst", "params": {}}),
        ),
        ("/batches", json!({"project": "burst", "name": "open"})),
        ("/batches", json!({"project": "burst", "name": "late"})),
        ("/batches/late/finalize", json!({})),
    ] {
        let (s, b) = api.post(path, body).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
    }
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..16 {
        let api = api.clone();
        requests.spawn(async move {
            let mut body = image_task("car");
            body["batch"] = json!(if i < 10 { "open" } else { "late" });
            if i % 2 == 0 {
                body["tags"] = json!(["x", "y", "x"]);
            }
            api.post("/task/imageannotation", body).await
        });
    }
    let mut late = 0;
    for (s, task) in requests.join_all().await {
        if s == StatusCode::OK && task["batch"] == "late" {
            late += 1;
        } else if s != StatusCode::OK {
            // The first test task in the finalized batch completes it; later ones are refused.
            assert_eq!(s, StatusCode::BAD_REQUEST, "{task}");
            assert!(
                task["error"].as_str().unwrap().contains("is completed"),
                "{task}"
            );
        }
    }
    assert!(late >= 1);
    let (_, open) = api.get("/batches/open/status").await;
    assert_eq!(
        (open["completed"].clone(), open["pending"].clone()),
        (json!(10), json!(0))
    );
    assert_ne!(open["status"], "completed", "not finalized: {open}");
    let (_, closed) = api.get("/batches/late/status").await;
    assert_eq!(closed["status"], "completed", "{closed}");
    assert_eq!(closed["completed"], late);
    assert_eq!(api.get("/tasks?tags=y&batch=open").await.1["total"], 5);
    let (_, tagged) = api.get("/tasks?tags=x&batch=open&limit=1").await;
    assert_eq!(tagged["docs"][0]["tags"], json!(["x", "y", "x"]));
    assert_eq!(api.get("/tasks").await.1["total"], 31 + late);
    app.stop().await;
}
backend_test!(concurrent_creations_each_get_their_own_answer);

async fn error_contract(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("err@acme.test", "Errors").await;
    let api = Api::new(&app, &create_key(&mut admin, "test", "").await);
    let live = Api::new(&app, &create_key(&mut admin, "live", "").await);
    let (_, done) = api.post("/task/categorization", json!({"attachment": "https://x", "attachment_type": "website", "categories": ["a", "b"]})).await;
    let done_id = done["task_id"].as_str().unwrap().to_owned();
    api.post("/projects", json!({"type": "categorization", "name": "p"}))
        .await;
    api.post(
        "/batches",
        json!({"project": "p", "name": "b", "callback": "", "metadata": {}}),
    )
    .await;
    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::POST,
            "/task/videoannotation".into(),
            Some(json!({})),
            402,
            "not enabled",
        ),
        (
            Method::POST,
            "/task/imageannotation".into(),
            Some(json!({"attachment": "a"})),
            400,
            "\"geometries\"",
        ),
        (
            Method::POST,
            "/task/segmentannotation".into(),
            Some(json!({"attachment": "a"})),
            400,
            "\"labels\"",
        ),
        (
            Method::POST,
            "/task/namedentityrecognition".into(),
            Some(json!({"labels": []})),
            400,
            "\"text\"",
        ),
        (
            Method::POST,
            "/task/categorization".into(),
            Some(json!([1, 2])),
            400,
            "JSON object",
        ),
        (
            Method::POST,
            "/task/categorization".into(),
            Some(
                json!({"attachment": "a", "attachment_type": "t", "categories": ["x"], "metadata": []}),
            ),
            400,
            "metadata",
        ),
        (
            Method::POST,
            "/task/categorization".into(),
            Some(
                json!({"attachment": "a", "attachment_type": "t", "categories": ["x"], "tags": [1]}),
            ),
            400,
            "tags",
        ),
        (
            Method::POST,
            "/task/categorization".into(),
            Some(
                json!({"attachment": "a", "attachment_type": "t", "categories": ["x"], "callback_url": "ftp://x"}),
            ),
            400,
            "Callback URL",
        ),
        (
            Method::POST,
            "/task/categorization".into(),
            Some(
                json!({"attachment": "a", "attachment_type": "t", "categories": ["x"], "project": "nope"}),
            ),
            400,
            "Project \"nope\" not found",
        ),
        (
            Method::POST,
            "/task/categorization".into(),
            Some(
                json!({"attachment": "a", "attachment_type": "t", "categories": ["x"], "unique_id": "u".repeat(600)}),
            ),
            400,
            "at most",
        ),
        (
            Method::GET,
            "/task/000000000000000000000000".into(),
            None,
            404,
            "Task with that ID not found.",
        ),
        (
            Method::GET,
            format!("/task/{}", "x".repeat(300)),
            None,
            404,
            "Task with that ID not found.",
        ),
        (
            Method::POST,
            format!("/task/{done_id}/cancel"),
            None,
            400,
            "only pending tasks can be canceled",
        ),
        (
            Method::POST,
            format!("/task/{done_id}/audit"),
            Some(json!({})),
            400,
            "accepted",
        ),
        (
            Method::POST,
            format!("/task/{done_id}/unique_id"),
            Some(json!({})),
            400,
            "unique_id",
        ),
        (
            Method::POST,
            format!("/task/{done_id}/setMetadata"),
            Some(json!(["x"])),
            400,
            "JSON object",
        ),
        (
            Method::POST,
            format!("/task/{done_id}/tags"),
            Some(json!({"a": 1})),
            400,
            "list",
        ),
        (Method::GET, "/tasks?limit=0".into(), None, 400, "limit"),
        (Method::GET, "/tasks?limit=101".into(), None, 400, "limit"),
        (Method::GET, "/tasks?limit=ten".into(), None, 400, "limit"),
        (
            Method::GET,
            "/tasks?status=done".into(),
            None,
            400,
            "status",
        ),
        (
            Method::GET,
            "/tasks?start_time=yesterday".into(),
            None,
            400,
            "start_time",
        ),
        (
            Method::GET,
            "/tasks?next_token=%%%".into(),
            None,
            400,
            "next_token",
        ),
        (
            Method::GET,
            "/tasks?customer_review_status=meh".into(),
            None,
            400,
            "customer_review_status",
        ),
        (
            Method::POST,
            "/projects".into(),
            Some(json!({"name": "q"})),
            400,
            "type",
        ),
        (
            Method::POST,
            "/projects".into(),
            Some(json!({"name": "q", "type": "bogus"})),
            400,
            "not a valid task type",
        ),
        (
            Method::POST,
            "/projects".into(),
            Some(json!({"name": "p", "type": "categorization"})),
            409,
            "already exists",
        ),
        (
            Method::POST,
            "/projects".into(),
            Some(json!({"name": "", "type": "categorization"})),
            400,
            "name",
        ),
        (Method::GET, "/projects/nope".into(), None, 404, "not found"),
        (
            Method::POST,
            "/projects/nope/setParams".into(),
            Some(json!({})),
            404,
            "not found",
        ),
        (
            Method::GET,
            "/projects/p/taskTemplates".into(),
            None,
            400,
            "chat",
        ),
        (
            Method::POST,
            "/batches".into(),
            Some(json!({"project": "nope", "name": "x"})),
            404,
            "Project \"nope\" not found",
        ),
        (
            Method::POST,
            "/batches".into(),
            Some(json!({"project": "p", "name": "b"})),
            409,
            "already exists",
        ),
        (Method::GET, "/batches/nope".into(), None, 404, "not found"),
        (
            Method::GET,
            "/batches/nope/status".into(),
            None,
            404,
            "not found",
        ),
        (
            Method::POST,
            "/batches/nope/finalize".into(),
            None,
            404,
            "not found",
        ),
        (
            Method::GET,
            "/batches?offset=-1".into(),
            None,
            400,
            "offset",
        ),
        (
            Method::GET,
            "/batches?status=nope".into(),
            None,
            400,
            "status",
        ),
        (
            Method::POST,
            "/files/import".into(),
            Some(json!({})),
            400,
            "file_url",
        ),
        (
            Method::POST,
            "/files/import".into(),
            Some(json!({"file_url": "ftp://x/y"})),
            400,
            "http",
        ),
        (
            Method::POST,
            "/files/import".into(),
            Some(json!({"file_url": format!("http://127.0.0.1:{}/missing", free_port())})),
            400,
            "Could not fetch",
        ),
        (
            Method::POST,
            "/teams/invite".into(),
            Some(json!({"emails": ["a@x.test"], "team_role": "admin"})),
            400,
            "Admin",
        ),
        (
            Method::POST,
            "/teams/invite".into(),
            Some(json!({"emails": ["bad"], "team_role": "member"})),
            400,
            "not a valid email",
        ),
        (
            Method::POST,
            "/teams/set_role".into(),
            Some(json!({"emails": ["nobody@x.test"], "team_role": "manager"})),
            400,
            "not a member",
        ),
        (
            Method::POST,
            "/teams/set_role".into(),
            Some(json!({"emails": ["err@acme.test"], "team_role": "manager"})),
            400,
            "Admin",
        ),
        (Method::GET, "/nope".into(), None, 404, "No such endpoint"),
    ];
    for (method, path, body, status, message) in cases {
        // Team management needs a live key (a test key is refused first: see test_keys_never_manage_the_team).
        let api = if path.starts_with("/teams/") {
            &live
        } else {
            &api
        };
        let (got, json) = api.send(method.clone(), &path, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {json}");
        assert_eq!(json["status_code"], status, "{method} {path}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{method} {path}: {error:?} lacks {message:?}"
        );
    }
    // Bodies past the limit are refused with 413, not a 500.
    let big = json!({"attachment": "a", "attachment_type": "t", "categories": ["x"], "blob": "z".repeat(1_100_000)});
    assert_eq!(
        api.post("/task/categorization", big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // The OpenAPI document describes the routes.
    let doc: Value = reqwest::get(format!("{}/v1/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/task/{task}",
        "/v1/tasks",
        "/v1/batches/{name}/finalize",
        "/v1/files/upload",
        "/v1/teams/set_role",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    app.stop().await;
}
backend_test!(error_contract);

/// A test key invites nobody and changes no role (it used to invite a Manager, who then
/// revealed the live keys); a live key does, with no more than a Manager's authority.
async fn test_keys_never_manage_the_team(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("owner@keys.test", "Keys").await;
    let test = Api::new(&app, &create_key(&mut admin, "test", "ci").await);
    let live = Api::new(&app, &create_key(&mut admin, "live", "prod").await);
    let invite = json!({"emails": ["mallory@evil.test"], "team_role": "manager"});
    let (status, body) = test.post("/teams/invite", invite.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["status_code"], 403);
    assert!(
        body["error"].as_str().unwrap().contains("live API key"),
        "{body}"
    );
    let (status, _) = test
        .post(
            "/teams/set_role",
            json!({"emails": ["owner@keys.test"], "team_role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was invited, and no mail went out.
    let (status, mates) = test.get("/teams").await;
    assert_eq!(status, StatusCode::OK, "a test key still sees the team");
    assert!(!mates.to_string().contains("mallory"), "{mates}");
    assert!(app
        .store
        .cross_tenant()
        .list_mail(50, 0)
        .await
        .unwrap()
        .iter()
        .all(|m| m.to != "mallory@evil.test"));
    // Test keys keep working with tasks.
    let (status, _) = test.post("/task/categorization", json!({"attachment": "https://x", "attachment_type": "website", "categories": ["a", "b"]})).await;
    assert_eq!(status, StatusCode::OK);
    // A live key manages the team.
    let (status, mates) = live.post("/teams/invite", invite).await;
    assert_eq!(status, StatusCode::OK, "{mates}");
    assert!(mates.to_string().contains("mallory@evil.test"));
    app.stop().await;
}
backend_test!(test_keys_never_manage_the_team);

async fn task_life_cycle_and_listing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("life@acme.test", "Life").await;
    let test = Api::new(&app, &create_key(&mut admin, "test", "").await);
    let live = Api::new(&app, &create_key(&mut admin, "live", "").await);

    // Project defaults, batches and tags.
    let (s, project) = test.post("/projects", json!({"type": "imageannotation", "name": "cars", "params": {"instruction": "Box every car.", "geometries": {"box": {"objects_to_annotate": ["car"]}}}})).await;
    assert_eq!(s, StatusCode::OK, "{project}");
    assert_eq!(project["param_history"][0]["version"], 0);
    test.post(
        "/batches",
        json!({"project": "cars", "name": "cars-1", "callback": "", "metadata": {}}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..250 {
        let batch = if i % 2 == 0 {
            json!("cars-1")
        } else {
            json!(null)
        };
        let (s, t) = test
            .post("/task/imageannotation", json!({"attachment": format!("https://x/{i}.png"), "project": "cars", "batch": batch, "instruction": "Be quick.", "tags": if i % 5 == 0 { json!(["five"]) } else { json!(null) }}))
            .await;
        assert_eq!(s, StatusCode::OK, "{t}");
        ids.push(t["task_id"].as_str().unwrap().to_owned());
    }
    let (_, first) = test.get(&format!("/task/{}", ids[0])).await;
    assert_eq!(
        first["instruction"], "Be quick.\n\nBox every car.",
        "project instruction follows"
    );
    assert_eq!(
        first["params"]["geometries"]["box"]["objects_to_annotate"][0], "car",
        "project params are defaults"
    );
    assert_eq!(first["project"], "cars");
    assert_eq!(first["batch"], "cars-1");

    // Pages of 100, newest first, no gaps, total independent of the page.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/tasks?limit=100&next_token={t}"),
            None => "/tasks?limit=100".into(),
        };
        let (s, page) = test.get(&path).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(page["total"], 250);
        assert_eq!(page["offset"], 0);
        for doc in page["docs"].as_array().unwrap() {
            seen.push(doc["task_id"].as_str().unwrap().to_owned());
        }
        if page["has_more"] == false {
            assert!(page.get("next_token").is_none_or(Value::is_null));
            break;
        }
        token = Some(page["next_token"].as_str().unwrap().to_owned());
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every task once, newest first");
    assert_eq!(
        test.get("/tasks?batch=cars-1&limit=1").await.1["total"],
        125
    );
    assert_eq!(
        test.get("/tasks?tags=five&tags=other&limit=1").await.1["total"],
        50
    );
    assert_eq!(test.get("/tasks?project=nope").await.1["total"], 0);
    assert_eq!(test.get("/tasks?status=pending").await.1["total"], 0);
    assert_eq!(
        test.get("/tasks?start_time=2000-01-01&end_time=2999-01-01T00:00:00Z&limit=1")
            .await
            .1["total"],
        250
    );
    assert_eq!(test.get("/tasks?end_time=2000-01-01").await.1["total"], 0);
    let (_, limited) = test.get("/tasks?limit=1&limited_response=True").await;
    assert!(
        limited["docs"][0].get("params").is_none() && limited["docs"][0].get("task_id").is_some()
    );
    let (_, status) = test.get("/batches/cars-1/status").await;
    assert_eq!(
        status,
        json!({"status": "in_progress", "pending": 0, "completed": 125, "error": 0, "canceled": 0})
    );

    // unique_id, metadata, tags, audit on a test task.
    let id = &ids[0];
    let (s, t) = test
        .post(
            &format!("/task/{id}/unique_id"),
            json!({"unique_id": "abc"}),
        )
        .await;
    assert_eq!((s, t["unique_id"].clone()), (StatusCode::OK, json!("abc")));
    let (s, e) = test
        .post(
            &format!("/task/{}/unique_id", ids[1]),
            json!({"unique_id": "abc"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(e["error"].as_str().unwrap().contains(id.as_str()));
    assert_eq!(
        test.get("/tasks?unique_id=abc").await.1["docs"][0]["task_id"],
        json!(id)
    );
    let (_, t) = test
        .send(Method::DELETE, &format!("/task/{id}/unique_id"), None)
        .await;
    assert!(t.get("unique_id").is_none());
    let (_, t) = test
        .post(&format!("/task/{id}/setMetadata"), json!({"k": "v"}))
        .await;
    assert_eq!(t["metadata"], json!({"k": "v"}));
    let (_, t) = test
        .post(&format!("/task/{id}/tags"), json!(["x", "y", "x"]))
        .await;
    assert_eq!(t["tags"], json!(["x", "y"]));
    let (_, t) = test
        .send(
            Method::PUT,
            &format!("/task/{id}/tags"),
            Some(json!(["z", "x"])),
        )
        .await;
    assert_eq!(t["tags"], json!(["x", "y", "z"]));
    let (_, t) = test
        .send(
            Method::DELETE,
            &format!("/task/{id}/tags"),
            Some(json!(["y", "nope"])),
        )
        .await;
    assert_eq!(t["tags"], json!(["x", "z"]));
    let (s, t) = test
        .post(
            &format!("/task/{id}/audit"),
            json!({"accepted": false, "comments": "boxes too loose"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["customer_review_status"], "rejected");
    assert_eq!(t["audits"][0]["comments"], "boxes too loose");
    assert_eq!(
        test.get("/tasks?customer_review_status=accepted,rejected")
            .await
            .1["total"],
        1
    );

    // Without its own callback_url a task takes the team's default; its own wins.
    admin
        .submit(
            "/team/details",
            &[
                ("name", "Life"),
                ("default_callback_url", "https://hooks.example.com/life"),
            ],
        )
        .await;
    let body = json!({"attachment": "a", "attachment_type": "text", "categories": ["x"]});
    let (_, t) = test.post("/task/categorization", body.clone()).await;
    assert_eq!(t["callback_url"], "https://hooks.example.com/life");
    let mut own = body.clone();
    own["callback_url"] = json!("https://mine.example.com/cb");
    let (_, t) = test.post("/task/categorization", own).await;
    assert_eq!(t["callback_url"], "https://mine.example.com/cb");

    // Cancel a live pending task, freeing its unique_id; a second cancel is refused.
    let (_, p) = live.post("/task/categorization", json!({"attachment": "a", "attachment_type": "text", "categories": ["x"], "unique_id": "once"})).await;
    let pid = p["task_id"].as_str().unwrap();
    let cancel = reqwest::Client::new()
        .post(format!(
            "{}/v1/task/{pid}/cancel?clear_unique_id=true",
            app.base
        ))
        .basic_auth(&create_key(&mut admin, "live", "").await, Some(""))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    let canceled: Value = cancel.json().await.unwrap();
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled.get("unique_id").is_none());
    assert_eq!(
        live.post(&format!("/task/{pid}/cancel"), json!(null))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(live.post("/task/categorization", json!({"attachment": "a", "attachment_type": "text", "categories": ["x"], "unique_id": "once"})).await.0, StatusCode::OK);
    app.stop().await;
}
backend_test!(task_life_cycle_and_listing);

/// A flood of random keys fills only the miss cache: the valid key stays cached (it used to
/// share one map with the misses, which was cleared as a whole at 50,000 entries).
async fn random_key_floods_never_evict_valid_keys(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("flood@keys.test", "Flood").await;
    let key = create_key(&mut admin, "test", "").await;
    use tessera_server::keys::cache::{KeyCache, KeyLookup};
    let cache = KeyCache::default();
    let digest = tessera_server::crypto::token_digest(&key);
    assert!(matches!(
        cache.lookup(&app.store, &digest).await.unwrap(),
        KeyLookup::Valid(_)
    ));
    for n in 0..10_050 {
        let random = tessera_server::crypto::token_digest(&format!("test_random{n}"));
        assert_eq!(
            cache.lookup(&app.store, &random).await.unwrap(),
            KeyLookup::Unknown
        );
    }
    let (valid, misses) = cache.sizes();
    assert_eq!(valid, 1, "the valid key was evicted");
    assert!(misses <= 10_000, "{misses}");
    app.stop().await;
}
backend_test!(random_key_floods_never_evict_valid_keys);

/// `/v1/teams/invite` for an address already pending with another role changes the role
/// (audited), also when the invitation was emailed moments ago and is not emailed again.
async fn api_reinvite_with_another_role_changes_the_role(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("owner@reinvite.test", "Reinvite").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "team").await);
    let invite = |role: &str| json!({"emails": ["gus@reinvite.test"], "team_role": role});
    let (status, mates) = live.post("/teams/invite", invite("member")).await;
    assert_eq!(status, StatusCode::OK, "{mates}");
    let role_of = |mates: &Value| {
        mates
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == "gus@reinvite.test")
            .map(|m| m["role"].as_str().unwrap().to_owned())
    };
    assert_eq!(role_of(&mates).as_deref(), Some("member"));
    let (status, mates) = live.post("/teams/invite", invite("manager")).await;
    assert_eq!(status, StatusCode::OK, "{mates}");
    assert_eq!(role_of(&mates).as_deref(), Some("manager"), "{mates}");
    let to_gus = app
        .store
        .cross_tenant()
        .list_mail(100, 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to == "gus@reinvite.test")
        .count();
    assert_eq!(to_gus, 1, "within the resend interval: no second email");
    let audit = admin.visit("/team/audit").await.without_wbr();
    assert!(
        audit.body.contains("invitation.role_changed"),
        "{}",
        audit.body
    );
    assert!(audit.body.contains("Member → Manager"), "{}", audit.body);
    app.stop().await;
}
backend_test!(api_reinvite_with_another_role_changes_the_role);

/// The Add key form is idempotent: sent twice with its one-time nonce (a double click, a
/// resubmission, two at once), it makes one key and the second answer shows that key.
async fn add_key_form_sent_twice_makes_one_key(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("twice@keys.test", "Twice").await;
    let team_id = app.store.cross_tenant().list_teams().await.unwrap()[0]
        .team
        .id
        .clone();
    let page = admin.visit("/keys").await;
    let section = &page.body[page.body.find("id=\"mode-test\"").unwrap()..];
    let nonce = extract_between(section, "name=\"form_nonce\" value=\"", "\"")
        .expect("the Add key form carries a nonce");
    let form = [
        ("mode", "test"),
        ("label", "double"),
        ("form_nonce", nonce.as_str()),
    ];
    let first = admin.submit("/keys", &form).await;
    let shown_first = extract_between(&first.body, "id=\"secret-value\">", "</code>").unwrap();
    let second = admin.submit("/keys", &form).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let shown_second = extract_between(&second.body, "id=\"secret-value\">", "</code>")
        .expect("the second answer shows the key");
    assert_eq!(shown_first, shown_second, "the same key, not a new one");
    assert!(
        second.body.contains("the form was sent twice"),
        "{}",
        second.body
    );
    assert_eq!(
        app.store
            .list_api_keys(&team_scope(&team_id))
            .await
            .unwrap()
            .len(),
        1
    );

    // Two at once with a fresh nonce: still one key.
    let page = admin.visit("/keys").await;
    let section = &page.body[page.body.find("id=\"mode-live\"").unwrap()..];
    let nonce = extract_between(section, "name=\"form_nonce\" value=\"", "\"").unwrap();
    let token = admin.ensure_csrf().await;
    let fields = [
        ("mode", "live"),
        ("label", "parallel"),
        ("form_nonce", nonce.as_str()),
        ("csrf_token", token.as_str()),
    ];
    let (mut one, mut two) = (admin.same_session(), admin.same_session());
    let (a, b) = tokio::join!(
        one.post_raw("/keys", &fields),
        two.post_raw("/keys", &fields)
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(b.status, StatusCode::SEE_OTHER, "{}", b.body);
    let keys = app
        .store
        .list_api_keys(&team_scope(&team_id))
        .await
        .unwrap();
    assert_eq!(keys.iter().filter(|k| k.label == "parallel").count(), 1);

    // Sent again after the key was deleted: says so, makes none.
    let id = key_id(&admin.visit("/keys").await.body, "test");
    admin.submit(&format!("/keys/{id}/delete"), &[]).await;
    let again = admin.submit("/keys", &form).await;
    assert!(
        again.body.contains("has been deleted since"),
        "{}",
        again.body
    );
    assert!(again.body.contains("flash-warning"), "{}", again.body);
    assert_eq!(
        app.store
            .list_api_keys(&team_scope(&team_id))
            .await
            .unwrap()
            .len(),
        1
    );
    // A malformed nonce is refused with the form again.
    let bad = admin
        .post_form(
            "/keys",
            &[("mode", "test"), ("label", "x"), ("form_nonce", "<script>")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("reload the page"), "{}", bad.body);
    app.stop().await;
}
backend_test!(add_key_form_sent_twice_makes_one_key);
