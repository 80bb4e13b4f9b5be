//! The rules of integrations, shared by the Integrations page and `/v1/integrations`:
//! connecting (validated, the secret sealed and never returned), verifying with a diagnosis a
//! customer can act on, removing, and the attachment checks and signed URLs task creation and
//! labeling use.

use std::time::Duration;

use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::{
    ids::IntegrationId,
    integrations::{
        self, AccessProblem, CredentialKind, Location, Provider, MAX_INTEGRATIONS,
        SIGNED_URL_SECONDS,
    },
    Invalid,
};
use tessera_store::{
    AddRefused, NewAuditEvent, NewIntegration, Scope, StorageIntegration, StorageSettings,
    StoreError,
};

use super::clients::{diagnose, sts_problem, BucketClient, IntegrationSettings};
use crate::{crypto::Purpose, outbound, state::AppState};

/// What a customer typed to connect storage (page form or API body); fields another provider
/// uses are ignored. Its `Debug` leaves the secrets out.
#[derive(Default, Clone)]
pub struct Connect {
    pub provider: String,
    pub name: String,
    pub buckets: Vec<String>,
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub endpoint: String,
    pub path_style: Option<bool>,
    pub service_account_key: String,
    pub account: String,
    pub account_key: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("buckets", &self.buckets)
            .field("role_arn", &self.role_arn)
            .field("access_key_id", &self.access_key_id)
            .field("endpoint", &self.endpoint)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Why connecting failed.
#[derive(Debug)]
pub enum ConnectError {
    /// Bad input: the message says which field and why.
    Invalid(String),
    /// A bucket is already another integration's, or the team has too many.
    Conflict(String),
    Store(StoreError),
}

impl From<StoreError> for ConnectError {
    fn from(e: StoreError) -> Self {
        ConnectError::Store(e)
    }
}

impl From<Invalid> for ConnectError {
    fn from(e: Invalid) -> Self {
        ConnectError::Invalid(e.0)
    }
}

/// The team's storage settings (its external ID made on first read), remembered a moment.
pub async fn settings(state: &AppState, scope: &Scope) -> Result<StorageSettings, StoreError> {
    if let Some(settings) = state.storage.recent_settings(scope.team_id()) {
        return Ok(settings);
    }
    let settings = state.store.storage_settings(scope, new_external_id).await?;
    state
        .storage
        .remember_settings(scope.team_id(), settings.clone());
    Ok(settings)
}

/// Turns proxy mode on or off, with its audit entry.
pub async fn set_proxy(
    state: &AppState,
    scope: &Scope,
    on: bool,
    event: &NewAuditEvent,
) -> Result<(), StoreError> {
    settings(state, scope).await?;
    state.store.set_proxy_attachments(scope, on, event).await?;
    state.storage.forget_settings(scope.team_id());
    Ok(())
}

/// The team's integration serving `bucket`, remembered a moment (removal here evicts it).
async fn integration_for(
    state: &AppState,
    scope: &Scope,
    provider: Provider,
    bucket: &str,
) -> Result<Option<std::sync::Arc<StorageIntegration>>, StoreError> {
    if let Some(found) = state
        .storage
        .recent_integration(scope.team_id(), provider, bucket)
    {
        return Ok(Some(found));
    }
    let Some(found) = state
        .store
        .integration_for_bucket(scope, provider, bucket)
        .await?
    else {
        return Ok(None);
    };
    let found = std::sync::Arc::new(found);
    state.storage.remember_integration(bucket, found.clone());
    Ok(Some(found))
}

/// 128 random bits, hex: unguessable, and the schema keeps it unique.
fn new_external_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("tessera-{}", hex::encode(bytes))
}

/// The platform's AWS account id customers' roles must trust (`None`: no platform
/// credentials, or STS did not answer — the page says so).
pub async fn platform_account(state: &AppState) -> Option<String> {
    match state.storage.platform_account().await? {
        Ok(account) => Some(account),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the platform's AWS account");
            None
        }
    }
}

/// A short digest of a secret: enough to tell two keys apart, nothing to guess one from.
fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..16])
}

fn trimmed(raw: &str) -> String {
    raw.trim().to_owned()
}

/// A custom endpoint: an http(s) URL the outbound guard accepts now (its DNS answers are
/// checked again on every request); plain http only where private targets are allowed.
fn clean_endpoint(state: &AppState, raw: &str) -> Result<Option<String>, Invalid> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > 500 {
        return Err(Invalid::new("The endpoint is at most 500 characters."));
    }
    let allow_private = state.config.allow_private_callbacks;
    let url =
        outbound::check_url(raw, allow_private).map_err(|e| Invalid(format!("Endpoint: {e}")))?;
    if url.scheme() != "https" && !allow_private {
        return Err(Invalid::new(
            "The endpoint must be an https:// URL (credentials must not travel in clear text).",
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(Invalid::new(
            "The endpoint is a base URL such as https://storage.example.com, without a query or credentials.",
        ));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
}

/// What the input means: credential kind, settings, the secret and the buckets.
fn understand(
    state: &AppState,
    input: &Connect,
) -> Result<
    (
        CredentialKind,
        IntegrationSettings,
        Option<String>,
        Vec<String>,
    ),
    Invalid,
> {
    let provider: Provider = input.provider.trim().parse()?;
    let endpoint = clean_endpoint(state, &input.endpoint)?;
    let mut settings = IntegrationSettings {
        endpoint,
        ..Default::default()
    };
    let (kind, secret, account) = match provider {
        Provider::AwsS3 => {
            let role_arn = trimmed(&input.role_arn);
            let key_id = trimmed(&input.access_key_id);
            let secret = trimmed(&input.secret_access_key);
            settings.region = Some(integrations::clean_region(&input.region)?);
            settings.path_style = input.path_style;
            match (role_arn.is_empty(), key_id.is_empty() && secret.is_empty()) {
                (false, true) => {
                    integrations::validate_role_arn(&role_arn)?;
                    settings.role_arn = Some(role_arn);
                    (CredentialKind::AwsRole, None, None)
                }
                (true, false) => {
                    integrations::validate_access_key(&key_id, &secret)?;
                    settings.access_key_id = Some(key_id);
                    (CredentialKind::AwsAccessKey, Some(secret), None)
                }
                (false, false) => {
                    return Err(Invalid::new(
                        "Give either a role ARN or an access key pair, not both.",
                    ))
                }
                (true, true) => {
                    return Err(Invalid::new(
                        "Give the ARN of the role Tessera should assume (recommended), or an access key ID and secret.",
                    ))
                }
            }
        }
        Provider::Gcs => {
            let key = integrations::parse_service_account_key(&input.service_account_key)?;
            settings.client_email = Some(key.client_email.clone());
            // Only the fields Tessera uses are stored (no `gcs_base_url` or `disable_oauth`
            // riding along in the file).
            (CredentialKind::GcsServiceAccount, Some(key.to_json()), None)
        }
        Provider::AzureBlob => {
            let account = trimmed(&input.account);
            integrations::validate_azure_account(&account)?;
            settings.account = Some(account.clone());
            let key = trimmed(&input.account_key);
            let sp = [&input.tenant_id, &input.client_id, &input.client_secret]
                .map(|s| s.trim().to_owned());
            let sp_given = sp.iter().any(|s| !s.is_empty());
            match (key.is_empty(), sp_given) {
                (false, false) => {
                    integrations::validate_azure_account_key(&key)?;
                    (CredentialKind::AzureAccountKey, Some(key), Some(account))
                }
                (true, true) => {
                    integrations::validate_azure_id("tenant ID", &sp[0], true)?;
                    integrations::validate_azure_id("client ID", &sp[1], false)?;
                    if sp[2].is_empty() || sp[2].len() > 200 {
                        return Err(Invalid::new(
                            "The client secret is required (at most 200 characters).",
                        ));
                    }
                    settings.tenant_id = Some(sp[0].clone());
                    settings.client_id = Some(sp[1].clone());
                    (
                        CredentialKind::AzureServicePrincipal,
                        Some(sp[2].clone()),
                        Some(account),
                    )
                }
                (false, true) => {
                    return Err(Invalid::new(
                        "Give either the account key or a service principal, not both.",
                    ))
                }
                (true, false) => {
                    return Err(Invalid::new(
                        "Give the storage account's key, or a service principal (tenant ID, client ID and secret).",
                    ))
                }
            }
        }
    };
    let buckets = integrations::clean_buckets(provider, account.as_deref(), &input.buckets)?;
    Ok((kind, settings, secret, buckets))
}

/// Connects storage for the scope's team, with its audit entry (`event`'s detail is filled
/// in here). The secret is sealed to the team and the new row; nothing returns it.
pub async fn connect(
    state: &AppState,
    scope: &Scope,
    input: &Connect,
    created_by: &str,
    mut event: NewAuditEvent,
) -> Result<StorageIntegration, ConnectError> {
    let name = integrations::clean_name(&input.name)?;
    let (kind, settings, secret, buckets) = understand(state, input)?;
    let id = IntegrationId::generate();
    let sealed = secret.as_deref().map(|secret| {
        let purpose = Purpose::integration_secret(scope.team_id(), id.as_str());
        state.config.master_key.seal(&purpose, secret.as_bytes())
    });
    event.target = id.to_string();
    event.detail = format!(
        "{} \"{name}\" ({}): {}",
        kind.provider().label(),
        kind.label(),
        buckets.join(", ")
    );
    let new = NewIntegration {
        id,
        kind,
        name,
        settings: serde_json::to_value(&settings).unwrap_or(Value::Null),
        secret_fingerprint: secret.as_deref().map(fingerprint),
        secret_sealed: sealed,
        created_by: created_by.to_owned(),
        buckets,
        event,
    };
    let added = match state
        .store
        .add_integration(scope, &new, MAX_INTEGRATIONS)
        .await
    {
        // Another add of one of these buckets won a race the check before it lost.
        Err(StoreError::Unique(_)) => return Err(ConnectError::Conflict(
            "One of these buckets was connected by another integration just now; reload the page."
                .into(),
        )),
        other => other?,
    };
    match added {
        Ok(added) => Ok(added),
        Err(AddRefused::BucketTaken {
            bucket,
            integration,
        }) => Err(ConnectError::Conflict(format!(
            "\"{bucket}\" is already connected through the integration \"{integration}\"; remove it there first or leave it out here."
        ))),
        Err(AddRefused::TooMany { limit }) => Err(ConnectError::Conflict(format!(
            "A team has at most {limit} integrations; remove one first."
        ))),
    }
}

/// The outcome of a Verify.
#[derive(Debug, Clone)]
pub struct Verified {
    pub error: Option<String>,
    pub checked_at: i64,
}

/// Verifies an integration: assumes its role (if any), lists each bucket and reads one
/// object of it; stops at the first problem and records the result. `None`: not the team's.
pub async fn verify(
    state: &AppState,
    scope: &Scope,
    id: &IntegrationId,
    mut event: NewAuditEvent,
) -> Result<Option<Verified>, StoreError> {
    let Some(integration) = state.store.integration(scope, id).await? else {
        return Ok(None);
    };
    let external_id = settings(state, scope).await?.aws_external_id;
    let problem = check_access(state, &integration, &external_id).await.err();
    let error = problem.map(|p| p.to_string());
    event.target = id.to_string();
    event.detail = match &error {
        None => format!("\"{}\": access works", integration.name),
        Some(e) => format!("\"{}\": {e}", integration.name),
    };
    let checked_at = state
        .store
        .record_verification(scope, id, error.as_deref(), &event)
        .await?;
    Ok(checked_at.map(|checked_at| Verified { error, checked_at }))
}

async fn check_access(
    state: &AppState,
    integration: &StorageIntegration,
    external_id: &str,
) -> Result<(), AccessProblem> {
    if integration.kind == CredentialKind::AwsRole {
        let settings = IntegrationSettings::of(integration);
        let sts = state
            .storage
            .sts()
            .ok_or(AccessProblem::PlatformAwsMissing)?;
        let role_arn = settings.role_arn.unwrap_or_default();
        sts.assume_role(
            &role_arn,
            external_id,
            &format!("tessera-{}", integration.team_id),
        )
        .await
        .map_err(|e| sts_problem(&e, Some(&role_arn)))?;
    }
    for bucket in &integration.buckets {
        let client = state.storage.client(integration, bucket, external_id)?;
        let first = client
            .first_object()
            .await
            .map_err(|e| diagnose(integration.provider, bucket, None, &e))?;
        if let Some(key) = first {
            client
                .probe(&key)
                .await
                .map_err(|e| diagnose(integration.provider, bucket, Some(&key), &e))?;
        }
    }
    Ok(())
}

/// Removes an integration; attachments in its buckets stop resolving at once.
pub async fn remove(
    state: &AppState,
    scope: &Scope,
    id: &IntegrationId,
    mut event: NewAuditEvent,
) -> Result<bool, StoreError> {
    let Some(integration) = state.store.integration(scope, id).await? else {
        return Ok(false);
    };
    event.target = id.to_string();
    event.detail = format!(
        "{} \"{}\": {}",
        integration.provider.label(),
        integration.name,
        integration.buckets.join(", ")
    );
    let removed = state.store.remove_integration(scope, id, &event).await?;
    state.storage.forget(id.as_str());
    Ok(removed)
}

/// Checks every storage URL among a task's attachments against the team's integrations: a
/// bucket the team did not connect is refused, naming it. Public URLs pass untouched.
pub async fn check_attachments(
    store: &tessera_store::Store,
    scope: &Scope,
    params: &Value,
) -> Result<Result<(), Invalid>, StoreError> {
    let mut checked: Vec<(Provider, String)> = Vec::new();
    for url in integrations::attachment_urls(params) {
        let location = match integrations::parse_location(url) {
            None => continue,
            Some(Err(e)) => return Ok(Err(e)),
            Some(Ok(location)) => location,
        };
        let bucket = (location.provider, location.bucket.clone());
        if checked.contains(&bucket) {
            continue;
        }
        if checked.len() >= integrations::MAX_BUCKETS {
            return Ok(Err(Invalid(format!(
                "A task's attachments may name at most {} different buckets.",
                integrations::MAX_BUCKETS
            ))));
        }
        checked.push(bucket);
        let known = store
            .integration_for_bucket(scope, location.provider, &location.bucket)
            .await?;
        if known.is_none() {
            return Ok(Err(Invalid(format!(
                "The attachment {url} is in the {}, which is not connected to this team: add an integration for it on the Integrations page (or POST /v1/integrations) first.",
                location.bucket_label()
            ))));
        }
    }
    Ok(Ok(()))
}

/// Where an attachment can be read: its storage location and the bucket's client.
pub struct Resolved {
    pub location: Location,
    pub client: BucketClient,
}

/// Resolves a storage URL through the team's integration (`Ok(None)`: not a storage URL).
pub async fn resolve(
    state: &AppState,
    scope: &Scope,
    url: &str,
) -> Result<Option<Resolved>, AccessProblem> {
    let location = match integrations::parse_location(url) {
        None => return Ok(None),
        Some(Err(e)) => return Err(AccessProblem::Other { detail: e.0 }),
        Some(Ok(location)) => location,
    };
    // Integrations are the live world's (a test key cannot manage them), so a test task's
    // attachment is never read or signed: a test key must not mint URLs into live buckets.
    if scope.mode() == tessera_core::Mode::Test {
        return Err(AccessProblem::Other {
            detail: "attachments of test-mode tasks are not read from connected buckets (test tasks complete at once; use a live task)".into(),
        });
    }
    let store_error = |e: StoreError| AccessProblem::Other {
        detail: format!("Tessera could not read the integration: {e}"),
    };
    let integration = integration_for(state, scope, location.provider, &location.bucket)
        .await
        .map_err(store_error)?
        .ok_or_else(|| AccessProblem::Other {
            detail: format!(
                "the {} is no longer connected to this team",
                location.bucket_label()
            ),
        })?;
    let external_id = settings(state, scope)
        .await
        .map_err(store_error)?
        .aws_external_id;
    let client = state
        .storage
        .client(&integration, &location.bucket, &external_id)?;
    Ok(Some(Resolved { location, client }))
}

/// A signed URL for a storage attachment, valid [`SIGNED_URL_SECONDS`] (`Ok(None)`: the URL is
/// not a storage URL and is used as it is).
pub async fn signed_url(
    state: &AppState,
    scope: &Scope,
    url: &str,
) -> Result<Option<String>, AccessProblem> {
    let Some(resolved) = resolve(state, scope, url).await? else {
        return Ok(None);
    };
    let signed = resolved
        .client
        .signed_url(
            &resolved.location.key,
            Duration::from_secs(SIGNED_URL_SECONDS),
        )
        .await
        .map_err(|e| {
            diagnose(
                resolved.location.provider,
                &resolved.location.bucket,
                Some(&resolved.location.key),
                &e,
            )
        })?;
    Ok(Some(signed.to_string()))
}

/// Where a browser opens a task's attachment, or why it cannot: a public URL as it is; a
/// storage URL through the team's integration — `proxy_path` (Tessera's route for the task) in
/// proxy mode, else a URL the cloud signed for [`SIGNED_URL_SECONDS`]; anything else (a
/// `scaledata://` file) neither. The reason is cut to fit a labeler's error report.
pub async fn attachment_source(
    state: &AppState,
    scope: &Scope,
    url: &str,
    proxy_path: &str,
) -> (Option<String>, Option<String>) {
    if integrations::parse_location(url).is_none() {
        let link = url.starts_with("https://") || url.starts_with("http://");
        return (link.then(|| url.to_owned()), None);
    }
    let problem = |p: AccessProblem| {
        let text = p.to_string();
        if text.chars().count() <= 900 {
            text
        } else {
            format!("{}…", text.chars().take(900).collect::<String>())
        }
    };
    if settings(state, scope)
        .await
        .is_ok_and(|s| s.proxy_attachments)
    {
        return match resolve(state, scope, url).await {
            Ok(_) => (Some(proxy_path.to_owned()), None),
            Err(p) => (None, Some(problem(p))),
        };
    }
    match signed_url(state, scope, url).await {
        Ok(signed) => (signed, None),
        Err(p) => (None, Some(problem(p))),
    }
}
