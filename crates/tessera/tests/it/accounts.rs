//! Sign-up, log-in, sessions, CSRF, rate limits and the profile page.

use std::time::Duration;

use reqwest::StatusCode;

use crate::{backend_test, helpers::*};

async fn sign_up_log_out_and_in(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.browser();
    let signed_up = admin
        .submit(
            "/signup",
            &[
                ("email", "Ada@Example.com"),
                ("password", PASSWORD),
                ("name", "Ada Admin"),
                ("company", "Acme"),
                ("team_name", "Acme Vision"),
            ],
        )
        .await;
    assert!(
        signed_up.body.contains("Get started"),
        "sign-up lands on Get started"
    );
    assert!(
        signed_up.body.contains("Welcome to Tessera!"),
        "flash shown once"
    );
    let team = admin.visit("/team").await;
    assert_eq!(team.status, StatusCode::OK);
    assert!(team.body.contains("Acme Vision"));
    assert!(team.body.contains("Ada@Example.com"));
    assert!(team.body.contains(">Admin<"));
    let again = admin.visit("/team").await;
    assert!(
        !again.body.contains("Welcome to Tessera!"),
        "flash cleared after display"
    );

    let out = admin.post_form("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let gone = admin.get("/team").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(gone.location.as_deref(), Some("/login?next=%2Fteam"));

    let wrong = admin
        .post_form(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Email or password is incorrect."));
    assert!(
        wrong.body.contains("value=\"ada@example.com\""),
        "form shown again with the email"
    );

    // Emails compare case-insensitively and are trimmed.
    let ok = admin
        .post_form(
            "/login",
            &[
                ("email", "  ADA@example.COM "),
                ("password", PASSWORD),
                ("next", "/team"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location.as_deref(), Some("/team"));
    let cookie = ok
        .set_cookies
        .iter()
        .find(|c| c.starts_with("tessera_session="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain-http public URL: no Secure flag"
    );
    assert_eq!(admin.visit("/team").await.status, StatusCode::OK);

    // An open redirect through `next` is refused.
    let mut other = app.browser();
    let r = other
        .post_form(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/"));
    app.stop().await;
}
backend_test!(sign_up_log_out_and_in);

async fn sign_up_rejects_bad_input_and_keeps_what_was_typed(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let _first = app.sign_up("joe@x.com", "Joe Team").await;
    let mut b = app.browser();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("email", "not-an-email"),
                ("password", PASSWORD),
                ("name", "N"),
                ("team_name", "T1"),
            ],
            "is not a valid email address",
        ),
        (
            &[
                ("email", "n@x.com"),
                ("password", "short"),
                ("name", "N"),
                ("team_name", "T2"),
            ],
            "at least 10 characters",
        ),
        (
            &[
                ("email", "n@x.com"),
                ("password", PASSWORD),
                ("name", ""),
                ("team_name", "T3"),
            ],
            "Name is required",
        ),
        (
            &[
                ("email", "n@x.com"),
                ("password", PASSWORD),
                ("name", "N"),
                ("team_name", "a/b"),
            ],
            "must not contain",
        ),
        (
            &[
                ("email", "n@x.com"),
                ("password", PASSWORD),
                ("name", "N"),
                ("team_name", "team_0123abcd"),
            ],
            "must not look like a team id",
        ),
    ];
    for (fields, message) in cases {
        let page = b.post_form("/signup", fields).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{message}");
        assert!(
            page.body.contains(message),
            "expected {message:?} in the page"
        );
        let team = fields.iter().find(|(k, _)| *k == "team_name").unwrap().1;
        assert!(
            page.body.contains(&format!("value=\"{team}\"")),
            "typed values are kept"
        );
    }
    let long_name = "x".repeat(5000);
    let page = b
        .post_form(
            "/signup",
            &[
                ("email", "n@x.com"),
                ("password", PASSWORD),
                ("name", &long_name),
                ("team_name", "T5"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // A +tag address is a different account.
    let page = b
        .post_form(
            "/signup",
            &[
                ("email", "joe+second@x.com"),
                ("password", PASSWORD),
                ("name", "Joe"),
                ("team_name", "Joe Two"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.cross_tenant().list_teams().await.unwrap().len(),
        2,
        "only the two valid sign-ups created teams"
    );
    // A body past the limit is refused without a 500.
    let huge = "y".repeat(200_000);
    let page = b
        .post_form(
            "/signup",
            &[
                ("email", "big@x.com"),
                ("password", PASSWORD),
                ("name", &huge),
                ("team_name", "Big"),
            ],
        )
        .await;
    assert!(page.status.is_client_error(), "{}", page.status);
    app.stop().await;
}
backend_test!(sign_up_rejects_bad_input_and_keeps_what_was_typed);

async fn forms_without_a_valid_csrf_token_are_refused(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut b = app.browser();
    b.get("/signup").await;
    let fields = [
        ("email", "c@x.com"),
        ("password", PASSWORD),
        ("name", "C"),
        ("team_name", "CSRF"),
    ];
    let page = b.post_raw("/signup", &fields).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("did not come from Tessera"));
    let mut with_wrong = fields.to_vec();
    with_wrong.push(("csrf_token", "forged"));
    assert_eq!(
        b.post_raw("/signup", &with_wrong).await.status,
        StatusCode::FORBIDDEN
    );
    // A token from another browser (another cookie) does not work either.
    let mut other = app.browser();
    let foreign = other.ensure_csrf().await;
    let mut with_foreign = fields.to_vec();
    with_foreign.push(("csrf_token", &foreign));
    assert_eq!(
        b.post_raw("/signup", &with_foreign).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(
        app.store
            .cross_tenant()
            .list_teams()
            .await
            .unwrap()
            .is_empty(),
        "nothing was created"
    );
    app.stop().await;
}
backend_test!(forms_without_a_valid_csrf_token_are_refused);

async fn login_is_rate_limited_per_account(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let _admin = app.sign_up("rl@x.com", "Limits").await;
    let mut b = app.browser();
    for _ in 0..5 {
        let page = b
            .post_form(
                "/login",
                &[("email", "rl@x.com"), ("password", "wrong password!")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = b
        .post_form("/login", &[("email", "RL@x.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(page.body.contains(
        "Too many failed sign-in attempts for this account from your network. Try again in"
    ));
    // Another account from the same address is not locked by it.
    let _other = app.sign_up("ok@x.com", "Other").await;
    let page = b
        .post_form("/login", &[("email", "ok@x.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    app.stop().await;
}
backend_test!(login_is_rate_limited_per_account);

/// 25 wrong passwords at once against a limit of 5: the check and the record are one step,
/// so at most 5 are verified (401) and the rest wait (429). They used to all get 401.
async fn parallel_wrong_passwords_cannot_pass_the_limit(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let _admin = app.sign_up("par@x.com", "Parallel").await;
    let mut handles = Vec::new();
    for _ in 0..25 {
        let mut b = app.browser();
        handles.push(tokio::spawn(async move {
            b.ensure_csrf().await;
            b.post_form(
                "/login",
                &[("email", "par@x.com"), ("password", "wrong password!")],
            )
            .await
            .status
        }));
    }
    let mut unauthorized = 0;
    let mut limited = 0;
    for h in handles {
        match h.await.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        unauthorized <= 5,
        "{unauthorized} wrong passwords were checked"
    );
    assert_eq!(unauthorized + limited, 25);
    // Exactly 5 failures are counted in all: more wrong passwords one by one are checked
    // until the fifth, then even the right password waits.
    let mut b = app.browser();
    while unauthorized < 5 {
        let page = b
            .post_form(
                "/login",
                &[("email", "par@x.com"), ("password", "wrong password!")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "after {unauthorized}"
        );
        unauthorized += 1;
    }
    let page = b
        .post_form("/login", &[("email", "par@x.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}
backend_test!(parallel_wrong_passwords_cannot_pass_the_limit);

/// Sign-up counts every attempt per IP (it used to count only successes, so one could try
/// addresses forever), never says on the page that an address has an account, and hashes
/// no password for one.
async fn sign_up_does_not_confirm_addresses_and_counts_every_attempt(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let _joe = app.sign_up("joe@x.com", "Joe Team").await;
    let mut b = app.browser();
    let page = b
        .post_form(
            "/signup",
            &[
                ("email", "JOE@x.com"),
                ("password", PASSWORD),
                ("name", "N"),
                ("team_name", "T4"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Check your email"), "{}", page.body);
    assert!(
        !page.body.contains("already exists"),
        "the page confirms the address: {}",
        page.body
    );
    assert!(app
        .store
        .cross_tenant()
        .list_teams()
        .await
        .unwrap()
        .iter()
        .all(|t| t.team.name != "T4"));
    // The owner is told by email, once an hour at most.
    let notices = |mail: &[tessera_store::MailMessage]| {
        mail.iter()
            .filter(|m| m.to == "joe@x.com" && m.subject.contains("already exists"))
            .count()
    };
    assert_eq!(
        notices(&app.store.cross_tenant().list_mail(100, 0).await.unwrap()),
        1
    );
    b.post_form(
        "/signup",
        &[
            ("email", "joe@x.com"),
            ("password", PASSWORD),
            ("name", "N"),
            ("team_name", "T5"),
        ],
    )
    .await;
    assert_eq!(
        notices(&app.store.cross_tenant().list_mail(100, 0).await.unwrap()),
        1
    );
    // 20 attempts an hour per IP, whatever their outcome (3 used so far, with the sign-up).
    let mut statuses = Vec::new();
    for n in 0..20 {
        let email = format!("enum{n}@x.com");
        let p = b
            .post_form(
                "/signup",
                &[
                    ("email", &email),
                    ("password", "short"),
                    ("name", "N"),
                    ("team_name", "T"),
                ],
            )
            .await;
        statuses.push(p.status);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 3, "{statuses:?}");
    app.stop().await;
}
backend_test!(sign_up_does_not_confirm_addresses_and_counts_every_attempt);

async fn profile_and_password(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("p@x.com", "Profiles").await;
    let page = admin
        .submit(
            "/profile",
            &[
                ("name", "Ada Lovelace"),
                ("company", "Engines"),
                ("job_title", "Analyst"),
                ("phone", "+44 20 7946 0000"),
            ],
        )
        .await;
    assert!(page.body.contains("Your profile has been saved."));
    assert!(
        page.body.contains("value=\"Ada Lovelace\"") && page.body.contains("value=\"Analyst\"")
    );
    let bad = admin
        .post_form("/profile", &[("name", ""), ("phone", "call me")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Phone may contain only digits"));

    // A second session, to see it end when the password changes.
    let mut laptop = app.browser();
    assert_eq!(
        laptop
            .post_form("/login", &[("email", "p@x.com"), ("password", PASSWORD)])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let wrong = admin
        .post_form(
            "/profile/password",
            &[
                ("current_password", "nope nope nope"),
                ("new_password", "a brand new secret"),
                ("confirm_password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("Your current password is incorrect."));
    let mismatch = admin
        .post_form(
            "/profile/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new secret"),
                ("confirm_password", "something else!"),
            ],
        )
        .await;
    assert!(mismatch.body.contains("The two passwords do not match."));
    let ok = admin
        .submit(
            "/profile/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new secret"),
                ("confirm_password", "a brand new secret"),
            ],
        )
        .await;
    assert!(
        ok.body.contains("Your password has been changed."),
        "still signed in here"
    );
    assert_eq!(
        laptop.get("/team").await.status,
        StatusCode::SEE_OTHER,
        "other session ended"
    );
    let mut fresh = app.browser();
    assert_eq!(
        fresh
            .post_form("/login", &[("email", "p@x.com"), ("password", PASSWORD)])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fresh
            .post_form(
                "/login",
                &[("email", "p@x.com"), ("password", "a brand new secret")]
            )
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    app.stop().await;
}
backend_test!(profile_and_password);

async fn health_and_not_found(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut b = app.browser();
    assert_eq!(b.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(b.get("/readyz").await.status, StatusCode::OK);
    let missing = b.get("/no/such/page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Not found"));
    let css = b.get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    app.stop().await;
}
backend_test!(health_and_not_found);

/// `next=/%09/evil.example` passed the old check, and browsers resolve `/\t/evil.example` to
/// `//evil.example`, off-site. The same for the mode switch's `back`.
async fn redirects_after_sign_in_stay_on_the_site(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("next@x.com", "Next").await;
    let mut b = app.browser();
    b.ensure_csrf().await;
    for (next, expected) in [
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\\evil.example", "/"),
        ("//evil.example", "/"),
        ("/tasks?status=pending", "/tasks?status=pending"),
    ] {
        let mut b = app.browser();
        let page = b
            .post_form(
                "/login",
                &[
                    ("email", "next@x.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(page.location.as_deref(), Some(expected), "{next:?}");
    }
    let page = admin
        .post_form("/mode", &[("mode", "test"), ("back", "/\t/evil.example")])
        .await;
    assert_eq!(page.location.as_deref(), Some("/test/tasks"));
    app.stop().await;
}
backend_test!(redirects_after_sign_in_stay_on_the_site);

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
    })
}

fn form_token(body: &str) -> String {
    extract_between(body, "name=\"csrf_token\" value=\"", "\"").expect("a form token")
}

/// A CSRF token is bound to the session: one obtained in another session (an attacker's
/// own, with its cookie planted in the victim's browser) is refused; the cookie is replaced
/// at sign-in. The token used to depend only on the client-chosen cookie.
async fn csrf_tokens_are_bound_to_the_session(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, cookies: String| {
        raw.get(format!("{}{path}", app.base))
            .header("cookie", cookies)
            .send()
    };
    // The victim signs up.
    let form = get("/signup", String::new()).await.unwrap();
    let cookies: Vec<String> = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let seed0 = cookie_value(&cookies, "tessera_csrf").unwrap();
    let token0 = form_token(&form.text().await.unwrap());
    let signed_up = raw
        .post(format!("{}/signup", app.base))
        .header("cookie", format!("tessera_csrf={seed0}"))
        .form(&[
            ("email", "victim@x.com"),
            ("password", PASSWORD),
            ("name", "Vic Tim"),
            ("company", "V"),
            ("team_name", "Victims"),
            ("csrf_token", &token0),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> = signed_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookie_value(&cookies, "tessera_session").expect("a session");
    let seed1 =
        cookie_value(&cookies, "tessera_csrf").expect("the CSRF cookie is replaced at sign-in");
    assert_ne!(seed0, seed1);

    // The attacker's own token and cookie, from a page of their own.
    let mallory = get("/login", String::new()).await.unwrap();
    let cookies: Vec<String> = mallory
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let seed_m = cookie_value(&cookies, "tessera_csrf").unwrap();
    let token_m = form_token(&mallory.text().await.unwrap());
    let forged = raw
        .post(format!("{}/profile", app.base))
        .header(
            "cookie",
            format!("tessera_session={session}; tessera_csrf={seed_m}"),
        )
        .form(&[
            ("name", "Pwned"),
            ("company", ""),
            ("job_title", ""),
            ("phone", ""),
            ("csrf_token", &token_m),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::FORBIDDEN,
        "a token from another session was accepted"
    );
    // The pre-sign-in token no longer works either.
    let stale = raw
        .post(format!("{}/profile", app.base))
        .header(
            "cookie",
            format!("tessera_session={session}; tessera_csrf={seed0}"),
        )
        .form(&[
            ("name", "Pwned"),
            ("company", ""),
            ("job_title", ""),
            ("phone", ""),
            ("csrf_token", &token0),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    // The victim's own page token works.
    let jar = format!("tessera_session={session}; tessera_csrf={seed1}");
    let profile = get("/profile", jar.clone()).await.unwrap();
    let token = form_token(&profile.text().await.unwrap());
    let saved = raw
        .post(format!("{}/profile", app.base))
        .header("cookie", jar.clone())
        .form(&[
            ("name", "Vic Tim"),
            ("company", "V2"),
            ("job_title", ""),
            ("phone", ""),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let profile = get("/profile", jar).await.unwrap().text().await.unwrap();
    assert!(!profile.contains("Pwned") && profile.contains("V2"));
    app.stop().await;
}
backend_test!(csrf_tokens_are_bound_to_the_session);

/// A session unused for the idle timeout ends; one in use does not.
async fn idle_sessions_end(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            session_idle_timeout: Some(Duration::from_millis(2_000)),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("idle@x.com", "Idlers").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            admin.get("/team").await.status,
            StatusCode::OK,
            "in use, still signed in"
        );
    }
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    let page = admin.get("/team").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.unwrap().starts_with("/login"));
    app.stop().await;
}
backend_test!(idle_sessions_end);

/// Under an https public URL: `__Host-` cookies (no subdomain can set or shadow them),
/// `Secure`, and HSTS. Over http: none of it.
async fn https_deployments_get_host_cookies_and_hsts(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            https_public_url: true,
            ..Options::default()
        },
    )
    .await;
    let response = reqwest::get(format!("{}/login", app.base)).await.unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-tessera_csrf="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    app.stop().await;
    let plain = TestApp::spawn(&backend).await;
    let response = reqwest::get(format!("{}/login", plain.base)).await.unwrap();
    assert!(!response.headers().contains_key("strict-transport-security"));
    plain.stop().await;
}
backend_test!(https_deployments_get_host_cookies_and_hsts);

/// Bad dashboard URLs get the styled page, in the signed-in frame, naming the parameter —
/// not the framework's text/plain "Failed to deserialize query string"; unknown filter values
/// are refused instead of silently ignored.
async fn bad_dashboard_urls_get_pages_that_name_the_parameter(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("urls@x.com", "Urls").await;
    for (path, status, says) in [
        (
            "/tasks?status=pending&status=completed",
            400,
            "gives \"status\" more than once",
        ),
        (
            "/callbacks?state=a&state=b",
            400,
            "gives \"state\" more than once",
        ),
        (
            "/projects/view?name=a&name=b",
            400,
            "gives \"name\" more than once",
        ),
        ("/tasks/%FF", 400, "\"id\" is not text"),
        ("/tasks?status=weird", 400, "\"weird\" is not a task status"),
        (
            "/tasks?type=nonsense",
            400,
            "\"nonsense\" is not a task type",
        ),
        (
            "/callbacks?state=weird",
            400,
            "\"weird\" is not a callback state",
        ),
        (
            "/tasks?next_token=garbage",
            400,
            "does not know: \"next_token\"",
        ),
        ("/tasks?cursor=garbage", 400, "\"cursor\" is not valid"),
        ("/no-such-page", 404, "Not found"),
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status.as_u16(), status, "{path}: {}", page.body);
        let body = page.body.replace("&quot;", "\"").replace("&#34;", "\"");
        assert!(body.contains(says), "{path}: {body}");
        assert!(body.contains("Log out"), "{path}: the top bar is kept");
    }
    // A Manager on the staff console is told what it is.
    let page = admin.get("/staff").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Platform staff only") && !page.body.contains("Ask your team"));
    // The CSRF refusal shows the status it is sent with.
    let page = admin.post_raw("/profile", &[("name", "x")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains(">403<"), "{}", page.body);
    // Signed out, the same pages are plain.
    let mut stranger = app.browser();
    let page = stranger.get("/no-such-page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // API paths keep their JSON 404, POSTs included.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/nope", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    app.stop().await;
}
backend_test!(bad_dashboard_urls_get_pages_that_name_the_parameter);

/// Five wrong passwords from a stranger's network lock the account from that network only:
/// the owner elsewhere still signs in (a stranger used to lock anyone out for 15 minutes).
/// The attempt before the last says that the next failure locks.
async fn a_stranger_cannot_lock_the_owner_out(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            trusted_proxies: Some("127.0.0.1/32"),
            ..Options::default()
        },
    )
    .await;
    let _owner = app.sign_up("owner@x.com", "Owners").await;
    let mut stranger = app.browser_forwarded_for("198.51.100.7");
    for n in 1..=5 {
        let page = stranger
            .post_form(
                "/login",
                &[("email", "owner@x.com"), ("password", "guess guess guess")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {n}");
        assert_eq!(
            page.body.contains("One more failed attempt locks sign-in"),
            n == 4,
            "attempt {n}: {}",
            page.body
        );
    }
    let locked = stranger
        .post_form(
            "/login",
            &[("email", "owner@x.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    let mut owner = app.browser_forwarded_for("203.0.113.9");
    let page = owner
        .post_form(
            "/login",
            &[("email", "owner@x.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    app.stop().await;
}
backend_test!(a_stranger_cannot_lock_the_owner_out);

/// Team names are unique per nothing: a second company called Acme signs up like the first,
/// and learns nothing about it (issue 9, item 6).
async fn two_companies_may_both_be_acme(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut first = app.sign_up("ceo@acme-anvils.test", "Acme").await;
    let mut second = app.browser();
    let page = second
        .post_form(
            "/signup",
            &[
                ("email", "ceo@acme-rockets.test"),
                ("password", PASSWORD),
                ("name", "Rita Rocket"),
                ("company", "Acme Rockets"),
                ("team_name", " acme "),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(!page.body.contains("already exists"));
    let teams = app
        .store
        .cross_tenant()
        .find_teams_by_name("ACME")
        .await
        .unwrap();
    assert_eq!(teams.len(), 2, "two teams named Acme");
    assert_ne!(teams[0].team.id, teams[1].team.id);

    // Each Admin sees their own team only.
    let mine = first.visit("/team").await;
    assert!(mine.body.contains("ceo@acme-anvils.test") && !mine.body.contains("acme-rockets"));
    let theirs = second.visit("/team").await;
    assert!(
        theirs.body.contains("ceo@acme-rockets.test") && !theirs.body.contains("acme-anvils"),
        "{}",
        theirs.body
    );
    assert!(
        theirs.body.contains("Your team &#34;acme&#34; is ready")
            || theirs.body.contains("Your team &quot;acme&quot; is ready"),
        "{}",
        theirs.body
    );
    app.stop().await;
}
backend_test!(two_companies_may_both_be_acme);
