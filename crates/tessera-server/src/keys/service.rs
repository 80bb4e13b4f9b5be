//! Creating and revealing API keys and team secrets; shared by the dashboard and the CLI.
//! Every function that touches a team's rows takes its [`Scope`]; the callback worker, which
//! signs every team's deliveries, reads secrets through [`worker_team_secret`].

use tessera_core::{
    keys::{KeyExpiry, RollGrace},
    status::SecretKind,
    Action, AuditAction, Invalid, Mode, Scope,
};
use tessera_store::{
    ApiKey, Constraint, CrossTenant, NewApiKey, NewAuditEvent, Store, StoreError, StoreResult,
    TeamSecret, User,
};

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

/// A fresh secret of `kind`, sealed for its row.
fn sealed_new_secret(master: &MasterKey, team_id: &str, kind: SecretKind, mode: Mode) -> String {
    master.seal(
        &Purpose::team_secret(team_id, kind, mode),
        new_secret_value(kind).as_bytes(),
    )
}

/// Characters of a key shown in lists to recognise it.
const PREFIX_LEN: usize = 12;

/// Who asks for a key, and (from the dashboard) the one-time nonce of the form that asks.
pub struct KeyRequest<'a> {
    pub label: &'a str,
    pub created_by: Option<&'a str>,
    /// How long the key works (the dashboard's choice; the CLI's keys never expire).
    pub expiry: KeyExpiry,
    /// A second key with the same nonce is refused by the schema
    /// (`Unique(ApiKeyFormNonce)`).
    pub form_nonce: Option<&'a str>,
    pub event: NewAuditEvent,
}

/// A fresh key for the scope's mode, and the record that stores it (digest and sealed value).
fn new_key(master: &MasterKey, scope: &Scope, request: KeyRequest<'_>) -> (NewApiKey, String) {
    let mode = scope.mode();
    // 256 random bits in hex: easy to copy, no punctuation to trip shells or URLs.
    let key = format!(
        "{}{}",
        mode.key_prefix(),
        hex::encode(rand::random::<[u8; 32]>())
    );
    let record = NewApiKey {
        label: request.label.to_owned(),
        prefix: key.chars().take(PREFIX_LEN).collect(),
        digest: token_digest(&key),
        sealed: master.seal(&Purpose::api_key(scope.team_id(), mode), key.as_bytes()),
        created_by: request.created_by.map(str::to_owned),
        created_by_label: request.event.actor.clone(),
        expiry: request.expiry,
        form_nonce: request.form_nonce.map(str::to_owned),
        event: request.event,
    };
    (record, key)
}

/// Makes a new API key in the scope's team and mode; returns its record and the key itself
/// (shown once here, revealable later by Managers).
pub async fn create_api_key(
    store: &Store,
    master: &MasterKey,
    scope: &Scope,
    request: KeyRequest<'_>,
) -> StoreResult<(ApiKey, String)> {
    let (record, key) = new_key(master, scope, request);
    Ok((store.create_api_key(scope, &record).await?, key))
}

/// What rolling a key made: its replacement (with the key itself, to show once) and the old
/// key as rolled.
pub struct RolledKey {
    pub new: ApiKey,
    pub value: String,
    pub old: ApiKey,
}

/// Rolls `old` (a key of the scope's team, in the scope's mode): a new key with the same
/// label replaces it, and the old one keeps working for `grace`, so the systems that use it
/// can switch without downtime. `request.event` is the `api_key.rolled` entry. The old key
/// is dropped from this replica's key cache at once, so a roll with no grace refuses it from
/// the next request here (within the cache's 5 seconds on other replicas, as for deletion).
pub async fn roll_api_key(
    store: &Store,
    master: &MasterKey,
    cache: &super::cache::KeyCache,
    scope: &Scope,
    old: &ApiKey,
    grace: RollGrace,
    request: KeyRequest<'_>,
) -> StoreResult<RolledKey> {
    let (mut record, value) = new_key(master, scope, request);
    record
        .event
        .detail
        .push_str(&format!("; replaced by {}…", record.prefix));
    let (new, old) = store
        .roll_api_key(scope, old.id.as_str(), &record, grace.as_ms())
        .await?;
    cache.evict_key(&old.id);
    Ok(RolledKey { new, value, old })
}

/// Decrypts a stored API key.
pub fn reveal_api_key(master: &MasterKey, key: &ApiKey) -> anyhow::Result<String> {
    Ok(String::from_utf8(master.open(
        &Purpose::api_key(key.team_id.as_str(), key.mode),
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

/// The scope's secret of `kind` (in its mode), created on first use (teams get theirs at
/// sign-up; older teams on first access).
pub async fn team_secret(
    store: &Store,
    master: &MasterKey,
    scope: &Scope,
    kind: SecretKind,
) -> StoreResult<TeamSecret> {
    if let Some(secret) = store.team_secret(scope, kind).await? {
        return Ok(secret);
    }
    let sealed = sealed_new_secret(master, scope.team_id(), kind, scope.mode());
    store.ensure_team_secret(scope, kind, &sealed).await
}

/// [`team_secret`] for the callback worker, which sends every team's deliveries and signs
/// each for the delivery's team (hence [`CrossTenant`]).
pub async fn worker_team_secret(
    store: &CrossTenant,
    master: &MasterKey,
    team_id: &str,
    kind: SecretKind,
    mode: Mode,
) -> StoreResult<TeamSecret> {
    if let Some(secret) = store.team_secret(team_id, kind, mode).await? {
        return Ok(secret);
    }
    let sealed = sealed_new_secret(master, team_id, kind, mode);
    store.ensure_team_secret(team_id, kind, mode, &sealed).await
}

/// The scope a new team's Admin acts in for its keys: provisioning the team's secrets when it
/// is made (sign-up, the operator's create-team) is theirs to do, so the policy is asked for
/// them rather than the scope elevated. `None` only if the policy refused the Admin.
pub(crate) fn new_team_scope(team_id: &str, admin: &User) -> Option<Scope> {
    let actor = crate::web::session::actor_for(admin);
    Scope::authorized(&actor, Action::ManageApiKeys, team_id, Mode::Live)
}

/// Creates both modes' callback auth keys and signing secrets for the scope's team (a new
/// team: the scope's mode does not matter).
pub async fn provision_team(store: &Store, master: &MasterKey, scope: &Scope) -> StoreResult<()> {
    for mode in Mode::ALL {
        // A new team's scope is its Admin's (never a key's), so every mode is open to it.
        let Some(in_mode) = scope.with_mode(mode) else {
            return Err(StoreError::Config(
                "a key's scope cannot provision a team".into(),
            ));
        };
        for &kind in SecretKind::ALL {
            team_secret(store, master, &in_mode, kind).await?;
        }
    }
    Ok(())
}

/// Replaces the scope's secret of `kind` with a fresh one.
pub async fn rotate_secret(
    store: &Store,
    master: &MasterKey,
    scope: &Scope,
    kind: SecretKind,
    keep_previous_ms: i64,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    let sealed = sealed_new_secret(master, scope.team_id(), kind, scope.mode());
    store
        .rotate_team_secret(scope, kind, &sealed, keep_previous_ms, event)
        .await
}

/// What asking for a key with a form made: a new key, or (the same form sent again) the key
/// its first submission made, `deleted` since or not — never a second key.
pub enum Created {
    New(ApiKey, String),
    Again { key: ApiKey, deleted: bool },
}

/// [`create_api_key`], idempotent per dashboard form: the keys page renders a one-time nonce
/// into each Add key form, stored with the key under a unique index, so the same form sent
/// twice (even in parallel) makes one key.
pub async fn create_api_key_once(
    store: &Store,
    master: &MasterKey,
    scope: &Scope,
    request: KeyRequest<'_>,
) -> StoreResult<Created> {
    let Some(nonce) = request.form_nonce else {
        let (key, value) = create_api_key(store, master, scope, request).await?;
        return Ok(Created::New(key, value));
    };
    if let Some((key, deleted)) = store.api_key_by_form_nonce(scope, nonce).await? {
        return Ok(Created::Again { key, deleted });
    }
    match create_api_key(store, master, scope, request).await {
        Ok((key, value)) => Ok(Created::New(key, value)),
        // The same form's other submission won the race: its key.
        Err(err) if err.is_unique(&Constraint::ApiKeyFormNonce) => {
            let (key, deleted) = store
                .api_key_by_form_nonce(scope, nonce)
                .await?
                .ok_or_else(|| {
                    StoreError::Config(
                        "a key with this form nonce was refused but is not there".into(),
                    )
                })?;
            Ok(Created::Again { key, deleted })
        }
        Err(err) => Err(err),
    }
}

/// Longest form nonce accepted (ours are 43 characters).
const MAX_FORM_NONCE: usize = 64;

/// The form nonce, checked: empty (no nonce), or URL-safe base64 of sensible length.
pub fn parse_form_nonce(raw: &str) -> Result<Option<&str>, Invalid> {
    let nonce = raw.trim();
    if nonce.is_empty() {
        return Ok(None);
    }
    let shaped = nonce.len() <= MAX_FORM_NONCE
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shaped {
        return Err(Invalid(
            "This form is not one the API Keys page made; reload the page and add the key again."
                .into(),
        ));
    }
    Ok(Some(nonce))
}

/// How long a rotated signing secret keeps signing beside the new one, so receivers can
/// switch without rejecting callbacks in between.
pub const SIGNING_OVERLAP_MS: i64 = 24 * 3_600_000;

/// The two callback secrets a team holds per mode: what rotating one keeps, and how the
/// page and the audit log name it.
#[derive(Clone, Copy)]
pub struct SecretSpec {
    pub kind: SecretKind,
    pub label: &'static str,
    pub revealed: AuditAction,
    pub rotated: AuditAction,
    /// How long the previous value stays valid after a rotation (0: not at all).
    pub keep_previous_ms: i64,
    pub rotated_note: &'static str,
}

impl SecretSpec {
    /// The audit detail of a rotation.
    pub fn rotation_detail(&self) -> &'static str {
        if self.keep_previous_ms > 0 {
            "the previous secret keeps signing for 24 hours"
        } else {
            "the previous key stops being sent"
        }
    }
}

/// The callback auth key: sent as `scale-callback-auth`; a rotation replaces it at once.
pub const AUTH_KEY: SecretSpec = SecretSpec {
    kind: SecretKind::CallbackAuth,
    label: "callback auth key",
    revealed: AuditAction::CallbackAuthKeyRevealed,
    rotated: AuditAction::CallbackAuthKeyRotated,
    keep_previous_ms: 0,
    rotated_note: "Callbacks carry the new key from now on. Update your receiver.",
};

/// The callback signing secret: the previous one keeps signing for [`SIGNING_OVERLAP_MS`].
pub const SIGNING_SECRET: SecretSpec = SecretSpec {
    kind: SecretKind::CallbackSigning,
    label: "callback signing secret",
    revealed: AuditAction::CallbackSigningSecretRevealed,
    rotated: AuditAction::CallbackSigningSecretRotated,
    keep_previous_ms: SIGNING_OVERLAP_MS,
    rotated_note: "Callbacks are signed with both the new and the previous secret for 24 hours. Update your receiver.",
};
