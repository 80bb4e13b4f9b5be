//! The Admin hand-over, on both databases with mail through a real SMTP server: the Admin
//! offers the role to a Manager (confirm step), the Manager accepts by the mailed link and the
//! roles swap; someone else's session, a reused link, a withdrawn offer, a demoted or removed
//! Manager and an Admin changed by support are each refused with a clear page. Also the team
//! page's invite form: roles described, a pending invitation's role edited, and an address of
//! another team warned about when inviting.

use reqwest::StatusCode;
use tessera_core::{ids::InvitationId, Email, Role};
use tessera_server::staff::support::{self, Operator};
use tessera_store::AuditAction;

use crate::{backend_test, helpers::*};

/// The hand-over link's path (`/admin-handover/<token>`) in a mail.
fn handover_path(message: &str) -> String {
    let start = message
        .find("/admin-handover/")
        .expect("message has a hand-over link");
    let token: String = message[start + "/admin-handover/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("/admin-handover/{token}")
}

/// Waits for a hand-over mail to `to` whose link is not in `seen`, notes it and returns it
/// (a maildir lists messages in no particular order).
async fn new_handover_link(smtp: &SmtpServer, to: &str, seen: &mut Vec<String>) -> String {
    let link = TestApp::eventually(20, || async {
        smtp.messages()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {to}")) && m.contains("/admin-handover/"))
            .map(|m| handover_path(&m))
            .find(|link| !seen.contains(link))
    })
    .await;
    seen.push(link.clone());
    link
}

async fn user(app: &TestApp, email: &str) -> tessera_store::User {
    app.store
        .find_user_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
}

async fn actions(app: &TestApp, team_id: &str) -> Vec<(AuditAction, String, String)> {
    app.store
        .list_audit(&team_scope(team_id), None, 200)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.action, e.actor, e.detail))
        .collect()
}

async fn login(app: &TestApp, email: &str) -> Browser {
    let mut b = app.browser();
    let r = b
        .post_form("/login", &[("email", email), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "login {email}: {}", r.body);
    b
}

async fn offer(admin: &mut Browser, to_id: &str) -> Page {
    admin.post_form("/team/handover", &[("to", to_id)]).await
}

async fn offer_accept_and_refusals(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            smtp_url: Some(smtp.url()),
            ..Options::default()
        },
    )
    .await;
    let mut ada = app.sign_up("ada@handover.test", "Handover Co").await;
    let mut max = join_as(&app, &mut ada, "max@handover.test", "manager").await;
    let mut mia = join_as(&app, &mut ada, "mia@handover.test", "member").await;
    let (max_id, mia_id) = (
        user(&app, "max@handover.test").await.id,
        user(&app, "mia@handover.test").await.id,
    );
    let team_id = user(&app, "ada@handover.test").await.team_id.unwrap();

    // The Admin's team page offers the role to Managers only.
    let page = ada.get("/team").await;
    let section = extract_between(&page.body, "id=\"handover\"", "</section>").unwrap();
    assert!(
        section.contains(&format!("value=\"{max_id}\"")),
        "{section}"
    );
    assert!(!section.contains(&mia_id), "{section}");
    assert!(!max.get("/team").await.body.contains("id=\"handover\""));

    // Nobody but the Admin may offer; the Admin only to a Manager.
    assert_eq!(
        max.get(&format!("/team/handover?to={max_id}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(offer(&mut max, &max_id).await.status, StatusCode::FORBIDDEN);
    assert_eq!(offer(&mut mia, &max_id).await.status, StatusCode::FORBIDDEN);
    let to_member = ada.get(&format!("/team/handover?to={mia_id}")).await;
    assert_eq!(to_member.status, StatusCode::BAD_REQUEST);
    assert!(
        to_member.body.contains("only to a Manager"),
        "{}",
        to_member.body
    );
    assert_eq!(
        ada.get("/team/handover?to=usr_nobody").await.status,
        StatusCode::NOT_FOUND
    );

    // The confirm step, then the offer.
    let confirm = ada.get(&format!("/team/handover?to={max_id}")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Hand the Admin role to Pat Person?"));
    assert!(confirm.body.contains("you become a Manager"));
    let sent = offer(&mut ada, &max_id).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let page = ada.visit("/team").await;
    assert!(
        page.body
            .contains("The Admin role was offered to max@handover.test"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"handover-pending\""));
    assert!(
        !page.body.contains("id=\"handover-offer\""),
        "one offer at a time"
    );
    let again = offer(&mut ada, &max_id).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("pending already"), "{}", again.body);

    let link = new_handover_link(&smtp, "max@handover.test", &mut Vec::new()).await;
    let message = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains(&link))
        .unwrap();
    assert!(
        message.contains("Subject: Ada Admin offers you the Admin role of Handover Co"),
        "{message}"
    );

    // Someone else signed in is told whose offer it is; submitting is refused.
    let other = mia.get(&link).await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(
        other.body.contains("This offer is for someone else")
            && other.body.contains("max@handover.test"),
        "{}",
        other.body
    );
    assert!(
        other.body.contains(&format!("value=\"{link}\"")),
        "sign out returns to the link"
    );
    assert_eq!(
        mia.post_form(&link, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ada.post_form(&link, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // Not signed in: sign in first, then back to the link.
    let anonymous = app.browser().get(&link).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert!(
        anonymous
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/login?next=%2Fadmin-handover%2F")),
        "{:?}",
        anonymous.location
    );
    assert_eq!(
        user(&app, "max@handover.test").await.role,
        Some(Role::Manager)
    );

    // The Manager accepts: the roles swap.
    let form = max.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("Become the Admin of Handover Co?"),
        "{}",
        form.body
    );
    let accepted = max.post_form(&link, &[]).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert_eq!(accepted.location.as_deref(), Some("/team"));
    let page = max.visit("/team").await;
    assert!(
        page.body
            .contains("You are now the Admin of Handover Co; ada@handover.test is now a Manager."),
        "{}",
        page.body
    );
    assert_eq!(
        user(&app, "max@handover.test").await.role,
        Some(Role::Admin)
    );
    assert_eq!(
        user(&app, "ada@handover.test").await.role,
        Some(Role::Manager)
    );
    let team = app.store.cross_tenant().get_team(&team_id).await.unwrap();
    assert_eq!(team.admin_user_id, max_id);
    // The former Admin lost what only the Admin may do.
    assert_eq!(
        ada.get(&format!("/team/handover?to={max_id}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(max.get("/team").await.body.contains("id=\"handover\""));

    // Both steps are in the team's audit log.
    let log = actions(&app, &team_id).await;
    assert!(log.iter().any(
        |(a, actor, detail)| *a == AuditAction::TeamAdminHandoverOffered
            && actor == "ada@handover.test"
            && detail.contains("max@handover.test")
    ));
    assert!(log.iter().any(
        |(a, actor, detail)| *a == AuditAction::TeamAdminHandoverAccepted
            && actor == "max@handover.test"
            && detail.contains("max@handover.test is now the Admin")
    ));

    // The link worked once.
    let reused = max.post_form(&link, &[]).await;
    assert_eq!(reused.status, StatusCode::GONE);
    assert!(reused.body.contains("accepted already"), "{}", reused.body);
    assert_eq!(max.get(&link).await.status, StatusCode::GONE);
    assert_eq!(
        user(&app, "max@handover.test").await.role,
        Some(Role::Admin)
    );
    assert_eq!(
        max.get("/admin-handover/not-a-token").await.status,
        StatusCode::NOT_FOUND
    );

    app.stop().await;
    smtp.stop().await;
}
backend_test!(offer_accept_and_refusals);

async fn cancelled_demoted_removed_and_support_changes(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            smtp_url: Some(smtp.url()),
            ..Options::default()
        },
    )
    .await;
    let mut ada = app.sign_up("ada@changes.test", "Changes Co").await;
    let mut max = join_as(&app, &mut ada, "max@changes.test", "manager").await;
    let mut nia = join_as(&app, &mut ada, "nia@changes.test", "manager").await;
    let (max_id, nia_id) = (
        user(&app, "max@changes.test").await.id,
        user(&app, "nia@changes.test").await.id,
    );
    let team_id = user(&app, "ada@changes.test").await.team_id.unwrap();

    // A withdrawn offer's link is refused.
    assert_eq!(offer(&mut ada, &max_id).await.status, StatusCode::SEE_OTHER);
    let mut seen = Vec::new();
    let first = new_handover_link(&smtp, "max@changes.test", &mut seen).await;
    let page = ada.get("/team").await;
    let id = extract_between(&page.body, "name=\"id\" value=\"", "\"").unwrap();
    let cancelled = ada.post_form("/team/handover/cancel", &[("id", &id)]).await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    let withdrawn = max.get(&first).await;
    assert_eq!(withdrawn.status, StatusCode::GONE);
    assert!(
        withdrawn.body.contains("withdrew this offer"),
        "{}",
        withdrawn.body
    );
    assert_eq!(max.post_form(&first, &[]).await.status, StatusCode::GONE);
    let again = ada.post_form("/team/handover/cancel", &[("id", &id)]).await;
    assert_eq!(
        again.status,
        StatusCode::SEE_OTHER,
        "cancelling twice is harmless"
    );
    assert!(actions(&app, &team_id).await.iter().any(|(a, _, detail)| *a
        == AuditAction::TeamAdminHandoverCancelled
        && detail.contains("max@changes.test")));

    // The Manager demoted before accepting: refused; the Admin's page says why and lets the
    // Admin offer again.
    assert_eq!(offer(&mut ada, &nia_id).await.status, StatusCode::SEE_OTHER);
    let to_nia = new_handover_link(&smtp, "nia@changes.test", &mut seen).await;
    let demoted = ada
        .post_form(
            &format!("/team/members/{nia_id}/role"),
            &[("role", "member")],
        )
        .await;
    assert_eq!(demoted.status, StatusCode::SEE_OTHER);
    let refused = nia.get(&to_nia).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains("no longer a Manager"),
        "{}",
        refused.body
    );
    assert_eq!(
        nia.post_form(&to_nia, &[]).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        user(&app, "nia@changes.test").await.role,
        Some(Role::Member)
    );
    let page = ada.get("/team").await;
    assert!(
        page.body
            .contains("nia@changes.test is no longer a Manager of the team"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"handover-offer\""));

    // A new offer closes the stale one; then support makes someone else Admin (the CLI's
    // path): the offer no longer stands.
    assert_eq!(offer(&mut ada, &max_id).await.status, StatusCode::SEE_OTHER);
    let to_max = new_handover_link(&smtp, "max@changes.test", &mut seen).await;
    assert_ne!(to_max, first);
    let closed = nia.get(&to_nia).await;
    assert_eq!(closed.status, StatusCode::GONE);
    assert!(closed.body.contains("newer offer"), "{}", closed.body);
    support::set_admin(
        &app.store,
        "Changes Co",
        "nia@changes.test",
        &Operator::cli(),
    )
    .await
    .unwrap();
    let changed = max.get(&to_max).await;
    assert_eq!(changed.status, StatusCode::CONFLICT);
    assert!(
        changed
            .body
            .contains("ada@changes.test is no longer the Admin"),
        "{}",
        changed.body
    );
    assert_eq!(
        max.post_form(&to_max, &[]).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(user(&app, "nia@changes.test").await.role, Some(Role::Admin));
    assert_eq!(
        user(&app, "max@changes.test").await.role,
        Some(Role::Manager)
    );

    // The new Admin offers to a Manager who is then removed from the team.
    let mut nia = login(&app, "nia@changes.test").await;
    let page = nia.get("/team").await;
    assert!(
        page.body.contains("who is no longer the Admin"),
        "the previous Admin's offer is shown as stale: {}",
        page.body
    );
    assert_eq!(offer(&mut nia, &max_id).await.status, StatusCode::SEE_OTHER);
    let to_max_again = new_handover_link(&smtp, "max@changes.test", &mut seen).await;
    let removed = nia
        .post_form(&format!("/team/members/{max_id}/remove"), &[])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let mut max = login(&app, "max@changes.test").await;
    let gone = max.get(&to_max_again).await;
    assert_eq!(gone.status, StatusCode::CONFLICT);
    assert!(gone.body.contains("no longer a Manager"), "{}", gone.body);
    assert_eq!(
        max.post_form(&to_max_again, &[]).await.status,
        StatusCode::CONFLICT
    );
    let team = app.store.cross_tenant().get_team(&team_id).await.unwrap();
    assert_eq!(team.admin_user_id, nia_id);

    app.stop().await;
    smtp.stop().await;
}
backend_test!(cancelled_demoted_removed_and_support_changes);

async fn invite_form_describes_roles_warns_and_edits_pending_roles(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            support_email: Some("help@tessera.test"),
            ..Options::default()
        },
    )
    .await;
    let _owen = app.sign_up("owen@other.test", "Other Co").await;
    let mut ada = app.sign_up("ada@home.test", "Home Co").await;
    let mut mia = join_as(&app, &mut ada, "mia@home.test", "member").await;
    let team_id = user(&app, "ada@home.test").await.team_id.unwrap();

    // Each role is described from the policy.
    let page = ada.get("/team").await;
    let help = extract_between(&page.body, "id=\"role-help\"", "</dl>").unwrap();
    let described = |role: &str| {
        extract_between(&help, &format!("<dt>{role}</dt>"), "</dd>").unwrap_or_default()
    };
    assert!(described("Member").contains("create and edit projects and batches"));
    assert!(!described("Member").contains("teammates"));
    assert!(described("Manager").contains("invite, remove and change the roles of teammates"));
    assert!(!described("Manager").contains("payment"));
    assert!(described("Labeler").contains("labeling queue, and nothing else"));

    // An address of another team is warned about when inviting; the invitation is sent.
    let page = ada
        .submit(
            "/team/invitations",
            &[
                ("emails", "owen@other.test, new@home.test"),
                ("role", "member"),
            ],
        )
        .await;
    assert!(page.body.contains("flash-warning"), "{}", page.body);
    assert!(
        page.body
            .contains("owen@other.test already belongs to another team")
            && page.body.contains("leave their other team")
            && page.body.contains("contact support at help@tessera.test"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("new@home.test already belongs"));
    let pending = app
        .store
        .list_pending_invitations(&team_scope(&team_id))
        .await
        .unwrap();
    assert!(pending.iter().any(|i| i.email == "owen@other.test"));
    let clean = ada
        .submit(
            "/team/invitations",
            &[("emails", "another@home.test"), ("role", "member")],
        )
        .await;
    assert!(!clean.body.contains("flash-warning"), "{}", clean.body);

    // A pending invitation's role is changed from the team page, audited; the link then
    // grants the new role.
    let id = invitation_id(&clean.body, "new@home.test").unwrap();
    assert_eq!(
        mia.post_form(
            &format!("/team/invitations/{id}/role"),
            &[("role", "manager")]
        )
        .await
        .status,
        StatusCode::FORBIDDEN,
        "a Member cannot"
    );
    let bad = ada
        .post_form(
            &format!("/team/invitations/{id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let changed = ada
        .submit(
            &format!("/team/invitations/{id}/role"),
            &[("role", "manager")],
        )
        .await;
    assert!(
        changed
            .body
            .contains("The invitation to new@home.test now grants Manager"),
        "{}",
        changed.body
    );
    let invitation = app
        .store
        .get_invitation(
            &team_scope(&team_id),
            &InvitationId::from_stored(id.clone()),
        )
        .await
        .unwrap();
    assert_eq!(invitation.role, Role::Manager);
    assert!(actions(&app, &team_id)
        .await
        .iter()
        .any(|(a, _, detail)| *a == AuditAction::InvitationRoleChanged
            && detail == "Member → Manager"));
    let link = app.outbox_link("new@home.test").await;
    let mut newcomer = app.browser();
    let joined = newcomer
        .post_form(
            &link,
            &[
                ("name", "New Person"),
                ("company", "Home"),
                ("job_title", ""),
                ("phone", ""),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    assert_eq!(user(&app, "new@home.test").await.role, Some(Role::Manager));

    app.stop().await;
}
backend_test!(invite_form_describes_roles_warns_and_edits_pending_roles);
