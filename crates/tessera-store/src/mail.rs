//! The durable mail outbox.

use sqlx::{any::AnyRow, Row};
use tessera_core::ids::MailId;

pub use tessera_core::status::MailStatus;

use crate::{now_ms, CrossTenant, Store, StoreError, StoreResult};

/// A message to queue. The body is already sealed (encrypted) by the caller.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub team_id: Option<String>,
    pub to: String,
    pub subject: String,
    pub body_sealed: String,
}

/// A message in the outbox, as the worker and the staff console see it.
#[derive(Debug, Clone)]
pub struct MailMessage {
    pub id: MailId,
    pub team_id: Option<String>,
    pub to: String,
    pub subject: String,
    pub body_sealed: String,
    pub status: MailStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

const MAIL_COLUMNS: &str =
    "id, team_id, to_addr, subject, body_sealed, status, attempts, last_error, created_at, finished_at";

fn mail_from_row(row: &AnyRow) -> StoreResult<MailMessage> {
    let status: String = row.try_get("status")?;
    Ok(MailMessage {
        id: MailId::from_stored(row.try_get("id")?),
        team_id: row.try_get("team_id")?,
        to: row.try_get("to_addr")?,
        subject: row.try_get("subject")?,
        body_sealed: row.try_get("body_sealed")?,
        status: MailStatus::from_word(&status)
            .ok_or_else(|| StoreError::Config(format!("bad mail status {status}")))?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

pub(crate) async fn insert(conn: &mut sqlx::AnyConnection, mail: &NewMail) -> StoreResult<String> {
    let id = MailId::generate().into_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO mail_outbox (id, team_id, to_addr, subject, body_sealed, status, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6)",
    )
    .bind(&id)
    .bind(mail.team_id.as_deref())
    .bind(&mail.to)
    .bind(&mail.subject)
    .bind(&mail.body_sealed)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

impl Store {
    pub async fn enqueue_mail(&self, mail: &NewMail) -> StoreResult<String> {
        let mut conn = self.writer.acquire().await?;
        insert(&mut conn, mail).await
    }
}

/// The outbox is one queue for every team (and for mail of no team): the worker claims from
/// all of it, and only platform staff list it.
impl CrossTenant {
    /// Claims up to `limit` due messages for `lease_ms`. A claim that is never finished (the
    /// process died) expires and the message is picked up again: at-least-once delivery.
    pub async fn claim_due_mail(&self, lease_ms: i64, limit: i64) -> StoreResult<Vec<MailMessage>> {
        let now = now_ms();
        let rows = sqlx::query(&format!(
            "UPDATE mail_outbox SET locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM mail_outbox WHERE status = 'queued' AND next_attempt_at <= $2 \
                          AND (locked_until IS NULL OR locked_until <= $2) \
                          ORDER BY next_attempt_at LIMIT $3{skip}) \
             AND (locked_until IS NULL OR locked_until <= $2) RETURNING {MAIL_COLUMNS}",
            skip = self.store.skip_locked()
        ))
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.store.writer)
        .await?;
        rows.iter().map(mail_from_row).collect()
    }

    /// Records the end of an attempt: `Sent`/`Held`/`Failed` finish the message, `Queued`
    /// schedules another attempt at `next_attempt_at`.
    pub async fn finish_mail_attempt(
        &self,
        id: &MailId,
        status: MailStatus,
        error: Option<&str>,
        next_attempt_at: i64,
    ) -> StoreResult<()> {
        let finished = (status != MailStatus::Queued).then(now_ms);
        sqlx::query(
            "UPDATE mail_outbox SET status = $1, last_error = $2, next_attempt_at = $3, \
             locked_until = NULL, finished_at = $4 WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(next_attempt_at)
        .bind(finished)
        .bind(id.as_str())
        .execute(&self.store.writer)
        .await?;
        Ok(())
    }

    /// The outbox, newest first, `limit` at a time after `offset`.
    pub async fn list_mail(&self, limit: i64, offset: i64) -> StoreResult<Vec<MailMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.store.reader)
        .await?;
        rows.iter().map(mail_from_row).collect()
    }

    /// One message of the outbox, for the staff console.
    pub async fn get_mail(&self, id: &str) -> StoreResult<Option<MailMessage>> {
        let row = sqlx::query(&format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.store.reader)
        .await?;
        row.as_ref().map(mail_from_row).transpose()
    }
}
