//! Invitation mail through a real SMTP server (aiosmtpd), durability when SMTP fails, and the
//! outbox in the staff console when no SMTP server is configured.

use reqwest::StatusCode;
use tessera_store::MailStatus;

use crate::{backend_test, helpers::*};

async fn invitation_arrives_over_smtp_and_its_link_is_accepted(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            smtp_url: Some(smtp.url()),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("boss@mail.test", "Mailers").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "gil@mail.test"), ("role", "manager")],
        )
        .await;

    let message = smtp.wait_for("gil@mail.test", 20).await;
    assert!(
        message.contains("Subject: You're invited to join Mailers on Tessera"),
        "{message}"
    );
    assert!(
        message.contains("multipart/alternative")
            && message.contains("text/html")
            && message.contains("text/plain")
    );
    assert!(message.contains("as a Manager"));
    let link = invite_path(&message);
    assert!(
        message.contains(&format!("{}{link}", app.base)),
        "link points at the public URL"
    );

    let mut gil = app.browser();
    let form = gil.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    let done = gil
        .post_form(
            &link,
            &[
                ("name", "Gil"),
                ("company", "Mailers"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let team = gil.visit("/team").await;
    assert!(team.body.contains("You joined as Manager."));
    let mail = app.store.cross_tenant().list_mail(10, 0).await.unwrap();
    assert_eq!(mail[0].status, MailStatus::Sent);
    app.stop().await;
    smtp.stop().await;
}
backend_test!(invitation_arrives_over_smtp_and_its_link_is_accepted);

async fn mail_survives_a_failing_smtp_server(backend: Backend) {
    // Nothing listens on this port yet: every attempt fails until the server appears.
    let port = free_port();
    let app = TestApp::spawn_with(&backend, Options {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        mail_retry: Some("300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"),
        ..Options::default()
    })
    .await;
    let mut admin = app.sign_up("boss@retry.test", "Retriers").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "hal@retry.test"), ("role", "member")],
        )
        .await;
    let failed_once = TestApp::eventually(20, || async {
        let mail = app.store.cross_tenant().list_mail(10, 0).await.unwrap();
        let m = mail.into_iter().find(|m| m.to == "hal@retry.test")?;
        (m.attempts >= 2 && m.last_error.is_some() && m.status == MailStatus::Queued).then_some(m)
    })
    .await;
    assert!(
        failed_once
            .last_error
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "records why it failed"
    );

    let smtp = SmtpServer::start_on(port).await;
    let message = smtp.wait_for("hal@retry.test", 30).await;
    assert!(message.contains("/invite/"));
    TestApp::eventually(10, || async {
        let mail = app.store.cross_tenant().list_mail(10, 0).await.unwrap();
        mail.iter()
            .any(|m| m.to == "hal@retry.test" && m.status == MailStatus::Sent)
            .then_some(())
    })
    .await;
    // The sign-up's verification mail to boss@ is delivered too; the invitation once.
    assert_eq!(
        smtp.messages()
            .iter()
            .filter(|m| m.contains("To: hal@retry.test"))
            .count(),
        1,
        "delivered once"
    );
    app.stop().await;
    smtp.stop().await;
}
backend_test!(mail_survives_a_failing_smtp_server);

async fn without_smtp_mail_is_held_for_the_staff_console(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("boss@held.test", "Holders").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "ivy@held.test"), ("role", "member")],
        )
        .await;
    let mail = TestApp::eventually(10, || async {
        let mail = app.store.cross_tenant().list_mail(10, 0).await.unwrap();
        mail.into_iter()
            .find(|m| m.to == "ivy@held.test" && m.status == MailStatus::Held)
    })
    .await;

    let mut staff = staff_browser(&app).await;
    let console = staff.visit("/").await;
    assert!(console.body.contains("Staff console"));
    assert!(console.body.contains("No SMTP server is configured"));
    assert!(console.body.contains("ivy@held.test") && console.body.contains("held"));
    // Staff read the message, but not the credential in it: the link is redacted.
    let page = staff.visit(&format!("/staff/mail/{}", mail.id)).await;
    let link = app.outbox_link("ivy@held.test").await;
    assert!(page.body.contains("/invite/[redacted]"), "{}", page.body);
    assert!(
        !page.body.contains(&link),
        "the invitation link is shown to staff"
    );
    let mut ivy = app.browser();
    assert_eq!(ivy.get(&link).await.status, StatusCode::OK);

    // Staff can find users and move them; errors come back on the console.
    let found = staff.visit("/staff?q=IVY").await;
    assert!(found.body.contains("No user matches"));
    let found = staff.visit("/staff?q=boss@held").await;
    assert!(found.body.contains("Holders"));
    let bad = staff
        .post_form(
            "/staff/move-user",
            &[
                ("email", "nobody@held.test"),
                ("team", "Holders"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad
        .body
        .contains("No account has the address nobody@held.test."));
    app.stop().await;
}
backend_test!(without_smtp_mail_is_held_for_the_staff_console);

/// Two customers named Acme: the staff console lists both with their ids, its move-user and
/// set-admin forms refuse the ambiguous name (listing the ids) and accept an id (issue 9,
/// item 6).
async fn staff_console_tells_teams_with_one_name_apart(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut anvils = app.sign_up("boss@anvils.test", "Acme").await;
    let _rockets = app.sign_up("boss@rockets.test", "ACME").await;
    let teams = app
        .store
        .cross_tenant()
        .find_teams_by_name("acme")
        .await
        .unwrap();
    let anvils_id = teams
        .iter()
        .find(|t| t.admin_email == "boss@anvils.test")
        .unwrap()
        .team
        .id
        .clone();
    let rockets_id = teams
        .iter()
        .find(|t| t.admin_email == "boss@rockets.test")
        .unwrap()
        .team
        .id
        .clone();
    anvils
        .submit(
            "/team/invitations",
            &[("emails", "wil@anvils.test"), ("role", "member")],
        )
        .await;
    let link = app.outbox_link("wil@anvils.test").await;
    let mut wil = app.browser();
    wil.get(&link).await;
    let joined = wil
        .post_form(
            &link,
            &[
                ("name", "Wil"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    let wil_id = app
        .store
        .find_user_by_email(&tessera_core::Email::parse("wil@anvils.test").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;

    let mut staff = staff_browser(&app).await;
    let console = staff.visit("/staff").await;
    assert!(
        console.body.contains(&anvils_id) && console.body.contains(&rockets_id),
        "the Teams table shows each id"
    );

    let ambiguous = |body: &str| {
        body.contains("2 teams are named &#34;acme&#34;")
            && body.contains(&anvils_id)
            && body.contains(&rockets_id)
            && body.contains("Give the team id instead.")
    };
    let refused = staff
        .post_form(
            "/staff/move-user",
            &[
                ("email", "wil@anvils.test"),
                ("team", "acme"),
                ("role", "manager"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(ambiguous(&refused.body), "{}", refused.body);
    let user = app.store.get_user(&wil_id).await.unwrap();
    assert_eq!(
        user.team_id.as_deref(),
        Some(anvils_id.as_str()),
        "not moved"
    );

    let moved = staff
        .submit(
            "/staff/move-user",
            &[
                ("email", "wil@anvils.test"),
                ("team", &rockets_id),
                ("role", "manager"),
            ],
        )
        .await;
    assert!(
        moved
            .body
            .contains("wil@anvils.test moved to ACME as Manager."),
        "{}",
        moved.body
    );
    assert_eq!(
        app.store
            .get_user(&wil_id)
            .await
            .unwrap()
            .team_id
            .as_deref(),
        Some(rockets_id.as_str())
    );

    let refused = staff
        .post_form(
            "/staff/set-admin",
            &[("team", "acme"), ("email", "wil@anvils.test")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(ambiguous(&refused.body), "{}", refused.body);
    let handed = staff
        .submit(
            "/staff/set-admin",
            &[("team", &rockets_id), ("email", "wil@anvils.test")],
        )
        .await;
    assert!(
        handed.body.contains("is now the Admin of ACME."),
        "{}",
        handed.body
    );
    assert_eq!(
        app.store
            .cross_tenant()
            .get_team(&rockets_id)
            .await
            .unwrap()
            .admin_user_id,
        wil_id
    );
    app.stop().await;
}
backend_test!(staff_console_tells_teams_with_one_name_apart);
