//! Email verification: the single-use link mailed at sign-up (only its digest is stored), its
//! use, what a team whose Admin is unverified may not do, and closing an unverified sign-up
//! whose address an invitation proved to belong to someone else.

use sqlx::Row;
use tessera_core::Scope;

use crate::{
    audit, mail, new_id, now_ms,
    teams::{insert_team_with_admin, Team},
    users::{user_from_row, Address, USER_COLUMNS},
    Constraint, NewAuditEvent, NewMail, NewUser, Store, StoreError, StoreResult, User,
};

/// A verification link to store: the token's digest, when it stops working, and the mail that
/// carries it (queued in the same transaction, so a link is never stored without its mail).
#[derive(Debug)]
pub struct NewVerificationLink<'a> {
    pub token_hash: &'a str,
    pub expires_at: i64,
    pub mail: &'a NewMail,
}

/// What a usable verification link opens, for its confirm page.
#[derive(Debug, Clone)]
pub struct PendingVerification {
    pub user_id: String,
    pub email: String,
    /// The account's team, named on the page so the owner of the address can tell whether
    /// they made this sign-up.
    pub team_name: Option<String>,
    pub account_created_at: i64,
}

/// An unverified sign-up to close because an invitation to its address is being accepted.
#[derive(Debug, Clone)]
pub struct SupersededSignup {
    pub user_id: String,
    /// Recorded in the closed account's team's log (`user.signup_superseded`, `team.closed`).
    pub closed_team_events: Vec<NewAuditEvent>,
    /// Recorded in the inviting team's log (`user.signup_superseded`).
    pub inviting_team_event: NewAuditEvent,
}

/// What closing an unverified sign-up did: its team, and the API keys it revoked (for the
/// caller to evict from its key cache at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSignup {
    pub team_id: String,
    pub revoked_key_ids: Vec<String>,
}

/// Replaces the account's unused link with a new one and queues its mail.
async fn insert_link(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    email_key: &str,
    link: &NewVerificationLink<'_>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM email_verifications WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO email_verifications (id, user_id, email_key, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id("emv"))
    .bind(user_id)
    .bind(email_key)
    .bind(link.token_hash)
    .bind(now)
    .bind(link.expires_at)
    .execute(&mut *conn)
    .await?;
    mail::insert(conn, link.mail).await?;
    Ok(())
}

impl Store {
    /// Sign-up: creates a team and its Admin, whose address is unverified until the link in
    /// `link.mail` is opened; the link, its mail and `event` commit together with the team.
    pub async fn sign_up_team(
        &self,
        team_name: &str,
        admin: &NewUser,
        event: NewAuditEvent,
        link: &NewVerificationLink<'_>,
    ) -> StoreResult<(Team, User)> {
        let mut tx = self.writer.begin().await?;
        let (team_id, user_id) =
            insert_team_with_admin(&mut tx, team_name, admin, Address::Unverified, event).await?;
        insert_link(&mut tx, &user_id, admin.email.normalized(), link, now_ms()).await?;
        tx.commit().await?;
        Ok((
            self.read_team(&team_id).await?,
            self.get_user(&user_id).await?,
        ))
    }

    /// Sends an unverified account a new link (the previous one stops working). `false`: the
    /// account is verified (or closed) meanwhile, and nothing was stored or queued.
    pub async fn resend_verification(
        &self,
        user_id: &str,
        link: &NewVerificationLink<'_>,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT email_key FROM users \
             WHERE id = $1 AND email_verified_at IS NULL AND closed_at IS NULL{}",
            self.for_update()
        ))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((email_key,)) = row else {
            return Ok(false);
        };
        insert_link(&mut tx, user_id, &email_key, link, now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// What a verification link opens while it is unused, unexpired and its account still
    /// has the address it was sent to.
    pub async fn pending_verification(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<PendingVerification>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.created_at, t.name AS team_name FROM email_verifications v \
             JOIN users u ON u.id = v.user_id AND u.email_key = v.email_key \
             LEFT JOIN teams t ON t.id = u.team_id \
             WHERE v.token_hash = $1 AND v.used_at IS NULL AND v.expires_at > $2 \
             AND u.closed_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| {
            Ok(PendingVerification {
                user_id: row.try_get("id")?,
                email: row.try_get("email")?,
                team_name: row.try_get("team_name")?,
                account_created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Uses a verification link: marks it used (once) and the account's address verified,
    /// recording `event` in its team's log. `None`: the link is unknown, used, expired, or
    /// its account no longer has that address; nothing changed.
    pub async fn verify_email(
        &self,
        token_hash: &str,
        now: i64,
        event: &NewAuditEvent,
    ) -> StoreResult<Option<User>> {
        let mut tx = self.writer.begin().await?;
        let used: Option<(String, String)> = sqlx::query_as(
            "UPDATE email_verifications SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id, email_key",
        )
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id, email_key)) = used else {
            return Ok(None);
        };
        let verified = sqlx::query(
            "UPDATE users SET email_verified_at = $1 \
             WHERE id = $2 AND email_key = $3 AND email_verified_at IS NULL AND closed_at IS NULL",
        )
        .bind(now)
        .bind(&user_id)
        .bind(&email_key)
        .execute(&mut *tx)
        .await?;
        if verified.rows_affected() != 1 {
            // Closed, or its address changed: the link proves nothing about this account.
            return Ok(None);
        }
        let team: (Option<String>,) = sqlx::query_as("SELECT team_id FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_one(&mut *tx)
            .await?;
        audit::insert(&mut tx, team.0.as_deref(), event).await?;
        tx.commit().await?;
        self.get_user(&user_id).await.map(Some)
    }

    /// Whether the scope's team's Admin has verified their address: a team may create live
    /// tasks and invite people only then (`tessera_core::verification`). A closed team's
    /// Admin never has.
    pub async fn team_admin_verified(&self, scope: &Scope) -> StoreResult<bool> {
        let row: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT u.email_verified_at FROM teams t JOIN users u ON u.id = t.admin_user_id \
             WHERE t.id = $1 AND t.closed_at IS NULL",
        )
        .bind(scope.team_id())
        .fetch_optional(&self.reader)
        .await?;
        Ok(matches!(row, Some((Some(_),))))
    }
}

/// Closes the unverified sign-up `superseded` inside the transaction that accepts an
/// invitation to `email_key`: the account gives up the address (its key becomes
/// `closed:<id>`), its sessions and unused links end; its team — which only it belongs to —
/// is closed, its API keys revoked and its pending callbacks dropped. Its rows (test tasks,
/// files, audit log) stay, referred to by nothing that works any more.
///
/// `Unique(UserEmail)` when the address turns out to be owned after all: the account was
/// verified meanwhile, holds another address, or its team has other members (only support
/// can put them there), so the caller shows "belongs to another team".
pub(crate) async fn close_unverified_signup(
    conn: &mut sqlx::AnyConnection,
    store: &Store,
    superseded: &SupersededSignup,
    email_key: &str,
    now: i64,
) -> StoreResult<ClosedSignup> {
    let owned = || StoreError::Unique(Constraint::UserEmail);
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, u.email_key FROM users u WHERE u.id = $1 AND u.closed_at IS NULL{}",
        store.for_update()
    ))
    .bind(&superseded.user_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(owned)?;
    let user = user_from_row(&row)?;
    let held: String = row.try_get("email_key")?;
    let team_id = match (&user.team_id, user.owns_address(), user.is_staff) {
        (Some(team_id), false, false) if held == email_key => team_id.clone(),
        _ => return Err(owned()),
    };
    let (members,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE team_id = $1")
        .bind(&team_id)
        .fetch_one(&mut *conn)
        .await?;
    if members != 1 {
        return Err(owned());
    }
    sqlx::query(
        "UPDATE users SET closed_at = $1, email_key = 'closed:' || id \
         WHERE id = $2 AND email_verified_at IS NULL",
    )
    .bind(now)
    .bind(&user.id)
    .execute(&mut *conn)
    .await?;
    for statement in [
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM email_verifications WHERE user_id = $1 AND used_at IS NULL",
        "DELETE FROM password_resets WHERE user_id = $1 AND used_at IS NULL",
    ] {
        sqlx::query(statement)
            .bind(&user.id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE teams SET closed_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&team_id)
        .execute(&mut *conn)
        .await?;
    let revoked: Vec<(String,)> = sqlx::query_as(
        "UPDATE api_keys SET deleted_at = $1 WHERE team_id = $2 AND deleted_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(&team_id)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE callback_deliveries SET status = 'failed', next_attempt_at = NULL, \
         finished_at = $1, updated_at = $1, last_error = 'the team was closed' \
         WHERE team_id = $2 AND status = 'pending'",
    )
    .bind(now)
    .bind(&team_id)
    .execute(&mut *conn)
    .await?;
    for event in &superseded.closed_team_events {
        audit::insert(conn, Some(&team_id), event).await?;
    }
    Ok(ClosedSignup {
        team_id,
        revoked_key_ids: revoked.into_iter().map(|(id,)| id).collect(),
    })
}
