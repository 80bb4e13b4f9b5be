//! "Forgot your password?": the same answer for every address, a single-use link that works
//! one hour and signs out every session, rate limits per address, bad input shown on the
//! form, and the reset in the team's audit log.

use reqwest::StatusCode;
use tessera_server::crypto::Purpose;

use crate::{backend_test, helpers::*};

/// The reset paths mailed to `to`, newest first.
async fn reset_paths(app: &TestApp, to: &str) -> Vec<String> {
    let mail = app.store.cross_tenant().list_mail(500, 0).await.unwrap();
    mail.iter()
        .filter(|m| m.to == to)
        .filter_map(|m| {
            let body = String::from_utf8(
                app.key
                    .open(&Purpose::mail_body(&m.to), &m.body_sealed)
                    .unwrap(),
            )
            .unwrap();
            extract_between(&body, "/password/reset/", "\\n")
                .or_else(|| extract_between(&body, "/password/reset/", "\""))
                .map(|token| format!("/password/reset/{}", token.trim()))
        })
        .collect()
}

async fn password_reset(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut owner = app.sign_up("owner@reset.test", "Reset Co").await;
    assert_eq!(owner.get("/team").await.status, StatusCode::OK);
    let login = app.browser().get("/login").await;
    assert!(
        login.body.contains("href=\"/password/forgot\""),
        "{}",
        login.body
    );

    // The same answer whether or not the address has an account; mail only for the account.
    let mut visitor = app.browser();
    let page = visitor.get("/password/forgot").await;
    assert_eq!(page.status, StatusCode::OK);
    let known = visitor
        .post_form("/password/forgot", &[("email", "owner@reset.test")])
        .await;
    let unknown = visitor
        .post_form("/password/forgot", &[("email", "nobody@reset.test")])
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(unknown.status, StatusCode::OK);
    let answer = |body: &str| {
        extract_between(
            body,
            "<p role=\"status\" id=\"reset-sent\">If an account uses <strong>",
            "</p>",
        )
        .map(|s| {
            s.split_once("</strong>")
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or_default()
        })
    };
    assert_eq!(answer(&known.body), answer(&unknown.body), "same answer");
    assert!(answer(&known.body).is_some(), "{}", known.body);
    assert!(reset_paths(&app, "nobody@reset.test").await.is_empty());
    let paths = reset_paths(&app, "owner@reset.test").await;
    assert_eq!(paths.len(), 1, "{paths:?}");
    let link = paths[0].clone();

    // Bad input: the form again with the reason.
    let bad = visitor
        .post_form("/password/forgot", &[("email", "not an address")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("aria-invalid=\"true\""), "{}", bad.body);
    let form = visitor.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    let mismatch = visitor
        .post_form(
            &link,
            &[
                ("new_password", "a brand new password"),
                ("confirm_password", "another one entirely"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert!(
        mismatch.body.contains("id=\"password-error\""),
        "{}",
        mismatch.body
    );

    // The link sets the password and signs out every session.
    let done = visitor
        .post_form(
            &link,
            &[
                ("new_password", "a brand new password"),
                ("confirm_password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/login"));
    let gone = owner.get("/team").await;
    assert_eq!(
        gone.status,
        StatusCode::SEE_OTHER,
        "the old session was signed out"
    );
    let mut again = app.browser();
    let old = again
        .post_form(
            "/login",
            &[("email", "owner@reset.test"), ("password", PASSWORD)],
        )
        .await;
    assert_ne!(
        old.status,
        StatusCode::SEE_OTHER,
        "the old password no longer works"
    );
    let new = again
        .post_form(
            "/login",
            &[
                ("email", "owner@reset.test"),
                ("password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(new.status, StatusCode::SEE_OTHER, "{}", new.body);

    // Once only.
    let reused = visitor.get(&link).await;
    assert_eq!(reused.status, StatusCode::NOT_FOUND);
    assert!(reused.body.contains("id=\"reset-unusable\""));
    let reused = visitor
        .post_form(
            &link,
            &[
                ("new_password", "yet another password"),
                ("confirm_password", "yet another password"),
            ],
        )
        .await;
    assert_eq!(reused.status, StatusCode::NOT_FOUND);
    assert_eq!(
        visitor.get("/password/reset/not-a-token").await.status,
        StatusCode::NOT_FOUND
    );

    // A newer link replaces the older one; per address, three requests an hour send mail.
    for _ in 0..4 {
        let page = visitor
            .post_form("/password/forgot", &[("email", "owner@reset.test")])
            .await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "the same answer past the budget"
        );
    }
    let paths = reset_paths(&app, "owner@reset.test").await;
    assert_eq!(paths.len(), 3, "three mails an hour, not five: {paths:?}");
    let newest = &paths[0];
    assert_eq!(visitor.get(newest).await.status, StatusCode::OK);
    for older in &paths[1..] {
        assert_eq!(
            visitor.get(older).await.status,
            StatusCode::NOT_FOUND,
            "replaced"
        );
    }

    // Audited in the team's log.
    let mut signed_in = app.browser();
    signed_in
        .post_form(
            "/login",
            &[
                ("email", "owner@reset.test"),
                ("password", "a brand new password"),
            ],
        )
        .await;
    let log = signed_in.visit("/team/audit").await.without_wbr();
    assert!(log.body.contains("user.password_reset"), "{}", log.body);
}
backend_test!(password_reset);
