//! API keys and per-team secrets (callback auth keys, signing secrets).
//!
//! A team's keys and secrets are read and changed through its [`Scope`]. Three things happen
//! before any team is known, or for every team, and live on [`CrossTenant`]: looking a key up
//! by its digest (that lookup *is* the API's authentication), recording when keys were used
//! (one flush for all teams) and reading a secret for the callback worker, which signs each
//! delivery for the delivery's own team.

use sqlx::{any::AnyRow, AnyPool, Row};
use tessera_core::ids::{ApiKeyId, TeamId};
use tessera_core::keys::KeyExpiry;
use tessera_core::status::SecretKind;
use tessera_core::Mode;

use crate::{audit, now_ms, CrossTenant, NewAuditEvent, Scope, Store, StoreError, StoreResult};

/// An API key as listed on the dashboard (the key itself only as ciphertext).
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub team_id: TeamId,
    pub mode: Mode,
    pub label: String,
    pub prefix: String,
    pub sealed: String,
    pub created_by_label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// When the key stops working, if it was made with an expiry.
    pub expires_at: Option<i64>,
    /// Set once the key was rolled (replaced by another key).
    pub rolled: Option<Rolled>,
}

/// The roll of an old key: when it happened, until when the old key keeps working and which
/// key replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolled {
    pub at: i64,
    pub until: i64,
    pub replaced_by: ApiKeyId,
}

/// What a task page shows of the key that created the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName {
    pub label: String,
    /// The key's first characters, as the keys page shows them.
    pub prefix: String,
    pub deleted: bool,
}

/// A key to store in a scope (its team and mode): its digest for lookup and its sealed value
/// for reveal.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub label: String,
    pub prefix: String,
    pub digest: String,
    pub sealed: String,
    pub created_by: Option<String>,
    pub created_by_label: String,
    /// How long the key works from its creation (the store sets `expires_at` from it).
    pub expiry: KeyExpiry,
    /// The one-time nonce of the dashboard form that asks for the key: a second key with the
    /// same nonce in the team is refused (`Unique(ApiKeyFormNonce)`).
    pub form_nonce: Option<String>,
    pub event: NewAuditEvent,
}

/// Who an API key acts for, and until when: the key cache keeps this for a few seconds and
/// checks both times on every request, so a cached key never outlives either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_id: ApiKeyId,
    pub team_id: TeamId,
    pub mode: Mode,
    pub expires_at: Option<i64>,
    /// Until when a rolled key keeps working.
    pub rolled_until: Option<i64>,
    /// The prefix of the key that replaced a rolled one, to name it in the refusal.
    pub replacement_prefix: Option<String>,
}

/// A team secret of one kind and mode; rotation keeps the previous value for a while.
#[derive(Debug, Clone)]
pub struct TeamSecret {
    pub sealed: String,
    pub created_at: i64,
    pub previous_sealed: Option<String>,
    pub previous_until: Option<i64>,
}

pub(crate) fn parse_mode(raw: String) -> StoreResult<Mode> {
    raw.parse()
        .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))
}

fn key_from_row(row: &AnyRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::from_stored(row.try_get("id")?),
        team_id: TeamId::from_stored(row.try_get("team_id")?),
        mode: parse_mode(row.try_get("mode")?)?,
        label: row.try_get("label")?,
        prefix: row.try_get("prefix")?,
        sealed: row.try_get("sealed")?,
        created_by_label: row.try_get("created_by_label")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        rolled: rolled_from_row(row)?,
    })
}

/// The roll columns, set together or not at all (a CHECK in migration 0015).
fn rolled_from_row(row: &AnyRow) -> StoreResult<Option<Rolled>> {
    let at: Option<i64> = row.try_get("rolled_at")?;
    let until: Option<i64> = row.try_get("rolled_until")?;
    let replaced_by: Option<String> = row.try_get("replaced_by")?;
    Ok(match (at, until, replaced_by) {
        (Some(at), Some(until), Some(id)) => Some(Rolled {
            at,
            until,
            replaced_by: ApiKeyId::from_stored(id),
        }),
        _ => None,
    })
}

const KEY_COLUMNS: &str =
    "id, team_id, mode, label, prefix, sealed, created_by_label, created_at, last_used_at, \
     expires_at, rolled_at, rolled_until, replaced_by";

impl Store {
    /// Stores a key in `scope`'s team and mode, with its audit entry.
    pub async fn create_api_key(&self, scope: &Scope, key: &NewApiKey) -> StoreResult<ApiKey> {
        let mut tx = self.writer.begin().await?;
        let id = insert_key(&mut tx, scope, key, now_ms()).await?;
        audit::insert(&mut tx, Some(scope.team_id()), &key.event).await?;
        tx.commit().await?;
        self.get_api_key(scope, id.as_str()).await
    }

    /// Rolls the key `old_id` of the scope's team and mode: stores `new` (its replacement)
    /// and lets the old key work for `grace_ms` more, in one transaction with `new`'s audit
    /// entry. A key is rolled once: a rolled key is [`StoreError::InvalidState`], a deleted
    /// or unknown one [`StoreError::NotFound`]. Returns the new key and the old one as rolled.
    pub async fn roll_api_key(
        &self,
        scope: &Scope,
        old_id: &str,
        new: &NewApiKey,
        grace_ms: i64,
    ) -> StoreResult<(ApiKey, ApiKey)> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let new_id = insert_key(&mut tx, scope, new, now).await?;
        let done = sqlx::query(
            "UPDATE api_keys SET rolled_at = $1, rolled_until = $2, replaced_by = $3 \
             WHERE id = $4 AND team_id = $5 AND mode = $6 AND deleted_at IS NULL AND rolled_at IS NULL",
        )
        .bind(now)
        .bind(now + grace_ms)
        .bind(new_id.as_str())
        .bind(old_id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            let old = self.get_api_key(scope, old_id).await?;
            return Err(if old.mode != scope.mode() {
                StoreError::NotFound
            } else {
                StoreError::InvalidState("this key was already rolled".into())
            });
        }
        audit::insert(&mut tx, Some(scope.team_id()), &new.event).await?;
        tx.commit().await?;
        Ok((
            self.get_api_key(scope, new_id.as_str()).await?,
            self.get_api_key(scope, old_id).await?,
        ))
    }

    /// The key a dashboard form with this nonce created in the scope's team (whatever its
    /// mode), deleted ones included (then with `true`), so a form sent twice finds the first
    /// one's key.
    pub async fn api_key_by_form_nonce(
        &self,
        scope: &Scope,
        nonce: &str,
    ) -> StoreResult<Option<(ApiKey, bool)>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS}, deleted_at FROM api_keys WHERE team_id = $1 AND form_nonce = $2"
        ))
        .bind(scope.team_id())
        .bind(nonce)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| {
            let deleted: Option<i64> = row.try_get("deleted_at")?;
            Ok((key_from_row(&row)?, deleted.is_some()))
        })
        .transpose()
    }

    /// Live (not deleted) keys of the scope's team, both modes (the keys page shows them
    /// side by side), newest first.
    pub async fn list_api_keys(&self, scope: &Scope) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE team_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id"
        ))
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// A live key of the scope's team (whatever its mode: the keys page manages both).
    pub async fn get_api_key(&self, scope: &Scope, key_id: &str) -> StoreResult<ApiKey> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND team_id = $2 AND deleted_at IS NULL"
        ))
        .bind(key_id)
        .bind(scope.team_id())
        .fetch_optional(&self.writer)
        .await?
        .ok_or(StoreError::NotFound)?;
        key_from_row(&row)
    }

    /// The key that created task `task_id` of `scope`, as its page names it: label and
    /// prefix, also after the key was deleted (tasks outlive their keys, and the customer
    /// still wants to know which integration sent one). `None` for a task made on the
    /// dashboard or before keys were recorded.
    pub async fn task_creator_key(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<KeyName>> {
        let row = sqlx::query(
            "SELECT k.label, k.prefix, k.deleted_at FROM tasks t \
             JOIN api_keys k ON k.id = t.created_by_key AND k.team_id = t.team_id \
             WHERE t.id = $1 AND t.team_id = $2 AND t.mode = $3",
        )
        .bind(task_id)
        .bind(scope.team_id())
        .bind(scope.mode().as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            let deleted_at: Option<i64> = r.try_get("deleted_at")?;
            Ok(KeyName {
                label: r.try_get("label")?,
                prefix: r.try_get("prefix")?,
                deleted: deleted_at.is_some(),
            })
        })
        .transpose()
    }

    /// Deletes (revokes) a key of the scope's team; the audit entry commits with it.
    pub async fn delete_api_key(
        &self,
        scope: &Scope,
        key_id: &str,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE api_keys SET deleted_at = $1 WHERE id = $2 AND team_id = $3 AND deleted_at IS NULL")
            .bind(now_ms())
            .bind(key_id)
            .bind(scope.team_id())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The scope's secret of `kind` (in the scope's mode), if it has been made.
    pub async fn team_secret(
        &self,
        scope: &Scope,
        kind: SecretKind,
    ) -> StoreResult<Option<TeamSecret>> {
        read_secret(&self.writer, scope.team_id(), kind, scope.mode()).await
    }

    /// Stores a secret unless one exists already (first use, or sign-up); returns the one
    /// that is in force.
    pub async fn ensure_team_secret(
        &self,
        scope: &Scope,
        kind: SecretKind,
        sealed: &str,
    ) -> StoreResult<TeamSecret> {
        ensure_secret(&self.writer, scope.team_id(), kind, scope.mode(), sealed).await
    }

    /// Replaces a secret; the previous one stays valid for `keep_previous_ms` (0: not at all).
    pub async fn rotate_team_secret(
        &self,
        scope: &Scope,
        kind: SecretKind,
        sealed: &str,
        keep_previous_ms: i64,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE team_secrets SET previous_sealed = sealed, previous_until = $1, sealed = $2, created_at = $3 \
             WHERE team_id = $4 AND kind = $5 AND mode = $6",
        )
        .bind(now + keep_previous_ms)
        .bind(sealed)
        .bind(now)
        .bind(scope.team_id())
        .bind(kind.as_str())
        .bind(scope.mode().as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            sqlx::query("INSERT INTO team_secrets (team_id, kind, mode, sealed, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(scope.team_id())
                .bind(kind.as_str())
                .bind(scope.mode().as_str())
                .bind(sealed)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Inserts a key made at `now` in the scope's team and mode; returns its id.
async fn insert_key(
    conn: &mut sqlx::AnyConnection,
    scope: &Scope,
    key: &NewApiKey,
    now: i64,
) -> StoreResult<ApiKeyId> {
    let id = ApiKeyId::generate();
    sqlx::query(
        "INSERT INTO api_keys (id, team_id, mode, label, prefix, digest, sealed, created_by, created_by_label, created_at, form_nonce, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id.as_str())
    .bind(scope.team_id())
    .bind(scope.mode().as_str())
    .bind(&key.label)
    .bind(&key.prefix)
    .bind(&key.digest)
    .bind(&key.sealed)
    .bind(key.created_by.as_deref())
    .bind(&key.created_by_label)
    .bind(now)
    .bind(key.form_nonce.as_deref())
    .bind(key.expiry.expires_at(now))
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

impl CrossTenant {
    /// Who a key digest acts for and until when, if the key exists and is not deleted
    /// (expired and rolled keys too: the caller tells them apart from unknown keys).
    /// Cross-tenant because this is how a request's team becomes known at all: the API's
    /// authentication.
    pub async fn key_identity(&self, digest: &str) -> StoreResult<Option<KeyIdentity>> {
        let row = sqlx::query(
            "SELECT k.id, k.team_id, k.mode, k.expires_at, k.rolled_until, r.prefix AS replacement_prefix \
             FROM api_keys k LEFT JOIN api_keys r ON r.id = k.replaced_by \
             WHERE k.digest = $1 AND k.deleted_at IS NULL",
        )
        .bind(digest)
        .fetch_optional(&self.store.reader)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(KeyIdentity {
                key_id: ApiKeyId::from_stored(row.try_get("id")?),
                team_id: TeamId::from_stored(row.try_get("team_id")?),
                mode: parse_mode(row.try_get("mode")?)?,
                expires_at: row.try_get("expires_at")?,
                rolled_until: row.try_get("rolled_until")?,
                replacement_prefix: row.try_get("replacement_prefix")?,
            })),
        }
    }

    /// Records when keys were last used: the key cache collects every team's uses and writes
    /// them out in one batch, not per request.
    pub async fn touch_api_keys(&self, uses: &[(ApiKeyId, i64)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.writer.begin().await?;
        for (key_id, at) in uses {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
                .bind(*at)
                .bind(key_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A team's secret of `kind` and `mode`, for the callback worker: it sends every team's
    /// deliveries and signs each one for the team the delivery belongs to.
    pub async fn team_secret(
        &self,
        team_id: &str,
        kind: SecretKind,
        mode: Mode,
    ) -> StoreResult<Option<TeamSecret>> {
        read_secret(&self.store.writer, team_id, kind, mode).await
    }

    /// [`Store::ensure_team_secret`] for the callback worker (a team older than secrets gets
    /// its first one when its first callback is sent).
    pub async fn ensure_team_secret(
        &self,
        team_id: &str,
        kind: SecretKind,
        mode: Mode,
        sealed: &str,
    ) -> StoreResult<TeamSecret> {
        ensure_secret(&self.store.writer, team_id, kind, mode, sealed).await
    }
}

async fn read_secret(
    pool: &AnyPool,
    team_id: &str,
    kind: SecretKind,
    mode: Mode,
) -> StoreResult<Option<TeamSecret>> {
    let row = sqlx::query(
        "SELECT sealed, created_at, previous_sealed, previous_until FROM team_secrets \
         WHERE team_id = $1 AND kind = $2 AND mode = $3",
    )
    .bind(team_id)
    .bind(kind.as_str())
    .bind(mode.as_str())
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(TeamSecret {
            sealed: row.try_get("sealed")?,
            created_at: row.try_get("created_at")?,
            previous_sealed: row.try_get("previous_sealed")?,
            previous_until: row.try_get("previous_until")?,
        })),
    }
}

async fn ensure_secret(
    pool: &AnyPool,
    team_id: &str,
    kind: SecretKind,
    mode: Mode,
    sealed: &str,
) -> StoreResult<TeamSecret> {
    sqlx::query(
        "INSERT INTO team_secrets (team_id, kind, mode, sealed, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (team_id, kind, mode) DO NOTHING",
    )
    .bind(team_id)
    .bind(kind.as_str())
    .bind(mode.as_str())
    .bind(sealed)
    .bind(now_ms())
    .execute(pool)
    .await?;
    read_secret(pool, team_id, kind, mode)
        .await?
        .ok_or(StoreError::NotFound)
}
