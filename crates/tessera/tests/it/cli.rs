//! The operator CLI (`tessera admin …`), run as the real binary against a fresh database.

use std::process::Output;

use tessera_core::{profile::Profile, Email, Role};
use tessera_server::{
    crypto::{token_digest, MasterKey, Purpose},
    keys::rotation::purpose_of,
};
use tessera_store::{
    AuditAction, NewAuditEvent, NewInvitation, NewMail, NewUser, Store, StoreError,
};

use crate::{backend_test, helpers::*};

async fn tessera(db: &TestDb, args: &[&str]) -> Output {
    tessera_env(db, args, &[]).await
}

/// Runs the CLI with these environment variables (and no other key variables).
async fn tessera_env(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(&db.dir)
        .arg("--database-url")
        .arg(&db.url)
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_OLD_MASTER_KEYS")
        .env_remove("TESSERA_NEW_MASTER_KEY")
        .env_remove("TESSERA_ADMIN_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

/// Runs the CLI with `input` on its standard input.
async fn tessera_stdin(db: &TestDb, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(&db.dir)
        .arg("--database-url")
        .arg(&db.url)
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_ADMIN_PASSWORD")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
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
    let other_team = store
        .cross_tenant()
        .find_teams_by_name("Other")
        .await
        .unwrap()
        .remove(0)
        .team;
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
    let other_team = store
        .cross_tenant()
        .find_teams_by_name("Other")
        .await
        .unwrap()
        .remove(0)
        .team;
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
    let log = store
        .list_audit(&team_scope(&other_team.id), None, 50)
        .await
        .unwrap();
    assert!(log
        .events
        .iter()
        .any(|e| e.action == AuditAction::TeamAdminChanged && e.actor == "operator (CLI)"));
    assert!(log
        .events
        .iter()
        .any(|e| e.action == AuditAction::UserMoved));
    store.close().await;
}
backend_test!(operator_cli);

/// Team names are not unique: `create-team` accepts a second "Acme", `list-teams` shows both
/// with their ids, and every command taking `--team` refuses the ambiguous name (listing the
/// ids) and accepts an id (issue 9, item 6).
async fn ambiguous_team_names_need_the_id(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut ids = Vec::new();
    for (name, admin) in [("Acme", "a@anvils.test"), ("acme", "b@rockets.test")] {
        let out = tessera(
            &db,
            &[
                "admin",
                "create-team",
                "--name",
                name,
                "--admin-email",
                admin,
                "--password",
                PASSWORD,
            ],
        )
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        ids.push(stdout(&out));
    }
    assert_ne!(ids[0], ids[1]);
    let list = tessera(&db, &["admin", "list-teams"]).await;
    let listing = stdout(&list);
    for (id, admin) in ids.iter().zip(["a@anvils.test", "b@rockets.test"]) {
        assert!(
            listing
                .lines()
                .any(|l| l.to_lowercase().starts_with("acme ")
                    && l.contains(admin)
                    && l.contains(id.as_str())),
            "{listing}"
        );
    }

    let store = db.store().await;
    let max = member_via_store(&store, "Acme", "max@anvils.test").await;
    let home = store.get_user(&max).await.unwrap().team_id.unwrap();
    let other = ids.iter().find(|id| **id != home).unwrap().clone();
    let ambiguous = |out: &Output| {
        let err = stderr(out);
        assert!(!out.status.success(), "an ambiguous name is refused");
        assert!(
            err.contains("2 teams are named \"Acme\"")
                && ids.iter().all(|id| err.contains(id.as_str()))
                && err.contains("Give the team id instead."),
            "{err}"
        );
        assert!(stdout(out).is_empty());
    };
    let commands: [&[&str]; 5] = [
        &["move-user", "--email", "max@anvils.test"],
        &["set-admin", "--email", "max@anvils.test"],
        &["create-api-key", "--mode", "test"],
        &["callback-auth-key", "--mode", "live"],
        &["callback-signing-secret", "--mode", "live"],
    ];
    for command in commands {
        let mut args = vec!["admin"];
        args.extend_from_slice(command);
        args.extend_from_slice(&["--team", "Acme"]);
        ambiguous(&tessera(&db, &args).await);
    }
    assert_eq!(
        store.get_user(&max).await.unwrap().team_id.as_deref(),
        Some(home.as_str()),
        "nothing moved"
    );

    // The id works in the same flag.
    let moved = tessera(
        &db,
        &[
            "admin",
            "move-user",
            "--email",
            "max@anvils.test",
            "--team",
            &other,
        ],
    )
    .await;
    assert!(moved.status.success(), "{}", stderr(&moved));
    assert_eq!(
        store.get_user(&max).await.unwrap().team_id.as_deref(),
        Some(other.as_str())
    );
    let handover = tessera(
        &db,
        &[
            "admin",
            "set-admin",
            "--team",
            &other,
            "--email",
            "max@anvils.test",
        ],
    )
    .await;
    assert!(handover.status.success(), "{}", stderr(&handover));
    assert_eq!(
        store
            .cross_tenant()
            .get_team(&other)
            .await
            .unwrap()
            .admin_user_id,
        max
    );
    let key = tessera(
        &db,
        &[
            "admin",
            "create-api-key",
            "--team",
            &ids[0],
            "--mode",
            "test",
        ],
    )
    .await;
    assert!(key.status.success(), "{}", stderr(&key));
    assert!(stdout(&key).starts_with("test_"), "{}", stdout(&key));
    let auth = tessera(
        &db,
        &[
            "admin",
            "callback-auth-key",
            "--team",
            &ids[1],
            "--mode",
            "live",
        ],
    )
    .await;
    assert!(
        auth.status.success() && !stdout(&auth).is_empty(),
        "{}",
        stderr(&auth)
    );
    let signing = tessera(
        &db,
        &[
            "admin",
            "callback-signing-secret",
            "--team",
            &ids[1],
            "--mode",
            "live",
        ],
    )
    .await;
    assert!(
        stdout(&signing).starts_with("whsec_"),
        "{}",
        stderr(&signing)
    );

    // An unknown id says so; a name cannot pass for an id.
    let unknown = tessera(
        &db,
        &[
            "admin",
            "create-api-key",
            "--team",
            "team_00ff",
            "--mode",
            "test",
        ],
    )
    .await;
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("No team has the id team_00ff."),
        "{}",
        stderr(&unknown)
    );
    let id_like = tessera(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "team_00ff",
            "--admin-email",
            "c@idlike.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(!id_like.status.success());
    assert!(stderr(&id_like).contains("must not look like a team id"));
    store.close().await;
}
backend_test!(ambiguous_team_names_need_the_id);

/// Adds a member to the named team directly through the store (invite + accept).
async fn member_via_store(store: &Store, team: &str, email: &str) -> String {
    let team = store
        .cross_tenant()
        .find_teams_by_name(team)
        .await
        .unwrap()
        .remove(0)
        .team;
    let token = unique("t");
    let event = NewAuditEvent::new(AuditAction::InvitationSent, "test");
    store
        .invite(
            &team_scope(&team.id),
            &NewInvitation {
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
            },
        )
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
        .cross_tenant()
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
    assert!(tessera(&db, &["admin", "list-teams"])
        .await
        .status
        .success());
}
#[cfg(unix)]
backend_test!(loose_master_key_file_is_refused);

/// Asserts every sealed value in the database is under `new`, opens for its own row, and no
/// longer opens under `old`; returns how many there are.
async fn assert_all_sealed_under(store: &Store, new: &MasterKey, old: &MasterKey) -> u64 {
    let counts = store
        .cross_tenant()
        .reseal_all(|value| {
            let purpose = purpose_of(value);
            assert!(new.is_current(value.sealed()), "{}", value.describe());
            assert!(new.open(&purpose, value.sealed()).is_ok());
            assert!(old.open(&purpose, value.sealed()).is_err());
            Ok::<_, StoreError>(None)
        })
        .await
        .unwrap();
    counts.examined
}

fn key_file_mode(path: &std::path::Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o600
    }
}

/// `rotate-master-key` with the key file: every stored secret (v1 values of the released
/// format included) is re-sealed under a new key; the CLI and a real server read them with it.
async fn master_key_rotation(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let created = tessera(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "Rot",
            "--admin-email",
            "rot@rot.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let live = stdout(
        &tessera(
            &db,
            &["admin", "create-api-key", "--team", "Rot", "--mode", "live"],
        )
        .await,
    );
    let secret = |kind: &'static str| {
        let db = &db;
        async move {
            let out = tessera(db, &["admin", kind, "--team", "Rot", "--mode", "test"]).await;
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out)
        }
    };
    let auth = secret("callback-auth-key").await;
    let signing = secret("callback-signing-secret").await;
    let key_path = db.dir.join("master.key");
    let old_hex = std::fs::read_to_string(&key_path).unwrap();
    let old = MasterKey::from_hex(&old_hex).unwrap();

    // A queued mail, and a signing secret as the released version sealed it (v1).
    let store = db.store().await;
    let body = br#"{"text":"t","html":"h"}"#;
    store
        .enqueue_mail(&NewMail {
            team_id: None,
            to: "x@rot.test".into(),
            subject: "s".into(),
            body_sealed: old.seal(&Purpose::mail_body("x@rot.test"), body),
        })
        .await
        .unwrap();
    let pool = pg_pool(&db.url).await;
    sqlx::query(
        "UPDATE team_secrets SET sealed = $1 WHERE kind = 'callback_signing' AND mode = 'test'",
    )
    .bind(crate::sealing::seal_v1(&old_hex, signing.as_bytes()))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let rotated = tessera(&db, &["admin", "rotate-master-key"]).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    // One API key, four team secrets, one mail.
    assert!(
        stdout(&rotated).contains("Re-sealed 6 of 6 stored secrets"),
        "{}",
        stdout(&rotated)
    );
    let new = MasterKey::load(&key_path).unwrap();
    assert_ne!(new, old);
    assert!(stdout(&rotated).contains(&new.id()));
    let old_path = db.dir.join("master.key.old");
    assert_eq!(
        std::fs::read_to_string(&old_path).unwrap().trim(),
        old_hex.trim()
    );
    assert_eq!(key_file_mode(&key_path), 0o600);
    assert_eq!(key_file_mode(&old_path), 0o600);
    assert_eq!(assert_all_sealed_under(&store, &new, &old).await, 6);
    let mail = store.cross_tenant().list_mail(10, 0).await.unwrap();
    assert_eq!(
        new.open(&Purpose::mail_body(&mail[0].to), &mail[0].body_sealed)
            .unwrap(),
        body
    );

    // The new key alone opens everything: without master.key.old the CLI reads the same secrets.
    std::fs::remove_file(&old_path).unwrap();
    assert_eq!(secret("callback-auth-key").await, auth);
    assert_eq!(secret("callback-signing-secret").await, signing);

    // Running it again rotates again, and is harmless.
    let again = tessera(&db, &["admin", "rotate-master-key"]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    let newer = MasterKey::load(&key_path).unwrap();
    assert_eq!(assert_all_sealed_under(&store, &newer, &new).await, 6);

    // A real server with the new key reveals the API key to the team's Admin.
    let app = TestApp::spawn_with(
        &backend,
        Options {
            database_url: Some(db.url.clone()),
            master_key: Some(newer.clone()),
            ..Options::default()
        },
    )
    .await;
    let mut admin = app.browser();
    let signed_in = admin
        .post_form(
            "/login",
            &[("email", "rot@rot.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        signed_in.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let page = admin.visit("/keys").await;
    let revealed = admin
        .submit(&format!("/keys/{}/reveal", key_id(&page.body, "live")), &[])
        .await;
    assert!(revealed.body.contains(&live), "{}", revealed.body);
    app.stop().await;
    store.close().await;
}
backend_test!(master_key_rotation);

/// With `TESSERA_MASTER_KEY`, the new key comes from `--new-key-file` (created when missing) or
/// `TESSERA_NEW_MASTER_KEY`; the old key stops working and the new one reads everything.
async fn master_key_rotation_from_environment(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let k1 = MasterKey::generate().to_hex();
    let created = tessera_env(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "Env",
            "--admin-email",
            "env@env.test",
            "--password",
            PASSWORD,
        ],
        &[("TESSERA_MASTER_KEY", &k1)],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    const AUTH: &[&str] = &[
        "admin",
        "callback-auth-key",
        "--team",
        "Env",
        "--mode",
        "live",
    ];
    let auth = stdout(&tessera_env(&db, AUTH, &[("TESSERA_MASTER_KEY", &k1)]).await);

    let refused = tessera_env(
        &db,
        &["admin", "rotate-master-key"],
        &[("TESSERA_MASTER_KEY", &k1)],
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--new-key-file"),
        "{}",
        stderr(&refused)
    );

    let file = db.dir.join("new.key");
    let file_arg = file.display().to_string();
    let rotate = ["admin", "rotate-master-key", "--new-key-file", &file_arg];

    // A value no configured key opens stops the rotation before anything is changed.
    let store = db.store().await;
    let stranger = MasterKey::generate();
    store
        .enqueue_mail(&NewMail {
            team_id: None,
            to: "lost@env.test".into(),
            subject: "s".into(),
            body_sealed: stranger.seal(&Purpose::mail_body("lost@env.test"), b"{}"),
        })
        .await
        .unwrap();
    let stuck = tessera_env(&db, &rotate, &[("TESSERA_MASTER_KEY", &k1)]).await;
    assert!(!stuck.status.success());
    assert!(
        stderr(&stuck).contains("does not open") && stderr(&stuck).contains("nothing was changed"),
        "{}",
        stderr(&stuck)
    );
    assert_eq!(
        stdout(&tessera_env(&db, AUTH, &[("TESSERA_MASTER_KEY", &k1)]).await),
        auth
    );
    let pool = pg_pool(&db.url).await;
    sqlx::query("DELETE FROM mail_outbox")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    store.close().await;
    let rotated = tessera_env(&db, &rotate, &[("TESSERA_MASTER_KEY", &k1)]).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).contains("Re-sealed 4 of 4"),
        "{}",
        stdout(&rotated)
    );
    assert!(stdout(&rotated).contains("TESSERA_MASTER_KEY"));
    assert_eq!(key_file_mode(&file), 0o600);
    assert!(
        !db.dir.join("master.key").exists(),
        "the key file is not used"
    );
    let k2 = MasterKey::load(&file).unwrap().to_hex();

    let old_only = tessera_env(&db, AUTH, &[("TESSERA_MASTER_KEY", &k1)]).await;
    assert!(!old_only.status.success(), "the old key no longer opens");
    assert_eq!(
        stdout(&tessera_env(&db, AUTH, &[("TESSERA_MASTER_KEY", &k2)]).await),
        auth
    );
    let reading = tessera_env(
        &db,
        AUTH,
        &[
            ("TESSERA_MASTER_KEY", &k1),
            ("TESSERA_OLD_MASTER_KEYS", &k2),
        ],
    )
    .await;
    assert_eq!(stdout(&reading), auth, "a retired key still opens values");

    // Again with the new key in force and given as the target: nothing is left to re-seal.
    let again = tessera_env(
        &db,
        &["admin", "rotate-master-key"],
        &[
            ("TESSERA_MASTER_KEY", &k2),
            ("TESSERA_OLD_MASTER_KEYS", &k1),
            ("TESSERA_NEW_MASTER_KEY", &k2),
        ],
    )
    .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("Re-sealed 0 of 4"),
        "{}",
        stdout(&again)
    );
}
backend_test!(master_key_rotation_from_environment);

/// The password of an account the CLI creates comes from standard input, the environment or a
/// prompt; `--password` still works, with a warning that it shows in `ps`.
async fn cli_passwords_stay_off_the_command_line(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = db.store().await;
    let password_of = |email: &'static str| {
        let store = store.clone();
        async move {
            store
                .user_credentials(&Email::parse(email).unwrap())
                .await
                .unwrap()
                .expect("the account exists")
                .1
        }
    };
    let works = |hash: String, password: &'static str| async move {
        tessera_server::crypto::verify_password(password.into(), Some(hash))
            .await
            .unwrap()
    };

    // --password-stdin: the first line, its line ending (\r\n too) removed, spaces kept.
    let piped = tessera_stdin(
        &db,
        &[
            "admin",
            "create-staff",
            "--email",
            "s@pw.test",
            "--password-stdin",
        ],
        &[],
        " spaced pass phrase \r\nsecond line\n",
    )
    .await;
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains("deprecated"));
    assert!(works(password_of("s@pw.test").await, " spaced pass phrase ").await);
    let team = tessera_stdin(
        &db,
        &[
            "admin",
            "create-team",
            "--name",
            "Piped",
            "--admin-email",
            "t@pw.test",
            "--password-stdin",
        ],
        &[("TESSERA_ADMIN_PASSWORD", "not this one at all")],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(team.status.success(), "{}", stderr(&team));
    assert!(
        works(password_of("t@pw.test").await, PASSWORD).await,
        "the flag wins over the variable"
    );
    let empty = tessera_stdin(
        &db,
        &[
            "admin",
            "create-labeler",
            "--email",
            "e@pw.test",
            "--password-stdin",
        ],
        &[],
        "",
    )
    .await;
    assert!(!empty.status.success());
    assert!(
        stderr(&empty).contains("standard input held no password"),
        "{}",
        stderr(&empty)
    );

    // TESSERA_ADMIN_PASSWORD.
    let from_env = tessera_env(
        &db,
        &["admin", "create-labeler", "--email", "l@pw.test"],
        &[("TESSERA_ADMIN_PASSWORD", "labeler password 1")],
    )
    .await;
    assert!(from_env.status.success(), "{}", stderr(&from_env));
    assert!(works(password_of("l@pw.test").await, "labeler password 1").await);
    // Still checked like any password.
    let weak = tessera_env(
        &db,
        &["admin", "create-staff", "--email", "w@pw.test"],
        &[("TESSERA_ADMIN_PASSWORD", "short")],
    )
    .await;
    assert!(!weak.status.success());
    assert!(
        stderr(&weak).contains("at least 10 characters"),
        "{}",
        stderr(&weak)
    );

    // No terminal, no flag, no variable: a clear error, no account.
    let none = tessera(&db, &["admin", "create-staff", "--email", "n@pw.test"]).await;
    assert!(!none.status.success());
    let message = stderr(&none);
    assert!(
        message.contains("--password-stdin") && message.contains("TESSERA_ADMIN_PASSWORD"),
        "{message}"
    );
    assert!(store
        .find_user_by_email(&Email::parse("n@pw.test").unwrap())
        .await
        .unwrap()
        .is_none());

    // The old flag keeps operators' scripts working, with a warning.
    let old = tessera(
        &db,
        &[
            "admin",
            "create-staff",
            "--email",
            "o@pw.test",
            "--password",
            PASSWORD,
        ],
    )
    .await;
    assert!(old.status.success(), "{}", stderr(&old));
    assert!(
        stderr(&old).contains("--password is deprecated"),
        "{}",
        stderr(&old)
    );
    assert!(works(password_of("o@pw.test").await, PASSWORD).await);
    let both = tessera(
        &db,
        &[
            "admin",
            "create-staff",
            "--email",
            "b@pw.test",
            "--password",
            PASSWORD,
            "--password-stdin",
        ],
    )
    .await;
    assert!(
        !both.status.success(),
        "--password and --password-stdin conflict"
    );
    store.close().await;
}
backend_test!(cli_passwords_stay_off_the_command_line);

/// `serve` refuses storage flags it cannot run with, naming the flag, before it listens.
async fn serve_refuses_bad_storage_flags(backend: Backend) {
    let db = TestDb::new(&backend).await;
    for (args, needle) in [
        (
            &["--file-store", "ftp://files.example.com/x"][..],
            "--file-store",
        ),
        (&["--file-store", "s3://"][..], "--file-store"),
        (
            &["--aws-access-key-id", "AKIAONLYTHEKEYID0000"][..],
            "go together",
        ),
        (
            &[
                "--aws-access-key-id",
                "AKIAPLATFORM00000000",
                "--aws-secret-access-key",
                "s",
                "--aws-region",
                "Mars 1",
            ][..],
            "--aws-region",
        ),
        (
            &["--support-email", "not an address"][..],
            "--support-email",
        ),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = tessera(&db, &all).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
backend_test!(serve_refuses_bad_storage_flags);
