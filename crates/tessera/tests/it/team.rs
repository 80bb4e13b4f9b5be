//! The team page: invitations (send, resend, revoke, accept in every state), roles, removal,
//! team details and the audit log.

use std::time::Duration;

use reqwest::StatusCode;

use crate::{backend_test, helpers::*};

/// Accepts an invitation link in a fresh browser, creating the account.
async fn accept(app: &TestApp, link: &str, name: &str) -> Browser {
    let mut b = app.browser();
    let form = b.get(link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let done = b
        .post_form(
            link,
            &[
                ("name", name),
                ("company", "Acme"),
                ("job_title", "Labeling lead"),
                ("phone", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    b
}

async fn invite_accept_and_manage_roles(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("admin@acme.test", "Acme").await;

    let page = admin
        .submit(
            "/team/invitations",
            &[
                ("emails", "Bea@acme.test,\ncid@acme.test"),
                ("role", "member"),
            ],
        )
        .await;
    assert!(
        page.body
            .contains("Invitation sent to Bea@acme.test, cid@acme.test."),
        "{}",
        page.body
    );
    assert!(
        invitation_id(&page.body, "Bea@acme.test").is_some(),
        "Bea listed as Invited"
    );
    assert!(invitation_id(&page.body, "cid@acme.test").is_some());
    assert!(page.body.contains("Expires "));

    // Bad input: the form again with the message and what was typed; nothing sent.
    let bad = admin
        .post_form(
            "/team/invitations",
            &[("emails", "ok@acme.test, nope"), ("role", "member")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("&#34;nope&#34; is not a valid email address."),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("ok@acme.test, nope</textarea>"));
    let admin_role = admin
        .post_form(
            "/team/invitations",
            &[("emails", "boss@acme.test"), ("role", "admin")],
        )
        .await;
    assert_eq!(admin_role.status, StatusCode::BAD_REQUEST);
    assert!(admin_role
        .body
        .contains("The Admin role cannot be granted here"));
    let team_id = app.store.cross_tenant().list_teams().await.unwrap()[0]
        .team
        .id
        .clone();
    assert_eq!(
        app.store
            .list_pending_invitations(&team_scope(&team_id))
            .await
            .unwrap()
            .len(),
        2
    );

    // Bea accepts in another browser session.
    let link = app.outbox_link("Bea@acme.test").await;
    let mut bea = app.browser();
    let form = bea.get(&link).await;
    assert!(form.body.contains("Join Acme") && form.body.contains("Member"));
    let weak = bea
        .post_form(
            &link,
            &[
                ("name", "Bea"),
                ("password", "short"),
                ("confirm_password", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body.contains("at least 10 characters") && weak.body.contains("value=\"Bea\""));
    let done = bea
        .post_form(
            &link,
            &[
                ("name", "Bea Member"),
                ("company", "Acme"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let bea_team = bea.visit("/team").await;
    assert!(bea_team
        .body
        .contains("Welcome to Acme! You joined as Member."));
    assert!(
        !bea_team.body.contains("Invite Member"),
        "Members are not offered team management"
    );
    assert!(!bea_team.body.contains("Change role"));

    // The link is single-use.
    let mut replay = app.browser();
    let used = replay.get(&link).await;
    assert_eq!(used.status, StatusCode::GONE);
    assert!(used.body.contains("already been accepted"));

    // The Admin changes Bea's role; the rules hold.
    let team = admin.visit("/team").await;
    let bea_id = member_id(&team.body, "Bea@acme.test").expect("Bea is a member");
    assert!(
        invitation_id(&team.body, "Bea@acme.test").is_none(),
        "no longer Invited"
    );
    let page = admin
        .submit(
            &format!("/team/members/{bea_id}/role"),
            &[("role", "manager")],
        )
        .await;
    assert!(page.body.contains("Bea@acme.test is now a Manager."));
    let to_admin = admin
        .post_form(
            &format!("/team/members/{bea_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(to_admin.status, StatusCode::BAD_REQUEST);
    let admin_id = app.store.cross_tenant().list_teams().await.unwrap()[0]
        .team
        .admin_user_id
        .clone();
    let own = admin
        .post_form(
            &format!("/team/members/{admin_id}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(
        own.status,
        StatusCode::BAD_REQUEST,
        "the Admin's role is never changed here"
    );

    // Now a Manager, Bea manages the team but cannot touch the Admin.
    let bea_team = bea.visit("/team").await;
    assert!(bea_team.body.contains("Invite Member"));
    let at_admin = bea
        .post_form(&format!("/team/members/{admin_id}/remove"), &[])
        .await;
    assert_eq!(at_admin.status, StatusCode::BAD_REQUEST);

    // Remove the other invitation: its link dies.
    let cid_link = app.outbox_link("cid@acme.test").await;
    let cid_invitation = invitation_id(&team.body, "cid@acme.test").unwrap();
    let page = admin
        .submit(&format!("/team/invitations/{cid_invitation}/revoke"), &[])
        .await;
    assert!(page
        .body
        .contains("The invitation to cid@acme.test was removed."));
    assert!(invitation_id(&page.body, "cid@acme.test").is_none());
    // A stale tab acting on an invitation that is no longer pending gets an explanation.
    let bea_invitation = invitation_id(&team.body, "Bea@acme.test");
    assert!(
        bea_invitation.is_none(),
        "Bea's invitation row is gone once accepted"
    );
    let stale = admin
        .submit(&format!("/team/invitations/{cid_invitation}/revoke"), &[])
        .await;
    assert!(
        stale
            .body
            .contains("The invitation to cid@acme.test was already revoked."),
        "{}",
        stale.body
    );
    let revoked = app.browser().get(&cid_link).await;
    assert_eq!(revoked.status, StatusCode::GONE);
    assert!(revoked.body.contains("Invitation revoked"));

    // The audit log tells the story, to Managers and the Admin only.
    let log = admin.visit("/team/audit").await.without_wbr();
    for action in [
        "team.signed_up",
        "invitation.sent",
        "invitation.accepted",
        "member.role_changed",
        "invitation.revoked",
    ] {
        assert!(log.body.contains(action), "audit log lists {action}");
    }
    assert!(log.body.contains("Member → Manager"));
    assert!(log.body.contains("127.0.0.1"), "audit entries carry the IP");
    app.stop().await;
}
backend_test!(invite_accept_and_manage_roles);

async fn resend_replaces_the_link_and_is_throttled(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            resend_interval: Some(Duration::from_millis(1_500)),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("a@r.test", "Resenders").await;
    let team = admin
        .submit(
            "/team/invitations",
            &[("emails", "dee@r.test"), ("role", "labeler")],
        )
        .await;
    let id = invitation_id(&team.body, "dee@r.test").unwrap();
    let first_link = app.outbox_link("dee@r.test").await;

    let soon = admin
        .submit(&format!("/team/invitations/{id}/resend"), &[])
        .await;
    assert!(
        soon.body
            .contains("was sent moments ago; you can resend it in"),
        "throttled"
    );
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let page = admin
        .submit(&format!("/team/invitations/{id}/resend"), &[])
        .await;
    assert!(page
        .body
        .contains("A fresh invitation link was sent to dee@r.test."));
    let second_link = app.outbox_link("dee@r.test").await;
    assert_ne!(first_link, second_link);

    let old = app.browser().get(&first_link).await;
    assert_eq!(old.status, StatusCode::GONE);
    assert!(old.body.contains("Link replaced"));
    let mut dee = accept(&app, &second_link, "Dee").await;
    // Labelers are not team members in the dashboard sense: no team page; their home is the
    // labeling queue.
    assert_eq!(dee.get("/team").await.status, StatusCode::FORBIDDEN);
    let page = dee.visit("/").await;
    assert!(page.body.contains("<h1>Labeling</h1>"), "{}", page.body);

    // Inviting someone already pending refreshes that invitation instead of duplicating it,
    // but not within the resend interval (the invite form is no way around the throttle).
    let invite_eve = [("emails", "eve@r.test"), ("role", "member")];
    admin.submit("/team/invitations", &invite_eve).await;
    let soon = admin.submit("/team/invitations", &invite_eve).await;
    assert!(
        soon.body
            .contains("Invited moments ago, not sent again: eve@r.test"),
        "{}",
        soon.body
    );
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let again = admin
        .submit(
            "/team/invitations",
            &[("emails", "EVE@r.test"), ("role", "manager")],
        )
        .await;
    assert_eq!(
        again.body.matches("data-email=\"eve@r.test\"").count(),
        1,
        "{}",
        again.body
    );
    let team_id = app.store.cross_tenant().list_teams().await.unwrap()[0]
        .team
        .id
        .clone();
    let pending = app
        .store
        .list_pending_invitations(&team_scope(&team_id))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].role, tessera_core::Role::Manager);
    assert_eq!(pending[0].send_count, 2);
    app.stop().await;
}
backend_test!(resend_replaces_the_link_and_is_throttled);

async fn accept_page_explains_every_dead_end(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut a = app.sign_up("a@one.test", "One").await;
    let _b = app.sign_up("b@two.test", "Two").await;

    // Unknown and malformed links.
    let mut anon = app.browser();
    let unknown = anon.get("/invite/nonexistenttoken").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("This invitation link is not valid"));
    let long = anon.get(&format!("/invite/{}", "x".repeat(5000))).await;
    assert_eq!(long.status, StatusCode::NOT_FOUND);

    // An address that belongs to another team.
    a.submit(
        "/team/invitations",
        &[("emails", "B@two.test"), ("role", "member")],
    )
    .await;
    let link = app.outbox_link("B@two.test").await;
    let taken = anon.get(&link).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(taken
        .body
        .contains("belongs to another team — contact support"));
    let post = anon
        .post_form(
            &link,
            &[
                ("name", "B"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(post.status, StatusCode::CONFLICT);

    // An expired link.
    a.submit(
        "/team/invitations",
        &[("emails", "late@one.test"), ("role", "member")],
    )
    .await;
    let late = app.outbox_link("late@one.test").await;
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("UPDATE invitation_tokens SET expires_at = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let expired = anon.get(&late).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(
        expired.body.contains("Invitation expired")
            && expired.body.contains("Ask a Manager of One to resend it")
    );
    let post = anon
        .post_form(
            &late,
            &[
                ("name", "Late"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(post.status, StatusCode::GONE);
    assert!(app
        .store
        .find_user_by_email(&tessera_core::Email::parse("late@one.test").unwrap())
        .await
        .unwrap()
        .is_none());
    app.stop().await;
}
backend_test!(accept_page_explains_every_dead_end);

async fn removing_a_member_and_inviting_them_back(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("a@rm.test", "Removers").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "fay@rm.test"), ("role", "member")],
        )
        .await;
    let mut fay = accept(&app, &app.outbox_link("fay@rm.test").await, "Fay").await;
    assert_eq!(fay.visit("/team").await.status, StatusCode::OK);

    let team = admin.visit("/team").await;
    let fay_id = member_id(&team.body, "fay@rm.test").unwrap();
    let confirm = admin.get(&format!("/team/members/{fay_id}/remove")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Remove Fay?"));
    let page = admin
        .submit(&format!("/team/members/{fay_id}/remove"), &[])
        .await;
    assert!(page
        .body
        .contains("fay@rm.test has been removed from the team."));
    assert!(member_id(&page.body, "fay@rm.test").is_none());
    assert_eq!(
        fay.get("/team").await.status,
        StatusCode::SEE_OTHER,
        "her sessions ended"
    );

    // Her account remains, in no team: a new invitation asks only for her password.
    admin
        .submit(
            "/team/invitations",
            &[("emails", "fay@rm.test"), ("role", "manager")],
        )
        .await;
    let link = app.outbox_link("fay@rm.test").await;
    let mut fay = app.browser();
    let form = fay.get(&link).await;
    assert!(form.body.contains("Enter its password to join"));
    let wrong = fay
        .post_form(&link, &[("password", "not her password")])
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let ok = fay.post_form(&link, &[("password", PASSWORD)]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let back = fay.visit("/team").await;
    assert!(back.body.contains("You joined as Manager."));
    let log = admin.visit("/team/audit").await.without_wbr();
    assert!(log.body.contains("member.removed"));
    app.stop().await;
}
backend_test!(removing_a_member_and_inviting_them_back);

async fn team_details_are_validated_and_audited(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("a@d.test", "Details").await;
    let _other = app.sign_up("b@d.test", "Taken Name").await;
    let bad = admin
        .post_form(
            "/team/details",
            &[("name", "Details"), ("default_callback_url", "ftp://nope")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("absolute http:// or https:// URL")
            && bad.body.contains("value=\"ftp://nope\"")
    );
    let ok = admin
        .submit(
            "/team/details",
            &[
                ("name", "Details Renamed"),
                ("default_callback_url", "https://hooks.example.com/scale"),
            ],
        )
        .await;
    assert!(ok.body.contains("Team details saved."));
    assert!(ok
        .body
        .contains("value=\"https://hooks.example.com/scale\""));
    let team = app
        .store
        .cross_tenant()
        .find_teams_by_name("details renamed")
        .await
        .unwrap()
        .remove(0)
        .team;
    assert_eq!(
        team.default_callback_url.as_deref(),
        Some("https://hooks.example.com/scale")
    );
    let log = admin.visit("/team/audit").await.without_wbr();
    assert!(log.body.contains("team.details_changed"));
    assert!(
        log.body
            .contains("name: &#34;Details&#34; → &#34;Details Renamed&#34;")
            || log.body.contains("name: &quot;Details&quot;"),
        "{}",
        log.body
    );
    // Another customer's name is no secret to guard and no conflict: names are not unique.
    let same = admin
        .submit(
            "/team/details",
            &[("name", "taken name"), ("default_callback_url", "")],
        )
        .await;
    assert!(same.body.contains("Team details saved."), "{}", same.body);
    assert!(!same.body.contains("already exists"));
    assert_eq!(
        app.store
            .cross_tenant()
            .find_teams_by_name("Taken Name")
            .await
            .unwrap()
            .len(),
        2
    );
    app.stop().await;
}
backend_test!(team_details_are_validated_and_audited);

async fn audit_log_pages(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("a@log.test", "Loggers").await;
    let emails: Vec<String> = (0..60).map(|i| format!("p{i}@log.test")).collect();
    for chunk in emails.chunks(20) {
        admin
            .submit(
                "/team/invitations",
                &[("emails", &chunk.join(",")), ("role", "member")],
            )
            .await;
    }
    // The entries of a page (the filter's select names every action too).
    let table = |body: &str| {
        extract_between(body, "id=\"audit\">", "</table>")
            .unwrap_or_default()
            .replace("<wbr>", "")
    };
    let first = admin.visit("/team/audit").await.without_wbr();
    assert_eq!(table(&first.body).matches("invitation.sent").count(), 50);
    let cursor =
        extract_between(&first.body, "/team/audit?cursor=", "\"").expect("older page link");
    let second = admin.visit(&format!("/team/audit?cursor={cursor}")).await;
    assert_eq!(table(&second.body).matches("invitation.sent").count(), 10);
    assert!(table(&second.body).contains("team.signed_up"));
    assert!(!second.body.contains("?cursor="), "last page");
    app.stop().await;
}
backend_test!(audit_log_pages);

/// Six invitation forms of 20 addresses at once against the budget of 100 an hour: the
/// units are taken before anything is sent, so at most 100 go out (the budget used to be
/// checked, then recorded address by address, and parallel forms all passed the check).
async fn parallel_invitations_stay_within_the_hourly_budget(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let _admin = app.sign_up("burst@acme.test", "Burst").await;
    let mut forms = Vec::new();
    for n in 0..6 {
        let mut b = app.browser();
        let signed_in = b
            .post_form(
                "/login",
                &[("email", "burst@acme.test"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
        b.visit("/team").await;
        let emails: Vec<String> = (0..20).map(|i| format!("p{n}-{i}@burst.test")).collect();
        forms.push(tokio::spawn(async move {
            b.post_form(
                "/team/invitations",
                &[("emails", &emails.join(",")), ("role", "member")],
            )
            .await
            .status
        }));
    }
    for form in forms {
        form.await.unwrap();
    }
    let team = app
        .store
        .cross_tenant()
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.team.name == "Burst")
        .unwrap()
        .team;
    let invited = app
        .store
        .list_pending_invitations(&team_scope(&team.id))
        .await
        .unwrap()
        .len();
    assert!(invited <= 100, "{invited} invitations");
    assert_eq!(
        invited % 20,
        0,
        "a form is sent whole or not at all: {invited}"
    );
    let mail = app.store.cross_tenant().list_mail(500, 0).await.unwrap();
    assert!(
        mail.iter()
            .filter(|m| m.to.ends_with("@burst.test"))
            .count()
            <= 100
    );
    app.stop().await;
}
backend_test!(parallel_invitations_stay_within_the_hourly_budget);

/// Signed in as one person, an invitation for another address asks to sign out first; the
/// accept form posted anyway changes nothing and keeps the session (issue 9, item 4).
async fn invitation_for_someone_else_asks_to_sign_out(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("admin@switch.test", "Switchers").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "New@switch.test"), ("role", "member")],
        )
        .await;
    let link = app.outbox_link("New@switch.test").await;

    let shown = admin.get(&link).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(
        shown.body.contains(
            "You are signed in as <strong>admin@switch.test</strong>; this invitation is for <strong>New@switch.test</strong> — sign out to accept."
        ),
        "{}",
        shown.body
    );
    assert!(
        !shown.body.contains("name=\"confirm_password\""),
        "no accept form while signed in as someone else"
    );
    assert!(shown.body.contains("action=\"/logout\""));
    assert!(shown
        .body
        .contains(&format!("name=\"next\" value=\"{link}\"")));

    // Posting the accept form anyway is refused: no account, no new session.
    let forced = admin
        .post_form(
            &link,
            &[
                ("name", "New Person"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forced.status, StatusCode::CONFLICT, "{}", forced.body);
    assert!(forced.body.contains("sign out to accept"));
    assert!(
        !forced
            .set_cookies
            .iter()
            .any(|c| c.contains("tessera_session=")),
        "the session is not replaced: {:?}",
        forced.set_cookies
    );
    assert!(app
        .store
        .find_user_by_email(&tessera_core::Email::parse("new@switch.test").unwrap())
        .await
        .unwrap()
        .is_none());
    let team = admin.visit("/team").await;
    assert_eq!(team.status, StatusCode::OK);
    assert!(
        team.body.contains("Ada Admin") && invitation_id(&team.body, "New@switch.test").is_some()
    );

    // Signing out returns to the invitation, which now offers the accept form.
    let out = admin.post_form("/logout", &[("next", &link)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some(link.as_str()));
    let form = admin.visit(&link).await;
    assert!(
        form.body.contains("name=\"confirm_password\""),
        "{}",
        form.body
    );
    // `next` is followed only on this site.
    let mut other = app.browser();
    let out = other
        .post_form("/logout", &[("next", "//evil.example/x")])
        .await;
    assert_eq!(out.location.as_deref(), Some("/login"));

    // Signed in as the invited address itself (an account in no team): the usual flow.
    let mut lead = app.sign_up("lead@switch.test", "Leaders").await;
    admin
        .post_form(
            "/login",
            &[("email", "admin@switch.test"), ("password", PASSWORD)],
        )
        .await;
    let mut fay = accept(&app, &link, "Fay").await;
    let team = admin.visit("/team").await;
    let fay_id = member_id(&team.body, "New@switch.test").unwrap();
    admin
        .submit(&format!("/team/members/{fay_id}/remove"), &[])
        .await;
    lead.submit(
        "/team/invitations",
        &[("emails", "new@switch.test"), ("role", "manager")],
    )
    .await;
    let lead_link = app.outbox_link("new@switch.test").await;
    let signed_in = fay
        .post_form(
            "/login",
            &[("email", "new@switch.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let own = fay.get(&lead_link).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(
        own.body.contains("Enter its password to join"),
        "{}",
        own.body
    );
    let joined = fay.post_form(&lead_link, &[("password", PASSWORD)]).await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    assert!(fay
        .visit("/team")
        .await
        .body
        .contains("Welcome to Leaders!"));
    app.stop().await;
}
backend_test!(invitation_for_someone_else_asks_to_sign_out);

/// Re-inviting a pending address with another role changes the role and says so — within
/// the resend interval too (no new email then, but the link already sent grants the new
/// role) — and the change is in the audit log.
async fn reinviting_with_another_role_changes_it_and_says_so(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            resend_interval: Some(Duration::from_millis(1_500)),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("a@roles.test", "Re-inviters").await;
    let team_id = app.store.cross_tenant().list_teams().await.unwrap()[0]
        .team
        .id
        .clone();
    admin
        .submit(
            "/team/invitations",
            &[("emails", "fay@roles.test"), ("role", "member")],
        )
        .await;
    let link = app.outbox_link("fay@roles.test").await;
    let mails_before = app
        .store
        .cross_tenant()
        .list_mail(100, 0)
        .await
        .unwrap()
        .len();

    // Within the resend interval: the role changes, no email goes out, the flash says both.
    let soon = admin
        .submit(
            "/team/invitations",
            &[("emails", "fay@roles.test"), ("role", "manager")],
        )
        .await;
    assert!(
        soon.body
            .contains("fay@roles.test invited again as Manager (was Member)"),
        "{}",
        soon.body
    );
    assert!(soon.body.contains("no new email was sent"), "{}", soon.body);
    let pending = app
        .store
        .list_pending_invitations(&team_scope(&team_id))
        .await
        .unwrap();
    assert_eq!(pending[0].role, tessera_core::Role::Manager);
    assert_eq!(pending[0].send_count, 1);
    assert_eq!(
        app.store
            .cross_tenant()
            .list_mail(100, 0)
            .await
            .unwrap()
            .len(),
        mails_before
    );
    let accept_page = app.browser().get(&link).await;
    assert!(accept_page.body.contains("Manager"), "{}", accept_page.body);
    // The same role again within the interval is still just "not sent again".
    let same = admin
        .submit(
            "/team/invitations",
            &[("emails", "fay@roles.test"), ("role", "manager")],
        )
        .await;
    assert!(
        same.body
            .contains("Invited moments ago, not sent again: fay@roles.test"),
        "{}",
        same.body
    );

    // After the interval: a fresh email with the new role, and the flash names the change.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let later = admin
        .submit(
            "/team/invitations",
            &[("emails", "fay@roles.test"), ("role", "labeler")],
        )
        .await;
    assert!(
        later
            .body
            .contains("fay@roles.test invited again as Labeler (was Manager)."),
        "{}",
        later.body
    );
    let pending = app
        .store
        .list_pending_invitations(&team_scope(&team_id))
        .await
        .unwrap();
    assert_eq!(pending[0].role, tessera_core::Role::Labeler);
    assert_eq!(pending[0].send_count, 2);

    let audit = admin.visit("/team/audit").await.without_wbr();
    assert!(
        audit.body.contains("invitation.role_changed"),
        "{}",
        audit.body
    );
    assert!(audit.body.contains("Member → Manager"), "{}", audit.body);
    assert!(audit.body.contains("(was Manager)"), "{}", audit.body);
    app.stop().await;
}
backend_test!(reinviting_with_another_role_changes_it_and_says_so);

/// While the resend interval runs, Resend is shown disabled with the time left, and a resend
/// refused by it is a warning, not the green success message.
async fn resend_cooldown_is_a_warning_and_disables_resend(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            resend_interval: Some(Duration::from_millis(1_500)),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.sign_up("a@cool.test", "Cooldown").await;
    let team = admin
        .submit(
            "/team/invitations",
            &[("emails", "hal@cool.test"), ("role", "member")],
        )
        .await;
    assert!(
        team.body
            .contains("<div class=\"flash\" role=\"status\">Invitation sent to"),
        "a success is in the success style: {}",
        team.body
    );
    let id = invitation_id(&team.body, "hal@cool.test").unwrap();
    let row = &team.body[team.body.find("data-email=\"hal@cool.test\"").unwrap()..];
    let button = extract_between(
        row,
        "<button type=\"submit\" class=\"small secondary\"",
        "</button>",
    )
    .expect("the Resend button");
    assert!(button.contains(" disabled"), "{button}");
    assert!(
        button.contains(">Resend in ") && button.contains(" second"),
        "{button}"
    );

    let refused = admin
        .submit(&format!("/team/invitations/{id}/resend"), &[])
        .await;
    assert!(
        refused
            .body
            .contains("<div class=\"flash flash-warning\" role=\"status\">The invitation to hal@cool.test was sent moments ago"),
        "{}",
        refused.body
    );
    // Inviting the address again with the same role: nothing was done, a warning too.
    let again = admin
        .submit(
            "/team/invitations",
            &[("emails", "hal@cool.test"), ("role", "member")],
        )
        .await;
    assert!(
        again.body.contains("class=\"flash flash-warning\""),
        "{}",
        again.body
    );

    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let later = admin.visit("/team").await;
    let row = &later.body[later.body.find("data-email=\"hal@cool.test\"").unwrap()..];
    let button = extract_between(
        row,
        "<button type=\"submit\" class=\"small secondary\"",
        "</button>",
    )
    .expect("the Resend button");
    assert_eq!(button, ">Resend", "enabled once the interval ran out");
    let sent = admin
        .submit(&format!("/team/invitations/{id}/resend"), &[])
        .await;
    assert!(
        sent.body
            .contains("<div class=\"flash\" role=\"status\">A fresh invitation link was sent"),
        "{}",
        sent.body
    );
    app.stop().await;
}
backend_test!(resend_cooldown_is_a_warning_and_disables_resend);
