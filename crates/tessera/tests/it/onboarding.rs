//! The Get started home and the dashboard's test mode (issue 13): a new team starts in test
//! mode on Get started; test pages live under `/test/…`; the mode belongs to the person, not
//! the browser; an object of the other mode offers a switch instead of "Not found".

use reqwest::StatusCode;

use crate::{backend_test, helpers::*};

/// Signs up through the form, as a new customer does (not `TestApp::sign_up`, which leaves
/// test mode for the many tests that work with live data).
async fn new_customer(app: &TestApp, email: &str) -> Browser {
    let mut b = app.browser();
    let r = b
        .post_form(
            "/signup",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("name", "Nina New"),
                ("company", "Newco"),
                ("team_name", "Newco"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("/"),
        "sign-up lands on Get started"
    );
    // The address verified from the mailed link (another browser): the steps include inviting.
    app.verify_email(email).await;
    b
}

async fn login(app: &TestApp, email: &str) -> Browser {
    let mut b = app.browser();
    let r = b
        .post_form("/login", &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    b
}

async fn get_started_guides_a_new_team_to_a_test_task(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut nina = new_customer(&app, "nina@newco.test").await;
    let home = nina.visit("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Get started"), "{}", home.body);
    assert!(
        home.body.contains(&format!("{}/v1", app.base)),
        "the API base URL is shown"
    );
    assert!(home.body.contains("0 of 5 done"));
    assert!(home.body.contains("Test data"), "the test banner");

    // Step 1: the key, made inline, is in both snippets.
    let made = nina
        .post_form("/get-started/key", &[("form_nonce", "")])
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let key = extract_between(&made.body, "id=\"test-key\">", "</code>").expect("key shown");
    assert!(key.starts_with("test_"), "{key}");
    // Askama escapes quotes in the snippets; the browser shows them as typed.
    let shown = made.body.replace("&#39;", "'").replace("&#34;", "\"");
    assert!(
        shown.contains(&format!("-u '{key}:'")),
        "curl carries the key"
    );
    assert!(
        shown.contains(&format!(
            "ScaleClient(\"{key}\", api_instance_url=\"{}/v1\")",
            app.base
        )),
        "Python carries the key and the base URL"
    );
    assert!(made.body.contains("1 of 5 done"));
    let audit = nina.visit("/team/audit").await.without_wbr();
    assert!(
        audit.body.contains("Test key (Get started)"),
        "the key's creation is audited"
    );

    // Step 2: a bad URL is refused next to the field with the draft kept; a good one saved.
    let bad = nina
        .post_form(
            "/get-started/callback",
            &[("default_callback_url", "ftp://x")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("aria-invalid=\"true\""));
    assert!(bad.body.contains("value=\"ftp://x\""), "the draft is kept");
    let saved = nina
        .submit(
            "/get-started/callback",
            &[("default_callback_url", "https://hooks.newco.test/scale")],
        )
        .await;
    assert!(
        saved.body.contains("Default callback URL saved"),
        "{}",
        saved.body
    );

    // Step 3: the key creates a test task through the API, which the page then shows.
    let api = Api::new(&app, &key);
    let (status, task) = api
        .post("/task/categorization", categorization("Positive?"))
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    assert_eq!(
        task["callback_url"], "https://hooks.newco.test/scale",
        "the default applies"
    );
    let home = nina.visit("/").await;
    assert!(
        home.body.contains(&format!("href=\"/test/tasks/{id}\"")),
        "{}",
        home.body
    );
    assert!(
        home.body.contains("Latest callback"),
        "its callback is listed"
    );
    // The page's own button sends one more, in test mode whatever the dashboard shows.
    let sent = nina.submit("/get-started/task", &[]).await;
    assert!(sent.body.contains("Test task sent"), "{}", sent.body);
    let list = nina.visit("/tasks").await;
    assert_eq!(
        list.body.matches("<td>categorization</td>").count(),
        2,
        "{}",
        list.body
    );

    // Someone who does not work with tasks goes where their role is for.
    let mut labeler = join_as(&app, &mut nina, "lena@newco.test", "labeler").await;
    let r = labeler.get("/").await;
    assert_eq!(r.location.as_deref(), Some("/label"));
    assert_eq!(
        labeler.post_form("/get-started/task", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // A Member works with tasks but makes no keys: the page says whom to ask.
    let mut member = join_as(&app, &mut nina, "max@newco.test", "member").await;
    let page = member.visit("/").await;
    assert!(page.body.contains("Ask a Manager"), "{}", page.body);
    assert_eq!(
        member
            .post_form("/get-started/key", &[("form_nonce", "")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}
backend_test!(get_started_guides_a_new_team_to_a_test_task);

async fn the_mode_is_in_the_url_and_follows_the_person(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut laptop = new_customer(&app, "tom@newco.test").await;
    let key = extract_between(
        &laptop
            .post_form("/get-started/key", &[("form_nonce", "")])
            .await
            .body,
        "id=\"test-key\">",
        "</code>",
    )
    .unwrap();
    let (_, task) = Api::new(&app, &key)
        .post("/task/categorization", categorization("?"))
        .await;
    let id = task["task_id"].as_str().unwrap().to_owned();

    // A new team is in test mode: live addresses of mode pages lead to their /test/ twins,
    // query kept.
    let r = laptop.get("/tasks?status=completed").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/test/tasks?status=completed"));
    let list = laptop.visit("/tasks").await;
    assert!(list.body.contains(&id), "the first test task is listed");
    assert!(
        list.body.contains("href=\"/test/callbacks\""),
        "navigation stays in test mode"
    );
    assert_eq!(
        laptop.get(&format!("/test/tasks/{id}")).await.status,
        StatusCode::OK
    );

    // The mode belongs to the person: a second browser opens in test mode too.
    let mut phone = login(&app, "tom@newco.test").await;
    assert_eq!(
        phone.get("/callbacks").await.location.as_deref(),
        Some("/test/callbacks")
    );

    // Switching to live on one is live on the other; the test task's live address then
    // offers to switch rather than saying "Not found".
    let switched = laptop
        .post_form(
            "/mode",
            &[("mode", "live"), ("back", &format!("/test/tasks/{id}"))],
        )
        .await;
    assert_eq!(
        switched.location.as_deref(),
        Some("/tasks"),
        "a detail page goes to the list"
    );
    assert_eq!(phone.get("/tasks").await.status, StatusCode::OK);
    let offer = phone.get(&format!("/tasks/{id}")).await;
    assert_eq!(offer.status, StatusCode::NOT_FOUND);
    assert!(
        offer.body.contains("This task is in test mode"),
        "{}",
        offer.body
    );
    let back = phone
        .post_form(
            "/mode",
            &[
                ("mode", "test"),
                ("back", &format!("/tasks/{id}")),
                ("stay", "1"),
            ],
        )
        .await;
    assert_eq!(back.location, Some(format!("/test/tasks/{id}")));
    // Opening a /test/ page is opening test mode, for the person's other browsers too.
    laptop
        .post_form("/mode", &[("mode", "live"), ("back", "/tasks")])
        .await;
    assert_eq!(laptop.get("/test/tasks").await.status, StatusCode::OK);
    assert_eq!(
        phone.get("/tasks").await.location.as_deref(),
        Some("/test/tasks")
    );
    // An object in neither mode is simply not found; a bad mode is a 400.
    assert_eq!(
        laptop
            .get("/test/tasks/000000000000000000000000")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let bad = laptop
        .post_form("/mode", &[("mode", "sandbox"), ("back", "/")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A signed-out visitor of a /test/ page is sent to sign in and back to that page.
    let mut stranger = app.browser();
    let r = stranger.get("/test/tasks").await;
    assert_eq!(r.location.as_deref(), Some("/login?next=%2Ftest%2Ftasks"));
    app.stop().await;
}
backend_test!(the_mode_is_in_the_url_and_follows_the_person);
