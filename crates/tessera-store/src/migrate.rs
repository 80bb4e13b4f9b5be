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

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "api",
        sql: include_str!("../migrations/0002_api.sql"),
    },
    Migration {
        version: 3,
        name: "callbacks_labeling",
        sql: include_str!("../migrations/0003_callbacks_labeling.sql"),
    },
    Migration {
        version: 4,
        name: "callback_emails",
        sql: include_str!("../migrations/0004_callback_emails.sql"),
    },
    Migration {
        version: 5,
        name: "storage_usage",
        sql: include_str!("../migrations/0005_storage_usage.sql"),
    },
    Migration {
        version: 6,
        name: "session_idle",
        sql: include_str!("../migrations/0006_session_idle.sql"),
    },
    Migration {
        version: 7,
        name: "team_names",
        sql: include_str!("../migrations/0007_team_names.sql"),
    },
    Migration {
        version: 8,
        name: "key_nonces_attempt_requests",
        sql: include_str!("../migrations/0008_key_nonces_attempt_requests.sql"),
    },
];

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
            if recorded != checksum {
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
}
