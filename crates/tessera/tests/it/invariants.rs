//! The schema's invariants, attacked directly and concurrently: one Admin per team, one team
//! per user, one pending invitation per (team, email), single-use hashed invitation tokens.

use sqlx::Connection;
use tessera_core::{profile::Profile, Email, Role};
use tessera_server::crypto::token_digest;
use tessera_store::{
    AuditAction, Constraint, NewAuditEvent, NewInvitation, NewMail, NewUser, Store, StoreError,
};

use crate::{backend_test, helpers::*};

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: Email::parse(email).unwrap(),
        password_hash:
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
        profile: Profile::parse("Test", "", "", "").unwrap(),
    }
}

fn event() -> NewAuditEvent {
    NewAuditEvent::new(AuditAction::InvitationSent, "test")
}

fn invitation(admin_id: &str, email: &str, token: &str) -> NewInvitation {
    NewInvitation {
        email: Email::parse(email).unwrap(),
        role: Role::Member,
        invited_by: admin_id.into(),
        token_hash: token_digest(token),
        expires_at: tessera_store::now_ms() + 3_600_000,
        min_resend_interval_ms: 0,
        mail: NewMail {
            team_id: None,
            to: email.into(),
            subject: "s".into(),
            body_sealed: "v1.AAAA".into(),
        },
        event: event(),
    }
}

async fn add_member(store: &Store, team_id: &str, admin_id: &str, email: &str) -> String {
    let token = unique("t");
    store
        .invite(&team_scope(team_id), &invitation(admin_id, email, &token))
        .await
        .unwrap();
    store
        .cross_tenant()
        .accept_invitation(&token_digest(&token), Some(&new_user(email)), None, event())
        .await
        .unwrap()
        .id
}

async fn admin_count(db: &TestDb, team_id: &str) -> i64 {
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM users WHERE team_id = $1 AND role = 'admin'")
            .bind(team_id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    n
}

async fn exactly_one_admin_per_team(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = db.store().await;
    let (team, admin) = store
        .create_team_with_admin("Solo", &new_user("admin@solo.test"), event())
        .await
        .unwrap();
    let bob = add_member(&store, &team.id, &admin.id, "bob@solo.test").await;
    let cat = add_member(&store, &team.id, &admin.id, "cat@solo.test").await;

    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    // A second Admin is rejected by the partial unique index.
    let second = sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(&bob)
        .execute(&mut conn)
        .await;
    assert!(second.is_err(), "a second admin must be rejected");
    // Demoting the Admin without a successor is rejected (the team's admin reference).
    let demote = sqlx::query("UPDATE users SET role = 'manager' WHERE id = $1")
        .bind(&admin.id)
        .execute(&mut conn)
        .await;
    assert!(demote.is_err(), "a team without an admin must be rejected");
    // Removing the Admin from the team or deleting them is rejected too.
    let detach = sqlx::query("UPDATE users SET team_id = NULL, role = NULL WHERE id = $1")
        .bind(&admin.id)
        .execute(&mut conn)
        .await;
    assert!(detach.is_err());
    let delete = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&admin.id)
        .execute(&mut conn)
        .await;
    assert!(delete.is_err());
    // A team pointing at an admin who is not one of its admins is rejected.
    let pointer = sqlx::query("UPDATE teams SET admin_user_id = $1 WHERE id = $2")
        .bind(&bob)
        .bind(&team.id)
        .execute(&mut conn)
        .await;
    assert!(pointer.is_err());
    conn.close().await.ok();
    assert_eq!(admin_count(&db, &team.id).await, 1);

    // Concurrent hand-overs: whatever interleaving, exactly one Admin, the one teams names.
    for round in 0..5 {
        let staff = store.cross_tenant();
        let (a, b) = tokio::join!(
            staff.set_admin(&team.id, &bob, event()),
            staff.set_admin(&team.id, &cat, event()),
        );
        for r in [a, b] {
            assert!(
                matches!(
                    r,
                    Ok(()) | Err(StoreError::Unique(_) | StoreError::Conflict(_))
                ),
                "round {round}: {r:?}"
            );
        }
        assert_eq!(admin_count(&db, &team.id).await, 1, "round {round}");
        let named = store
            .cross_tenant()
            .get_team(&team.id)
            .await
            .unwrap()
            .admin_user_id;
        assert_eq!(
            store.get_user(&named).await.unwrap().role,
            Some(Role::Admin)
        );
        store
            .cross_tenant()
            .set_admin(&team.id, &admin.id, event())
            .await
            .unwrap();
    }
    store.close().await;
}
backend_test!(exactly_one_admin_per_team);

async fn one_team_per_user_and_one_pending_invitation(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = db.store().await;
    let (one, one_admin) = store
        .create_team_with_admin("One", &new_user("a@one.test"), event())
        .await
        .unwrap();
    let (two, two_admin) = store
        .create_team_with_admin("Two", &new_user("a@two.test"), event())
        .await
        .unwrap();

    // Ten concurrent invitations of the same address to one team: one pending row.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let scope = team_scope(&one.id);
        let inv = invitation(
            &one_admin.id,
            if i % 2 == 0 {
                "Zed@x.test"
            } else {
                "zed@X.test"
            },
            &unique("t"),
        );
        tasks.push(tokio::spawn(
            async move { store.invite(&scope, &inv).await },
        ));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            r.is_ok()
                || matches!(
                    r,
                    Err(StoreError::Unique(_)
                        | StoreError::Conflict(_)
                        | StoreError::TooSoon { .. })
                ),
            "{r:?}"
        );
    }
    assert_eq!(
        store
            .list_pending_invitations(&team_scope(&one.id))
            .await
            .unwrap()
            .len(),
        1
    );

    // The same new address invited by two teams, accepted at the same moment: one account,
    // in exactly one team.
    let (t1, t2) = (unique("t"), unique("t"));
    store
        .invite(
            &team_scope(&one.id),
            &invitation(&one_admin.id, "both@x.test", &t1),
        )
        .await
        .unwrap();
    store
        .invite(
            &team_scope(&two.id),
            &invitation(&two_admin.id, "both@x.test", &t2),
        )
        .await
        .unwrap();
    let (u1, u2) = (new_user("both@x.test"), new_user("both@x.test"));
    let (h1, h2) = (token_digest(&t1), token_digest(&t2));
    let links = store.cross_tenant();
    let (r1, r2) = tokio::join!(
        links.accept_invitation(&h1, Some(&u1), None, event()),
        links.accept_invitation(&h2, Some(&u2), None, event()),
    );
    assert_eq!(
        [&r1, &r2].iter().filter(|r| r.is_ok()).count(),
        1,
        "{r1:?} {r2:?}"
    );
    let loser = if r1.is_ok() { &r2 } else { &r1 };
    assert!(
        matches!(loser, Err(e) if e.is_unique(&Constraint::UserEmail)),
        "{loser:?}"
    );
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE email_key = 'both@x.test'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The losing invitation is still pending and its link unused (nothing half-done).
    let (used,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM invitation_tokens WHERE used_at IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(used, 1);
    conn.close().await.ok();
    store.close().await;
}
backend_test!(one_team_per_user_and_one_pending_invitation);

async fn invitation_links_are_single_use_and_stored_hashed(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = db.store().await;
    let (team, admin) = store
        .create_team_with_admin("Links", &new_user("a@links.test"), event())
        .await
        .unwrap();
    let token = unique("raw-token-");
    store
        .invite(
            &team_scope(&team.id),
            &invitation(&admin.id, "once@links.test", &token),
        )
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let hash = token_digest(&token);
        // Different spellings of the same address: all the same account.
        let user = new_user(if i % 2 == 0 {
            "once@links.test"
        } else {
            "ONCE@links.test"
        });
        tasks.push(tokio::spawn(async move {
            store
                .cross_tenant()
                .accept_invitation(&hash, Some(&user), None, event())
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::NotFound | StoreError::Unique(_) | StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one acceptance");

    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM invitation_tokens")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, vec![(token_digest(&token),)]);
    // Marking a second link of the same invitation used is rejected by the schema.
    let inv: (String,) = sqlx::query_as("SELECT invitation_id FROM invitation_tokens")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let second = sqlx::query("INSERT INTO invitation_tokens (token_hash, invitation_id, created_at, expires_at, superseded_at, used_at) VALUES ('x', $1, 0, 0, NULL, 1)")
        .bind(&inv.0)
        .execute(&mut conn)
        .await;
    assert!(second.is_err());
    conn.close().await.ok();
    store.close().await;
}
backend_test!(invitation_links_are_single_use_and_stored_hashed);

async fn raw_tokens_never_reach_the_database(backend: Backend) {
    // Through the real server: the invitation mail is sealed, the link only digested.
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("a@seal.test", "Sealed").await;
    admin
        .submit(
            "/team/invitations",
            &[("emails", "x@seal.test"), ("role", "member")],
        )
        .await;
    let link = app.outbox_link("x@seal.test").await;
    let token = link.trim_start_matches("/invite/");
    let mut conn = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    let bodies: Vec<(String, String)> =
        sqlx::query_as("SELECT subject, body_sealed FROM mail_outbox")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (subject, body) in bodies {
        assert!(!subject.contains(token) && !body.contains(token));
        assert!(
            body.starts_with("v2."),
            "sealed in the current format: {body}"
        );
    }
    let tokens: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM invitation_tokens")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(tokens.iter().all(|(t,)| t != token));
    conn.close().await.ok();
    app.stop().await;
}
backend_test!(raw_tokens_never_reach_the_database);

/// Migration 7 drops the platform-wide uniqueness of team names over a database filled under
/// migration 6: every row is kept, and only then may two teams share a name (issue 9, item 6).
async fn team_names_stop_being_unique_and_data_is_kept(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate_to(6).await.unwrap();
    // Rows as migration 6 has them (today's store writes later migrations' columns).
    let (team_id, admin_id) = old_schema_team(&db.url, "Acme", "admin@acme.test")
        .await
        .unwrap();
    let team = store.cross_tenant().get_team(&team_id).await.unwrap();
    let member = unique("usr_");
    {
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        old_schema_user(
            &mut conn,
            &member,
            "bob@acme.test",
            Some((&team.id, "member")),
        )
        .await
        .unwrap();
        conn.close().await.ok();
    }
    let admin_id = admin_id.as_str();
    store
        .invite(
            &team_scope(&team.id),
            &invitation(admin_id, "cat@acme.test", "pending-token"),
        )
        .await
        .unwrap();
    let refused = old_schema_team(&db.url, "ACME", "other@rockets.test").await;
    assert!(
        refused.is_err(),
        "under migration 6 the name is unique platform-wide"
    );
    let audit_before = store
        .list_audit(&team_scope(&team.id), None, 100)
        .await
        .unwrap()
        .events
        .len();

    store.migrate().await.unwrap();
    let kept = store.cross_tenant().get_team(&team.id).await.unwrap();
    assert_eq!(kept, team, "the team row is unchanged");
    assert_eq!(
        store.get_user(&member).await.unwrap().team_id,
        Some(team.id.clone())
    );
    assert_eq!(
        store.get_user(admin_id).await.unwrap().role,
        Some(Role::Admin)
    );
    assert_eq!(
        store
            .list_pending_invitations(&team_scope(&team.id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_audit(&team_scope(&team.id), None, 100)
            .await
            .unwrap()
            .events
            .len(),
        audit_before
    );
    // The other invariants still hold after the migration.
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let second_admin = sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(&member)
        .execute(&mut conn)
        .await;
    assert!(second_admin.is_err(), "still one Admin per team");
    conn.close().await.ok();

    let (rockets, _) = store
        .create_team_with_admin("ACME", &new_user("other@rockets.test"), event())
        .await
        .unwrap();
    assert_ne!(rockets.id, team.id);
    let named = store
        .cross_tenant()
        .find_teams_by_name("acme")
        .await
        .unwrap();
    assert_eq!(
        named.iter().map(|t| t.team.id.as_str()).collect::<Vec<_>>(),
        [team.id.as_str(), rockets.id.as_str()],
        "both, oldest first"
    );
    store.close().await;
}
backend_test!(team_names_stop_being_unique_and_data_is_kept);

/// The two decoders of a task — SQLite's JSON page (`list_tasks`) and the row decoder
/// (`get_task`, PostgreSQL's pages) — yield the same `Task` for one with every field set.
async fn task_decoders_agree(backend: Backend) {
    use serde_json::json;
    use tessera_core::Mode;
    let db = TestDb::new(&backend).await;
    let store = db.store().await;
    let (team, _) = store
        .create_team_with_admin("Decoders", &new_user("a@decoders.test"), event())
        .await
        .unwrap();
    let scope = team_scope(&team.id).with_mode(Mode::Test).unwrap();
    let project = store
        .create_project(
            &scope,
            &tessera_store::NewProject {
                name: "p".into(),
                task_type: tessera_core::tasks::TaskType::Categorization,
                params: json!({}),
                param_history: json!([]),
                rapid: false,
                studio: false,
                dataset_id: None,
            },
        )
        .await
        .unwrap();
    let batch = store
        .create_batch(
            &scope,
            &tessera_store::NewBatch {
                project_id: project.id.clone(),
                name: "b".into(),
                status: tessera_core::status::BatchStatus::Staging,
                callback: String::new(),
                metadata: json!({}),
                calibration_batch: false,
                self_label_batch: false,
            },
        )
        .await
        .unwrap();
    let scope = tessera_core::Scope::operator(
        tessera_core::ids::TeamId::from_stored(team.id.clone()),
        Mode::Test,
    );
    let task = store
        .insert_task(
            &scope,
            &tessera_store::NewTask {
                task_type: tessera_core::tasks::TaskType::Categorization,
                status: tessera_core::status::TaskStatus::Completed,
                project: Some(tessera_store::Parent {
                    id: project.id.to_string(),
                    name: project.name.clone(),
                }),
                batch: Some(tessera_store::Parent {
                    id: batch.id.to_string(),
                    name: batch.name.clone(),
                }),
                unique_id: Some("u-1".into()),
                callback_url: Some("https://example.test/cb".into()),
                instruction: Some("Pick \"one\" ✓".into()),
                params: json!({"categories": ["a", "b"], "n": 1.5}),
                metadata: json!({"k": [1, {"x": null}]}),
                tags: Some(vec!["t1".into(), "t2".into()]),
                response: Some(json!({"category": "a"})),
                extra: json!({"e": true}),
            },
        )
        .await
        .unwrap();
    store
        .audit_task(&scope, &task.id, true, json!({"comments": "ok"}), "me")
        .await
        .unwrap();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE tasks SET callback_succeeded = 1 WHERE id = $1")
        .bind(&task.id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let row = store.get_task(&scope, &task.id).await.unwrap().unwrap();
    let page = store
        .list_tasks(&scope, &Default::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.tasks, vec![row.clone()]);
    assert_eq!(row.callback_succeeded, Some(true));
    assert_eq!(
        row.customer_review_status,
        Some(tessera_core::status::ReviewStatus::Accepted)
    );
    assert!(row.completed_at.is_some());
    assert_eq!(row.project_name.as_deref(), Some("p"));
    assert_eq!(row.batch_name.as_deref(), Some("b"));
    store.close().await;
}
backend_test!(task_decoders_agree);

/// A task written through the running group-commit writer and one written alone (no writer
/// started: the CLI's and the bare store's path) come back the same, counts included.
async fn task_writer_and_direct_insert_agree(backend: Backend) {
    use serde_json::json;
    use tessera_core::Mode;
    let db = TestDb::new(&backend).await;
    let store = db.store().await;
    let (team, _) = store
        .create_team_with_admin("Writers", &new_user("a@writers.test"), event())
        .await
        .unwrap();
    let scope = tessera_core::Scope::operator(
        tessera_core::ids::TeamId::from_stored(team.id.clone()),
        Mode::Test,
    );
    let new_task = |unique_id: &str| tessera_store::NewTask {
        task_type: tessera_core::tasks::TaskType::Categorization,
        status: tessera_core::status::TaskStatus::Completed,
        project: None,
        batch: None,
        unique_id: Some(unique_id.into()),
        callback_url: Some("https://example.test/cb".into()),
        instruction: Some("Pick one".into()),
        params: json!({"categories": ["a", "b"]}),
        metadata: json!({"k": 1}),
        tags: Some(vec!["t".into()]),
        response: Some(json!({"category": "a"})),
        extra: json!({}),
    };
    let alone = store.insert_task(&scope, &new_task("alone")).await.unwrap();
    let writer = store.start_task_writer().unwrap();
    assert!(store.start_task_writer().is_err(), "one writer per store");
    let batched = store
        .insert_task(&scope, &new_task("batched"))
        .await
        .unwrap();
    let duplicate = store.insert_task(&scope, &new_task("batched")).await;
    assert!(
        matches!(duplicate, Err(StoreError::Unique(Constraint::TaskUniqueId))),
        "{duplicate:?}"
    );
    writer.stop().await;
    let after_stop = store.insert_task(&scope, &new_task("after")).await.unwrap();

    let read = |id: String| {
        let store = store.clone();
        let scope = scope.clone();
        async move { store.get_task(&scope, &id).await.unwrap().unwrap() }
    };
    let normalise = |mut task: tessera_store::Task| {
        task.id = String::new();
        task.unique_id = None;
        task.created_at = 0;
        task.updated_at = 0;
        task.completed_at = task.completed_at.map(|_| 0);
        task
    };
    let alone = normalise(read(alone.id).await);
    assert_eq!(alone, normalise(read(batched.id).await));
    assert_eq!(alone, normalise(read(after_stop.id).await));
    let page = store
        .list_tasks(&scope, &Default::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.tasks.len(), 3);
    assert_eq!(page.total, 3, "the sharded count saw every insert once");
    store.close().await;
}
backend_test!(task_writer_and_direct_insert_agree);
