//! The payment provider behind a small trait (ADR 0005 §6): saving a card through a
//! SetupIntent the browser confirms, and charging it off-session. One implementation,
//! [`StripeProvider`], a handful of Stripe endpoints over reqwest; the trait keeps the rest of
//! billing free of Stripe's shapes.

mod stripe;
pub mod webhook;

use std::{future::Future, pin::Pin};

pub use stripe::StripeProvider;

/// A boxed future, so the trait can be used as `dyn PaymentProvider`.
pub type ProviderFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// What the browser needs to confirm a card: the SetupIntent and its client secret.
#[derive(Debug, Clone)]
pub struct SetupSession {
    pub setup_intent_id: String,
    /// Handed to Stripe.js only; never stored or logged.
    pub client_secret: String,
}

/// The card a confirmed SetupIntent saved: the provider's id and what the page shows. No
/// other card data exists in Tessera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOnFile {
    pub payment_method_id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
}

/// One off-session charge.
#[derive(Debug, Clone)]
pub struct ChargeRequest<'a> {
    pub customer_id: &'a str,
    pub payment_method_id: &'a str,
    /// Minor units.
    pub amount: i64,
    pub currency: &'a str,
    /// The same invoice and attempt always send the same key.
    pub idempotency_key: &'a str,
    pub invoice_id: &'a str,
    pub invoice_number: &'a str,
}

/// How a charge went, when the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        intent_id: String,
    },
    /// The card was refused (or needs the cardholder, which off-session cannot ask).
    Declined {
        intent_id: Option<String>,
        code: String,
        message: String,
    },
}

/// Whether trying again later may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// Network trouble, timeouts, 5xx, rate limits.
    Transient,
    /// The provider refused the request as made (bad ids, bad key).
    Rejected,
}

/// A provider call that did not produce an answer the caller can use.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    pub message: String,
}

impl ProviderError {
    pub(crate) fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ProviderErrorKind::Transient,
            message: message.into(),
        }
    }

    pub(crate) fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ProviderErrorKind::Rejected,
            message: message.into(),
        }
    }
}

/// The payment operations billing needs.
pub trait PaymentProvider: Send + Sync + 'static {
    /// A customer for the team (once per team; its id is kept on the billing account).
    fn create_customer<'a>(
        &'a self,
        team_id: &'a str,
        team_name: &'a str,
    ) -> ProviderFuture<'a, String>;

    /// A SetupIntent for saving a card for off-session use.
    fn create_setup_intent<'a>(&'a self, customer_id: &'a str) -> ProviderFuture<'a, SetupSession>;

    /// The card a SetupIntent of `customer_id` saved, once the browser confirmed it; `None`
    /// while it is not confirmed. A SetupIntent of another customer is an error, so one team
    /// cannot save another's card.
    fn confirmed_card<'a>(
        &'a self,
        customer_id: &'a str,
        setup_intent_id: &'a str,
    ) -> ProviderFuture<'a, Option<CardOnFile>>;

    /// Charges a saved card off-session.
    fn charge<'a>(&'a self, request: &'a ChargeRequest<'a>) -> ProviderFuture<'a, ChargeOutcome>;
}
