//! Billing's rules over the store, shared by the Billing pages, the `/v1/billing` API, the
//! staff console, the jobs and the operator CLI: the current period, the overview every view
//! shows, the spend limit at task creation, and the staff operations with their audit entries.

use std::time::Duration;

use tessera_core::{
    billing::{
        day_start, month_start, next_month_start, priceable_task_type, PaymentStatus, Plan, DAY_MS,
        MAX_UNIT_AMOUNT,
    },
    money::{Currency, Money},
    AuditAction, Invalid, Scope,
};
use tessera_store::{
    BillingAccount, CardSummary, CloseOutcome, CreditEntry, Invoice, NewAuditEvent, NewPrice,
    Price, SpendState, Store, StoreError, UsageGroup, UsageRow, UsageTotals,
};

use super::provider::{PaymentProvider, ProviderError, SetupSession};
use crate::{state::AppState, ttl::TtlMap};

/// How long task creation trusts a team's spend state: the limit may be overshot by what
/// completes in this long (README "Billing").
pub const SPEND_STATE_TTL: Duration = Duration::from_secs(2);

/// Invoices shown on the Billing page.
pub const RECENT_INVOICES: i64 = 12;

/// The longest range the usage endpoint and chart accept, in days.
pub const MAX_USAGE_DAYS: i64 = 366;

/// A half-open range of time, `[start, end)`, in epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

/// The UTC month holding `now`: the period usage accrues in.
pub fn current_period(now: i64) -> Period {
    Period {
        start: month_start(now),
        end: next_month_start(now),
    }
}

/// Everything the Billing page and `GET /v1/billing` show, read once so they agree.
#[derive(Debug, Clone)]
pub struct Overview {
    pub account: BillingAccount,
    pub period: Period,
    /// Priced live usage not invoiced yet: the count and the accrued amount (what the next
    /// close invoices; normally this period's, plus any of a period not closed yet).
    pub totals: UsageTotals,
}

/// The overview of the scope's team at `now`.
pub async fn overview(store: &Store, scope: &Scope, now: i64) -> Result<Overview, StoreError> {
    let account = store.billing_account(scope).await?;
    let period = current_period(now);
    let totals = store.unbilled_totals(scope).await?;
    Ok(Overview {
        account,
        period,
        totals,
    })
}

/// One day of the usage chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartDay {
    pub day_start: i64,
    pub completed_tasks: i64,
    pub amount: i64,
}

/// The last `days` UTC days up to and including today's, each with its usage (zero days
/// included, so the chart's x axis is time).
pub async fn chart_days(
    store: &Store,
    scope: &Scope,
    now: i64,
    days: i64,
) -> Result<Vec<ChartDay>, StoreError> {
    let days = days.clamp(1, MAX_USAGE_DAYS);
    let first = day_start(now) - (days - 1) * DAY_MS;
    let rows = store
        .usage_breakdown(scope, first, day_start(now) + DAY_MS, UsageGroup::Day)
        .await?;
    Ok(fill_days(&rows, first, days))
}

fn fill_days(rows: &[UsageRow], first: i64, days: i64) -> Vec<ChartDay> {
    (0..days)
        .map(|i| {
            let day = first + i * DAY_MS;
            let totals = rows
                .iter()
                .find(|r| r.day == Some(day))
                .map(|r| r.totals)
                .unwrap_or_default();
            ChartDay {
                day_start: day,
                completed_tasks: totals.completed_tasks,
                amount: totals.amount,
            }
        })
        .collect()
}

/// Remembered spend states, by team (task creation reads them).
pub struct SpendStates(TtlMap<SpendState>);

impl Default for SpendStates {
    fn default() -> Self {
        Self(TtlMap::new(SPEND_STATE_TTL))
    }
}

impl SpendStates {
    /// Whether the scope's team reached its spend limit this month (live work is refused).
    pub async fn limit_reached(&self, store: &Store, scope: &Scope) -> Result<bool, StoreError> {
        let state = self
            .0
            .get_or_load(scope.team_id(), store.spend_state(scope))
            .await?;
        Ok(state.limit_reached(tessera_store::now_ms()))
    }

    /// Forgets the team's state after its limit changed here.
    pub fn forget(&self, team_id: &str) {
        self.0.forget(team_id);
    }
}

/// The 402 a live task creation gets once the spend limit is reached.
pub fn spend_limit_message(limit: Money) -> String {
    format!(
        "Your team reached its monthly spend limit of {limit}: live tasks cannot be created until \
         the next period or until your Admin raises the spend limit on the Billing page. \
         Test tasks are not affected."
    )
}

/// Parses an amount typed on a page (`12.34`, `12`, `1,234.50`) into minor units of
/// `currency`; empty is `None`.
pub fn parse_amount(raw: &str, currency: Currency) -> Result<Option<i64>, Invalid> {
    let cleaned: String = raw.trim().chars().filter(|c| *c != ',').collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Invalid(format!(
            "\"{}\" is not an amount: give a number such as 250 or 250.00.",
            raw.trim().chars().take(30).collect::<String>()
        ))
    };
    let exponent = currency.exponent();
    let (whole, fraction) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > usize::try_from(exponent).unwrap_or(0)
        || whole.len() > 12
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let scale = 10_i64.pow(exponent);
    let padded = format!(
        "{fraction:0<width$}",
        width = usize::try_from(exponent).unwrap_or(0)
    );
    let fraction: i64 = if padded.is_empty() {
        0
    } else {
        padded.parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .map(Some)
        .ok_or_else(bad)
}

/// Parses a credit typed on the staff page: an amount as [`parse_amount`] reads it, where a
/// leading `-` is a correction taking credit back (as the CLI's negative `--amount`);
/// [`grant_credit`] then keeps the balance from going below zero. Empty and zero are refused:
/// a credit entry of nothing would only clutter the team's ledger.
pub fn parse_credit_amount(raw: &str, currency: Currency) -> Result<i64, Invalid> {
    let raw = raw.trim();
    let (sign, digits) = match raw.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, raw),
    };
    match parse_amount(digits, currency)? {
        Some(amount) if amount > 0 => Ok(sign * amount),
        _ => Err(Invalid(
            "Enter an amount, e.g. 25.00 (or -5.00 to take credit back).".into(),
        )),
    }
}

/// Sets or removes the spend limit (the Admin), audited.
pub async fn set_spend_limit(
    state: &AppState,
    scope: &Scope,
    limit: Option<i64>,
    event: NewAuditEvent,
) -> Result<(), StoreError> {
    state.store.set_spend_limit(scope, limit).await?;
    state.spend_states.forget(scope.team_id());
    state.store.record_audit(scope, &event).await
}

/// Whether this installation charges cards: a payment provider is configured.
pub fn payments_configured(state: &AppState) -> bool {
    state.payments.is_some()
}

/// How an on-demand invoice's payment starts on this installation.
pub fn opening_payment(state: &AppState) -> PaymentStatus {
    if payments_configured(state) {
        PaymentStatus::Pending
    } else {
        PaymentStatus::NotConfigured
    }
}

/// Why a card could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// No payment provider on this installation, or the team is invoiced (enterprise).
    #[error("cards are not taken here")]
    NotTaken,
    /// The form's SetupIntent id is not one.
    #[error("{0}")]
    Invalid(String),
    /// The browser has not confirmed the card with the provider (yet).
    #[error("the card was not confirmed with the payment provider; try again")]
    NotConfirmed,
    #[error("the payment provider: {0}")]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The longest provider id the card form accepts (Stripe's are well under it).
const MAX_PROVIDER_ID: usize = 255;

/// The provider and the team's billing account, when the team may save a card.
async fn card_setup_parts<'s>(
    state: &'s AppState,
    scope: &Scope,
) -> Result<(&'s dyn PaymentProvider, BillingAccount), CardError> {
    let provider = state.payments.as_deref().ok_or(CardError::NotTaken)?;
    let account = state.store.billing_account(scope).await?;
    if account.plan == Plan::Enterprise {
        return Err(CardError::NotTaken);
    }
    Ok((provider, account))
}

/// Starts saving a card: the team's provider customer (made the first time) and a SetupIntent
/// the browser confirms with the card, which never passes through Tessera.
pub async fn start_card_setup(state: &AppState, scope: &Scope) -> Result<SetupSession, CardError> {
    let (provider, account) = card_setup_parts(state, scope).await?;
    let customer = match account.provider_customer_id {
        Some(customer) => customer,
        None => {
            let team = state.store.get_team(scope).await?;
            let customer = provider
                .create_customer(scope.team_id(), &team.name)
                .await?;
            state.store.set_provider_customer(scope, &customer).await?;
            customer
        }
    };
    Ok(provider.create_setup_intent(&customer).await?)
}

/// Saves the card a confirmed SetupIntent of this team's customer holds, audited; invoices
/// whose charge failed are due again at once.
pub async fn finish_card_setup(
    state: &AppState,
    scope: &Scope,
    setup_intent_id: &str,
    event: NewAuditEvent,
) -> Result<CardSummary, CardError> {
    let setup_intent_id = setup_intent_id.trim();
    if setup_intent_id.is_empty()
        || setup_intent_id.len() > MAX_PROVIDER_ID
        || !setup_intent_id.starts_with("seti_")
        || !setup_intent_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(CardError::Invalid(
            "That is not a card setup from this page; add the card again.".into(),
        ));
    }
    let (provider, account) = card_setup_parts(state, scope).await?;
    let customer = account
        .provider_customer_id
        .ok_or(CardError::NotConfirmed)?;
    let card = provider
        .confirmed_card(&customer, setup_intent_id)
        .await?
        .ok_or(CardError::NotConfirmed)?;
    let summary = CardSummary {
        payment_method_id: card.payment_method_id,
        brand: card.brand,
        last4: card.last4,
        exp_month: card.exp_month,
        exp_year: card.exp_year,
    };
    state.store.save_card(scope, &summary).await?;
    state
        .store
        .record_audit(
            scope,
            &NewAuditEvent {
                action: AuditAction::PaymentMethodUpdated,
                target: "card".into(),
                detail: format!("{} ending in {}", summary.brand, summary.last4),
                ..event
            },
        )
        .await?;
    state.wake(crate::state::Wrote::Charges);
    Ok(summary)
}

/// What a staff or operator billing change needs: who, for the audit log.
pub struct StaffChange {
    /// The audit entry's actor fields (its action and detail are filled in here).
    pub event: NewAuditEvent,
}

impl StaffChange {
    fn entry(&self, action: AuditAction, target: &str, detail: String) -> NewAuditEvent {
        NewAuditEvent {
            action,
            target: target.to_owned(),
            detail,
            ..self.event.clone()
        }
    }
}

/// Sets a team's plan (staff).
pub async fn set_plan(
    store: &Store,
    scope: &Scope,
    plan: Plan,
    who: &StaffChange,
) -> Result<(), StoreError> {
    let before = store.billing_account(scope).await?.plan;
    store.set_plan(scope, plan).await?;
    store
        .record_audit(
            scope,
            &who.entry(
                AuditAction::BillingPlanChanged,
                "billing",
                format!("{before} → {plan}"),
            ),
        )
        .await
}

/// A price to set: for the book (`scope` `None`) or one team.
pub struct PriceChange<'a> {
    pub task_type: &'a str,
    pub amount: i64,
    pub currency: &'a str,
}

/// Validates a price change's fields (type known, amount in range, currency well formed).
pub fn check_price(change: &PriceChange<'_>) -> Result<(String, Currency), Invalid> {
    let task_type = priceable_task_type(change.task_type)?;
    let currency = Currency::parse(change.currency)?;
    if !(0..=MAX_UNIT_AMOUNT).contains(&change.amount) {
        return Err(Invalid(format!(
            "The amount must be between 0 and {MAX_UNIT_AMOUNT} minor units."
        )));
    }
    Ok((task_type, currency))
}

/// Sets a price effective now, in the book or (with a scope) for one team; audited in the
/// team's log for a team price.
pub async fn set_price(
    store: &Store,
    scope: Option<&Scope>,
    change: &PriceChange<'_>,
    who: &StaffChange,
) -> Result<Result<Price, Invalid>, StoreError> {
    let (task_type, currency) = match check_price(change) {
        Ok(checked) => checked,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let new = NewPrice {
        task_type: &task_type,
        currency: currency.as_str(),
        unit_amount: change.amount,
        effective_from: tessera_store::now_ms(),
        created_by: &who.event.actor,
    };
    let added = match scope {
        Some(scope) => {
            let account = store.billing_account(scope).await?;
            if account.currency != currency {
                return Ok(Err(Invalid(format!(
                    "The team is billed in {}: its prices must be in {} too.",
                    account.currency, account.currency
                ))));
            }
            store.add_team_price(scope, &new).await
        }
        None => store.add_book_price(&new).await,
    };
    let price = match added {
        Ok(price) => price,
        Err(StoreError::Unique(_)) => {
            return Ok(Err(Invalid(
                "A price for that type was set at this same instant; try again.".into(),
            )))
        }
        Err(err) => return Err(err),
    };
    if let Some(scope) = scope {
        let detail = format!(
            "{task_type}: {} per task from now",
            Money::new(change.amount, currency)
        );
        store
            .record_audit(scope, &who.entry(AuditAction::PriceSet, "billing", detail))
            .await?;
    }
    Ok(Ok(price))
}

/// Grants (or with a negative amount, corrects) credits, audited.
pub async fn grant_credit(
    store: &Store,
    scope: &Scope,
    amount: i64,
    reason: &str,
    who: &StaffChange,
) -> Result<Result<CreditEntry, Invalid>, StoreError> {
    let reason = match tessera_core::clean_text("Reason", reason, 200, true) {
        Ok(reason) => reason,
        Err(invalid) => return Ok(Err(invalid)),
    };
    if amount == 0 || amount.unsigned_abs() > 1_000_000_000_000 {
        return Ok(Err(Invalid(
            "The amount must not be zero, nor more than 10,000,000,000.00.".into(),
        )));
    }
    let currency = store.billing_account(scope).await?.currency;
    let entry = match store
        .grant_credit(scope, amount, &reason, &who.event.actor)
        .await
    {
        Ok(entry) => entry,
        Err(StoreError::InvalidState(message)) => return Ok(Err(Invalid(message))),
        Err(err) => return Err(err),
    };
    let detail = format!(
        "{} ({reason}); balance {}",
        Money::new(amount, currency),
        Money::new(entry.balance_after, currency)
    );
    store
        .record_audit(
            scope,
            &who.entry(AuditAction::CreditGranted, "credits", detail),
        )
        .await?;
    Ok(Ok(entry))
}

/// Closes the team's period at `end` now (staff console, CLI), audited when an invoice is made.
pub async fn close_period(
    store: &Store,
    scope: &Scope,
    end: i64,
    payment: PaymentStatus,
    who: &StaffChange,
) -> Result<CloseOutcome, StoreError> {
    let outcome = store.close_period(scope, end, payment).await?;
    if let CloseOutcome::Closed { number, .. } = &outcome {
        store
            .record_audit(
                scope,
                &who.entry(
                    AuditAction::InvoiceIssued,
                    number,
                    format!("period closed at {}", crate::web::format_time(end)),
                ),
            )
            .await?;
    }
    Ok(outcome)
}

/// The invoices page size bounds of the API.
pub const MAX_INVOICES_PAGE: i64 = 100;

/// The scope's team's invoices, newest first, with the cursor of the next page.
pub async fn invoice_page(
    store: &Store,
    scope: &Scope,
    limit: i64,
    before: Option<i64>,
) -> Result<(Vec<Invoice>, Option<i64>), StoreError> {
    let limit = limit.clamp(1, MAX_INVOICES_PAGE);
    let mut invoices = store.list_invoices(scope, limit + 1, before).await?;
    let next = if invoices.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
        invoices.truncate(usize::try_from(limit).unwrap_or(0));
        invoices.last().map(|i| i.sequence)
    } else {
        None
    };
    Ok((invoices, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_to_minor_units() {
        let usd = Currency::parse("usd").unwrap();
        let jpy = Currency::parse("jpy").unwrap();
        assert_eq!(parse_amount("12.34", usd).unwrap(), Some(1234));
        assert_eq!(parse_amount("1,234.5", usd).unwrap(), Some(123_450));
        assert_eq!(parse_amount(" 250 ", usd).unwrap(), Some(25_000));
        assert_eq!(parse_amount(".5", usd).unwrap(), Some(50));
        assert_eq!(parse_amount("", usd).unwrap(), None);
        assert_eq!(parse_amount("500", jpy).unwrap(), Some(500));
        for bad in ["12.345", "-1", "1e3", "abc", "1.2.3", ".", "9999999999999"] {
            assert!(parse_amount(bad, usd).is_err(), "{bad}");
        }
        assert!(parse_amount("5.5", jpy).is_err());
    }

    #[test]
    fn credits_parse_with_a_sign() {
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(parse_credit_amount("25.00", usd).unwrap(), 2500);
        assert_eq!(parse_credit_amount(" -5 ", usd).unwrap(), -500);
        for bad in ["", "0", "-0.00", "--1", "abc", "1.001", "9999999999999"] {
            assert!(parse_credit_amount(bad, usd).is_err(), "{bad}");
        }
    }

    #[test]
    fn chart_days_fill_gaps_with_zero() {
        let first = 10 * DAY_MS;
        let rows = vec![UsageRow {
            day: Some(first + DAY_MS),
            task_type: None,
            project_id: None,
            project_name: None,
            totals: UsageTotals {
                completed_tasks: 3,
                amount: 24,
            },
        }];
        let days = fill_days(&rows, first, 3);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].completed_tasks, 0);
        assert_eq!(days[1].completed_tasks, 3);
        assert_eq!(days[1].amount, 24);
        assert_eq!(days[2].day_start, first + 2 * DAY_MS);
    }

    #[test]
    fn periods_are_utc_months() {
        let p = current_period(1_795_219_200_000);
        assert_eq!(p.start, 1_793_491_200_000);
        assert_eq!(p.end, 1_796_083_200_000);
    }
}
