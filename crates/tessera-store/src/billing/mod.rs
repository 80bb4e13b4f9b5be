//! Billing's rows (migration 0010, ADR 0005): a team's billing account, the price book and
//! team prices, usage priced when its task completes, invoices made by the period close, the
//! credit ledger and payment attempts. Everything is history: prices, usage prices, open
//! invoices, lines, credit entries and attempts are never rewritten (the schema refuses).
//!
//! Billing belongs to the team, not to a mode: a [`Scope`] of either mode reads the team's
//! (live) billing.

mod close;
mod payments;
mod pricing;
mod read;

use sqlx::{any::AnyRow, Row};
use tessera_core::{
    billing::{
        month_start, next_month_start, AttemptStatus, CreditKind, InvoiceStatus, PaymentStatus,
        Plan,
    },
    ids::TeamId,
    money::Currency,
};

pub use close::CloseOutcome;
pub use payments::{ChargeDue, NewPaymentAttempt};
pub(crate) use pricing::record_usage;
pub use pricing::{NewPrice, Price};
pub use read::{BilledTask, UsageGroup, UsageRow, UsageTotals};

use crate::{new_id, now_ms, CrossTenant, Scope, Store, StoreError, StoreResult};

/// A team's billing account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccount {
    pub team_id: TeamId,
    pub plan: Plan,
    pub currency: Currency,
    pub spend_limit: Option<i64>,
    pub credit_balance: i64,
    /// This UTC month's accrued amount, as the spend limit sees it (see [`SpendState`]).
    pub accrued_month: i64,
    pub accrued_amount: i64,
    /// Where the next period starts.
    pub period_start: i64,
    pub provider_customer_id: Option<String>,
    pub card: Option<CardSummary>,
    pub created_at: i64,
}

/// The only card data Tessera keeps: the provider's payment-method id and what the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSummary {
    pub payment_method_id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
}

/// What task creation needs to apply the spend limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendState {
    pub spend_limit: Option<i64>,
    /// The amount accrued in the month that started at `accrued_month` (0 for another month).
    pub accrued_month: i64,
    pub accrued_amount: i64,
}

impl SpendState {
    /// Whether live work must be refused at `now`: this month's accrued amount reached the limit.
    pub fn limit_reached(&self, now: i64) -> bool {
        let accrued = if self.accrued_month == month_start(now) {
            self.accrued_amount
        } else {
            0
        };
        self.spend_limit.is_some_and(|limit| accrued >= limit)
    }
}

/// An invoice's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub team_id: String,
    pub sequence: i64,
    pub number: String,
    pub team_name: String,
    pub period_start: i64,
    pub period_end: i64,
    pub plan: Plan,
    pub currency: Currency,
    pub status: InvoiceStatus,
    pub subtotal: i64,
    pub credits_applied: i64,
    pub total: i64,
    pub amount_due: i64,
    pub payment_status: PaymentStatus,
    pub payment_attempts: i64,
    pub next_payment_at: Option<i64>,
    pub payment_error: Option<String>,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    pub opened_at: Option<i64>,
}

/// One line: a project × task type × unit price, with the project's name at the close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub position: i64,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub task_type: String,
    pub quantity: i64,
    pub unit_amount: i64,
    pub amount: i64,
}

/// A try to charge an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentAttempt {
    pub attempt: i64,
    pub amount: i64,
    pub status: AttemptStatus,
    pub provider_intent_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
}

/// An invoice with everything its page shows.
#[derive(Debug, Clone)]
pub struct InvoiceDetail {
    pub invoice: Invoice,
    pub lines: Vec<InvoiceLine>,
    pub attempts: Vec<PaymentAttempt>,
}

/// A credit ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditEntry {
    pub id: String,
    pub kind: CreditKind,
    pub amount: i64,
    pub balance_after: i64,
    pub invoice_id: Option<String>,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str =
    "team_id, plan, currency, spend_limit, credit_balance, accrued_month, \
     accrued_amount, closed_until, provider_customer_id, card_payment_method_id, card_brand, \
     card_last4, card_exp_month, card_exp_year, created_at";

pub(crate) const INVOICE_COLUMNS: &str = "id, team_id, sequence, number, team_name, period_start, \
     period_end, plan, currency, status, subtotal, credits_applied, total, amount_due, \
     payment_status, payment_attempts, next_payment_at, payment_error, paid_at, created_at, opened_at";

/// A stored word the schema allows, as its enum (a word it does not is corruption, said so).
pub(crate) fn word<T: std::str::FromStr<Err = tessera_core::Invalid>>(raw: &str) -> StoreResult<T> {
    raw.parse()
        .map_err(|e: tessera_core::Invalid| StoreError::Config(e.0))
}

fn currency(raw: &str) -> StoreResult<Currency> {
    Currency::parse(raw).map_err(|e| StoreError::Config(e.0))
}

/// Where a period starts for an account: the end of the last close, or (never closed) the
/// start of the month the account was opened in.
pub(crate) fn period_start_of(closed_until: i64, created_at: i64) -> i64 {
    if closed_until > 0 {
        closed_until
    } else {
        month_start(created_at)
    }
}

fn account_from_row(row: &AnyRow) -> StoreResult<BillingAccount> {
    let plan: String = row.try_get("plan")?;
    let currency_word: String = row.try_get("currency")?;
    let card = match (
        row.try_get::<Option<String>, _>("card_payment_method_id")?,
        row.try_get::<Option<String>, _>("card_brand")?,
        row.try_get::<Option<String>, _>("card_last4")?,
        row.try_get::<Option<i64>, _>("card_exp_month")?,
        row.try_get::<Option<i64>, _>("card_exp_year")?,
    ) {
        (Some(payment_method_id), Some(brand), Some(last4), Some(exp_month), Some(exp_year)) => {
            Some(CardSummary {
                payment_method_id,
                brand,
                last4,
                exp_month,
                exp_year,
            })
        }
        _ => None,
    };
    let created_at: i64 = row.try_get("created_at")?;
    Ok(BillingAccount {
        team_id: TeamId::from_stored(row.try_get("team_id")?),
        plan: word(&plan)?,
        currency: currency(&currency_word)?,
        spend_limit: row.try_get("spend_limit")?,
        credit_balance: row.try_get("credit_balance")?,
        accrued_month: row.try_get("accrued_month")?,
        accrued_amount: row.try_get("accrued_amount")?,
        period_start: period_start_of(row.try_get("closed_until")?, created_at),
        provider_customer_id: row.try_get("provider_customer_id")?,
        card,
        created_at,
    })
}

pub(crate) fn invoice_from_row(row: &AnyRow) -> StoreResult<Invoice> {
    let plan: String = row.try_get("plan")?;
    let currency_word: String = row.try_get("currency")?;
    let status: String = row.try_get("status")?;
    let payment_status: String = row.try_get("payment_status")?;
    Ok(Invoice {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        sequence: row.try_get("sequence")?,
        number: row.try_get("number")?,
        team_name: row.try_get("team_name")?,
        period_start: row.try_get("period_start")?,
        period_end: row.try_get("period_end")?,
        plan: word(&plan)?,
        currency: currency(&currency_word)?,
        status: word(&status)?,
        subtotal: row.try_get("subtotal")?,
        credits_applied: row.try_get("credits_applied")?,
        total: row.try_get("total")?,
        amount_due: row.try_get("amount_due")?,
        payment_status: word(&payment_status)?,
        payment_attempts: row.try_get("payment_attempts")?,
        next_payment_at: row.try_get("next_payment_at")?,
        payment_error: row.try_get("payment_error")?,
        paid_at: row.try_get("paid_at")?,
        created_at: row.try_get("created_at")?,
        opened_at: row.try_get("opened_at")?,
    })
}

fn credit_from_row(row: &AnyRow) -> StoreResult<CreditEntry> {
    let kind: String = row.try_get("kind")?;
    Ok(CreditEntry {
        id: row.try_get("id")?,
        kind: word(&kind)?,
        amount: row.try_get("amount")?,
        balance_after: row.try_get("balance_after")?,
        invoice_id: row.try_get("invoice_id")?,
        reason: row.try_get("reason")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Opens a team's billing account (on-demand, US dollars, first close due at the start of next
/// month) the first time billing touches the team: its first completed task, or a billing
/// read. A team that never completes a task has nothing to close.
pub(crate) async fn open_account(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO billing_accounts (team_id, next_close_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) ON CONFLICT (team_id) DO NOTHING",
    )
    .bind(team_id)
    .bind(next_month_start(now))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The team's account, opened now if it has none yet (the migration opened one for every team
/// that existed then).
pub(crate) async fn account_in(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    lock: &str,
) -> StoreResult<BillingAccount> {
    let select = format!("SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE team_id = $1{lock}");
    if let Some(row) = sqlx::query(&select)
        .bind(team_id)
        .fetch_optional(&mut *conn)
        .await?
    {
        return account_from_row(&row);
    }
    open_account(&mut *conn, team_id, now_ms()).await?;
    let row = sqlx::query(&select)
        .bind(team_id)
        .fetch_one(&mut *conn)
        .await?;
    account_from_row(&row)
}

impl Store {
    /// The scope's team's billing account.
    pub async fn billing_account(&self, scope: &Scope) -> StoreResult<BillingAccount> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM billing_accounts WHERE team_id = $1"
        ))
        .bind(scope.team_id())
        .fetch_optional(&self.reader)
        .await?;
        match row {
            Some(row) => account_from_row(&row),
            None => {
                let mut conn = self.writer.acquire().await?;
                account_in(&mut conn, scope.team_id(), "").await
            }
        }
    }

    /// What the spend limit needs, in one primary-key read (task creation caches it).
    pub async fn spend_state(&self, scope: &Scope) -> StoreResult<SpendState> {
        let row: Option<(Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT spend_limit, accrued_month, accrued_amount FROM billing_accounts WHERE team_id = $1",
        )
        .bind(scope.team_id())
        .fetch_optional(&self.reader)
        .await?;
        let (spend_limit, accrued_month, accrued_amount) = row.unwrap_or((None, 0, 0));
        Ok(SpendState {
            spend_limit,
            accrued_month,
            accrued_amount,
        })
    }

    /// Sets (or with `None` removes) the team's monthly spend limit. When the limit is lowered
    /// below what is already accrued, the alert levels are re-armed so the right one is mailed.
    pub async fn set_spend_limit(&self, scope: &Scope, limit: Option<i64>) -> StoreResult<()> {
        if limit.is_some_and(|l| l <= 0) {
            return Err(StoreError::InvalidState(
                "a spend limit must be more than zero".into(),
            ));
        }
        let mut tx = self.writer.begin().await?;
        let account = account_in(&mut tx, scope.team_id(), self.for_update()).await?;
        let now = now_ms();
        let accrued = if account.accrued_month == month_start(now) {
            account.accrued_amount
        } else {
            0
        };
        let level = tessera_core::billing::alert_level(accrued, limit);
        sqlx::query(
            "UPDATE billing_accounts SET spend_limit = $1, alert_level = $2, \
             alert_mailed = CASE WHEN alert_mailed > $2 THEN $2 ELSE alert_mailed END, \
             updated_at = $3 WHERE team_id = $4",
        )
        .bind(limit)
        .bind(level)
        .bind(now)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the team's plan (staff).
    pub async fn set_plan(&self, scope: &Scope, plan: Plan) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await?;
        account_in(&mut conn, scope.team_id(), "").await?;
        sqlx::query("UPDATE billing_accounts SET plan = $1, updated_at = $2 WHERE team_id = $3")
            .bind(plan.as_str())
            .bind(now_ms())
            .bind(scope.team_id())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Records the provider's customer for the team (made the first time the Admin adds a card).
    pub async fn set_provider_customer(&self, scope: &Scope, customer_id: &str) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await?;
        account_in(&mut conn, scope.team_id(), "").await?;
        sqlx::query(
            "UPDATE billing_accounts SET provider_customer_id = $1, updated_at = $2 WHERE team_id = $3",
        )
        .bind(customer_id)
        .bind(now_ms())
        .bind(scope.team_id())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Saves the card the provider confirmed (replacing any earlier one). Open invoices whose
    /// charge failed for want of a card become due again at once.
    pub async fn save_card(&self, scope: &Scope, card: &CardSummary) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE billing_accounts SET card_payment_method_id = $1, card_brand = $2, \
             card_last4 = $3, card_exp_month = $4, card_exp_year = $5, updated_at = $6 \
             WHERE team_id = $7 AND provider_customer_id IS NOT NULL",
        )
        .bind(&card.payment_method_id)
        .bind(&card.brand)
        .bind(&card.last4)
        .bind(card.exp_month)
        .bind(card.exp_year)
        .bind(now)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::InvalidState(
                "the team has no payment-provider customer yet".into(),
            ));
        }
        sqlx::query(
            "UPDATE invoices SET payment_status = 'pending', next_payment_at = $1, updated_at = $1 \
             WHERE team_id = $2 AND status = 'open' AND payment_status IN ('pending', 'failed')",
        )
        .bind(now)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a credit entry: a grant (positive) or a correction (negative, which may not take
    /// the balance below zero: the schema refuses, and this says so).
    pub async fn grant_credit(
        &self,
        scope: &Scope,
        amount: i64,
        reason: &str,
        actor: &str,
    ) -> StoreResult<CreditEntry> {
        if amount == 0 {
            return Err(StoreError::InvalidState(
                "a credit entry must not be zero".into(),
            ));
        }
        let kind = if amount > 0 {
            CreditKind::Grant
        } else {
            CreditKind::Adjustment
        };
        let mut tx = self.writer.begin().await?;
        let account = account_in(&mut tx, scope.team_id(), self.for_update()).await?;
        let Some(balance_after) = account
            .credit_balance
            .checked_add(amount)
            .filter(|b| *b >= 0)
        else {
            return Err(StoreError::InvalidState(format!(
                "the credit balance is {}: it cannot go below zero",
                account.credit_balance
            )));
        };
        let entry = insert_credit(
            &mut tx,
            scope.team_id(),
            kind,
            amount,
            balance_after,
            None,
            reason,
            actor,
        )
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// The team's credit entries, newest first.
    pub async fn credit_entries(&self, scope: &Scope, limit: i64) -> StoreResult<Vec<CreditEntry>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, balance_after, invoice_id, reason, actor, created_at \
             FROM credit_ledger WHERE team_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(scope.team_id())
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(credit_from_row).collect()
    }
}

/// Appends a credit entry and moves the account's balance with it (the balance's CHECK keeps
/// it at zero or more, whatever a caller computed).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_credit(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    kind: CreditKind,
    amount: i64,
    balance_after: i64,
    invoice_id: Option<&str>,
    reason: &str,
    actor: &str,
) -> StoreResult<CreditEntry> {
    let now = now_ms();
    let id = new_id("cred");
    sqlx::query(
        "UPDATE billing_accounts SET credit_balance = $1, updated_at = $2 WHERE team_id = $3",
    )
    .bind(balance_after)
    .bind(now)
    .bind(team_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO credit_ledger (id, team_id, kind, amount, balance_after, invoice_id, reason, actor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(team_id)
    .bind(kind.as_str())
    .bind(amount)
    .bind(balance_after)
    .bind(invoice_id)
    .bind(reason)
    .bind(actor)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(CreditEntry {
        id,
        kind,
        amount,
        balance_after,
        invoice_id: invoice_id.map(str::to_owned),
        reason: reason.to_owned(),
        actor: actor.to_owned(),
        created_at: now,
    })
}

impl CrossTenant {
    /// Teams whose spend-limit alert level rose past what was mailed: `(team, level, month)`.
    pub async fn spend_alerts_due(&self, limit: i64) -> StoreResult<Vec<(TeamId, i64, i64)>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT team_id, alert_level, accrued_month FROM billing_accounts \
             WHERE alert_level > alert_mailed ORDER BY team_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.store.writer)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(team, level, month)| (TeamId::from_stored(team), level, month))
            .collect())
    }

    /// Marks `level` mailed for the team's `month`, unless another worker did first or the
    /// month has turned (then the alert is stale). True when this caller should send it.
    pub async fn take_spend_alert(
        &self,
        team: &TeamId,
        level: i64,
        month: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE billing_accounts SET alert_mailed = $1 \
             WHERE team_id = $2 AND alert_level >= $1 AND alert_mailed < $1 AND accrued_month = $3",
        )
        .bind(level)
        .bind(team.as_str())
        .bind(month)
        .execute(&self.store.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A team's billing account, for the billing jobs (which act for no one's request).
    pub async fn billing_account_of(&self, team: &TeamId) -> StoreResult<BillingAccount> {
        let mut conn = self.store.writer.acquire().await?;
        account_in(&mut conn, team.as_str(), "").await
    }

    /// An audit entry in a team's log from a billing job or the provider's webhook.
    pub async fn record_billing_audit(
        &self,
        team: &TeamId,
        event: &crate::NewAuditEvent,
    ) -> StoreResult<()> {
        let mut conn = self.store.writer.acquire().await?;
        crate::audit::insert(&mut conn, Some(team.as_str()), event).await
    }

    /// The addresses of a team's people with one of `roles` (whom billing mail goes to).
    pub async fn team_emails(
        &self,
        team: &TeamId,
        roles: &[tessera_core::Role],
    ) -> StoreResult<Vec<String>> {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT email, role FROM users WHERE team_id = $1 ORDER BY email")
                .bind(team.as_str())
                .fetch_all(&self.store.reader)
                .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, role)| {
                role.as_deref()
                    .and_then(|r| r.parse::<tessera_core::Role>().ok())
                    .is_some_and(|r| roles.contains(&r))
            })
            .map(|(email, _)| email)
            .collect())
    }

    /// The invoice-status change a provider's webhook reports (`paid` after a charge the
    /// payment job did not see end). Only an open invoice moves; then its team and number.
    pub async fn mark_invoice_paid(
        &self,
        invoice_id: &str,
        at: i64,
    ) -> StoreResult<Option<(TeamId, String)>> {
        payments::mark_paid(&self.store.writer, invoice_id, at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_state_counts_only_this_month() {
        let now = 1_795_219_200_000; // 2026-11-21
        let state = SpendState {
            spend_limit: Some(100),
            accrued_month: month_start(now),
            accrued_amount: 100,
        };
        assert!(state.limit_reached(now));
        let last_month = SpendState {
            accrued_month: month_start(now) - 1,
            ..state
        };
        assert!(!last_month.limit_reached(now));
        let no_limit = SpendState {
            spend_limit: None,
            ..state
        };
        assert!(!no_limit.limit_reached(now));
        assert_eq!(period_start_of(0, now), month_start(now));
        assert_eq!(period_start_of(42, now), 42);
    }

    #[test]
    fn every_status_has_a_word() {
        assert_eq!(
            PaymentStatus::from_word("pending"),
            Some(PaymentStatus::Pending)
        );
        assert_eq!(
            AttemptStatus::from_word("declined"),
            Some(AttemptStatus::Declined)
        );
        assert_eq!(InvoiceStatus::from_word("open"), Some(InvoiceStatus::Open));
    }
}
