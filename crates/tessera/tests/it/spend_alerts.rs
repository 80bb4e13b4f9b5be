//! The spend limit's emails: at 80 % and at 100 % of the monthly limit the team's Managers and
//! Admin are mailed once per level (Members are not), and at 100 % live creation is refused.

use crate::{backend_test, helpers::*};

/// Messages to `to` whose text contains `needle`.
fn count(smtp: &SmtpServer, to: &str, needle: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.contains(&format!("To: {to}")) && decode_quoted_printable(m).contains(needle))
        .count()
}

async fn spend_alerts_reach_managers_and_admin(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            smtp_url: Some(smtp.url()),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("admin@alerts.test", "Alert Co").await;
    join_as(&app, &mut admin, "manager@alerts.test", "manager").await;
    join_as(&app, &mut admin, "member@alerts.test", "member").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let (_, _, labeler) = team_of(&app, "admin@alerts.test").await;
    // 10 cents a month; a categorization costs 8.
    let page = admin
        .submit("/billing/spend-limit", &[("spend_limit", "0.10")])
        .await;
    assert!(
        page.body.contains("The monthly spend limit is now"),
        "{}",
        page.body
    );

    for n in 0..2 {
        let (status, body) = live
            .post("/task/categorization", categorization(&format!("a{n}")))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    complete_next(&app, &labeler).await;
    for to in ["admin@alerts.test", "manager@alerts.test"] {
        TestApp::eventually(20, || async {
            (count(&smtp, to, "80% of its spend limit") == 1).then_some(())
        })
        .await;
    }
    complete_next(&app, &labeler).await;
    for to in ["admin@alerts.test", "manager@alerts.test"] {
        TestApp::eventually(20, || async {
            (count(&smtp, to, "100% of its spend limit") == 1).then_some(())
        })
        .await;
    }
    let mail = smtp.wait_for("manager@alerts.test", 5).await;
    assert!(
        decode_quoted_printable(&mail).contains("Alert Co"),
        "{mail}"
    );
    // Live creation is refused now (once the 2-second cache has seen the accrual).
    let refused = TestApp::eventually(10, || async {
        let (status, body) = live
            .post("/task/categorization", categorization("over"))
            .await;
        (status == 402).then_some(body)
    })
    .await;
    assert_eq!(refused["status_code"], 402);
    assert!(
        refused["error"].as_str().unwrap().contains("spend limit"),
        "{refused}"
    );
    // Once per level: nothing more, and nothing ever to the Member.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for to in ["admin@alerts.test", "manager@alerts.test"] {
        assert_eq!(count(&smtp, to, "of its spend limit"), 2, "{to}");
    }
    assert_eq!(count(&smtp, "member@alerts.test", "spend limit"), 0);
    app.stop().await;
    smtp.stop().await;
}

backend_test!(spend_alerts_reach_managers_and_admin);
