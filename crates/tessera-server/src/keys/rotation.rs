//! Re-sealing every stored secret under a new master key (`tessera admin rotate-master-key`):
//! the operator's master-key rotation, which changes no secret's value — not to be confused with
//! a Manager rolling an API key or rotating a callback secret on the API Keys page.

use anyhow::Context;
use tessera_store::{ResealCounts, SealedValue, Store};

use crate::crypto::{MasterKey, Purpose};

/// The purpose a stored value was sealed for, rebuilt from its row.
pub fn purpose_of(value: &SealedValue) -> Purpose {
    match value {
        SealedValue::ApiKey { team_id, mode, .. } => Purpose::api_key(team_id.as_str(), *mode),
        SealedValue::TeamSecret {
            team_id,
            kind,
            mode,
            ..
        } => Purpose::team_secret(team_id.as_str(), *kind, *mode),
        SealedValue::IntegrationSecret { id, team_id, .. } => {
            Purpose::integration_secret(team_id.as_str(), id)
        }
        SealedValue::MailBody { to, .. } => Purpose::mail_body(to),
        SealedValue::TwoFactorSecret { user_id, .. } => Purpose::two_factor_secret(user_id),
    }
}

/// Opens every sealed value in the database with `from` (its current and retired keys; `v1.`
/// values too) and seals it again under `to`, in one transaction. Values already under `to`
/// are left alone, so running it twice is harmless. If any value does not open, nothing is
/// changed and the error names the row. Every team's values: the master key seals them all.
pub async fn reseal_all(
    store: &Store,
    from: &MasterKey,
    to: &MasterKey,
) -> anyhow::Result<ResealCounts> {
    let to = to.current();
    store
        .cross_tenant()
        .reseal_all(|value| -> anyhow::Result<Option<String>> {
            if to.is_current(value.sealed()) {
                return Ok(None);
            }
            let purpose = purpose_of(value);
            let plaintext = from.open(&purpose, value.sealed()).with_context(|| {
                format!(
                    "{} does not open under the master key or the old keys; nothing was changed",
                    value.describe()
                )
            })?;
            Ok(Some(to.seal(&purpose, &plaintext)))
        })
        .await
}
