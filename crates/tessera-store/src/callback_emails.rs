//! Addresses a team may send email callbacks to: its members' own, and addresses verified
//! by a link mailed to them.

use sqlx::{any::AnyRow, Row};
use tessera_core::{ids::CallbackEmailId, Email, Scope};

use crate::{
    audit, mail, now_ms, CrossTenant, NewAuditEvent, NewMail, Store, StoreError, StoreResult,
};

/// A verified or pending callback address of a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackEmail {
    pub id: CallbackEmailId,
    pub team_id: String,
    pub email: String,
    pub verified_at: Option<i64>,
    /// When the pending link stops working.
    pub token_expires_at: Option<i64>,
    pub created_at: i64,
}

/// A callback address to add (or a fresh link for a pending one), with the mail carrying
/// the link and the audit entry, committed together (for the scope's team).
#[derive(Debug, Clone)]
pub struct NewCallbackEmail {
    pub email: Email,
    pub added_by: Option<String>,
    pub token_hash: String,
    pub token_expires_at: i64,
    pub mail: NewMail,
    pub event: NewAuditEvent,
}

const COLUMNS: &str = "id, team_id, email, verified_at, token_expires_at, created_at";

fn from_row(row: &AnyRow) -> StoreResult<CallbackEmail> {
    Ok(CallbackEmail {
        id: CallbackEmailId::from_stored(row.try_get("id")?),
        team_id: row.try_get("team_id")?,
        email: row.try_get("email")?,
        verified_at: row.try_get("verified_at")?,
        token_expires_at: row.try_get("token_expires_at")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// The scope's team's callback addresses (of both modes: addresses are the team's),
    /// verified and pending, in the order they were added.
    pub async fn list_callback_emails(&self, scope: &Scope) -> StoreResult<Vec<CallbackEmail>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callback_emails WHERE team_id = $1 ORDER BY created_at, id"
        ))
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Adds a pending address, or sends a fresh link for one still pending. An address
    /// already verified is `Conflict`.
    pub async fn add_callback_email(
        &self,
        scope: &Scope,
        new: &NewCallbackEmail,
    ) -> StoreResult<CallbackEmail> {
        let team_id = scope.team_id();
        let mut tx = self.writer.begin().await?;
        let existing = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callback_emails WHERE team_id = $1 AND email_key = $2{}",
            self.for_update()
        ))
        .bind(team_id)
        .bind(new.email.normalized())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| from_row(&row))
        .transpose()?;
        let id = match existing {
            Some(found) if found.verified_at.is_some() => {
                return Err(StoreError::Conflict(format!(
                    "{} is already a verified callback address.",
                    found.email
                )))
            }
            Some(found) => {
                sqlx::query(
                    "UPDATE callback_emails SET token_hash = $1, token_expires_at = $2 WHERE id = $3",
                )
                .bind(&new.token_hash)
                .bind(new.token_expires_at)
                .bind(found.id.as_str())
                .execute(&mut *tx)
                .await?;
                found.id
            }
            None => {
                let id = CallbackEmailId::generate();
                sqlx::query(
                    "INSERT INTO callback_emails (id, team_id, email, email_key, token_hash, token_expires_at, added_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(id.as_str())
                .bind(team_id)
                .bind(new.email.as_str())
                .bind(new.email.normalized())
                .bind(&new.token_hash)
                .bind(new.token_expires_at)
                .bind(new.added_by.as_deref())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        mail::insert(&mut tx, &new.mail).await?;
        audit::insert(&mut tx, Some(team_id), &new.event).await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callback_emails WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        from_row(&row)
    }

    /// Removes a callback address of the scope's team (at once: no more email callbacks to it).
    pub async fn remove_callback_email(
        &self,
        scope: &Scope,
        id: &str,
        event: &NewAuditEvent,
    ) -> StoreResult<CallbackEmail> {
        let team_id = scope.team_id();
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM callback_emails WHERE team_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ))
        .bind(team_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let removed = from_row(&row)?;
        audit::insert(&mut tx, Some(team_id), event).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Whether the scope's team may send email callbacks to `email`: a verified address of
    /// the team, or the address of one of its members.
    pub async fn callback_email_allowed(&self, scope: &Scope, email: &Email) -> StoreResult<bool> {
        email_allowed(self, scope.team_id(), email).await
    }
}

impl CrossTenant {
    /// The pending address a verification link (by its digest) is for, if still valid. The
    /// link is opened by whoever got the mail, signed in or not: the team is known only from
    /// the row the digest finds.
    pub async fn pending_callback_email(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<CallbackEmail>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM callback_emails WHERE token_hash = $1 AND token_expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.store.writer)
        .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// Marks the address of a valid link verified (the link stops working); `NotFound` for
    /// an unknown, used or expired link.
    pub async fn verify_callback_email(
        &self,
        token_hash: &str,
        event: &NewAuditEvent,
    ) -> StoreResult<CallbackEmail> {
        let mut tx = self.store.writer.begin().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "UPDATE callback_emails SET verified_at = $1, token_hash = NULL, token_expires_at = NULL \
             WHERE token_hash = $2 AND token_expires_at > $1 RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let found = from_row(&row)?;
        audit::insert(&mut tx, Some(&found.team_id), event).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Whether the team of a claimed delivery may send email callbacks to `email` (checked
    /// again when sent, by the worker that serves every team).
    pub async fn callback_email_allowed(&self, team_id: &str, email: &Email) -> StoreResult<bool> {
        email_allowed(&self.store, team_id, email).await
    }
}

async fn email_allowed(store: &Store, team_id: &str, email: &Email) -> StoreResult<bool> {
    let row: (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM callback_emails WHERE team_id = $1 AND email_key = $2 AND verified_at IS NOT NULL) \
                  + (SELECT COUNT(*) FROM users WHERE team_id = $1 AND email_key = $2)",
        )
        .bind(team_id)
        .bind(email.normalized())
        .fetch_one(&store.reader)
        .await?;
    Ok(row.0 > 0)
}
