//! The labeling tool's pages: choice buttons sent without JavaScript, Submit & next, and a
//! labeler's own history of completed tasks (who sees it, its order, its pages, each task
//! read-only).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{backend_test, callbacks::html_unescape, helpers::*};

async fn create_task(api: &Api, fields: Value) -> String {
    let (status, task) = api.post("/task/categorization", fields).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    task["task_id"].as_str().unwrap().to_owned()
}

/// Next task: the id of the task the labeler is sent to.
async fn label_next(labeler: &mut Browser) -> String {
    labeler.visit("/label").await;
    let p = labeler.post_form("/label/next", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    p.location
        .unwrap()
        .strip_prefix("/label/")
        .expect("sent to a task")
        .to_owned()
}

/// The ids of the tasks a history page lists, in its order.
fn listed(page: &str) -> Vec<String> {
    page.split("<a href=\"/label/history/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The choice buttons of a task page: (value, checked) for each input named `name`.
fn choices(page: &str, name: &str) -> Vec<(String, bool)> {
    page.split("<input ")
        .skip(1)
        .filter_map(|input| {
            let tag = input.split('>').next()?;
            if !tag.contains(&format!("name=\"{name}\"")) {
                return None;
            }
            let value = extract_between(tag, "value=\"", "\"")?;
            Some((value, tag.contains(" checked")))
        })
        .collect()
}

async fn status_of(api: &Api, id: &str) -> Value {
    let (status, task) = api.get(&format!("/task/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    task
}

async fn submit_next_and_history(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("hist@a.test", "History A").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "h").await);
    let t1 = create_task(&live, categorization("First: is it positive?")).await;
    let t2 = create_task(&live, categorization("Second")).await;
    let t3 = create_task(&live, categorization("Third, unreadable")).await;
    let mut lee = join_as(&app, &mut admin, "lee@a.test", "labeler").await;
    let mut kim = join_as(&app, &mut admin, "kim@a.test", "labeler").await;

    // Categories are radio buttons, none picked; the queue page links the history.
    let queue = lee.visit("/label").await;
    assert!(queue.body.contains("href=\"/label/history\""));
    assert_eq!(label_next(&mut lee).await, t1);
    let page = lee.visit(&format!("/label/{t1}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("type=\"radio\" form=\"response-form\" name=\"category\""));
    assert_eq!(
        choices(&page.body, "category"),
        vec![("yes".to_owned(), false), ("no".to_owned(), false)],
        "nothing is picked for the labeler"
    );
    assert!(page.body.contains("Submit &amp; next"));

    // A pick that is not a category is refused and shown picked again, with the editor's text.
    let refused = lee
        .post_form(
            &format!("/label/{t1}"),
            &[("response", "{\"category\": null}"), ("category", "maybe")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(html_unescape(&refused.body).contains("\"maybe\" is not one of the categories"));
    assert_eq!(status_of(&live, &t1).await["status"], "pending");

    // Without JavaScript the radio button is the answer, written into the editor's JSON;
    // Submit & next lands on the next task of the queue, saying the last one went in.
    let done = lee
        .post_form(
            &format!("/label/{t1}"),
            &[
                ("response", "{\"category\": null}"),
                ("category", "yes"),
                ("next", "1"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(&*format!("/label/{t2}")));
    let next = lee.visit(&format!("/label/{t2}")).await;
    assert!(
        next.body
            .contains(&format!("Task {t1} submitted. This is your next task.")),
        "{}",
        next.body
    );
    let first = status_of(&live, &t1).await;
    assert_eq!(first["status"], "completed");
    assert_eq!(first["response"], json!({"category": "yes"}));

    // The JSON editor alone still works, and picks nothing it does not name.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let done = lee
        .post_form(
            &format!("/label/{t2}"),
            &[("response", "{\"category\": \"no\"}"), ("next", "1")],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some(&*format!("/label/{t3}")));
    assert_eq!(
        status_of(&live, &t2).await["response"],
        json!({"category": "no"})
    );

    // A task ended as an error is not a completed one.
    let reported = lee
        .post_form(
            &format!("/label/{t3}/error"),
            &[("reason", "The text does not load.")],
        )
        .await;
    assert_eq!(reported.status, StatusCode::SEE_OTHER);

    // Submit & next with nothing left waiting goes back to the queue, saying so.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t4 = create_task(&live, categorization("Fourth")).await;
    assert_eq!(label_next(&mut lee).await, t4);
    let last = lee
        .post_form(
            &format!("/label/{t4}"),
            &[("response", "{\"category\": \"yes\"}"), ("next", "1")],
        )
        .await;
    assert_eq!(last.location.as_deref(), Some("/label"));
    let queue = lee.visit("/label").await;
    assert!(queue.body.contains(&format!(
        "Task {t4} submitted. Thank you! No more tasks are waiting."
    )));

    // The history: the completed tasks, newest first, each linked; not the error.
    let history = lee.visit("/label/history").await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(
        listed(&history.body),
        vec![t4.clone(), t2.clone(), t1.clone()]
    );
    assert!(history.body.contains("First: is it positive?"));
    assert!(!history.body.contains("history-older"), "one page");

    // Each opens read-only with what was sent; nothing to submit there.
    let view = lee.visit(&format!("/label/history/{t1}")).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(view.body.contains("First: is it positive?"));
    assert!(html_unescape(&view.body).contains("\"category\": \"yes\""));
    assert!(!view.body.contains("response-form"));
    assert_eq!(
        lee.get(&format!("/label/history/{t3}")).await.status,
        StatusCode::NOT_FOUND,
        "the reported task"
    );
    assert_eq!(
        lee.get("/label/history/nope").await.status,
        StatusCode::NOT_FOUND
    );

    // Another labeler of the team has their own (empty) history and cannot open lee's tasks.
    let theirs = kim.visit("/label/history").await;
    assert_eq!(theirs.status, StatusCode::OK);
    assert!(listed(&theirs.body).is_empty());
    assert!(theirs.body.contains("You have not completed a task yet"));
    assert_eq!(
        kim.get(&format!("/label/history/{t1}")).await.status,
        StatusCode::NOT_FOUND
    );

    // People who do not label have no history; a visitor signs in first.
    assert_eq!(
        admin.get("/label/history").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        admin.get(&format!("/label/history/{t1}")).await.status,
        StatusCode::FORBIDDEN
    );
    let anonymous = app.browser().get("/label/history").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    app.stop().await;
}
backend_test!(submit_next_and_history);

async fn history_pages(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("pages@a.test", "Pages A").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "p").await);
    let mut lee = join_as(&app, &mut admin, "lee@pages.test", "labeler").await;
    let (_, _, labeler) = team_of(&app, "lee@pages.test").await;
    let total = 27;
    for i in 0..total {
        create_task(&live, categorization(&format!("Task number {i}"))).await;
        complete_next(&app, &labeler).await;
    }

    let first = lee.visit("/label/history").await;
    let first_ids = listed(&first.body);
    assert_eq!(first_ids.len(), 25, "25 a page");
    assert!(!first.body.contains(">Newest</a>"));
    assert!(
        first.body.contains("Task number 26"),
        "the newest is on the first page"
    );
    let older = extract_between(&first.body, "href=\"/label/history?cursor=", "\"")
        .expect("a link to older tasks");
    let second = lee.visit(&format!("/label/history?cursor={older}")).await;
    assert_eq!(second.status, StatusCode::OK);
    let second_ids = listed(&second.body);
    assert_eq!(second_ids.len(), total - 25);
    assert!(second.body.contains("Task number 0"), "the oldest is last");
    assert!(second.body.contains(">Newest</a>"));
    assert!(!second.body.contains("history-older"), "the last page");
    let mut all: Vec<String> = first_ids.into_iter().chain(second_ids).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "every task once");

    // A cursor the page did not make starts at the newest.
    let odd = lee.visit("/label/history?cursor=garbage").await;
    assert_eq!(odd.status, StatusCode::OK);
    assert_eq!(listed(&odd.body).len(), 25);
    app.stop().await;
}
backend_test!(history_pages);
