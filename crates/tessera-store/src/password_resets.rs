//! Password resets: a single-use, short-lived link mailed to an account's address (only the
//! token's digest is stored), and its use — a new password, every session ended — in one
//! transaction with its audit entry.

use crate::{audit, mail, new_id, NewAuditEvent, NewMail, Store, StoreResult};

/// A reset to store: the token's digest, when it stops working, where it was asked from, and
/// the mail that carries the link (queued in the same transaction).
#[derive(Debug)]
pub struct NewPasswordReset<'a> {
    pub user_id: &'a str,
    pub token_hash: &'a str,
    pub expires_at: i64,
    pub requested_ip: &'a str,
    pub mail: &'a NewMail,
}

impl Store {
    /// Stores a reset for the account, replacing its earlier unused links, and queues its
    /// mail; returns the mail's id.
    pub async fn create_password_reset(
        &self,
        reset: &NewPasswordReset<'_>,
        now: i64,
    ) -> StoreResult<String> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1 AND used_at IS NULL")
            .bind(reset.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at, requested_ip) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id("pwr"))
        .bind(reset.user_id)
        .bind(reset.token_hash)
        .bind(now)
        .bind(reset.expires_at)
        .bind(reset.requested_ip)
        .execute(&mut *tx)
        .await?;
        let mail_id = mail::insert(&mut tx, reset.mail).await?;
        tx.commit().await?;
        Ok(mail_id)
    }

    /// The account a reset link opens, while it is unused and unexpired.
    pub async fn password_reset_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// Uses a reset link: marks it used (once), sets the new password, ends every session of
    /// the account and records `event` in its team's log. `None`: the link is unknown, used
    /// or expired, and nothing changed.
    pub async fn reset_password(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: i64,
        event: &NewAuditEvent,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.writer.begin().await?;
        let used: Option<(String,)> = sqlx::query_as(
            "UPDATE password_resets SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id,)) = used else {
            return Ok(None);
        };
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        let (team,): (Option<String>,) = sqlx::query_as("SELECT team_id FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_one(&mut *tx)
            .await?;
        audit::insert(&mut tx, team.as_deref(), event).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }
}
