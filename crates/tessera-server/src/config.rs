//! Runtime configuration, resolved by the binary from flags and environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use tessera_core::{client_ip::TrustedProxies, retry::RetrySchedule, storage::StorageQuota};
use url::Url;

use crate::crypto::MasterKey;

/// Everything `tessera serve` needs, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// `smtp://host:port`, `smtps://…` or `smtp://…?tls=required`; `None` keeps mail in the
    /// outbox table (read it in the staff console) and prints it to the log.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// Base of links in emails and of the `Secure` cookie decision.
    pub public_url: Url,
    pub master_key: MasterKey,
    pub invitation_ttl: Duration,
    pub session_ttl: Duration,
    /// A session unused for this long ends (before `session_ttl`).
    pub session_idle_timeout: Duration,
    pub mail_retry: RetrySchedule,
    /// How soon an invitation may be sent again.
    pub resend_interval: Duration,
    /// Let outbound requests (callbacks, file imports) reach loopback and private addresses.
    /// Off by default; tests and local setups turn it on.
    pub allow_private_callbacks: bool,
    /// Delays between callback attempts; when used up the delivery is given up.
    pub callback_retry: RetrySchedule,
    /// Time allowed for one callback attempt (connect, send, response headers and body).
    pub callback_timeout: Duration,
    /// How long a labeler holds a claimed task before it returns to the queue.
    pub label_lease: Duration,
    /// Test tasks one team may create per clock hour, per replica (0: no limit). Test tasks
    /// are free and call back at once, so without a cap they make Tessera a webhook reflector.
    pub team_test_tasks_per_hour: u64,
    /// Email callbacks (task, batch and test) one team may send per hour (0: no limit).
    pub team_callback_emails_per_hour: u64,
    /// Without SMTP, print whole mail bodies (with their invitation links) to the log: a
    /// local-trial convenience, off by default because links in logs are credentials.
    pub log_mail_bodies: bool,
    /// Bytes and files each team may store, live and test together.
    pub storage_quota: StorageQuota,
    /// Time a client has to send a request's line and headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Peers (load balancers) whose `X-Forwarded-For` names the client; empty: the header is
    /// ignored and the socket's address is the client's.
    pub trusted_proxies: TrustedProxies,
    /// The payment provider; `None` (the development default): on-demand invoices open as
    /// "payment not configured" and nothing is charged.
    pub stripe: Option<StripeConfig>,
    /// Delays between charge attempts of an invoice after a failure (default 1, 3 and 5 days);
    /// when used up the invoice's payment is `failed` until the Admin saves a new card.
    pub payment_retry: RetrySchedule,
    /// The platform's own AWS identity, which assumes customers' IAM roles (with each team's
    /// external ID); `None`: role integrations cannot be verified or used, access keys can.
    pub aws: Option<PlatformAws>,
    /// Where uploaded and imported files are stored (`--file-store`).
    pub file_store: FileStore,
    /// The operator's support address (`--support-email`), named where only support can
    /// help: an invitation to an address that belongs to another team.
    pub support_email: Option<tessera_core::Email>,
}

/// Where the platform's own files (`/v1/files…`) live.
#[derive(Clone, Default)]
pub enum FileStore {
    /// `DATA_DIR/files` (the default).
    #[default]
    DataDir,
    /// Another local directory.
    Local(std::path::PathBuf),
    /// A bucket (`s3://`, `gs://`, `az://`), with the operator's credentials from the
    /// environment and these object_store options over them (tests set endpoints and keys).
    Remote {
        url: String,
        options: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileStore::DataDir => f.write_str("DataDir"),
            FileStore::Local(path) => write!(f, "Local({})", path.display()),
            FileStore::Remote { url, options } => {
                let keys: Vec<&str> = options.iter().map(|(k, _)| k.as_str()).collect();
                write!(f, "Remote({url}, options {keys:?})")
            }
        }
    }
}

impl FileStore {
    /// `--file-store`'s value: a URL of a supported scheme, or a directory; another URL is
    /// refused rather than taken for a directory name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if ["s3://", "gs://", "az://"]
            .iter()
            .any(|scheme| raw.starts_with(scheme))
        {
            Ok(FileStore::Remote {
                url: raw.to_owned(),
                options: Vec::new(),
            })
        } else if let Some((scheme, _)) = raw.split_once("://") {
            Err(format!(
                "--file-store: \"{scheme}://\" is not supported; use a directory, s3://, gs:// or az://"
            ))
        } else {
            Ok(FileStore::Local(raw.into()))
        }
    }

    /// The storage this names (partial files under the data directory's `files`, or the
    /// directory given).
    pub fn open(&self, data_dir: &std::path::Path) -> Result<tessera_store::FileStorage, String> {
        let local = data_dir.join("files");
        match self {
            FileStore::DataDir => Ok(tessera_store::FileStorage::new(local)),
            FileStore::Local(dir) => Ok(tessera_store::FileStorage::new(dir.clone())),
            FileStore::Remote { url, options } => {
                tessera_store::FileStorage::remote(local, url, options)
            }
        }
    }
}

/// The operator's AWS credentials (never a team's, never the machine's ambient identity).
#[derive(Clone)]
pub struct PlatformAws {
    pub access_key_id: String,
    /// Never logged.
    pub secret_access_key: String,
    pub region: String,
    /// STS endpoint; `None`: `https://sts.{region}.amazonaws.com` (tests point it at moto).
    pub sts_endpoint: Option<Url>,
}

impl PlatformAws {
    /// The STS endpoint requests go to.
    pub fn sts_url(&self) -> String {
        match &self.sts_endpoint {
            Some(url) => url.as_str().to_owned(),
            None => format!("https://sts.{}.amazonaws.com/", self.region),
        }
    }
}

impl std::fmt::Debug for PlatformAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformAws")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("sts_endpoint", &self.sts_endpoint.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

/// Stripe's keys and where its API and Stripe.js live.
#[derive(Clone)]
pub struct StripeConfig {
    /// `sk_…`: server-side calls only; never logged.
    pub secret_key: String,
    /// `pk_…`: handed to Stripe.js on the card page.
    pub publishable_key: String,
    /// `whsec_…`: verifies webhooks; without it the webhook endpoint answers 404.
    pub webhook_secret: Option<String>,
    /// `https://api.stripe.com` unless tests point it at a `localstripe`.
    pub api_base: Url,
    /// Stripe.js (`https://js.stripe.com/v3/`), loaded by the card page.
    pub js_url: Url,
}

impl StripeConfig {
    /// Stripe's production endpoints with these keys.
    pub fn new(secret_key: String, publishable_key: String) -> Self {
        Self {
            secret_key,
            publishable_key,
            webhook_secret: None,
            api_base: Url::parse("https://api.stripe.com").expect("a valid URL"),
            js_url: Url::parse("https://js.stripe.com/v3/").expect("a valid URL"),
        }
    }
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("publishable_key", &self.publishable_key)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "(set)"),
            )
            .field("api_base", &self.api_base.as_str())
            .field("js_url", &self.js_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults for everything but the parts that identify an installation.
    pub fn new(
        listen: SocketAddr,
        data_dir: PathBuf,
        database_url: String,
        public_url: Url,
        master_key: MasterKey,
    ) -> Self {
        Self {
            listen,
            data_dir,
            database_url,
            smtp_url: None,
            mail_from: "Tessera <no-reply@tessera.local>".into(),
            public_url,
            master_key,
            invitation_ttl: Duration::from_secs(7 * 86_400),
            session_ttl: Duration::from_secs(14 * 86_400),
            session_idle_timeout: Duration::from_secs(12 * 3600),
            mail_retry: default_mail_retry(),
            resend_interval: Duration::from_secs(60),
            allow_private_callbacks: false,
            callback_retry: default_callback_retry(),
            callback_timeout: Duration::from_secs(10),
            label_lease: Duration::from_secs(600),
            team_test_tasks_per_hour: 10_000,
            team_callback_emails_per_hour: 100,
            log_mail_bodies: false,
            storage_quota: StorageQuota::default(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            trusted_proxies: TrustedProxies::default(),
            stripe: None,
            payment_retry: default_payment_retry(),
            aws: None,
            file_store: FileStore::DataDir,
            support_email: None,
        }
    }

    /// Cookies get `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The HTTP server's connection limits.
    pub fn connection_limits(&self) -> crate::serve::ConnectionLimits {
        crate::serve::ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }

    /// The name of a cookie: with the `__Host-` prefix when cookies are `Secure` (https), so
    /// that no subdomain or plain-http page can set or shadow it.
    pub fn cookie_name(&self, base: &'static str) -> std::borrow::Cow<'static, str> {
        if self.secure_cookies() {
            format!("__Host-{base}").into()
        } else {
            base.into()
        }
    }

    /// An absolute link under the public URL.
    pub fn link(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

/// Mail retries: quickly at first, then hourly, about a day in all.
pub fn default_mail_retry() -> RetrySchedule {
    let mut delays: Vec<Duration> = [30, 60, 120, 300, 600, 1800]
        .into_iter()
        .map(Duration::from_secs)
        .collect();
    delays.extend(std::iter::repeat_n(Duration::from_secs(3600), 22));
    RetrySchedule::new(delays)
}

/// Charge retries: 1, 3 and 5 days after the failures before them.
pub fn default_payment_retry() -> RetrySchedule {
    RetrySchedule::new(
        [1, 3, 5]
            .into_iter()
            .map(|days| Duration::from_secs(days * 86_400))
            .collect(),
    )
}

/// Callback retries: 20 after the first attempt, backing off from 30 seconds to two hours,
/// about 24 hours in all (scale-api.md §7.1). Each delay gets ±20% jitter when applied.
pub fn default_callback_retry() -> RetrySchedule {
    let mut delays: Vec<Duration> = [30, 60, 120, 300, 600, 1200, 1800, 2700, 3600, 5400]
        .into_iter()
        .map(Duration::from_secs)
        .collect();
    delays.extend(std::iter::repeat_n(Duration::from_secs(7200), 10));
    RetrySchedule::new(delays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_callback_schedule_is_twenty_retries_over_about_a_day() {
        let schedule = default_callback_retry();
        assert_eq!(schedule.retries(), 20);
        let total: Duration = (1..=20).filter_map(|n| schedule.delay_after(n)).sum();
        let hours = total.as_secs_f64() / 3600.0;
        assert!((22.0..=26.0).contains(&hours), "{hours} h");
        assert_eq!(schedule.delay_after(21), None);
    }
}
