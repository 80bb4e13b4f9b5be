//! The customer's task view and task search (issue 13): the response drawn over the
//! attachment, the creating key named, project and batch linked; the list searched by id,
//! unique_id, metadata and creation dates, refused fields shown next to themselves.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{backend_test, helpers::*};

/// A signed-up Admin in test mode (where tasks come back with a response at once) and a test
/// key labelled "Ingest".
async fn test_mode_team(app: &TestApp, email: &str) -> (Browser, Api, String) {
    let mut admin = app.sign_up(email, "View Team").await;
    let key = create_key(&mut admin, "test", "Ingest").await;
    let switched = admin
        .post_form("/mode", &[("mode", "test"), ("back", "/tasks")])
        .await;
    assert_eq!(switched.location.as_deref(), Some("/test/tasks"));
    (admin, Api::new(app, &key), key)
}

fn image_task(extra: Value) -> Value {
    let mut task = json!({
        "attachment": "https://images.example.test/street.png",
        "attachment_type": "image",
        "geometries": {"box": {"objects_to_annotate": ["car", "bus"]}, "point": {"objects_to_annotate": ["eye"]}},
    });
    if let (Value::Object(t), Value::Object(e)) = (&mut task, extra) {
        t.extend(e);
    }
    task
}

async fn create(api: &Api, body: Value) -> Value {
    let (status, task) = api.post("/task/imageannotation", body).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    task
}

/// The number the list's heading shows.
fn total(page: &Page) -> String {
    extract_between(&page.body, "Tasks <span class=\"muted\">· ", "</span>").unwrap_or_else(|| {
        panic!(
            "the list heading: {} {:?} {}",
            page.status, page.location, page.body
        )
    })
}

async fn the_task_page_draws_the_response_and_names_key_project_and_batch(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (mut admin, api, key) = test_mode_team(&app, "view@acme.test").await;
    assert_eq!(
        api.post(
            "/projects",
            json!({"type": "imageannotation", "name": "street & co"})
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, batch) = api
        .post("/batches", json!({"project": "street & co", "name": "b1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let task = create(
        &api,
        image_task(json!({"project": "street & co", "batch": "b1", "unique_id": "frame-1"})),
    )
    .await;
    let id = task["task_id"].as_str().unwrap();

    let anonymous = app.browser().get(&format!("/test/tasks/{id}")).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER, "signed in only");
    let page = admin.get(&format!("/test/tasks/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    // The key that created it, by label and prefix (never the key itself).
    let created_by = extract_between(body, "id=\"task-created-by\">", "</dd>").unwrap();
    assert_eq!(created_by, format!("API key Ingest ({}…)", &key[..12]));
    assert!(!body.contains(&key));
    // Project and batch link to their pages, in test mode.
    assert!(
        body.contains("href=\"/test/projects/view?name=street+%26+co\" id=\"task-project\""),
        "{body}"
    );
    assert!(
        body.contains(
            "href=\"/test/tasks?project=street+%26+co&#38;batch=b1\" id=\"task-batch\">b1</a>"
        ),
        "{}",
        extract_between(body, "<dt>Batch</dt>", "</dd>").unwrap_or_default()
    );
    // The image with the synthetic response over it: each box as an outline in the image's
    // pixels, the point as a circle, each with its label.
    assert!(body.contains(
        "<img src=\"https://images.example.test/street.png\" alt=\"The task&#x27;s attachment, with the response&#x27;s annotations drawn over it\" id=\"attachment-image\">"
    ) || body.contains("src=\"https://images.example.test/street.png\""));
    assert!(body.contains("<g class=\"annotation annotation-box\" data-label=\"car\">"));
    assert!(
        body.contains("d=\"M10 10 L60 10 L60 50 L10 50 Z\""),
        "{body}"
    );
    assert!(body.contains("d=\"M40 40 L90 40 L90 80 L40 80 Z\""));
    assert!(body.contains("<circle class=\"shape\" cx=\"70\" cy=\"70\""));
    assert!(body.contains(">car</text>") && body.contains(">eye</text>"));
    assert!(body.contains("<script src=\"/static/task-view.js\" defer></script>"));
    let list = extract_between(body, "id=\"annotation-list\">", "</ol>").unwrap();
    assert_eq!(list.matches("<li>").count(), 3);
    // The attachment's host may serve the image; nothing else is loosened.
    let headers = admin.get_bytes(&format!("/test/tasks/{id}")).await.1;
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("img-src 'self' data: https: http:")
            && policy.contains("script-src 'self'")
    );
    let (status, headers, script) = admin.get_bytes("/static/task-view.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(String::from_utf8(script).unwrap().contains("viewBox"));

    // A task the dashboard made (no key), and one whose key was deleted since.
    let sent = admin.post_form("/get-started/task", &[]).await;
    assert!(
        sent.status.is_redirection() || sent.status == StatusCode::OK,
        "{}",
        sent.body
    );
    let list = admin.get("/test/tasks?type=categorization").await;
    assert_eq!(total(&list), "1", "the Get started task");
    let made_here = extract_between(&list.body, "<a href=\"/test/tasks/", "\"").unwrap();
    let page = admin.get(&format!("/test/tasks/{made_here}")).await;
    let created_by = extract_between(&page.body, "id=\"task-created-by\">", "</dd>").unwrap();
    assert!(created_by.contains("the dashboard"), "{created_by}");
    let keys = admin.visit("/keys").await;
    let key_id = key_id(&keys.body, "test");
    let deleted = admin
        .post_form(&format!("/keys/{key_id}/delete"), &[])
        .await;
    assert!(deleted.status.is_redirection(), "{}", deleted.body);
    let page = admin.get(&format!("/test/tasks/{id}")).await;
    let created_by = extract_between(&page.body, "id=\"task-created-by\">", "</dd>").unwrap();
    assert_eq!(
        created_by,
        format!("API key Ingest ({}…, deleted)", &key[..12])
    );

    // A task without a response or image shows neither; a non-image attachment no image.
    let key = create_key(&mut admin, "test", "Second").await;
    let second = Api::new(&app, &key);
    let (status, text_task) = second
        .post(
            "/task/categorization",
            json!({"attachment": "https://example.test/a.txt", "attachment_type": "text", "categories": ["a", "b"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text_task}");
    let page = admin
        .get(&format!(
            "/test/tasks/{}",
            text_task["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"attachment-image\""));
    assert!(!page.body.contains("annotation-overlay"));
    app.stop().await;
}
backend_test!(the_task_page_draws_the_response_and_names_key_project_and_batch);

async fn the_task_list_searches_by_id_unique_id_metadata_and_dates(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (mut admin, api, _) = test_mode_team(&app, "search@acme.test").await;
    let first = create(
        &api,
        image_task(json!({"unique_id": "frame-1", "metadata": {"customer": "acme", "n": 5}})),
    )
    .await;
    let second = create(
        &api,
        image_task(json!({"unique_id": "frame-2", "metadata": {"customer": "globex"}})),
    )
    .await;
    let third = create(
        &api,
        image_task(json!({"metadata": {"customer": "acme", "site": "north"}})),
    )
    .await;
    let id = |t: &Value| t["task_id"].as_str().unwrap().to_owned();
    let today = first["created_at"].as_str().unwrap()[..10].to_owned();

    let all = admin.get("/test/tasks").await;
    assert_eq!(total(&all), "3");
    // By task id, by unique_id (exact), in this mode only.
    let page = admin.get(&format!("/test/tasks?q={}", id(&second))).await;
    assert_eq!((page.status, total(&page)), (StatusCode::OK, "1".into()));
    assert!(page
        .body
        .contains(&format!("/test/tasks/{}\"", id(&second))));
    assert!(
        page.body.contains(&format!("value=\"{}\"", id(&second))),
        "kept"
    );
    let page = admin.get("/test/tasks?q=+frame-1+").await;
    assert_eq!(total(&page), "1");
    assert!(page.body.contains(&id(&first)));
    assert_eq!(total(&admin.get("/test/tasks?q=frame").await), "0");
    // Metadata: one top-level text field, exact value; numbers are not text.
    let page = admin.get("/test/tasks?metadata=customer%3Dacme").await;
    assert_eq!(total(&page), "2");
    assert!(page.body.contains(&id(&first)) && page.body.contains(&id(&third)));
    assert!(!page.body.contains(&id(&second)));
    assert!(page.body.contains("value=\"customer=acme\""));
    assert_eq!(
        total(&admin.get("/test/tasks?metadata=customer%3DAcme").await),
        "0"
    );
    assert_eq!(total(&admin.get("/test/tasks?metadata=n%3D5").await), "0");
    assert_eq!(
        total(&admin.get("/test/tasks?metadata=missing%3D").await),
        "0"
    );
    let page = admin
        .get("/test/tasks?metadata=customer%3Dacme&q=frame-1")
        .await;
    assert_eq!(total(&page), "1");
    // Dates: whole UTC days, both ends included.
    let page = admin
        .get(&format!("/test/tasks?from={today}&to={today}"))
        .await;
    assert_eq!((page.status, total(&page)), (StatusCode::OK, "3".into()));
    assert!(page
        .body
        .contains(&format!("name=\"from\" value=\"{today}\"")));
    assert_eq!(total(&admin.get("/test/tasks?from=2999-01-01").await), "0");
    assert_eq!(total(&admin.get("/test/tasks?to=2000-01-01").await), "0");
    assert_eq!(
        total(
            &admin
                .get("/test/tasks?from=2000-01-01&metadata=site%3Dnorth")
                .await
        ),
        "1"
    );

    // Bad input: the list with each message next to its field, the input kept, 400.
    let page = admin
        .get("/test/tasks?metadata=acme&from=2026-02-30&status=completed")
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("2 fields need your attention."));
    let metadata_error = extract_between(&page.body, "id=\"metadata-error\">", "</p>").unwrap();
    assert!(metadata_error.contains("key=value"), "{metadata_error}");
    assert!(page.body.contains("value=\"acme\""));
    assert!(page
        .body
        .contains("aria-describedby=\"metadata-hint metadata-error\" aria-invalid=\"true\""));
    assert!(page
        .body
        .contains("id=\"from-error\">The start date is a date like"));
    assert!(page
        .body
        .contains("value=\"2026-02-30\" aria-invalid=\"true\" aria-describedby=\"from-error\""));
    assert!(page.body.contains("No tasks match."));
    let page = admin.get("/test/tasks?from=2026-02-02&to=2026-02-01").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page
        .body
        .contains("id=\"to-error\">The end date comes before the start date"));
    let long = "x".repeat(5000);
    for query in [
        format!("q={long}"),
        format!("metadata=k%3D{long}"),
        format!("metadata={long}%3Dv"),
        "metadata=a%20b%3Dc".to_owned(),
        "metadata=%22%3D1".to_owned(),
        "to=tomorrow".to_owned(),
    ] {
        let page = admin.get(&format!("/test/tasks?{query}")).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            page.body
        );
        assert!(
            !page.body.contains(&long),
            "an overlong field is not echoed whole"
        );
    }

    // Keyset paging keeps the search: 51 matching tasks are two pages.
    for n in 0..49 {
        create(
            &api,
            image_task(json!({"metadata": {"customer": "acme", "n": n}})),
        )
        .await;
    }
    let page = admin
        .get(&format!(
            "/test/tasks?metadata=customer%3Dacme&from={today}"
        ))
        .await;
    assert_eq!(total(&page), "51");
    let next = extract_between(&page.body, "<a href=\"", "\">Older →</a>")
        .map(|h| {
            let start = h.rfind("<a href=\"").map_or(0, |i| i + 9);
            h[start..].replace("&#38;", "&")
        })
        .expect("a next page");
    assert!(next.starts_with("/test/tasks?"), "{next}");
    assert!(
        next.contains("metadata=customer%3Dacme") && next.contains(&format!("from={today}")),
        "{next}"
    );
    let older = admin.get(&next).await;
    assert_eq!(older.status, StatusCode::OK);
    assert_eq!(
        older.body.matches("<tr><td><a href=\"/test/tasks/").count(),
        1
    );
    assert!(
        older.body.contains(&id(&first)),
        "the oldest match is on the last page"
    );
    app.stop().await;
}
backend_test!(the_task_list_searches_by_id_unique_id_metadata_and_dates);
