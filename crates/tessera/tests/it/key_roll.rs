//! API key expiry and roll: an expiry chosen at creation, a 401 saying the key expired (and
//! when) once it has, Roll with a grace period (none: the old key is refused at once; an
//! hour: both work, the page shows the time left), the key cache never keeping an expired or
//! rolled key alive, bad choices shown on their form, and the schema's CHECKs. Short
//! lifetimes are written straight into the database (the CHECKs allow any later moment), so
//! nothing waits more than about two seconds.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::Connection;

use crate::{backend_test, helpers::*};

const DAY_MS: i64 = 86_400_000;

/// The id of the key row whose prefix starts `key` on the keys page.
fn row_id(keys_page: &str, key: &str) -> String {
    let prefix: String = key.chars().take(12).collect();
    let row = &keys_page[keys_page
        .find(&format!("<tr data-key=\"{prefix}\""))
        .unwrap_or_else(|| panic!("no row for {prefix}: {keys_page}"))..];
    extract_between(row, "action=\"/keys/", "/reveal\"").expect("reveal form")
}

/// The row of `key` on the keys page, up to the next row.
fn row_of(keys_page: &str, key: &str) -> String {
    let prefix: String = key.chars().take(12).collect();
    let start = keys_page
        .find(&format!("<tr data-key=\"{prefix}\""))
        .unwrap_or_else(|| panic!("no row for {prefix}"));
    let rest = &keys_page[start..];
    rest[..rest.find("class=\"key-use\"").unwrap_or(rest.len())].to_owned()
}

/// Adds a test key with `expires` on the keys page; returns the key.
async fn add_key(admin: &mut Browser, label: &str, expires: &str) -> String {
    let page = admin
        .submit(
            "/keys",
            &[("mode", "test"), ("label", label), ("expires", expires)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    extract_between(&page.body, "id=\"secret-value\">", "</code>").expect("the new key is shown")
}

/// Rolls `key` with `grace` (its replacement never expires); returns the page shown after it
/// and the new key.
async fn roll(admin: &mut Browser, key: &str, grace: &str) -> (Page, String) {
    let keys = admin.get("/keys").await;
    let id = row_id(&keys.body, key);
    let page = admin
        .submit(
            &format!("/keys/{id}/roll"),
            &[("grace", grace), ("expires", "never")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let new = extract_between(&page.body, "id=\"secret-value\">", "</code>")
        .unwrap_or_else(|| panic!("the new key is shown: {}", page.body));
    (page, new)
}

async fn set_column(db_url: &str, column: &str, key: &str, at: i64) -> Result<(), sqlx::Error> {
    let mut db = sqlx::AnyConnection::connect(db_url).await.unwrap();
    let prefix: String = key.chars().take(12).collect();
    let done = sqlx::query(&format!(
        "UPDATE api_keys SET {column} = $1 WHERE prefix = $2"
    ))
    .bind(at)
    .bind(prefix)
    .execute(&mut db)
    .await
    .map(|_| ());
    db.close().await.ok();
    done
}

/// GET /v1/projects with `key`: its status and error message (if any).
async fn call(app: &TestApp, key: &str) -> (StatusCode, String) {
    let (status, body) = Api::new(app, key).get("/projects").await;
    if status != StatusCode::OK {
        assert_eq!(body["status_code"], status.as_u16(), "{body}");
    }
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Sleeps until the wall clock passes `at` (ms since the epoch).
async fn sleep_past(at: i64) {
    let wait = at - tessera_store::now_ms() + 50;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

async fn keys_expire_and_roll(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("owner@roll.test", "Roll Co").await;

    // The page: Test before Live, this server's API address, no contradictory wording.
    let page = admin.get("/keys").await;
    assert_eq!(page.status, StatusCode::OK);
    let (test_at, live_at) = (
        page.body.find("id=\"mode-test\"").unwrap(),
        page.body.find("id=\"mode-live\"").unwrap(),
    );
    assert!(test_at < live_at, "test keys come first");
    assert!(
        page.body
            .contains(&format!("id=\"api-base-url\">{}/v1</code>", app.base)),
        "{}",
        page.body
    );

    // An expiry at creation: 30 days, shown with the time left; the key works.
    let monthly = add_key(&mut admin, "monthly", "30").await;
    let page = admin.get("/keys").await;
    assert!(!page.body.contains("copy it now"), "{}", page.body);
    let row = row_of(&page.body, &monthly);
    assert!(row.contains("(in 30 days)"), "{row}");
    let (_, scope, _) = team_of(&app, "owner@roll.test").await;
    let stored = app
        .store
        .get_api_key(&scope, &row_id(&page.body, &monthly))
        .await
        .unwrap();
    assert_eq!(stored.expires_at, Some(stored.created_at + 30 * DAY_MS));
    assert_eq!(call(&app, &monthly).await.0, StatusCode::OK);
    // The snippet beside each key and with a revealed key names the API address.
    assert!(page.body.contains(&format!(
        "curl -u \"$TESSERA_API_KEY:\" {}/v1/projects",
        app.base
    )));
    let never = add_key(&mut admin, "forever", "never").await;
    let shown = admin.get("/keys").await;
    assert!(row_of(&shown.body, &never).contains("never expires"));

    // Expired: refused with a message saying so and when, unlike an unknown key. The key is
    // in the cache (used once) when its expiry passes, and the cache still refuses it.
    let soon = add_key(&mut admin, "short-lived", "90").await;
    let expires = tessera_store::now_ms() + 2_000;
    set_column(&app.db.url, "expires_at", &soon, expires)
        .await
        .unwrap();
    assert_eq!(call(&app, &soon).await.0, StatusCode::OK);
    sleep_past(expires).await;
    let (status, message) = call(&app, &soon).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.starts_with("This API key expired at "), "{message}");
    assert!(message.contains(" UTC"), "{message}");
    let (status, unknown) = call(&app, "test_00000000000000000000").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown, "Invalid API key.");
    let page = admin.get("/keys").await;
    assert!(
        row_of(&page.body, &soon).contains("expired "),
        "{}",
        page.body
    );

    // Roll with an hour's grace: both keys work, the page shows both and the time left.
    let (after, hourly_new) = roll(&mut admin, &monthly, "1h").await;
    assert!(after.body.contains("keeps working until"), "{}", after.body);
    assert_eq!(call(&app, &monthly).await.0, StatusCode::OK, "old key");
    assert_eq!(call(&app, &hourly_new).await.0, StatusCode::OK, "new key");
    let page = admin.get("/keys").await;
    let old_row = row_of(&page.body, &monthly);
    assert!(
        old_row.contains("Rolled: keeps working for 59 minutes more"),
        "{old_row}"
    );
    assert!(old_row.contains(&format!("replaced by {}…", &hourly_new[..12])));
    assert!(
        !old_row.contains("/roll\""),
        "a rolled key cannot be rolled again"
    );
    let new_row = row_of(&page.body, &hourly_new);
    assert!(new_row.contains(&format!("Replaces {}…", &monthly[..12])));
    assert!(new_row.contains("never expires"), "{new_row}");
    let audit = admin.get("/team/audit").await.without_wbr();
    assert!(audit.body.contains("api_key.rolled"), "{}", audit.body);
    assert!(
        audit.body.contains("keeps working for 1 hour"),
        "{}",
        audit.body
    );

    // Rolling it again changes nothing and says so.
    let again = admin
        .submit(
            &format!("/keys/{}/roll", row_id(&page.body, &monthly)),
            &[("grace", "now"), ("expires", "never")],
        )
        .await;
    assert!(again.body.contains("was already rolled"), "{}", again.body);
    assert_eq!(call(&app, &monthly).await.0, StatusCode::OK);

    // The cache does not keep a rolled key past its grace: a grace ending in 2 s, cached,
    // then refused with the replacement named, while the new key goes on.
    let (_, cached_new) = roll(&mut admin, &never, "7d").await;
    let until = tessera_store::now_ms() + 2_000;
    set_column(&app.db.url, "rolled_until", &never, until)
        .await
        .unwrap();
    assert_eq!(call(&app, &never).await.0, StatusCode::OK);
    sleep_past(until).await;
    let (status, message) = call(&app, &never).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        message.starts_with("This API key was rolled and stopped working at "),
        "{message}"
    );
    assert!(
        message.contains(&format!("replaced by the key {}…", &cached_new[..12])),
        "{message}"
    );
    assert_eq!(call(&app, &cached_new).await.0, StatusCode::OK);

    // Roll with no grace: the old key (cached by a call just before) is refused at once.
    let leaked = add_key(&mut admin, "leaked", "never").await;
    assert_eq!(call(&app, &leaked).await.0, StatusCode::OK);
    let (after, replacement) = roll(&mut admin, &leaked, "now").await;
    assert!(
        after.body.contains("is refused from now on"),
        "{}",
        after.body
    );
    let (status, message) = call(&app, &leaked).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains(&replacement[..12]), "{message}");
    assert_eq!(call(&app, &replacement).await.0, StatusCode::OK);
    let page = admin.get("/keys").await;
    assert!(
        !page
            .body
            .contains(&format!("data-key=\"{}\"", &leaked[..12])),
        "a rolled key past its grace is no longer listed"
    );

    app.stop().await;
}
backend_test!(keys_expire_and_roll);

/// Unknown expiry and grace choices: the form again with the message and what was chosen,
/// and nothing created or rolled. The schema refuses lifetimes and graces past the limits.
async fn bad_key_choices_are_shown_on_the_form(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("owner@choices.test", "Choices Co").await;
    let (_, scope, _) = team_of(&app, "owner@choices.test").await;

    let bad = admin
        .post_form(
            "/keys",
            &[("mode", "test"), ("label", "nightly job"), ("expires", "7")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Unknown expiry"), "{}", bad.body);
    assert!(bad.body.contains("id=\"add-test-error\""), "{}", bad.body);
    assert!(
        bad.body.contains("aria-describedby=\"add-test-error\""),
        "the reason points at the field"
    );
    assert!(bad.body.contains("value=\"nightly job\""), "label kept");
    assert!(app.store.list_api_keys(&scope).await.unwrap().is_empty());

    let key = add_key(&mut admin, "ingest", "90").await;
    let page = admin.get("/keys").await;
    let id = row_id(&page.body, &key);
    let form = admin.get(&format!("/keys/{id}/roll")).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("<option value=\"90\" selected>"),
        "the old key's lifetime is proposed: {}",
        form.body
    );
    for (grace, expires, errors) in [
        ("2h", "30", &["grace-error"][..]),
        ("1h", "forever", &["expiry-error"][..]),
        ("", "", &["grace-error", "expiry-error"][..]),
    ] {
        let bad = admin
            .post_form(
                &format!("/keys/{id}/roll"),
                &[("grace", grace), ("expires", expires)],
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{grace} {expires}");
        for (field, message) in [
            ("grace-error", "Unknown grace period"),
            ("expiry-error", "Unknown expiry"),
        ] {
            let shown = errors.contains(&field);
            assert_eq!(
                bad.body.contains(&format!("id=\"{field}\"")),
                shown,
                "{}",
                bad.body
            );
            assert_eq!(bad.body.contains(message), shown, "{}", bad.body);
            assert_eq!(
                bad.body.contains(&format!("aria-describedby=\"{field}\"")),
                shown
            );
        }
    }
    let kept = admin
        .post_form(
            &format!("/keys/{id}/roll"),
            &[("grace", "2h"), ("expires", "30")],
        )
        .await;
    assert!(
        kept.body.contains("<option value=\"30\" selected>"),
        "{}",
        kept.body
    );
    let keys = app.store.list_api_keys(&scope).await.unwrap();
    assert_eq!(keys.len(), 1, "nothing rolled");
    assert!(keys[0].rolled.is_none());
    assert_eq!(call(&app, &key).await.0, StatusCode::OK);

    // The schema: at most a year's lifetime, after creation; at most 7 days of grace, the
    // roll columns together.
    let created = keys[0].created_at;
    assert!(set_column(&app.db.url, "expires_at", &key, created)
        .await
        .is_err());
    assert!(
        set_column(&app.db.url, "expires_at", &key, created + 366 * DAY_MS)
            .await
            .is_err()
    );
    assert!(
        set_column(&app.db.url, "rolled_until", &key, created + 1000)
            .await
            .is_err()
    );
    let (_, new) = roll(&mut admin, &key, "1h").await;
    let rolled_at = app
        .store
        .list_api_keys(&scope)
        .await
        .unwrap()
        .into_iter()
        .find(|k| key.starts_with(&k.prefix))
        .and_then(|k| k.rolled)
        .unwrap()
        .at;
    assert!(
        set_column(&app.db.url, "rolled_until", &key, rolled_at + 8 * DAY_MS)
            .await
            .is_err()
    );
    assert!(set_column(&app.db.url, "rolled_until", &key, rolled_at - 1)
        .await
        .is_err());
    assert_eq!(call(&app, &new).await.0, StatusCode::OK);
    app.stop().await;
}
backend_test!(bad_key_choices_are_shown_on_the_form);
