//! A small migration runner: one ordered history for both databases, with `-- @dialect`
//! sections for the rare statement that must differ. (sqlx's migrator would need one
//! directory per database, which is the drift we want to avoid.)

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{now_ms, Dialect, Store, StoreError, StoreResult};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// One line per migration: its version, its name and its file in `migrations/`.
macro_rules! migrations {
    ($($version:literal $name:literal $file:literal,)*) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $file)),
        }),*]
    };
}

const MIGRATIONS: &[Migration] = migrations! {
    1 "foundation" "0001_foundation.sql",
    2 "api" "0002_api.sql",
    3 "callbacks_labeling" "0003_callbacks_labeling.sql",
    4 "callback_emails" "0004_callback_emails.sql",
    5 "storage_usage" "0005_storage_usage.sql",
    6 "session_idle" "0006_session_idle.sql",
    7 "team_names" "0007_team_names.sql",
    8 "key_nonces_attempt_requests" "0008_key_nonces_attempt_requests.sql",
    9 "task_counts_sharded" "0009_task_counts_sharded.sql",
    10 "billing" "0010_billing.sql",
    11 "integrations" "0011_integrations.sql",
    12 "password_resets" "0012_password_resets.sql",
    13 "email_verification" "0013_email_verification.sql",
    14 "two_factor" "0014_two_factor.sql",
    15 "key_expiry" "0015_key_expiry.sql",
    16 "admin_handover" "0016_admin_handover.sql",
    17 "dashboard_mode" "0017_dashboard_mode.sql",
    19 "task_created_by_key" "0019_task_created_by_key.sql",
};

/// Checksums a released migration once had besides its current one, accepted when found in
/// `schema_migrations`. Released migrations are never edited (ADR 0001); each entry here records
/// a past mistake and says why the databases that recorded it are still sound. Any other
/// difference is refused.
const HISTORICAL_CHECKSUMS: &[(i64, &str)] = &[
    // 0002 as edited in place by commit 057769c (task_counts gained `shard` and a new primary
    // key). 0002 is back to its released text; 0009 brings both shapes to the sharded one.
    (
        2,
        "714661ae032cebc8a95e4d16f0e1d2379788f1a506a4a47622cd4332c4fa2c31",
    ),
];

/// Whether `recorded` is a checksum `migration` may have been applied with.
fn accepted(migration: &Migration, checksum: &str, recorded: &str) -> bool {
    recorded == checksum
        || HISTORICAL_CHECKSUMS
            .iter()
            .any(|&(version, old)| version == migration.version && old == recorded)
}

/// Keeps the lines of `sql` that apply to `dialect`.
fn sql_for(sql: &str, dialect: Dialect) -> String {
    let mut keep = true;
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines() {
        if let Some(which) = line.trim().strip_prefix("-- @dialect ") {
            keep = match which.trim() {
                "all" => true,
                "sqlite" => dialect == Dialect::Sqlite,
                "postgres" => dialect == Dialect::Postgres,
                _ => true,
            };
            continue;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Applies every pending migration up to and including `up_to`.
pub(crate) async fn run(store: &Store, up_to: i64) -> StoreResult<()> {
    let mut conn = store.writer.acquire().await?;
    if store.dialect == Dialect::Postgres {
        // Replicas starting together take turns; the lock ends with the session.
        sqlx::query("SELECT pg_advisory_lock(7465737365726100)")
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_pending(store, &mut conn, up_to).await;
    if store.dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7465737365726100)")
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_pending(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    up_to: i64,
) -> StoreResult<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await?;
    let applied = sqlx::query("SELECT version, checksum FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await?;
    for migration in MIGRATIONS.iter().filter(|m| m.version <= up_to) {
        let sql = sql_for(migration.sql, store.dialect);
        let checksum = hex::encode(Sha256::digest(migration.sql.as_bytes()));
        if let Some(row) = applied
            .iter()
            .find(|r| r.try_get::<i64, _>("version").ok() == Some(migration.version))
        {
            let recorded: String = row.try_get("checksum")?;
            if !accepted(migration, &checksum, &recorded) {
                return Err(StoreError::Migration {
                    version: migration.version,
                    message: "the applied migration differs from this binary's copy".into(),
                });
            }
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration {
                version: migration.version,
                message: e.to_string(),
            })?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(&checksum)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_sections() {
        let sql = "A;\n-- @dialect sqlite\nS;\n-- @dialect postgres\nP;\n-- @dialect all\nB;\n";
        assert_eq!(sql_for(sql, Dialect::Sqlite), "A;\nS;\nB;\n");
        assert_eq!(sql_for(sql, Dialect::Postgres), "A;\nP;\nB;\n");
    }

    /// Released migrations are frozen: a database records each one's checksum and refuses to
    /// start when the binary's copy differs. Editing one fails here first; add a migration.
    #[test]
    fn released_migrations_are_unchanged() {
        let pinned: &[(i64, &str)] = &[
            (
                1,
                "430a6e1af7a85bcbbb29b3f4b3a44bdf0e3c9af9aeb72001ba86f1f4cac0b5bc",
            ),
            (
                2,
                "14190d8e708f2ac318499d12ad4f8b2f57cf778ba428b3d7aff44679766dba50",
            ),
            (
                3,
                "d46d1cd6eb102bbaf34467a836f94c133e8d4da1cfbc73f572f028297dc51f2b",
            ),
            (
                4,
                "af6b40ceeeb1aa17df9d8f093da0a05da0c9a59db4d26e8bcb4b450da81d6dd0",
            ),
            (
                5,
                "58e0147e4868557e63538d58854ab04f4c911c00922c3edb729af9398869c087",
            ),
            (
                6,
                "1e0dac370052739d091a3125151879864f7d5cb1d530df6f82477d17ffea1c24",
            ),
            (
                7,
                "784827570041ea2b24143ce48f40c597cbf1db51c0797ac0332a2c8ada66394e",
            ),
            (
                8,
                "86a129ac08a6e2408fceab4316039160e8605a5522b57c32bb791c2f6d3b2779",
            ),
            (
                9,
                "a1760440ecf489644e7c3f9d2465cd395ae02fdb8a59b5b279d044fcd97c86a1",
            ),
            (
                10,
                "243377ff07af2299c205d9fee282c058e3d2703eeb92f813dcea8ff032215de0",
            ),
            (
                11,
                "ba9fa86ccefc65b190be1ca5d4ec21b9024ab2e7af21dd86a4b092263cb0600e",
            ),
            (
                12,
                "81e04fbff177dba50f5a7b518eaa1fa97775ac82f3465bfb918f9a81a24f4c47",
            ),
            (
                13,
                "289e9fa96341e7f5e3e7894c0ffc4c39e21b34ef4636891363e6b881da1109da",
            ),
            (
                14,
                "0ecf14432a0b27f46c5ead4064508718959b87b5c0fe71dd19083c22092efd57",
            ),
            (
                15,
                "7ae81a584bce1adba0d042b2be58b527b3aecb9d967253ba5ddf5996e4bf9fd1",
            ),
            (
                16,
                "f4ef21d97c10de7a9fa1e641430dff8cc8a0d2a55f141ec9acb3c253654dca35",
            ),
            (
                17,
                "56cc741c4e24bb75a52128b61c99f4a1aa435a07bbad498a144d50567ebb1afe",
            ),
            (
                19,
                "7df2f2f0e57493fe8d5ceef2392cb456cd7bed930cdede2936035d8c52d37f55",
            ),
        ];
        let actual: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, hex::encode(Sha256::digest(m.sql.as_bytes()))))
            .collect();
        let expected: Vec<(i64, String)> = pinned.iter().map(|&(v, c)| (v, c.to_owned())).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn only_the_listed_earlier_checksum_is_accepted() {
        let v2 = &MIGRATIONS[1];
        let current = hex::encode(Sha256::digest(v2.sql.as_bytes()));
        assert!(accepted(v2, &current, &current));
        assert!(accepted(v2, &current, HISTORICAL_CHECKSUMS[0].1));
        assert!(!accepted(v2, &current, &"0".repeat(64)));
        let v3 = &MIGRATIONS[2];
        let current = hex::encode(Sha256::digest(v3.sql.as_bytes()));
        assert!(
            !accepted(v3, &current, HISTORICAL_CHECKSUMS[0].1),
            "an accepted checksum belongs to one version"
        );
    }
}
