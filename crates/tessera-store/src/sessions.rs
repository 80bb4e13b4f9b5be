//! Dashboard sessions, stored in the database so any replica can serve any request.

use tessera_core::Mode;

use crate::{
    now_ms,
    users::{user_from_row, USER_COLUMNS},
    CrossTenant, Store, StoreError, StoreResult, User,
};

/// The person behind a live session, with what every dashboard request needs to know about
/// them beyond their record: their dashboard mode and their second factor (read in the same
/// query, so it costs no extra round trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user: User,
    /// The dashboard mode this person opened last: their next page opens in it, in any browser.
    pub dashboard_mode: Mode,
    /// Two-factor sign-in is on for them.
    pub two_factor_enabled: bool,
    /// Their team requires two-factor sign-in of every member.
    pub team_requires_two_factor: bool,
}

impl Store {
    /// Records a session under the SHA-256 digest of its cookie token.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
        ip: &str,
        user_agent: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, ip, user_agent, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $3)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at)
        .bind(ip)
        .bind(user_agent)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The user behind a live session, if any: not past its expiry, and used within the last
    /// `idle_ms`. A use marks the session seen again, writing at most once per `idle_ms / 8`
    /// (and at least once a minute), not on every request.
    pub async fn session_user(
        &self,
        token_hash: &str,
        idle_ms: i64,
    ) -> StoreResult<Option<SessionUser>> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.dashboard_mode, s.last_seen_at, \
             (SELECT COUNT(*) FROM user_two_factor f \
              WHERE f.user_id = u.id AND f.enabled_at IS NOT NULL) AS two_factor_on, \
             (SELECT COUNT(*) FROM teams t \
              WHERE t.id = u.team_id AND t.require_two_factor = 1) AS team_requires_two_factor \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(now - idle_ms)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let last_seen: i64 = sqlx::Row::try_get(&row, "last_seen_at")?;
        if now - last_seen > (idle_ms / 8).min(60_000) {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&self.writer)
                .await?;
        }
        let dashboard_mode = sqlx::Row::try_get::<String, _>(&row, "dashboard_mode")?
            .parse()
            .map_err(|e: tessera_core::Invalid| {
                StoreError::Config(format!("bad dashboard mode in database: {e}"))
            })?;
        let two_factor_on: i64 = sqlx::Row::try_get(&row, "two_factor_on")?;
        let team_requires: i64 = sqlx::Row::try_get(&row, "team_requires_two_factor")?;
        Ok(Some(SessionUser {
            user: user_from_row(&row)?,
            dashboard_mode,
            two_factor_enabled: two_factor_on > 0,
            team_requires_two_factor: team_requires > 0,
        }))
    }

    pub async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

impl CrossTenant {
    /// Housekeeping: drops expired and idle sessions, expired half-done sign-ins (waiting for
    /// a second factor) and old rate-limit events.
    pub async fn prune_expired(
        &self,
        rate_window_ms: i64,
        session_idle_ms: i64,
    ) -> StoreResult<u64> {
        let now = now_ms();
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                .bind(now)
                .bind(now - session_idle_ms)
                .execute(&self.store.writer)
                .await?
                .rows_affected();
        let challenges = sqlx::query("DELETE FROM sign_in_challenges WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.store.writer)
            .await?
            .rows_affected();
        let events = sqlx::query("DELETE FROM rate_events WHERE at < $1")
            .bind(now - rate_window_ms)
            .execute(&self.store.writer)
            .await?
            .rows_affected();
        Ok(sessions + challenges + events)
    }
}
