//! Creating and revealing API keys and team secrets; shared by the dashboard and the CLI.

use tessera_core::{status::SecretKind, Mode};
use tessera_store::{ApiKey, NewApiKey, NewAuditEvent, Store, StoreResult, TeamSecret};

use crate::crypto::{random_token, token_digest, MasterKey, Purpose};

/// A fresh value for a team secret of `kind`: signing secrets in the `whsec_<base64>` form
/// the Standard Webhooks libraries read, others as URL-safe random tokens.
fn new_secret_value(kind: SecretKind) -> String {
    if kind == SecretKind::CallbackSigning {
        crate::callbacks::signing::new_signing_secret()
    } else {
        random_token()
    }
}
/// Characters of a key shown in lists to recognise it.
const PREFIX_LEN: usize = 12;

/// Makes a new API key for a team and mode; returns its record and the key itself (shown
/// once here, revealable later by Managers).
pub async fn create_api_key(
    store: &Store,
    master: &MasterKey,
    team_id: &str,
    mode: Mode,
    label: &str,
    created_by: Option<&str>,
    event: NewAuditEvent,
) -> StoreResult<(ApiKey, String)> {
    create_api_key_once(store, master, team_id, mode, label, created_by, None, event).await
}

/// [`create_api_key`] for a dashboard form carrying a one-time `form_nonce`: a second key
/// with the same nonce is refused by the schema (`Conflict` on `form_nonce`).
#[allow(clippy::too_many_arguments)]
pub async fn create_api_key_once(
    store: &Store,
    master: &MasterKey,
    team_id: &str,
    mode: Mode,
    label: &str,
    created_by: Option<&str>,
    form_nonce: Option<&str>,
    event: NewAuditEvent,
) -> StoreResult<(ApiKey, String)> {
    // 256 random bits in hex: easy to copy, no punctuation to trip shells or URLs.
    let key = format!(
        "{}{}",
        mode.key_prefix(),
        hex::encode(rand::random::<[u8; 32]>())
    );
    let record = store
        .create_api_key(&NewApiKey {
            team_id: team_id.to_owned(),
            mode,
            label: label.to_owned(),
            prefix: key.chars().take(PREFIX_LEN).collect(),
            digest: token_digest(&key),
            sealed: master.seal(&Purpose::api_key(team_id, mode), key.as_bytes()),
            created_by: created_by.map(str::to_owned),
            created_by_label: event.actor.clone(),
            form_nonce: form_nonce.map(str::to_owned),
            event,
        })
        .await?;
    Ok((record, key))
}

/// Decrypts a stored API key.
pub fn reveal_api_key(master: &MasterKey, key: &ApiKey) -> anyhow::Result<String> {
    Ok(String::from_utf8(master.open(
        &Purpose::api_key(&key.team_id, key.mode),
        &key.sealed,
    )?)?)
}

/// Decrypts a stored team secret of `kind` and `mode` (its current or its previous value).
pub fn reveal_team_secret(
    master: &MasterKey,
    team_id: &str,
    kind: SecretKind,
    mode: Mode,
    sealed: &str,
) -> anyhow::Result<String> {
    Ok(String::from_utf8(master.open(
        &Purpose::team_secret(team_id, kind, mode),
        sealed,
    )?)?)
}

/// The team's secret of `kind` for `mode`, created on first use (teams get theirs at
/// sign-up; older teams on first access).
pub async fn team_secret(
    store: &Store,
    master: &MasterKey,
    team_id: &str,
    kind: SecretKind,
    mode: Mode,
) -> StoreResult<TeamSecret> {
    if let Some(secret) = store.team_secret(team_id, kind, mode).await? {
        return Ok(secret);
    }
    store
        .ensure_team_secret(
            team_id,
            kind,
            mode,
            &master.seal(
                &Purpose::team_secret(team_id, kind, mode),
                new_secret_value(kind).as_bytes(),
            ),
        )
        .await
}

/// Creates both modes' callback auth keys and signing secrets for a new team.
pub async fn provision_team(store: &Store, master: &MasterKey, team_id: &str) -> StoreResult<()> {
    for mode in Mode::ALL {
        for &kind in SecretKind::ALL {
            team_secret(store, master, team_id, kind, mode).await?;
        }
    }
    Ok(())
}

/// Replaces a team secret with a fresh one.
pub async fn rotate_secret(
    store: &Store,
    master: &MasterKey,
    team_id: &str,
    kind: SecretKind,
    mode: Mode,
    keep_previous_ms: i64,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    store
        .rotate_team_secret(
            team_id,
            kind,
            mode,
            &master.seal(
                &Purpose::team_secret(team_id, kind, mode),
                new_secret_value(kind).as_bytes(),
            ),
            keep_previous_ms,
            event,
        )
        .await
}
