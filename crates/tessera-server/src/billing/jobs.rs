//! Billing's background work, each a [`BatchWork`]: the period close, charging invoices, and
//! spend-limit alerts.
//!
//! The monthly period close: each replica claims teams whose close is due
//! under a lease, closes the month that ended (one transaction per team, see the store), and
//! makes the team due again at the start of the next month. Several replicas may run it: a
//! claimed team is skipped by the others, and a second close of a period finds it closed.

use std::{sync::Arc, time::Duration};

use tessera_core::billing::{month_start, next_month_start, AttemptStatus};
use tessera_core::{ids::TeamId, money::Money, AuditAction, Email, Role};
use tessera_store::{ChargeDue, CloseOutcome, CrossTenant, NewAuditEvent, NewPaymentAttempt};

use super::provider::{ChargeOutcome, ChargeRequest, PaymentProvider, ProviderErrorKind};
use crate::{
    jobs::{retry_at, BatchWork},
    mail::{PaymentFailure, SpendAlert},
    state::{AppState, Wrote},
};

/// How long a replica holds a claimed team while closing it.
const CLOSE_LEASE_MS: i64 = 5 * 60 * 1000;

/// The period-close job.
pub struct PeriodClose {
    state: AppState,
}

impl PeriodClose {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    fn store(&self) -> CrossTenant {
        self.state.store.cross_tenant()
    }
}

impl BatchWork for PeriodClose {
    type Item = TeamId;
    const BATCH: usize = 50;
    const POLL: Duration = Duration::from_secs(60);
    const FAILED: &'static str = "period close pass failed";

    async fn claim(&self) -> anyhow::Result<Vec<TeamId>> {
        let now = tessera_store::now_ms();
        let limit = i64::try_from(Self::BATCH).unwrap_or(50);
        Ok(self
            .store()
            .claim_due_closes(now, CLOSE_LEASE_MS, limit)
            .await?)
    }

    async fn run(&self, team: &TeamId) -> anyhow::Result<()> {
        let now = tessera_store::now_ms();
        let payment = super::service::opening_payment(&self.state);
        let outcome = self
            .store()
            .close_claimed(team, month_start(now), next_month_start(now), payment)
            .await?;
        if let CloseOutcome::Closed { number, .. } = outcome {
            tracing::info!(team = team.as_str(), invoice = %number, "period closed");
            self.state.wake(Wrote::Charges);
        }
        Ok(())
    }
}

/// How long a replica holds a claimed invoice while charging it: a provider call that hangs
/// past its timeout leaves the invoice to be tried again (with the same idempotency key).
const CHARGE_LEASE_MS: i64 = 10 * 60 * 1000;

/// The charge job: each open on-demand invoice with an amount due is charged to the team's
/// card off-session; a failure is recorded, mailed to the Admin and tried again on the
/// payment schedule (1, 3, 5 days by default). Started only when a provider is configured.
pub struct Charges {
    state: AppState,
    provider: Arc<dyn PaymentProvider>,
}

impl Charges {
    pub fn new(state: AppState, provider: Arc<dyn PaymentProvider>) -> Self {
        Self { state, provider }
    }

    /// Records a failed attempt, audits and mails it to the Admin.
    async fn failed(
        &self,
        due: &ChargeDue,
        status: AttemptStatus,
        intent_id: Option<&str>,
        code: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let failures = u32::try_from(due.attempt).unwrap_or(u32::MAX);
        let retry_at = retry_at(&self.state.config.payment_retry, failures, None, None);
        let store = self.state.store.cross_tenant();
        store
            .record_payment_attempt(&NewPaymentAttempt {
                due,
                status,
                provider_intent_id: intent_id,
                error_code: Some(code),
                error_message: Some(message),
                retry_at,
            })
            .await?;
        let mut event = NewAuditEvent::new(AuditAction::InvoicePaymentFailed, "payment job");
        event.target = due.number.clone();
        event.detail = format!("attempt {}: {code}: {message}", due.attempt);
        store.record_billing_audit(&due.team_id, &event).await?;
        let team = store.get_team(due.team_id.as_str()).await?;
        let amount = Money::new(due.amount_due, due.currency).to_string();
        let failure = PaymentFailure {
            team_id: due.team_id.as_str(),
            team_name: &team.name,
            invoice_number: &due.number,
            invoice_id: &due.invoice_id,
            amount: &amount,
            reason: message,
            retry_at,
        };
        for admin in recipients(&store, &due.team_id, &[Role::Admin]).await? {
            let mail = crate::mail::payment_failed(&self.state, &admin, &failure);
            self.state.store.enqueue_mail(&mail).await?;
        }
        self.state.wake(Wrote::Mail);
        tracing::warn!(team = due.team_id.as_str(), invoice = %due.number, attempt = due.attempt, code, "charge failed");
        Ok(())
    }
}

/// The addresses of the team's people with one of `roles`.
async fn recipients(
    store: &CrossTenant,
    team: &TeamId,
    roles: &[Role],
) -> anyhow::Result<Vec<Email>> {
    Ok(store
        .team_emails(team, roles)
        .await?
        .iter()
        .filter_map(|email| Email::parse(email).ok())
        .collect())
}

impl BatchWork for Charges {
    type Item = ChargeDue;
    const BATCH: usize = 20;
    const POLL: Duration = Duration::from_secs(30);
    const FAILED: &'static str = "charge pass failed";

    async fn claim(&self) -> anyhow::Result<Vec<ChargeDue>> {
        let now = tessera_store::now_ms();
        let limit = i64::try_from(Self::BATCH).unwrap_or(20);
        Ok(self
            .state
            .store
            .cross_tenant()
            .claim_due_charges(now, CHARGE_LEASE_MS, limit)
            .await?)
    }

    async fn run(&self, due: &ChargeDue) -> anyhow::Result<()> {
        let (Some(customer_id), Some(payment_method_id)) =
            (due.customer_id.as_deref(), due.payment_method_id.as_deref())
        else {
            return self
                .failed(
                    due,
                    AttemptStatus::Error,
                    None,
                    "no_card",
                    "No card is on file.",
                )
                .await;
        };
        let key = due.idempotency_key();
        let request = ChargeRequest {
            customer_id,
            payment_method_id,
            amount: due.amount_due,
            currency: due.currency.as_str(),
            idempotency_key: &key,
            invoice_id: &due.invoice_id,
            invoice_number: &due.number,
        };
        match self.provider.charge(&request).await {
            Ok(ChargeOutcome::Succeeded { intent_id }) => {
                self.state
                    .store
                    .cross_tenant()
                    .record_payment_attempt(&NewPaymentAttempt {
                        due,
                        status: AttemptStatus::Succeeded,
                        provider_intent_id: Some(&intent_id),
                        error_code: None,
                        error_message: None,
                        retry_at: None,
                    })
                    .await?;
                let mut event = NewAuditEvent::new(AuditAction::InvoicePaid, "payment job");
                event.target = due.number.clone();
                event.detail = format!(
                    "charged {} to the card ({intent_id})",
                    Money::new(due.amount_due, due.currency)
                );
                self.state
                    .store
                    .cross_tenant()
                    .record_billing_audit(&due.team_id, &event)
                    .await?;
                tracing::info!(team = due.team_id.as_str(), invoice = %due.number, "invoice paid");
                Ok(())
            }
            Ok(ChargeOutcome::Declined {
                intent_id,
                code,
                message,
            }) => {
                self.failed(
                    due,
                    AttemptStatus::Declined,
                    intent_id.as_deref(),
                    &code,
                    &message,
                )
                .await
            }
            Err(err) if err.kind == ProviderErrorKind::Rejected => {
                self.failed(
                    due,
                    AttemptStatus::Error,
                    None,
                    "provider_error",
                    &err.message,
                )
                .await
            }
            // Unreachable or unsure: the lease runs out and the same attempt (same key) is
            // made again, so a charge that did go through is not repeated.
            Err(err) => {
                tracing::warn!(invoice = %due.number, error = %err, "charge not made; trying again after the lease");
                Ok(())
            }
        }
    }

    fn woken(&self) -> impl std::future::Future<Output = ()> + Send {
        self.state.charges_due.notified()
    }
}

/// The spend-limit alerts: when this month's accrued amount reaches 80% and 100% of a team's
/// limit (raised in the completion transaction), its Managers and Admin are mailed once per
/// level and month.
pub struct SpendAlerts {
    state: AppState,
}

impl SpendAlerts {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl BatchWork for SpendAlerts {
    type Item = (TeamId, i64, i64);
    const BATCH: usize = 50;
    const POLL: Duration = Duration::from_secs(15);
    const FAILED: &'static str = "spend alert pass failed";

    async fn claim(&self) -> anyhow::Result<Vec<(TeamId, i64, i64)>> {
        let limit = i64::try_from(Self::BATCH).unwrap_or(50);
        Ok(self
            .state
            .store
            .cross_tenant()
            .spend_alerts_due(limit)
            .await?)
    }

    async fn run(&self, (team, level, month): &(TeamId, i64, i64)) -> anyhow::Result<()> {
        let store = self.state.store.cross_tenant();
        if !store.take_spend_alert(team, *level, *month).await? {
            return Ok(());
        }
        let account = store.billing_account_of(team).await?;
        let Some(limit) = account.spend_limit else {
            return Ok(());
        };
        let team_row = store.get_team(team.as_str()).await?;
        let accrued = if account.accrued_month == *month {
            account.accrued_amount
        } else {
            0
        };
        let accrued = Money::new(accrued, account.currency).to_string();
        let limit = Money::new(limit, account.currency).to_string();
        let alert = SpendAlert {
            team_id: team.as_str(),
            team_name: &team_row.name,
            level: *level,
            accrued: &accrued,
            limit: &limit,
        };
        for to in recipients(&store, team, &[Role::Admin, Role::Manager]).await? {
            let mail = crate::mail::spend_alert(&self.state, &to, &alert);
            self.state.store.enqueue_mail(&mail).await?;
        }
        self.state.wake(Wrote::Mail);
        Ok(())
    }
}
