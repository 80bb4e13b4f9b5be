//! Two-factor sign-in: a user's TOTP secret (sealed by the caller; the store never decrypts),
//! the last time step a code was accepted for (so no code works twice), single-use recovery
//! codes kept as digests, the half-done sign-ins that wait for their second factor, and the
//! team setting that requires it. Every change that turns protection on or off is written in
//! one transaction with its audit entry.

use sqlx::Row;
use tessera_core::Scope;

use crate::{audit, flag, now_ms, NewAuditEvent, Store, StoreError, StoreResult};

/// A user's two-factor row: a set-up waiting for its first code, or protection that is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactor {
    pub secret_sealed: String,
    pub created_at: i64,
    /// `None` while the set-up is not confirmed: sign-in does not ask for a code yet.
    pub enabled_at: Option<i64>,
    /// The newest TOTP time step a code was accepted for.
    pub last_used_step: i64,
}

impl TwoFactor {
    pub fn is_enabled(&self) -> bool {
        self.enabled_at.is_some()
    }
}

/// A sign-in whose password was right and whose second factor is still to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInChallenge {
    pub user_id: String,
    /// Where to go once signed in (a checked local path, or empty).
    pub next_path: String,
}

impl Store {
    /// The user's two-factor row, if they started a set-up or have it on.
    pub async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>> {
        let row = sqlx::query(
            "SELECT secret_sealed, created_at, enabled_at, last_used_step \
             FROM user_two_factor WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| {
            Ok(TwoFactor {
                secret_sealed: row.try_get("secret_sealed")?,
                created_at: row.try_get("created_at")?,
                enabled_at: row.try_get("enabled_at")?,
                last_used_step: row.try_get("last_used_step")?,
            })
        })
        .transpose()
    }

    /// Whether two-factor sign-in is on for the user.
    pub async fn has_two_factor(&self, user_id: &str) -> StoreResult<bool> {
        Ok(self
            .two_factor(user_id)
            .await?
            .is_some_and(|row| row.is_enabled()))
    }

    /// The members of the scope's team who have two-factor sign-in on (the team page).
    pub async fn two_factor_members(&self, scope: &Scope) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT f.user_id FROM user_two_factor f JOIN users u ON u.id = f.user_id \
             WHERE u.team_id = $1 AND f.enabled_at IS NOT NULL",
        )
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Starts (or restarts) a set-up with a new sealed secret. `false`: two-factor sign-in is
    /// already on, and nothing changed (turning it off comes first).
    pub async fn begin_two_factor_setup(
        &self,
        user_id: &str,
        secret_sealed: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO user_two_factor (user_id, secret_sealed, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = $2, created_at = $3, last_used_step = 0 \
             WHERE user_two_factor.enabled_at IS NULL",
        )
        .bind(user_id)
        .bind(secret_sealed)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns two-factor sign-in on: the set-up holding `secret_sealed` (the one the person saw
    /// and confirmed) is enabled with the confirming code's `step` as used, and `code_hashes`
    /// become the recovery codes. `false`: the set-up was replaced or is on already.
    pub async fn enable_two_factor(
        &self,
        user_id: &str,
        secret_sealed: &str,
        step: i64,
        code_hashes: &[String],
        event: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE user_two_factor SET enabled_at = $1, last_used_step = $2 \
             WHERE user_id = $3 AND secret_sealed = $4 AND enabled_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(user_id)
        .bind(secret_sealed)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_recovery_codes(&mut tx, user_id, code_hashes, now).await?;
        let team = team_of(&mut tx, user_id).await?;
        audit::insert(&mut tx, team.as_deref(), event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records that a code of time step `step` was accepted, if no code of that step or a
    /// later one was: `false` means the code was used already (a replay) and must be refused.
    /// One conditional write, so two requests with the same code cannot both pass.
    pub async fn use_two_factor_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE user_two_factor SET last_used_step = $1 \
             WHERE user_id = $2 AND enabled_at IS NOT NULL AND last_used_step < $1",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Uses up the recovery code with digest `code_hash`, recording `event`; `false` when the
    /// user has no such unused code (or two-factor sign-in is off).
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &str,
        event: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL \
             AND EXISTS (SELECT 1 FROM user_two_factor f WHERE f.user_id = $2 AND f.enabled_at IS NOT NULL)",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let team = team_of(&mut tx, user_id).await?;
        audit::insert(&mut tx, team.as_deref(), event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How many of the user's recovery codes are still unused.
    pub async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<i64> {
        let (left,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.writer)
        .await?;
        Ok(left)
    }

    /// Replaces every recovery code of the user (used or not) with `code_hashes`, while
    /// two-factor sign-in is on; `NotFound` when it is off.
    pub async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[String],
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let on: Option<(String,)> = sqlx::query_as(
            "SELECT user_id FROM user_two_factor WHERE user_id = $1 AND enabled_at IS NOT NULL",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if on.is_none() {
            return Err(StoreError::NotFound);
        }
        insert_recovery_codes(&mut tx, user_id, code_hashes, now).await?;
        let team = team_of(&mut tx, user_id).await?;
        audit::insert(&mut tx, team.as_deref(), event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Turns two-factor sign-in off: the secret and the recovery codes are deleted. `false`:
    /// it was not on.
    pub async fn disable_two_factor(
        &self,
        user_id: &str,
        event: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "DELETE FROM user_two_factor WHERE user_id = $1 AND enabled_at IS NOT NULL",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let team = team_of(&mut tx, user_id).await?;
        audit::insert(&mut tx, team.as_deref(), event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Holds a sign-in whose password was right until its second factor comes, under the
    /// digest of the token its browser keeps.
    pub async fn create_sign_in_challenge(
        &self,
        token_hash: &str,
        challenge: &SignInChallenge,
        ip: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sign_in_challenges (token_hash, user_id, next_path, ip, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(&challenge.user_id)
        .bind(&challenge.next_path)
        .bind(ip)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The sign-in waiting under `token_hash`, while it has not expired.
    pub async fn sign_in_challenge(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<SignInChallenge>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT user_id, next_path FROM sign_in_challenges WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|(user_id, next_path)| SignInChallenge { user_id, next_path }))
    }

    /// Ends a waiting sign-in (it succeeded, or was abandoned); `true` when this call ended
    /// an unexpired one, so a sign-in completes once however many requests race.
    pub async fn finish_sign_in_challenge(&self, token_hash: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM sign_in_challenges WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now_ms())
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns the team's "two-factor sign-in for every member" on or off, recording `event`.
    pub async fn set_team_two_factor_requirement(
        &self,
        scope: &Scope,
        required: bool,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE teams SET require_two_factor = $1 WHERE id = $2")
            .bind(i64::from(required))
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

    /// Whether the team requires two-factor sign-in of every member.
    pub async fn team_requires_two_factor(&self, scope: &Scope) -> StoreResult<bool> {
        let (on,): (i64,) = sqlx::query_as("SELECT require_two_factor FROM teams WHERE id = $1")
            .bind(scope.team_id())
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(flag(on))
    }
}

/// Replaces the user's recovery codes inside an open transaction.
async fn insert_recovery_codes(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    code_hashes: &[String],
    now: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    for hash in code_hashes {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The team whose log records a change to `user_id`'s sign-in (none for staff).
async fn team_of(conn: &mut sqlx::AnyConnection, user_id: &str) -> StoreResult<Option<String>> {
    let (team,): (Option<String>,) = sqlx::query_as("SELECT team_id FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(team)
}
