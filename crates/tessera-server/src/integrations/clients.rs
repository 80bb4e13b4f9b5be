//! Clients for a team's buckets, built from its integration only: explicit credentials every
//! time (never the machine's environment, instance metadata or default credentials — the
//! platform's access must not leak to a team that has none), every request through the
//! outbound guard, and kept warm per integration and bucket.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use object_store::{
    aws::{AmazonS3, AmazonS3Builder},
    azure::{MicrosoftAzure, MicrosoftAzureBuilder},
    client::{
        HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    },
    gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder},
    path::Path,
    signer::Signer,
    BackoffConfig, ClientOptions, GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt,
    RetryConfig,
};
use serde::{Deserialize, Serialize};
use tessera_core::integrations::{AccessProblem, CredentialKind, Provider};
use tessera_store::{StorageIntegration, StorageSettings};

use super::sts::{AssumedRole, Sts, StsError};
use crate::{
    crypto::{MasterKey, Purpose},
    outbound,
};

/// Errors are worded for customers in `diagnose` (re-exported: the service and the proxy use
/// them with these clients).
pub use super::diagnose::{diagnose, sts_problem};

/// Time allowed for one storage request (a 50 MiB attachment streams well within it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long this replica trusts a bucket → integration lookup and a team's storage settings
/// (as API keys: changes made here evict at once; other replicas see them within this).
const LOOKUP_TTL: Duration = Duration::from_secs(5);
/// Warm clients kept; beyond it the cache starts again (clients are cheap to rebuild).
const MAX_CACHED: usize = 1024;

/// An integration's settings that are not secret (stored as JSON, shown on the page).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IntegrationSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A custom endpoint (S3-compatible stores, emulators); checked by the outbound guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_email: Option<String>,
}

impl IntegrationSettings {
    pub fn of(integration: &StorageIntegration) -> Self {
        serde_json::from_value(integration.settings.clone()).unwrap_or_default()
    }
}

/// Requests to a team's storage go through the outbound guard: every request's URL is
/// checked (https, and no literal non-public address unless private targets are allowed),
/// and the client's DNS check drops private answers; proxy variables are ignored.
#[derive(Debug, Clone, Copy)]
struct GuardedConnector {
    allow_private: bool,
}

impl HttpConnector for GuardedConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(GuardedService {
            client: outbound::client(self.allow_private, REQUEST_TIMEOUT),
            allow_private: self.allow_private,
        }))
    }
}

/// The guard in front of every storage request (object_store builds URLs from the bucket,
/// region and account, and a service-account key may name its own base URL).
#[derive(Debug)]
struct GuardedService {
    client: reqwest::Client,
    allow_private: bool,
}

#[async_trait::async_trait]
impl HttpService for GuardedService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = request.uri().to_string();
        let refused =
            |why: String| HttpError::new(HttpErrorKind::Request, std::io::Error::other(why));
        let url = outbound::check_url(&uri, self.allow_private).map_err(refused)?;
        if url.scheme() != "https" && !self.allow_private {
            return Err(refused(format!(
                "refused: {} is not https",
                url.host_str().unwrap_or("")
            )));
        }
        HttpService::call(&self.client, request).await
    }
}

/// One bucket of one integration, ready to read and sign.
#[derive(Debug, Clone)]
pub enum BucketClient {
    S3(Arc<AmazonS3>, Option<Arc<AssumedRole>>),
    Gcs(Arc<GoogleCloudStorage>, Arc<GcsListing>),
    Azure(Arc<MicrosoftAzure>),
}

impl BucketClient {
    fn store(&self) -> &dyn ObjectStore {
        match self {
            BucketClient::S3(s, _) => s.as_ref(),
            BucketClient::Gcs(s, _) => s.as_ref(),
            BucketClient::Azure(s) => s.as_ref(),
        }
    }

    /// A URL that reads `key` for `expires_in` without credentials.
    pub async fn signed_url(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> object_store::Result<url::Url> {
        let path = Path::from(key);
        let method = axum::http::Method::GET;
        match self {
            BucketClient::S3(s, _) => s.signed_url(method, &path, expires_in).await,
            BucketClient::Gcs(s, _) => s.signed_url(method, &path, expires_in).await,
            BucketClient::Azure(s) => s.signed_url(method, &path, expires_in).await,
        }
    }

    /// Reads `key` (the whole object, streamed by the caller).
    pub async fn get(&self, key: &str) -> object_store::Result<GetResult> {
        self.store().get(&Path::from(key)).await
    }

    /// Reads the first byte of `key`: proves read access without downloading the object.
    pub async fn probe(&self, key: &str) -> object_store::Result<()> {
        if let BucketClient::Gcs(store, listing) = self {
            return listing.probe(store, key).await;
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(0..1)),
            ..Default::default()
        };
        match self.store().get_opts(&Path::from(key), options).await {
            Ok(result) => result.bytes().await.map(|_| ()),
            Err(e) => Err(e),
        }
    }

    /// The first object in the bucket (`None`: it is empty): proves list access.
    pub async fn first_object(&self) -> object_store::Result<Option<String>> {
        use futures_util::StreamExt;
        if let BucketClient::Gcs(store, listing) = self {
            return listing.first_object(store).await;
        }
        // The first object with bytes among the first few: folder markers (`dir/`) and empty
        // objects prove nothing and cannot be read a byte of.
        let mut listing = self.store().list(None).take(PROBE_CANDIDATES);
        while let Some(entry) = listing.next().await {
            let meta = entry?;
            if meta.size > 0 {
                return Ok(Some(meta.location.to_string()));
            }
        }
        Ok(None)
    }
}

/// Objects Verify looks through for one with bytes to read.
const PROBE_CANDIDATES: usize = 100;

/// A team's bucket: (team id, provider, bucket as stored).
type BucketKey = (String, Provider, String);

/// Lists a GCS bucket through the JSON API (`/storage/v1/b/{bucket}/o`), which every GCS
/// endpoint serves, emulators included; object_store lists through the XML API.
#[derive(Debug)]
pub struct GcsListing {
    base: String,
    bucket: String,
    http: reqwest::Client,
}

impl GcsListing {
    /// A JSON-API GET with the integration's token: its body, or an error worded for
    /// [`diagnose`] (`range`: the first byte only).
    async fn call(
        &self,
        store: &GoogleCloudStorage,
        url: &str,
        range: bool,
    ) -> object_store::Result<String> {
        let generic = |message: String| object_store::Error::Generic {
            store: "GCS",
            source: message.into(),
        };
        let token = store.credentials().get_credential().await?;
        let mut request = self.http.get(url).bearer_auth(&token.bearer);
        if range {
            request = request.header(reqwest::header::RANGE, "bytes=0-0");
        }
        let response = request
            .send()
            .await
            .map_err(|e| generic(format!("error sending request: {e}")))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        match status.as_u16() {
            200 | 206 => Ok(body),
            404 => Err(object_store::Error::NotFound {
                path: url.to_owned(),
                source: "404 Not Found".into(),
            }),
            401 => Err(generic("401 Unauthorized".into())),
            403 => Err(generic("403 Forbidden AccessDenied".into())),
            _ => {
                let cut: String = body.chars().take(200).collect();
                Err(generic(format!("answered {status}: {cut}")))
            }
        }
    }

    /// Reads the first byte of `key` (the JSON API's media download).
    async fn probe(&self, store: &GoogleCloudStorage, key: &str) -> object_store::Result<()> {
        let name: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!(
            "{}/storage/v1/b/{}/o/{name}?alt=media",
            self.base, self.bucket
        );
        self.call(store, &url, true).await.map(|_| ())
    }

    /// The first object's name (`None`: the bucket is empty).
    async fn first_object(
        &self,
        store: &GoogleCloudStorage,
    ) -> object_store::Result<Option<String>> {
        let url = format!(
            "{}/storage/v1/b/{}/o?maxResults={PROBE_CANDIDATES}&fields=items(name,size)",
            self.base, self.bucket
        );
        let body = match self.call(store, &url, false).await {
            Err(object_store::Error::NotFound { .. }) => {
                return Err(object_store::Error::Generic {
                    store: "GCS",
                    source: "NoSuchBucket: the specified bucket does not exist".into(),
                })
            }
            other => other?,
        };
        let listing: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| object_store::Error::Generic {
                store: "GCS",
                source: "the listing is not JSON".into(),
            })?;
        let items = listing["items"].as_array().cloned().unwrap_or_default();
        Ok(items.iter().find_map(|item| {
            let name = item["name"].as_str()?;
            // The JSON API gives sizes as strings.
            let size = item["size"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| item["size"].as_u64())
                .unwrap_or(0);
            (size > 0 && !name.ends_with('/')).then(|| name.to_owned())
        }))
    }
}

/// Makes and keeps the clients of every team's buckets.
pub struct StorageClients {
    master: MasterKey,
    sts: Option<Sts>,
    allow_private: bool,
    cache: Mutex<HashMap<String, BucketClient>>,
    /// The platform's AWS account id, asked of STS once.
    platform_account: tokio::sync::OnceCell<String>,
    /// (team, provider, bucket) → the integration serving it, as read at that instant.
    integrations: Mutex<HashMap<BucketKey, (Instant, Arc<StorageIntegration>)>>,
    /// team → its storage settings, as read at that instant.
    settings: Mutex<HashMap<String, (Instant, StorageSettings)>>,
    /// Integrations this replica removed (never remembered again).
    removed: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for StorageClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageClients")
            .field("sts", &self.sts)
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl StorageClients {
    pub fn new(master: MasterKey, sts: Option<Sts>, allow_private: bool) -> Self {
        Self {
            master,
            sts,
            allow_private,
            cache: Mutex::new(HashMap::new()),
            platform_account: tokio::sync::OnceCell::new(),
            integrations: Mutex::new(HashMap::new()),
            settings: Mutex::new(HashMap::new()),
            removed: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The integration serving `bucket`, if this replica read it less than [`LOOKUP_TTL`] ago.
    pub fn recent_integration(
        &self,
        team: &str,
        provider: Provider,
        bucket: &str,
    ) -> Option<Arc<StorageIntegration>> {
        let cache = self.integrations.lock().expect("cache lock");
        let (at, found) = cache.get(&(team.to_owned(), provider, bucket.to_owned()))?;
        (at.elapsed() < LOOKUP_TTL).then(|| found.clone())
    }

    pub fn remember_integration(&self, bucket: &str, integration: Arc<StorageIntegration>) {
        // A lookup that read the row just before this replica removed it must not bring it
        // back (ids are never reused).
        if self
            .removed
            .lock()
            .expect("cache lock")
            .contains(integration.id.as_str())
        {
            return;
        }
        let mut cache = self.integrations.lock().expect("cache lock");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let key = (
            integration.team_id.clone(),
            integration.provider,
            bucket.to_owned(),
        );
        cache.insert(key, (Instant::now(), integration));
    }

    /// The team's storage settings, if this replica read them less than [`LOOKUP_TTL`] ago.
    pub fn recent_settings(&self, team: &str) -> Option<StorageSettings> {
        let cache = self.settings.lock().expect("cache lock");
        let (at, settings) = cache.get(team)?;
        (at.elapsed() < LOOKUP_TTL).then(|| settings.clone())
    }

    pub fn remember_settings(&self, team: &str, settings: StorageSettings) {
        let mut cache = self.settings.lock().expect("cache lock");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(team.to_owned(), (Instant::now(), settings));
    }

    /// Drops a team's remembered settings (after this replica changed them).
    pub fn forget_settings(&self, team: &str) {
        self.settings.lock().expect("cache lock").remove(team);
    }

    /// The platform's AWS account id (`None`: no platform credentials); STS is asked once.
    pub async fn platform_account(&self) -> Option<Result<String, StsError>> {
        let sts = self.sts.as_ref()?;
        Some(
            self.platform_account
                .get_or_try_init(|| sts.caller_account())
                .await
                .cloned(),
        )
    }

    /// The platform's STS client (`None`: no platform AWS credentials configured).
    pub fn sts(&self) -> Option<&Sts> {
        self.sts.as_ref()
    }

    /// The client of `bucket` (as stored: `account/container` on Azure) through
    /// `integration`, whose team's external ID is `external_id`.
    pub fn client(
        &self,
        integration: &StorageIntegration,
        bucket: &str,
        external_id: &str,
    ) -> Result<BucketClient, AccessProblem> {
        // An integration is never edited (only added and removed), so its id names its
        // settings and secret.
        let key = format!("{}\u{0}{bucket}", integration.id);
        if let Some(client) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(client.clone());
        }
        let client = self.build(integration, bucket, external_id)?;
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }

    /// Drops the warm clients and lookups of an integration (after it is removed).
    pub fn forget(&self, integration_id: &str) {
        {
            let mut removed = self.removed.lock().expect("cache lock");
            if removed.len() >= 100_000 {
                removed.clear();
            }
            removed.insert(integration_id.to_owned());
        }
        let prefix = format!("{integration_id}\u{0}");
        self.cache
            .lock()
            .expect("cache lock")
            .retain(|k, _| !k.starts_with(&prefix));
        self.integrations
            .lock()
            .expect("cache lock")
            .retain(|_, (_, i)| i.id.as_str() != integration_id);
    }

    fn secret(&self, integration: &StorageIntegration) -> Result<String, AccessProblem> {
        let sealed = integration
            .secret_sealed
            .as_deref()
            .ok_or(AccessProblem::BadCredentials)?;
        let purpose = Purpose::integration_secret(&integration.team_id, integration.id.as_str());
        let plain = self.master.open(&purpose, sealed).map_err(|_| AccessProblem::Other {
            detail: "the stored credential cannot be opened with this installation's master key; remove the integration and add it again".into(),
        })?;
        String::from_utf8(plain).map_err(|_| AccessProblem::BadCredentials)
    }

    fn build(
        &self,
        integration: &StorageIntegration,
        bucket: &str,
        external_id: &str,
    ) -> Result<BucketClient, AccessProblem> {
        let settings = IntegrationSettings::of(integration);
        let connector = GuardedConnector {
            allow_private: self.allow_private,
        };
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
        };
        let build_error = |e: object_store::Error| AccessProblem::Other {
            detail: e.to_string(),
        };
        let endpoint = settings.endpoint.clone();
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        match integration.kind {
            CredentialKind::AwsRole | CredentialKind::AwsAccessKey => {
                let region = settings
                    .region
                    .clone()
                    .unwrap_or_else(|| "us-east-1".into());
                let path_style = settings
                    .path_style
                    .unwrap_or(endpoint.is_some() || bucket.contains('.'));
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&region)
                    .with_http_connector(connector)
                    .with_retry(retry)
                    .with_allow_http(allow_http)
                    .with_virtual_hosted_style_request(!path_style);
                if let Some(endpoint) = &endpoint {
                    let endpoint = if path_style {
                        endpoint.clone()
                    } else {
                        virtual_host_endpoint(endpoint, bucket)
                    };
                    builder = builder.with_endpoint(endpoint);
                }
                let (builder, role) = if integration.kind == CredentialKind::AwsRole {
                    let sts = self.sts.clone().ok_or(AccessProblem::PlatformAwsMissing)?;
                    let role_arn = settings.role_arn.clone().unwrap_or_default();
                    let role = Arc::new(AssumedRole::new(
                        sts,
                        role_arn,
                        external_id.to_owned(),
                        format!("tessera-{}", integration.team_id),
                    ));
                    (builder.with_credentials(role.clone()), Some(role))
                } else {
                    let secret = self.secret(integration)?;
                    let builder = builder
                        .with_access_key_id(settings.access_key_id.clone().unwrap_or_default())
                        .with_secret_access_key(secret);
                    (builder, None)
                };
                Ok(BucketClient::S3(
                    Arc::new(builder.build().map_err(build_error)?),
                    role,
                ))
            }
            CredentialKind::GcsServiceAccount => {
                let key = self.secret(integration)?;
                let mut builder = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(bucket)
                    .with_service_account_key(key)
                    .with_http_connector(connector)
                    .with_retry(retry);
                // Always set: it wins over a base URL the key file might name.
                builder = builder.with_base_url(
                    endpoint
                        .as_deref()
                        .unwrap_or("https://storage.googleapis.com")
                        .trim_end_matches('/'),
                );
                let listing = GcsListing {
                    base: endpoint
                        .as_deref()
                        .unwrap_or("https://storage.googleapis.com")
                        .trim_end_matches('/')
                        .to_owned(),
                    bucket: bucket.to_owned(),
                    http: outbound::client(self.allow_private, REQUEST_TIMEOUT),
                };
                Ok(BucketClient::Gcs(
                    Arc::new(builder.build().map_err(build_error)?),
                    Arc::new(listing),
                ))
            }
            CredentialKind::AzureAccountKey | CredentialKind::AzureServicePrincipal => {
                let (account, container) = bucket.split_once('/').unwrap_or(("", bucket));
                let secret = self.secret(integration)?;
                let mut builder = MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(container)
                    .with_http_connector(connector)
                    .with_retry(retry)
                    .with_allow_http(allow_http);
                builder = if integration.kind == CredentialKind::AzureAccountKey {
                    builder.with_access_key(secret)
                } else {
                    builder
                        .with_tenant_id(settings.tenant_id.clone().unwrap_or_default())
                        .with_client_id(settings.client_id.clone().unwrap_or_default())
                        .with_client_secret(secret)
                };
                if let Some(endpoint) = &endpoint {
                    builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
                }
                Ok(BucketClient::Azure(Arc::new(
                    builder.build().map_err(build_error)?,
                )))
            }
        }
    }
}

/// `https://host` → `https://bucket.host` (a virtual-hosted custom endpoint).
fn virtual_host_endpoint(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
        None => endpoint.to_owned(),
    }
}
