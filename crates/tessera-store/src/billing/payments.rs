//! Charging open on-demand invoices: the payment job claims due invoices under a lease, and
//! records each attempt with the invoice's new payment state in one transaction. The attempt
//! number comes from the invoice, so a worker that dies after the provider charged but before
//! recording retries with the same idempotency key and the provider answers with the same
//! charge.

use sqlx::{AnyPool, Row};
use tessera_core::{
    billing::{AttemptStatus, PaymentStatus},
    ids::TeamId,
    money::Currency,
};

use super::word;
use crate::{new_id, now_ms, CrossTenant, StoreError, StoreResult};

/// An invoice whose charge is due, with what the provider needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeDue {
    pub invoice_id: String,
    pub team_id: TeamId,
    pub number: String,
    pub amount_due: i64,
    pub currency: Currency,
    /// The attempt this is (1 for the first).
    pub attempt: i64,
    pub customer_id: Option<String>,
    pub payment_method_id: Option<String>,
}

impl ChargeDue {
    /// The provider's idempotency key for this attempt: the same invoice and attempt always
    /// send the same key, so a retried request cannot charge twice.
    pub fn idempotency_key(&self) -> String {
        format!(
            "tessera-invoice-{}-attempt-{}",
            self.invoice_id, self.attempt
        )
    }
}

/// How an attempt went, to record.
#[derive(Debug, Clone)]
pub struct NewPaymentAttempt<'a> {
    pub due: &'a ChargeDue,
    pub status: AttemptStatus,
    pub provider_intent_id: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    /// When to try again after a failure; `None`: the schedule is used up (`failed`).
    pub retry_at: Option<i64>,
}

/// Marks an open (or uncollectible) invoice paid; its team and number when it moved.
pub(crate) async fn mark_paid(
    pool: &AnyPool,
    invoice_id: &str,
    at: i64,
) -> StoreResult<Option<(TeamId, String)>> {
    let moved: Option<(String, String)> = sqlx::query_as(
        "UPDATE invoices SET status = 'paid', paid_at = $1, payment_status = 'succeeded', \
         next_payment_at = NULL, payment_error = NULL, updated_at = $1 \
         WHERE id = $2 AND status IN ('open', 'uncollectible') RETURNING team_id, number",
    )
    .bind(at)
    .bind(invoice_id)
    .fetch_optional(pool)
    .await?;
    Ok(moved.map(|(team, number)| (TeamId::from_stored(team), number)))
}

impl CrossTenant {
    /// Claims up to `limit` invoices whose charge is due, each for `lease_ms`.
    pub async fn claim_due_charges(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ChargeDue>> {
        let claimed: Vec<(String,)> = sqlx::query_as(&format!(
            "UPDATE invoices SET next_payment_at = $1 WHERE id IN (\
             SELECT id FROM invoices WHERE next_payment_at <= $2 \
             ORDER BY next_payment_at, id LIMIT $3{}) AND next_payment_at <= $2 RETURNING id",
            self.store.skip_locked()
        ))
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.store.writer)
        .await?;
        let mut due = Vec::with_capacity(claimed.len());
        for (id,) in claimed {
            let row = sqlx::query(
                "SELECT i.id, i.team_id, i.number, i.amount_due, i.currency, i.payment_attempts, \
                 a.provider_customer_id, a.card_payment_method_id \
                 FROM invoices i JOIN billing_accounts a ON a.team_id = i.team_id WHERE i.id = $1",
            )
            .bind(&id)
            .fetch_one(&self.store.writer)
            .await?;
            let currency: String = row.try_get("currency")?;
            due.push(ChargeDue {
                invoice_id: row.try_get("id")?,
                team_id: TeamId::from_stored(row.try_get("team_id")?),
                number: row.try_get("number")?,
                amount_due: row.try_get("amount_due")?,
                currency: Currency::parse(&currency).map_err(|e| StoreError::Config(e.0))?,
                attempt: row.try_get::<i64, _>("payment_attempts")? + 1,
                customer_id: row.try_get("provider_customer_id")?,
                payment_method_id: row.try_get("card_payment_method_id")?,
            });
        }
        Ok(due)
    }

    /// Records an attempt and moves the invoice: `paid` on success; otherwise due again at
    /// `retry_at`, or `failed` when the schedule is used up.
    pub async fn record_payment_attempt(&self, attempt: &NewPaymentAttempt<'_>) -> StoreResult<()> {
        let now = now_ms();
        let due = attempt.due;
        let mut tx = self.store.writer.begin().await?;
        sqlx::query(
            "INSERT INTO payment_attempts (id, invoice_id, attempt, idempotency_key, amount, status, \
             provider_intent_id, error_code, error_message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new_id("pay"))
        .bind(&due.invoice_id)
        .bind(due.attempt)
        .bind(due.idempotency_key())
        .bind(due.amount_due)
        .bind(attempt.status.as_str())
        .bind(attempt.provider_intent_id)
        .bind(attempt.error_code)
        .bind(attempt.error_message)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if attempt.status == AttemptStatus::Succeeded {
            sqlx::query(
                "UPDATE invoices SET status = 'paid', paid_at = $1, payment_status = 'succeeded', \
                 payment_attempts = $2, next_payment_at = NULL, payment_error = NULL, updated_at = $1 \
                 WHERE id = $3 AND status = 'open'",
            )
            .bind(now)
            .bind(due.attempt)
            .bind(&due.invoice_id)
            .execute(&mut *tx)
            .await?;
        } else {
            let status = if attempt.retry_at.is_some() {
                PaymentStatus::Pending
            } else {
                PaymentStatus::Failed
            };
            sqlx::query(
                "UPDATE invoices SET payment_status = $1, payment_attempts = $2, next_payment_at = $3, \
                 payment_error = $4, updated_at = $5 WHERE id = $6 AND status = 'open'",
            )
            .bind(status.as_str())
            .bind(due.attempt)
            .bind(attempt.retry_at)
            .bind(attempt.error_message)
            .bind(now)
            .bind(&due.invoice_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a provider webhook event; false when it was already recorded (a replay), so
    /// each event is handled once.
    pub async fn record_provider_event(
        &self,
        provider: &str,
        event_id: &str,
        event_type: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO provider_events (provider, event_id, event_type, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .bind(event_type)
        .bind(now_ms())
        .execute(&self.store.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether a provider's webhook event was already recorded (then it is not acted on again).
    pub async fn provider_event_seen(&self, provider: &str, event_id: &str) -> StoreResult<bool> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT event_id FROM provider_events WHERE provider = $1 AND event_id = $2",
        )
        .bind(provider)
        .bind(event_id)
        .fetch_optional(&self.store.writer)
        .await?;
        Ok(row.is_some())
    }

    /// The payment state of an invoice, whatever its team (the webhook handler's check).
    pub async fn invoice_payment_status(
        &self,
        invoice_id: &str,
    ) -> StoreResult<Option<PaymentStatus>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT payment_status FROM invoices WHERE id = $1")
                .bind(invoice_id)
                .fetch_optional(&self.store.reader)
                .await?;
        row.map(|(w,)| word(&w)).transpose()
    }
}
