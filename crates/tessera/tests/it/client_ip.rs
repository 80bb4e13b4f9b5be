//! Client IPs behind a load balancer: `X-Forwarded-For` counts only from `--trusted-proxies`,
//! for per-IP sign-in limits and for the audit log. Tested over HTTP (the login page's
//! answers and the team's audit log), not through the limiter's functions.

use reqwest::StatusCode;

use crate::{
    backend_test,
    helpers::{Backend, Browser, Options, TestApp, PASSWORD},
};

/// A wrong sign-in for a fresh address (so only the per-IP budget is spent).
async fn failed_login(browser: &mut Browser) -> StatusCode {
    let email = format!("{}@example.com", crate::helpers::unique("nobody"));
    browser
        .post_form(
            "/login",
            &[("email", &email), ("password", "wrong password")],
        )
        .await
        .status
}

/// Fails sign-ins from `browser` until the per-IP limit answers 429 (30 per 15 minutes,
/// so well within 40 attempts).
async fn exhaust_ip_budget(browser: &mut Browser) {
    for _ in 0..40 {
        match failed_login(browser).await {
            StatusCode::TOO_MANY_REQUESTS => return,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected answer {other}"),
        }
    }
    panic!("no per-IP limit after 40 failed sign-ins");
}

/// Signs up a team from `browser`; returns the team's audit log page.
async fn sign_up_and_read_audit(browser: &mut Browser, email: &str) -> String {
    let page = browser
        .post_form(
            "/signup",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("name", "Ada Admin"),
                ("company", "Acme"),
                ("team_name", "Proxy Co"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let log = browser.visit("/team/audit").await;
    // Long values wrap at their punctuation (`<wbr>`); the test reads the text.
    let text = log.body.replace("<wbr>", "");
    assert!(text.contains("team.signed_up"), "{text}");
    text
}

async fn trusted_proxy_forwards_client_ips(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            trusted_proxies: Some("127.0.0.1/32"),
            ..Options::default()
        },
    )
    .await;
    // Two users behind the same load balancer (127.0.0.1) each have their own budget.
    let mut first = app.browser_forwarded_for("203.0.113.10");
    exhaust_ip_budget(&mut first).await;
    let mut second = app.browser_forwarded_for("203.0.113.20");
    assert_eq!(failed_login(&mut second).await, StatusCode::UNAUTHORIZED);
    // An address the client wrote itself (left of what the proxy appended) is ignored:
    // this one is 203.0.113.30, not the locked-out 203.0.113.10.
    let mut third = app.browser_forwarded_for("203.0.113.10, 203.0.113.30");
    assert_eq!(failed_login(&mut third).await, StatusCode::UNAUTHORIZED);
    // The locked-out client stays locked out, and so does its spoofer.
    assert_eq!(
        failed_login(&mut first).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut spoofer = app.browser_forwarded_for("198.51.100.1, 203.0.113.10");
    assert_eq!(
        failed_login(&mut spoofer).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // The audit log records the forwarded address, not the proxy's.
    let mut admin = app.browser_forwarded_for("198.51.100.7");
    let log = sign_up_and_read_audit(&mut admin, "proxied@example.com").await;
    assert!(log.contains("198.51.100.7"), "{log}");
    assert!(!log.contains("127.0.0.1"), "{log}");
    app.stop().await;
}
backend_test!(trusted_proxy_forwards_client_ips);

async fn forwarded_for_is_ignored_from_untrusted_peers(backend: Backend) {
    // No trusted proxies: the header is ignored, so rotating it does not escape the limit.
    let app = TestApp::spawn(&backend).await;
    for n in 0..40 {
        let mut client = app.browser_forwarded_for(&format!("203.0.113.{n}"));
        match failed_login(&mut client).await {
            StatusCode::TOO_MANY_REQUESTS => break,
            StatusCode::UNAUTHORIZED => assert!(n < 39, "no per-IP limit after 40 sign-ins"),
            other => panic!("unexpected answer {other}"),
        }
    }
    let mut admin = app.browser_forwarded_for("198.51.100.7");
    let log = sign_up_and_read_audit(&mut admin, "spoofer@example.com").await;
    assert!(log.contains("127.0.0.1"), "{log}");
    assert!(!log.contains("198.51.100.7"), "{log}");
    app.stop().await;

    // Trusted proxies that do not include the peer: still ignored.
    let app = TestApp::spawn_with(
        &backend,
        Options {
            trusted_proxies: Some("10.0.0.0/8, fd00::/8"),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.browser_forwarded_for("198.51.100.7");
    let log = sign_up_and_read_audit(&mut admin, "spoofer2@example.com").await;
    assert!(log.contains("127.0.0.1"), "{log}");
    assert!(!log.contains("198.51.100.7"), "{log}");
    app.stop().await;
}
backend_test!(forwarded_for_is_ignored_from_untrusted_peers);

#[tokio::test]
async fn serve_refuses_bad_trusted_proxies() {
    let stderr =
        crate::server::serve_refuses(&["--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"]).await;
    assert!(stderr.contains("10.0.0.0/33"), "{stderr}");
    assert!(stderr.contains("at most 32"), "{stderr}");
    let stderr = crate::server::serve_refuses(&["--trusted-proxies", "lb.internal"]).await;
    assert!(stderr.contains("is not an IP network"), "{stderr}");
}
