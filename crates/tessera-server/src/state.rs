//! Shared application state.

use std::sync::Arc;

use tessera_store::{FileStorage, Store};
use tokio::sync::Notify;

use crate::{config::Config, keys::cache::KeyCache, outbound};

/// Cheap to clone; handed to every handler and worker.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub config: Config,
    /// Key for CSRF tokens, derived from the master key.
    pub csrf_key: [u8; 32],
    /// Wakes the mail worker as soon as mail is queued.
    pub mail_queued: Notify,
    /// Wakes the callback worker as soon as a delivery is queued by this process.
    pub callbacks_queued: Notify,
    /// API key lookups, cached for a few seconds.
    pub api_keys: KeyCache,
    /// HTTP client for customer-supplied URLs, behind the outbound guard.
    pub outbound: reqwest::Client,
    /// Test tasks each team may create per hour.
    pub test_tasks: crate::quota::HourlyBudget,
    /// Uploaded and imported file bytes, under `DATA_DIR/files`.
    pub files: FileStorage,
    /// Teams' default callback URLs, remembered for a moment (task creation reads them).
    pub team_defaults: crate::team::defaults::TeamDefaults,
    /// Teams' spend limits and accrued amounts, remembered for a moment (live task creation
    /// checks them).
    pub spend_states: crate::billing::service::SpendStates,
    /// Whether teams' Admins verified their addresses, remembered for a moment (live task
    /// creation checks it).
    pub verified_teams: crate::accounts::verify::VerifiedTeams,
    /// The payment provider, when one is configured (`--stripe-secret-key`).
    pub payments: Option<Arc<dyn crate::billing::provider::PaymentProvider>>,
    /// Wakes the charge job as soon as this process opened an invoice to charge.
    pub charges_due: Notify,
    /// Clients of teams' cloud storage buckets (built from their integrations only).
    pub storage: crate::integrations::clients::StorageClients,
}

impl AppState {
    /// `files`: the storage [`Config::file_store`] names, opened by the caller (it can fail).
    pub fn new(store: Store, config: Config, files: FileStorage) -> Self {
        let csrf_key = config.master_key.derive("csrf");
        let outbound = outbound::client(
            config.allow_private_callbacks,
            std::time::Duration::from_secs(30),
        );
        let payments = config.stripe.as_ref().map(|stripe| {
            let provider = crate::billing::provider::StripeProvider::new(
                stripe.api_base.clone(),
                stripe.secret_key.clone(),
            )
            .expect("the HTTP client builds");
            Arc::new(provider) as Arc<dyn crate::billing::provider::PaymentProvider>
        });
        let sts = config.aws.clone().map(|aws| {
            // The operator's own endpoint: not a customer URL, so private addresses are fine.
            let http = outbound::client(true, std::time::Duration::from_secs(15));
            crate::integrations::sts::Sts::new(aws, http)
        });
        let storage = crate::integrations::clients::StorageClients::new(
            config.master_key.clone(),
            sts,
            config.allow_private_callbacks,
        );
        Self(Arc::new(Inner {
            store,
            storage,
            test_tasks: crate::quota::HourlyBudget::new(config.team_test_tasks_per_hour),
            config,
            csrf_key,
            mail_queued: Notify::new(),
            callbacks_queued: Notify::new(),
            api_keys: KeyCache::default(),
            outbound,
            files,
            team_defaults: Default::default(),
            spend_states: Default::default(),
            verified_teams: Default::default(),
            payments,
            charges_due: Notify::new(),
        }))
    }
}

/// An outbox a write filled: services return it, and [`AppState::wake`] wakes its worker.
/// Forgetting it only costs latency (the workers also poll), hence `must_use`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "pass it to AppState::wake so the worker sends now rather than at its next poll"]
pub enum Wrote {
    /// A callback delivery was queued (or a batch completed and may call back).
    Callbacks,
    /// An email was queued.
    Mail,
    /// An invoice opened with a charge due.
    Charges,
}

impl AppState {
    /// The one place that wakes the outbox workers of this process after a write.
    pub fn wake(&self, wrote: Wrote) {
        match wrote {
            Wrote::Callbacks => self.callbacks_queued.notify_one(),
            Wrote::Mail => self.mail_queued.notify_one(),
            Wrote::Charges => self.charges_due.notify_one(),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
