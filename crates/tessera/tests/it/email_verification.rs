//! Email verification at sign-up: the link mailed over SMTP, what an unverified team may not
//! do (live tasks, invitations) and may (test mode), the confirm page, resending, bad, used
//! and expired links, and an invitation winning an address over an unverified sign-up — but
//! never over a verified account.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::{backend_test, helpers::*};

const REFUSAL: &str = "Admin verifies their email address";

/// The `/verify-email/<token>` path in a mail.
fn verify_path(message: &str) -> String {
    let start = message
        .find("/verify-email/")
        .expect("message has a verification link")
        + "/verify-email/".len();
    let token: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("/verify-email/{token}")
}

async fn live_task(api: &Api) -> (StatusCode, Value) {
    api.send(
        Method::POST,
        "/task/categorization",
        Some(categorization("Is it verified?")),
    )
    .await
}

async fn audit_actions(app: &TestApp, team_id: &str) -> Vec<String> {
    app.store
        .list_audit(&team_scope(team_id), None, 100)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.action.as_str().to_owned())
        .collect()
}

async fn signup_link_unlocks_live_tasks_and_invitations(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            smtp_url: Some(smtp.url()),
            ..Options::default()
        },
    )
    .await;
    let mut ada = app.sign_up_unverified("ada@verify.test", "Verifiers").await;

    // The mail, through a real SMTP server, with a link under the public URL.
    let message = smtp.wait_for("ada@verify.test", 20).await;
    assert!(
        message.contains("Subject: Verify your email address for Tessera"),
        "{message}"
    );
    assert!(message.contains("Verifiers"), "{message}");
    let link = verify_path(&message);
    assert!(
        message.contains(&format!("{}{link}", app.base)),
        "{message}"
    );

    // The account works at once, with a banner saying what waits for the address.
    let team = ada.visit("/team").await;
    assert_eq!(team.status, StatusCode::OK);
    assert!(team.body.contains("id=\"verify-banner\""), "{}", team.body);
    assert!(team.body.contains("Resend the link"));
    assert!(team
        .body
        .contains("cannot create live tasks or invite people"));
    let profile = ada.visit("/profile").await;
    assert!(profile.body.contains("id=\"verify-banner\""), "every page");

    // Test mode works; live tasks and invitations are refused with the reason.
    let test = Api::new(&app, &create_key(&mut ada, "test", "ci").await);
    let live = Api::new(&app, &create_key(&mut ada, "live", "prod").await);
    let (status, _) = live_task(&test).await;
    assert_eq!(status, StatusCode::OK, "test mode keeps working");
    let (status, body) = live_task(&live).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["status_code"], 403);
    assert!(body["error"].as_str().unwrap().contains(REFUSAL), "{body}");
    let invite = ada
        .post_form(
            "/team/invitations",
            &[("emails", "bob@verify.test"), ("role", "member")],
        )
        .await;
    assert_eq!(invite.status, StatusCode::FORBIDDEN, "{}", invite.body);
    assert!(invite.body.contains(REFUSAL), "{}", invite.body);
    assert!(
        invite.body.contains("bob@verify.test"),
        "the form keeps the input"
    );
    let (status, body) = live
        .post(
            "/teams/invite",
            json!({"emails": ["bob@verify.test"], "team_role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains(REFUSAL), "{body}");
    let mail = app.store.cross_tenant().list_mail(100, 0).await.unwrap();
    assert!(
        mail.iter().all(|m| m.to != "bob@verify.test"),
        "no invitation sent"
    );

    // Opening the link shows a confirm page and changes nothing (mail scanners fetch links).
    let mut phone = app.browser();
    let confirm = phone.get(&link).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("ada@verify.test"));
    assert!(confirm.body.contains("Verifiers"));
    assert_eq!(live_task(&live).await.0, StatusCode::FORBIDDEN);

    // Confirming in the signed-in browser: verified, audited, the banner gone.
    assert_eq!(ada.get(&link).await.status, StatusCode::OK);
    let done = ada.post_form(&link, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let after = ada.visit(done.location.as_deref().unwrap()).await;
    assert!(
        after.body.contains("ada@verify.test is verified"),
        "{}",
        after.body
    );
    assert!(!after.body.contains("id=\"verify-banner\""));
    let (team_id, _, _) = team_of(&app, "ada@verify.test").await;
    assert!(audit_actions(&app, &team_id)
        .await
        .contains(&"user.email_verified".to_owned()));

    // Live tasks and invitations now work.
    let (status, body) = live_task(&live).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    let invited = ada
        .submit(
            "/team/invitations",
            &[("emails", "bob@verify.test"), ("role", "member")],
        )
        .await;
    assert!(invited.body.contains("Invitation sent"), "{}", invited.body);

    // The link works once; a made-up one never.
    for path in [
        link.as_str(),
        "/verify-email/not-a-real-token",
        "/verify-email/a.b",
    ] {
        let page = phone.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("id=\"verify-unusable\""), "{path}");
        assert_eq!(
            phone.post_form(path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    app.stop().await;
    smtp.stop().await;
}
backend_test!(signup_link_unlocks_live_tasks_and_invitations);

async fn resend_expiry_and_repeated_signup(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut ada = app.sign_up_unverified("ada@resend.test", "Resenders").await;
    let first = app.verification_path("ada@resend.test").await.unwrap();

    // Three links an hour; each answer says when it was sent, and the newest replaces older.
    for _ in 0..3 {
        let sent = ada
            .post_form("/verify-email", &[("back", "/profile")])
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER);
        assert_eq!(sent.location.as_deref(), Some("/profile"));
        let page = ada.visit("/profile").await;
        assert!(
            page.body
                .contains("We sent a new verification link to ada@resend.test at "),
            "{}",
            page.body
        );
        assert!(page.body.contains(" UTC"), "with the time");
    }
    let refused = ada
        .post_form("/verify-email", &[("back", "/profile")])
        .await;
    let page = ada.visit(refused.location.as_deref().unwrap()).await;
    assert!(page.body.contains("No new link sent"), "{}", page.body);
    assert!(page.body.contains("flash-warning"));
    let mail = app.store.cross_tenant().list_mail(100, 0).await.unwrap();
    assert_eq!(
        mail.iter().filter(|m| m.to == "ada@resend.test").count(),
        4,
        "the sign-up's and three resent"
    );
    let newest = app.verification_path("ada@resend.test").await.unwrap();
    assert_ne!(newest, first);
    let mut other = app.browser();
    assert_eq!(other.get(&first).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&newest).await.status, StatusCode::OK);

    // An expired link is refused and verifies nothing.
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE email_verifications SET expires_at = created_at + 1 WHERE used_at IS NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let expired = other.get(&newest).await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND);
    assert!(expired.body.contains("id=\"verify-unusable\""));
    assert_eq!(
        other.post_form(&newest, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(ada
        .visit("/team")
        .await
        .body
        .contains("id=\"verify-banner\""));

    // Signing up again with the address: the usual answer, and a fresh link by mail.
    let again = app
        .browser()
        .post_form(
            "/signup",
            &[
                ("email", "ada@resend.test"),
                ("password", PASSWORD),
                ("name", "Ada"),
                ("company", ""),
                ("team_name", "Second try"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains("Check your email"), "{}", again.body);
    let mail = app.store.cross_tenant().list_mail(1, 0).await.unwrap();
    assert_eq!(mail[0].to, "ada@resend.test");
    assert_eq!(
        mail[0].subject,
        "Your Tessera sign-up is waiting for verification"
    );
    let fresh = app.verification_path("ada@resend.test").await.unwrap();
    assert_eq!(other.get(&fresh).await.status, StatusCode::OK);
    assert_eq!(other.post_form(&fresh, &[]).await.status, StatusCode::OK);
    assert!(!ada
        .visit("/team")
        .await
        .body
        .contains("id=\"verify-banner\""));
    // A verified account's resend says so and sends nothing.
    let verified = ada.post_form("/verify-email", &[("back", "/team")]).await;
    let page = ada.visit(verified.location.as_deref().unwrap()).await;
    assert!(page.body.contains("is verified already"), "{}", page.body);
    app.stop().await;
}
backend_test!(resend_expiry_and_repeated_signup);

async fn invitation_wins_over_an_unverified_signup(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    // Someone signs up with a colleague's address, and works in test mode.
    let mut squatter = app
        .sign_up_unverified("colleague@acme.test", "Squatters")
        .await;
    let squatter_key = create_key(&mut squatter, "test", "mine").await;
    let squatter_api = Api::new(&app, &squatter_key);
    assert_eq!(live_task(&squatter_api).await.0, StatusCode::OK);
    let (squatter_team, _, _) = team_of(&app, "colleague@acme.test").await;

    // The real team invites the address: no "belongs to another team".
    let mut boss = app.sign_up("boss@acme.test", "Acme").await;
    let sent = boss
        .submit(
            "/team/invitations",
            &[("emails", "colleague@acme.test"), ("role", "manager")],
        )
        .await;
    assert!(sent.body.contains("Invitation sent"), "{}", sent.body);
    assert!(
        !sent.body.contains("to another team"),
        "no invite-time warning for an unverified address: {}",
        sent.body
    );
    let link = app.outbox_link("colleague@acme.test").await;
    let mut colleague = app.browser();
    let form = colleague.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(!form.body.contains("belongs to another team"));
    let joined = colleague
        .post_form(
            &link,
            &[
                ("name", "Cole League"),
                ("company", "Acme"),
                ("password", "the colleague's own password"),
                ("confirm_password", "the colleague's own password"),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    let team = colleague.visit("/team").await;
    assert!(
        team.body.contains("You joined as Manager."),
        "{}",
        team.body
    );
    assert!(
        !team.body.contains("id=\"verify-banner\""),
        "the link proved the address"
    );

    // The squatter's session, key and password are dead; its team is closed.
    let dead = squatter.get("/team").await;
    assert_eq!(dead.status, StatusCode::SEE_OTHER, "signed out");
    assert!(dead.location.unwrap().starts_with("/login"));
    let (status, _) = squatter_api.get("/tasks").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its keys were revoked");
    let login = app
        .browser()
        .post_form(
            "/login",
            &[("email", "colleague@acme.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    let user = app
        .store
        .find_user_by_email(&tessera_core::Email::parse("colleague@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.owns_address());
    assert_ne!(user.team_id.as_deref(), Some(squatter_team.as_str()));
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let (closed,): (Option<i64>,) = sqlx::query_as("SELECT closed_at FROM teams WHERE id = $1")
        .bind(&squatter_team)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(closed.is_some(), "the squatter's team is closed");
    let (tasks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE team_id = $1")
        .bind(&squatter_team)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        tasks, 1,
        "its test task stays, referred to by nothing that works"
    );
    conn.close().await.ok();

    // Audited in both teams.
    let squatters = audit_actions(&app, &squatter_team).await;
    assert!(
        squatters.contains(&"user.signup_superseded".to_owned()),
        "{squatters:?}"
    );
    assert!(
        squatters.contains(&"team.closed".to_owned()),
        "{squatters:?}"
    );
    let log = boss.visit("/team/audit").await;
    assert!(log.body.contains("user.signup_superseded"), "{}", log.body);
    assert!(log.body.contains("invitation.accepted"));
    app.stop().await;
}
backend_test!(invitation_wins_over_an_unverified_signup);

async fn a_verified_address_is_not_taken_over(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut owner = app.sign_up("owner@taken.test", "Owners").await;
    let mut boss = app.sign_up("boss@other.test", "Others").await;
    let sent = boss
        .submit(
            "/team/invitations",
            &[("emails", "owner@taken.test"), ("role", "member")],
        )
        .await;
    assert!(sent.body.contains("Invitation sent"), "{}", sent.body);
    assert!(
        sent.body.contains("already belong"),
        "a verified account's address is warned about: {}",
        sent.body
    );
    let link = app.outbox_link("owner@taken.test").await;
    let page = app.browser().get(&link).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(
        page.body.contains("belongs to another team"),
        "{}",
        page.body
    );
    assert_eq!(owner.get("/team").await.status, StatusCode::OK, "untouched");
    app.stop().await;
}
backend_test!(a_verified_address_is_not_taken_over);

/// Support moved someone into an unverified sign-up's team: closing it would strand them, so
/// the invitation is refused as "belongs to another team" and nothing changes.
async fn an_unverified_team_with_other_members_keeps_its_address(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut squatter = app.sign_up_unverified("shared@crowd.test", "Crowded").await;
    let (crowded, _, _) = team_of(&app, "shared@crowd.test").await;
    let mut helper_admin = app.sign_up("admin@helpers.test", "Helpers").await;
    join_as(&app, &mut helper_admin, "moved@helpers.test", "member").await;
    let moved = app
        .store
        .find_user_by_email(&tessera_core::Email::parse("moved@helpers.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    app.store
        .cross_tenant()
        .move_user(
            &moved.id,
            &crowded,
            tessera_core::Role::Member,
            tessera_store::NewAuditEvent::new(tessera_core::AuditAction::UserMoved, "support"),
        )
        .await
        .unwrap();

    let mut boss = app.sign_up("boss@inviters.test", "Inviters").await;
    boss.submit(
        "/team/invitations",
        &[("emails", "shared@crowd.test"), ("role", "member")],
    )
    .await;
    let link = app.outbox_link("shared@crowd.test").await;
    let mut invitee = app.browser();
    invitee.get(&link).await;
    let refused = invitee
        .post_form(
            &link,
            &[
                ("name", "Sha Red"),
                ("company", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("belongs to another team"));
    assert_eq!(
        squatter.get("/team").await.status,
        StatusCode::OK,
        "untouched"
    );
    assert!(
        app.browser().get(&link).await.status == StatusCode::OK,
        "the link still works"
    );
    app.stop().await;
}
backend_test!(an_unverified_team_with_other_members_keeps_its_address);
