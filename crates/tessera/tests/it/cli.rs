//! The operator CLI (`tessera admin …`), run as the real binary against a fresh database.

use std::process::Output;

use tessera_core::{profile::Profile, Email, Role};
use tessera_server::crypto::token_digest;
use tessera_store::{NewAuditEvent, NewInvitation, NewMail, NewUser, Store};

use crate::{backend_test, helpers::*};

async fn tessera(db: &TestDb, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(&db.dir)
        .arg("--database-url")
        .arg(&db.url)
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

async fn operator_cli(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let out = tessera(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "Ops Team",
            "--admin-email",
            "Owner@ops.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let team_id = stdout(&out);
    assert!(
        team_id.starts_with("team_") && !team_id.contains(char::is_whitespace),
        "prints the id alone: {team_id}"
    );

    let dup = tessera(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "ops team",
            "--admin-email",
            "x@ops.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(!dup.status.success());
    assert!(
        stderr(&dup).contains("A team named \"ops team\" already exists."),
        "{}",
        stderr(&dup)
    );
    assert!(stdout(&dup).is_empty());

    let weak = tessera(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "Weak",
            "--admin-email",
            "w@ops.test",
            "--password",
            "short",
        ],
    )
    .await;
    assert!(!weak.status.success());
    assert!(stderr(&weak).contains("at least 10 characters"));

    let staff = tessera(
        &db,
        &[
            "admin",
            "create-staff",
            "--email",
            "help@tessera.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(staff.status.success(), "{}", stderr(&staff));

    let store = db.store().await;
    let other = tessera(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "Other",
            "--admin-email",
            "lead@other.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(other.status.success());

    let no_team = tessera(
        &db,
        &[
            "admin",
            "move-user",
            "--email",
            "lead@other.test",
            "--team",
            "Nope",
        ],
    )
    .await;
    assert!(!no_team.status.success());
    assert!(stderr(&no_team).contains("No team is named \"Nope\"."));
    let admin_move = tessera(
        &db,
        &[
            "admin",
            "move-user",
            "--email",
            "lead@other.test",
            "--team",
            "Ops Team",
        ],
    )
    .await;
    assert!(
        !admin_move.status.success(),
        "a team's Admin cannot be moved away"
    );
    assert!(stderr(&admin_move).contains("is the Admin of their team"));
    let staff_move = tessera(
        &db,
        &[
            "admin",
            "move-user",
            "--email",
            "help@tessera.test",
            "--team",
            "Ops Team",
        ],
    )
    .await;
    assert!(!staff_move.status.success());
    assert!(stderr(&staff_move).contains("staff account"));
    let already = tessera(
        &db,
        &[
            "admin",
            "set-admin",
            "--team",
            "Other",
            "--email",
            "lead@other.test",
        ],
    )
    .await;
    assert!(!already.status.success());
    assert!(stderr(&already).contains("already the Admin"));

    // Make a member, then hand over the Admin role.
    let invited = member_via_store(&store, "Ops Team", "max@ops.test").await;
    let moved = tessera(
        &db,
        &[
            "admin",
            "move-user",
            "--email",
            "max@ops.test",
            "--team",
            "Other",
            "--role",
            "manager",
        ],
    )
    .await;
    assert!(moved.status.success(), "{}", stderr(&moved));
    assert_eq!(stdout(&moved), "max@ops.test is now in Other as manager");
    let user = store.get_user(&invited).await.unwrap();
    assert_eq!(user.role, Some(Role::Manager));
    let other_team = store.find_team_by_name("Other").await.unwrap().unwrap();
    assert_eq!(user.team_id.as_deref(), Some(other_team.id.as_str()));

    let handover = tessera(
        &db,
        &[
            "admin",
            "set-admin",
            "--team",
            "other",
            "--email",
            "MAX@ops.test",
        ],
    )
    .await;
    assert!(handover.status.success(), "{}", stderr(&handover));
    let other_team = store.find_team_by_name("Other").await.unwrap().unwrap();
    assert_eq!(other_team.admin_user_id, invited);
    let previous = store
        .find_user_by_email(&tessera_core::Email::parse("lead@other.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        previous.role,
        Some(Role::Manager),
        "the old Admin becomes a Manager"
    );
    let not_member = tessera(
        &db,
        &[
            "admin",
            "set-admin",
            "--team",
            "Other",
            "--email",
            "Owner@ops.test",
        ],
    )
    .await;
    assert!(!not_member.status.success());
    assert!(stderr(&not_member).contains("is not a member of Other"));

    let list = tessera(&db, &["admin", "list-teams"]).await;
    assert!(list.status.success());
    let listing = stdout(&list);
    assert!(
        listing.contains("Ops Team")
            && listing.contains("Owner@ops.test")
            && listing.contains(&team_id)
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("Other") && l.contains("max@ops.test") && l.contains(" 2 ")),
        "{listing}"
    );

    // The CLI's actions are in the teams' audit logs.
    let log = store.list_audit(&other_team.id, None, 50).await.unwrap();
    assert!(log
        .events
        .iter()
        .any(|e| e.action == "team.admin_changed" && e.actor == "operator (CLI)"));
    assert!(log.events.iter().any(|e| e.action == "user.moved"));
    store.close().await;
}
backend_test!(operator_cli);

/// Adds a member to the named team directly through the store (invite + accept).
async fn member_via_store(store: &Store, team: &str, email: &str) -> String {
    let team = store.find_team_by_name(team).await.unwrap().unwrap();
    let token = unique("t");
    let event = NewAuditEvent {
        actor: "test".into(),
        action: "test".into(),
        ..Default::default()
    };
    store
        .invite(&NewInvitation {
            team_id: team.id.clone(),
            email: Email::parse(email).unwrap(),
            role: Role::Member,
            invited_by: team.admin_user_id.clone(),
            token_hash: token_digest(&token),
            expires_at: tessera_store::now_ms() + 60_000,
            min_resend_interval_ms: 0,
            mail: NewMail {
                team_id: None,
                to: email.into(),
                subject: "s".into(),
                body_sealed: "v1.AAAA".into(),
            },
            event: event.clone(),
        })
        .await
        .unwrap();
    let user = NewUser {
        email: Email::parse(email).unwrap(),
        password_hash: tessera_server::crypto::hash_password(PASSWORD.into())
            .await
            .unwrap(),
        profile: Profile::parse("Max", "", "", "").unwrap(),
    };
    store
        .accept_invitation(&token_digest(&token), Some(&user), None, event)
        .await
        .unwrap()
        .id
}

/// A master key file that group or others may read is refused, with the fix in the message.
#[cfg(unix)]
async fn loose_master_key_file_is_refused(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(&backend).await;
    let first = tessera(&db, &["admin", "list-teams"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let path = db.dir.join("master.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = tessera(&db, &["admin", "list-teams"]).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(&format!("chmod 600 {}", path.display())),
        "{}",
        stderr(&refused)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(tessera(&db, &["admin", "list-teams"]).await.status.success());
}
#[cfg(unix)]
backend_test!(loose_master_key_file_is_refused);
