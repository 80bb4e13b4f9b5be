//! The period close: one transaction per team turns its unbilled priced usage completed
//! before `end` into an open invoice. Closers of one team queue on the account's row lock
//! (PostgreSQL; SQLite has one writer), and the second finds the period closed; the unique
//! `(team_id, period_start)` backs that up. A completion holds the same row lock from the
//! accrual update to its commit, so its usage is either in the closer's snapshot or written
//! after the close and billed by the next one: in exactly one invoice.

use sqlx::Row;
use tessera_core::{
    billing::{invoice_number, CreditKind, PaymentStatus, Plan},
    ids::TeamId,
    money::Money,
};

use super::{account_in, insert_credit};

/// Drafts' placeholder sequence numbers start here (random above it, 61 bits), far above any
/// real invoice number and within the schema's `sequence > 0`.
const DRAFT_SEQUENCE_BASE: i64 = 1 << 61;
use crate::{new_id, now_ms, CrossTenant, Scope, Store, StoreError, StoreResult};

/// What a close did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// An invoice was made (its id and number).
    Closed { invoice_id: String, number: String },
    /// No priced usage was waiting before `end` (or another closer got there first); the
    /// account's period now starts at `end` when it started before.
    NothingToClose,
}

impl Store {
    /// Closes the scope's team's period at `end` (the operator CLI, the staff console).
    /// `payment` is how an on-demand invoice's payment starts (pending a charge, or not
    /// configured without a provider).
    pub async fn close_period(
        &self,
        scope: &Scope,
        end: i64,
        payment: PaymentStatus,
    ) -> StoreResult<CloseOutcome> {
        close(self, scope.team_id(), end, payment).await
    }
}

impl CrossTenant {
    /// Claims up to `limit` teams whose close is due, each under a lease of `lease_ms` (as
    /// the other jobs claim): another replica skips them until the lease ends.
    pub async fn claim_due_closes(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<TeamId>> {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "UPDATE billing_accounts SET next_close_at = $1 WHERE team_id IN (\
             SELECT team_id FROM billing_accounts WHERE next_close_at <= $2 \
             ORDER BY next_close_at, team_id LIMIT $3{}) AND next_close_at <= $2 RETURNING team_id",
            self.store.skip_locked()
        ))
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.store.writer)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(team,)| TeamId::from_stored(team))
            .collect())
    }

    /// The close job's work for one claimed team: close at `end`, then due again at `next`.
    pub async fn close_claimed(
        &self,
        team: &TeamId,
        end: i64,
        next: i64,
        payment: PaymentStatus,
    ) -> StoreResult<CloseOutcome> {
        let outcome = close(&self.store, team.as_str(), end, payment).await?;
        sqlx::query("UPDATE billing_accounts SET next_close_at = $1 WHERE team_id = $2")
            .bind(next)
            .bind(team.as_str())
            .execute(&self.store.writer)
            .await?;
        Ok(outcome)
    }
}

/// A line being made: project × task type × unit price, and how many tasks.
struct LineGroup {
    project_id: Option<String>,
    project_name: Option<String>,
    task_type: String,
    unit_amount: i64,
    quantity: i64,
}

async fn close(
    store: &Store,
    team_id: &str,
    end: i64,
    payment: PaymentStatus,
) -> StoreResult<CloseOutcome> {
    let now = now_ms();
    let mut tx = store.writer.begin().await?;
    let account = account_in(&mut tx, team_id, store.for_update()).await?;
    let period_start = account.period_start;
    if end <= period_start {
        return Ok(CloseOutcome::NothingToClose);
    }
    let (team_name,): (String,) = sqlx::query_as("SELECT name FROM teams WHERE id = $1")
        .bind(team_id)
        .fetch_one(&mut *tx)
        .await?;
    let invoice_id = new_id("inv");
    // The draft carries a placeholder number until the end of the transaction: the counter's
    // row lock, which every closer needs, is then held only for the last statements, so the
    // closes of different teams stamp their usage in parallel. No one else sees a draft.
    let draft_sequence = DRAFT_SEQUENCE_BASE + (rand::random::<i64>() >> 2).abs();
    let draft_number = format!("DRAFT-{invoice_id}");
    let currency = account.currency;
    let inserted = sqlx::query(
        "INSERT INTO invoices (id, team_id, sequence, number, team_name, period_start, period_end, \
         plan, currency, status, payment_status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft', 'not_required', $10, $10)",
    )
    .bind(&invoice_id)
    .bind(team_id)
    .bind(draft_sequence)
    .bind(&draft_number)
    .bind(&team_name)
    .bind(period_start)
    .bind(end)
    .bind(account.plan.as_str())
    .bind(currency.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        // Another closer made this period's invoice (the row lock makes this rare).
        Err(err) => match StoreError::from(err) {
            StoreError::Unique(_) => return Ok(CloseOutcome::NothingToClose),
            other => return Err(other),
        },
    }
    let stamped = sqlx::query(
        "UPDATE usage_records SET invoice_id = $1 WHERE team_id = $2 AND invoice_id IS NULL \
         AND unit_amount IS NOT NULL AND currency = $3 AND completed_at < $4",
    )
    .bind(&invoice_id)
    .bind(team_id)
    .bind(currency.as_str())
    .bind(end)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if stamped == 0 {
        // Nothing to bill: no invoice, and the next period starts at `end`.
        tx.rollback().await?;
        sqlx::query(
            "UPDATE billing_accounts SET closed_until = $1, updated_at = $2 \
             WHERE team_id = $3 AND closed_until < $1",
        )
        .bind(end)
        .bind(now)
        .bind(team_id)
        .execute(&store.writer)
        .await?;
        return Ok(CloseOutcome::NothingToClose);
    }
    let groups = sqlx::query(
        "SELECT u.project_id, MAX(p.name) AS project_name, u.task_type, u.unit_amount, COUNT(*) AS quantity \
         FROM usage_records u LEFT JOIN projects p ON p.id = u.project_id \
         WHERE u.invoice_id = $1 GROUP BY u.project_id, u.task_type, u.unit_amount \
         ORDER BY MAX(p.name), u.project_id, u.task_type, u.unit_amount",
    )
    .bind(&invoice_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(LineGroup {
            project_id: r.try_get("project_id")?,
            project_name: r.try_get("project_name")?,
            task_type: r.try_get("task_type")?,
            unit_amount: r.try_get("unit_amount")?,
            quantity: r.try_get("quantity")?,
        })
    })
    .collect::<StoreResult<Vec<_>>>()?;
    let mut subtotal = Money::zero(currency);
    for (position, line) in groups.iter().enumerate() {
        let amount = Money::new(line.unit_amount, currency)
            .checked_mul(line.quantity)
            .map_err(|e| StoreError::InvalidState(e.to_string()))?;
        subtotal = subtotal
            .checked_add(amount)
            .map_err(|e| StoreError::InvalidState(e.to_string()))?;
        sqlx::query(
            "INSERT INTO invoice_lines (id, invoice_id, position, project_id, project_name, \
             task_type, quantity, unit_amount, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new_id("line"))
        .bind(&invoice_id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&line.project_id)
        .bind(&line.project_name)
        .bind(&line.task_type)
        .bind(line.quantity)
        .bind(line.unit_amount)
        .bind(amount.minor())
        .execute(&mut *tx)
        .await?;
    }
    let subtotal = subtotal.minor();
    let (sequence,): (i64,) = sqlx::query_as(
        "UPDATE invoice_numbers SET last_number = last_number + 1 WHERE id = 1 RETURNING last_number",
    )
    .fetch_one(&mut *tx)
    .await?;
    let number = invoice_number(sequence);
    let credits = account.credit_balance.min(subtotal);
    if credits > 0 {
        insert_credit(
            &mut tx,
            team_id,
            CreditKind::Consumption,
            -credits,
            account.credit_balance - credits,
            Some(&invoice_id),
            &format!("applied to invoice {number}"),
            "period close",
        )
        .await?;
    }
    let total = subtotal - credits;
    let payment = match account.plan {
        Plan::Enterprise => PaymentStatus::NotRequired,
        Plan::OnDemand if total == 0 => PaymentStatus::NotRequired,
        Plan::OnDemand => payment,
    };
    let next_payment_at = (payment == PaymentStatus::Pending).then_some(now);
    sqlx::query(
        "UPDATE invoices SET sequence = $8, number = $9, subtotal = $1, credits_applied = $2, \
         total = $3, amount_due = $3, status = 'open', opened_at = $4, updated_at = $4, \
         payment_status = $5, next_payment_at = $6 WHERE id = $7",
    )
    .bind(subtotal)
    .bind(credits)
    .bind(total)
    .bind(now)
    .bind(payment.as_str())
    .bind(next_payment_at)
    .bind(&invoice_id)
    .bind(sequence)
    .bind(&number)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE billing_accounts SET closed_until = $1, updated_at = $2 WHERE team_id = $3",
    )
    .bind(end)
    .bind(now)
    .bind(team_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(CloseOutcome::Closed { invoice_id, number })
}
