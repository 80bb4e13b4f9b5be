//! Migrations over databases filled under an earlier schema: every released shape reaches the
//! current one with its data kept.

use sha2::{Digest, Sha256};
use sqlx::Connection;
use tessera_core::Mode;
use tessera_store::{Store, TaskFilter};

use crate::{backend_test, helpers::*};

/// 0002 as commit 057769c edited it in place (task_counts sharded); databases created since
/// recorded this text's checksum.
const EDITED_0002: &str = include_str!("fixtures/0002_api_as_edited_by_057769c.sql");

/// A team written as the schema before 0013 has it (today's store writes 0013's columns).
async fn team(url: &str, name: &str) -> String {
    old_schema_team(url, name, &format!("admin@{name}.test"))
        .await
        .unwrap()
        .0
}

async fn total(store: &Store, team_id: &str, mode: Mode) -> i64 {
    store
        .list_tasks(
            &tessera_core::Scope::operator(
                tessera_core::ids::TeamId::from_stored(team_id.to_owned()),
                mode,
            ),
            &TaskFilter::default(),
            1,
            None,
        )
        .await
        .unwrap()
        .total
}

/// The rows of task_counts, as (team, mode, shard, total) in order.
async fn count_rows(url: &str) -> Vec<(String, String, i64, i64)> {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT team_id, mode, shard, total FROM task_counts ORDER BY team_id, mode, shard",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    rows
}

/// A database made from the released 0002 (one count row per team and mode) reaches the
/// sharded table with each total kept.
async fn released_task_counts_become_sharded(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate_to(8).await.unwrap();
    let acme = team(&db.url, "acme").await;
    let rockets = team(&db.url, "rockets").await;
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    for (team_id, mode, n) in [
        (&acme, "live", 5),
        (&acme, "test", 2),
        (&rockets, "live", 7),
    ] {
        sqlx::query("INSERT INTO task_counts (team_id, mode, total) VALUES ($1, $2, $3)")
            .bind(team_id)
            .bind(mode)
            .bind(n as i64)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.ok();
    assert_eq!(total(&store, &acme, Mode::Live).await, 5);

    store.migrate().await.unwrap();
    let mut expected = vec![
        (acme.clone(), "live".to_owned(), 0, 5),
        (acme.clone(), "test".to_owned(), 0, 2),
        (rockets.clone(), "live".to_owned(), 0, 7),
    ];
    expected.sort();
    assert_eq!(count_rows(&db.url).await, expected);
    assert_eq!(total(&store, &acme, Mode::Live).await, 5);
    assert_eq!(total(&store, &acme, Mode::Test).await, 2);
    assert_eq!(total(&store, &rockets, Mode::Live).await, 7);
    store.close().await;
}
backend_test!(released_task_counts_become_sharded);

/// A database made while 0002 was edited in place (its checksum recorded, task_counts already
/// sharded) is accepted and migrates with its totals kept; any other checksum is refused.
async fn edited_0002_is_accepted_and_migrates(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate_to(1).await.unwrap();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(EDITED_0002).execute(&mut conn).await.unwrap();
    let edited_checksum = hex::encode(Sha256::digest(EDITED_0002.as_bytes()));
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (2, 'api', $1, 0)",
    )
    .bind(&edited_checksum)
    .execute(&mut conn)
    .await
    .unwrap();
    store.migrate_to(8).await.unwrap();
    let acme = team(&db.url, "acme").await;
    for (mode, shard, n) in [
        ("live", 0, 3),
        ("live", 4, 4),
        ("live", 15, 1),
        ("test", 9, 6),
    ] {
        sqlx::query(
            "INSERT INTO task_counts (team_id, mode, shard, total) VALUES ($1, $2, $3, $4)",
        )
        .bind(&acme)
        .bind(mode)
        .bind(shard as i64)
        .bind(n as i64)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    assert_eq!(total(&store, &acme, Mode::Live).await, 8);

    store.migrate().await.unwrap();
    assert_eq!(
        count_rows(&db.url).await,
        [
            (acme.clone(), "live".to_owned(), 0, 8),
            (acme.clone(), "test".to_owned(), 0, 6)
        ]
    );
    assert_eq!(total(&store, &acme, Mode::Live).await, 8);
    assert_eq!(total(&store, &acme, Mode::Test).await, 6);
    let version: (i64,) = sqlx::query_as("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version.0, 19);

    // Only that one earlier text is accepted.
    sqlx::query("UPDATE schema_migrations SET checksum = $1 WHERE version = 2")
        .bind("0".repeat(64))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let refused = store.migrate().await;
    assert!(refused.is_err(), "an unknown checksum for 0002 is refused");
    store.close().await;
}
backend_test!(edited_0002_is_accepted_and_migrates);

/// 0013 over a database filled under 0012: every existing account counts as verified (since
/// its creation), staff included; from then on the schema refuses an unverified staff
/// account, a verification before the account existed, and closing an account that is
/// verified or keeps its address.
async fn existing_accounts_count_as_verified(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate_to(12).await.unwrap();
    let (team_id, admin_id) = old_schema_team(&db.url, "acme", "admin@acme.test")
        .await
        .unwrap();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    old_schema_user(&mut conn, "usr_staff", "staff@tessera.test", None)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET is_staff = 1 WHERE id = 'usr_staff'")
        .execute(&mut conn)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    for id in [admin_id.as_str(), "usr_staff"] {
        let user = store.get_user(id).await.unwrap();
        assert_eq!(user.email_verified_at, Some(user.created_at), "{id}");
        assert!(user.owns_address());
    }
    assert!(store
        .team_admin_verified(&team_scope(&team_id))
        .await
        .unwrap());

    for (what, sql) in [
        (
            "an unverified staff account",
            "UPDATE users SET email_verified_at = NULL WHERE id = 'usr_staff'",
        ),
        (
            "verified before it existed",
            "UPDATE users SET email_verified_at = 0 WHERE id = 'usr_staff'",
        ),
    ] {
        assert!(sqlx::query(sql).execute(&mut conn).await.is_err(), "{what}");
    }
    for (what, sql) in [
        (
            "a verified account closed",
            "UPDATE users SET closed_at = 5, email_key = 'closed:' || id WHERE id = $1",
        ),
        (
            "a closed account keeping its address",
            "UPDATE users SET email_verified_at = NULL, closed_at = 5 WHERE id = $1",
        ),
    ] {
        let refused = sqlx::query(sql).bind(&admin_id).execute(&mut conn).await;
        assert!(refused.is_err(), "{what}");
    }
    let closed = sqlx::query(
        "UPDATE users SET email_verified_at = NULL, closed_at = 5, email_key = 'closed:' || id WHERE id = $1",
    )
    .bind(&admin_id)
    .execute(&mut conn)
    .await;
    assert!(
        closed.is_ok(),
        "an unverified account closed without its address: {closed:?}"
    );
    conn.close().await.ok();
    store.close().await;
}
backend_test!(existing_accounts_count_as_verified);
