//! `tessera serve`: its options, the [`Config`] they make, and the start-up banner.

use std::{net::SocketAddr, time::Duration};

use anyhow::{bail, Context};
use clap::Args;
use tessera_core::{client_ip::TrustedProxies, retry::RetrySchedule};
use tessera_server::{
    config::{Config, StripeConfig},
    Application,
};
use url::Url;

use super::{
    init_logging, parse_duration_arg, parse_schedule_arg, parse_trusted_proxies_arg, StorageArgs,
};

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Address to listen on.
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SMTP server for outgoing mail (`smtp://host:25`, `smtps://user:pass@host:465`,
    /// `smtp://host:587?tls=required`). Without it, mail stays in the outbox and the log.
    #[arg(long, env = "TESSERA_SMTP_URL")]
    smtp_url: Option<String>,
    /// Sender of outgoing mail.
    #[arg(
        long,
        env = "TESSERA_MAIL_FROM",
        default_value = "Tessera <no-reply@tessera.local>"
    )]
    mail_from: String,
    /// The URL people reach Tessera at, used in email links (default: http://LISTEN).
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    public_url: Option<Url>,
    /// How long invitation links stay valid (e.g. 7d, 12h).
    #[arg(long, env = "TESSERA_INVITATION_TTL", default_value = "7d", value_parser = parse_duration_arg)]
    invitation_ttl: Duration,
    /// Allow outbound requests (callbacks, file imports) to loopback and private addresses.
    /// For tests and local setups; keep off in production.
    #[arg(long, env = "TESSERA_ALLOW_PRIVATE_CALLBACKS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    allow_private_callbacks: bool,
    /// Delays between mail delivery retries (e.g. 30s,1m,5m); default about a day in all.
    #[arg(long, env = "TESSERA_MAIL_RETRY_SCHEDULE", value_parser = parse_schedule_arg)]
    mail_retry_schedule: Option<RetrySchedule>,
    /// Delays between callback retries (e.g. 1s,2s,5s); default 20 retries over about 24 hours.
    #[arg(long, env = "TESSERA_CALLBACK_RETRY_SCHEDULE", value_parser = parse_schedule_arg)]
    callback_retry_schedule: Option<RetrySchedule>,
    /// Time allowed for one callback attempt.
    #[arg(long, env = "TESSERA_CALLBACK_TIMEOUT", default_value = "10s", value_parser = parse_duration_arg)]
    callback_timeout: Duration,
    /// How long a labeler holds a claimed task before it returns to the queue.
    #[arg(long, env = "TESSERA_LABEL_LEASE", default_value = "10m", value_parser = parse_duration_arg)]
    label_lease: Duration,
    /// Test tasks one team may create per hour on this server (0: no limit).
    #[arg(
        long,
        env = "TESSERA_TEAM_TEST_TASKS_PER_HOUR",
        default_value_t = 10_000
    )]
    team_test_tasks_per_hour: u64,
    /// Email callbacks one team may send per hour (0: no limit).
    #[arg(
        long,
        env = "TESSERA_TEAM_CALLBACK_EMAILS_PER_HOUR",
        default_value_t = 100
    )]
    team_callback_emails_per_hour: u64,
    /// A dashboard session unused for this long ends (sessions end after 14 days regardless).
    #[arg(long, env = "TESSERA_SESSION_IDLE_TIMEOUT", default_value = "12h", value_parser = parse_duration_arg)]
    session_idle_timeout: Duration,
    /// Without --smtp-url, print whole mail bodies (invitation links included) to the log.
    /// For a local trial only: links in logs are credentials.
    #[arg(long, env = "TESSERA_LOG_MAIL_BODIES", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    log_mail_bodies: bool,
    /// Bytes of uploaded and imported files a team may store (live and test together).
    #[arg(long, env = "TESSERA_STORAGE_QUOTA_BYTES", default_value_t = tessera_core::storage::DEFAULT_QUOTA_BYTES)]
    storage_quota_bytes: u64,
    /// Number of uploaded and imported files a team may store (live and test together).
    #[arg(long, env = "TESSERA_STORAGE_QUOTA_FILES", default_value_t = tessera_core::storage::DEFAULT_QUOTA_FILES)]
    storage_quota_files: u64,
    /// Time a client has to send a request's line and headers; slower connections are closed.
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration_arg)]
    header_read_timeout: Duration,
    /// How long a keep-alive connection may stay silent between requests before it is closed.
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration_arg)]
    idle_timeout: Duration,
    /// Connections served at once; further ones wait (in the listen backlog) until one closes.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Load balancers or reverse proxies (CIDRs, e.g. 10.0.0.0/8,fd00::/8) whose
    /// X-Forwarded-For names the client; without it the header is ignored.
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", value_parser = parse_trusted_proxies_arg)]
    trusted_proxies: Option<TrustedProxies>,
    /// Stripe secret key (`sk_…`): turns on charging on-demand teams' cards. Without it,
    /// invoices open as "payment not configured" and nothing is charged.
    #[arg(long, env = "TESSERA_STRIPE_SECRET_KEY", hide_env_values = true)]
    stripe_secret_key: Option<String>,
    /// Stripe publishable key (`pk_…`), for Stripe.js on the card page.
    #[arg(long, env = "TESSERA_STRIPE_PUBLISHABLE_KEY")]
    stripe_publishable_key: Option<String>,
    /// Signing secret (`whsec_…`) of the webhook endpoint `/webhooks/stripe`; without it the
    /// endpoint answers 404.
    #[arg(long, env = "TESSERA_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    stripe_webhook_secret: Option<String>,
    /// Where Stripe's API is (tests point it at a localstripe).
    #[arg(
        long,
        env = "TESSERA_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    stripe_api_base: Url,
    /// Where the card page loads Stripe.js from.
    #[arg(
        long,
        env = "TESSERA_STRIPE_JS_URL",
        default_value = "https://js.stripe.com/v3/"
    )]
    stripe_js_url: Url,
    /// Delays between charge attempts of an invoice after failures (e.g. 1d,3d,5d, the default).
    #[arg(long, env = "TESSERA_PAYMENT_RETRY_SCHEDULE", value_parser = parse_schedule_arg)]
    payment_retry_schedule: Option<RetrySchedule>,
    /// Access key ID of the platform's own AWS identity, which assumes customers' IAM roles
    /// (each with the team's external ID). Tessera never uses the machine's ambient AWS
    /// credentials (AWS_* variables, instance metadata).
    #[arg(long, env = "TESSERA_AWS_ACCESS_KEY_ID")]
    aws_access_key_id: Option<String>,
    /// Secret access key of the platform's AWS identity.
    #[arg(long, env = "TESSERA_AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    aws_secret_access_key: Option<String>,
    /// Region of the platform's STS calls.
    #[arg(long, env = "TESSERA_AWS_REGION", default_value = "us-east-1")]
    aws_region: String,
    /// STS endpoint (default https://sts.REGION.amazonaws.com; tests point it at moto).
    #[arg(long, env = "TESSERA_AWS_STS_ENDPOINT")]
    aws_sts_endpoint: Option<Url>,
    /// Where uploaded and imported files are stored: a directory (default DATA_DIR/files) or
    /// s3://bucket/prefix, gs://bucket/prefix or az://container/prefix, reached with the
    /// operator's credentials from the environment (AWS_*, GOOGLE_*, AZURE_*), so replicas on
    /// several hosts share files.
    #[arg(long, env = "TESSERA_FILE_STORE")]
    file_store: Option<String>,
    /// The address of this installation's support, shown to an inviter whose invitee's
    /// address belongs to another team (only support can move an account between teams).
    #[arg(long, env = "TESSERA_SUPPORT_EMAIL")]
    support_email: Option<String>,
}

impl ServeArgs {
    /// The server's configuration from the options, refusing values it cannot run with.
    fn into_config(self) -> anyhow::Result<Config> {
        let database_url = self.storage.prepare()?;
        let master_key = self.storage.master_key()?;
        let public_url = match self.public_url {
            Some(url) => url,
            None => {
                Url::parse(&format!("http://{}", self.listen)).context("building the public URL")?
            }
        };
        if !matches!(public_url.scheme(), "http" | "https") {
            bail!("--public-url must be an http:// or https:// URL");
        }
        let mut config = Config::new(
            self.listen,
            self.storage.data_dir.clone(),
            database_url,
            public_url,
            master_key,
        );
        config.smtp_url = self.smtp_url.filter(|s| !s.trim().is_empty());
        config.mail_from = self.mail_from;
        config.invitation_ttl = self.invitation_ttl;
        config.allow_private_callbacks = self.allow_private_callbacks;
        if let Some(schedule) = self.mail_retry_schedule {
            config.mail_retry = schedule;
        }
        if let Some(schedule) = self.callback_retry_schedule {
            config.callback_retry = schedule;
        }
        if self.callback_timeout.is_zero() || self.label_lease.is_zero() {
            bail!("--callback-timeout and --label-lease must be longer than zero");
        }
        config.callback_timeout = self.callback_timeout;
        config.label_lease = self.label_lease;
        config.team_test_tasks_per_hour = self.team_test_tasks_per_hour;
        config.team_callback_emails_per_hour = self.team_callback_emails_per_hour;
        config.log_mail_bodies = self.log_mail_bodies;
        if self.session_idle_timeout.is_zero() {
            bail!("--session-idle-timeout must be longer than zero");
        }
        config.session_idle_timeout = self.session_idle_timeout;
        config.storage_quota = tessera_core::storage::StorageQuota {
            bytes: self.storage_quota_bytes,
            files: self.storage_quota_files,
        };
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            bail!("--header-read-timeout and --idle-timeout must be longer than zero");
        }
        config.header_read_timeout = self.header_read_timeout;
        config.idle_timeout = self.idle_timeout;
        config.max_connections = self.max_connections as usize;
        config.trusted_proxies = self.trusted_proxies.unwrap_or_default();
        let nonempty = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        config.stripe = match (
            nonempty(self.stripe_secret_key),
            nonempty(self.stripe_publishable_key),
        ) {
            (None, _) => None,
            (Some(_), None) => {
                bail!("--stripe-secret-key needs --stripe-publishable-key (Stripe.js on the card page uses it)")
            }
            (Some(secret), Some(publishable)) => {
                for (flag, url) in [
                    ("--stripe-api-base", &self.stripe_api_base),
                    ("--stripe-js-url", &self.stripe_js_url),
                ] {
                    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                        bail!("{flag} must be an http:// or https:// URL");
                    }
                }
                let mut stripe = StripeConfig::new(secret, publishable);
                stripe.webhook_secret = nonempty(self.stripe_webhook_secret);
                stripe.api_base = self.stripe_api_base;
                stripe.js_url = self.stripe_js_url;
                Some(stripe)
            }
        };
        if let Some(schedule) = self.payment_retry_schedule {
            config.payment_retry = schedule;
        }
        config.aws = match (
            nonempty(self.aws_access_key_id),
            nonempty(self.aws_secret_access_key),
        ) {
            (None, None) => None,
            (Some(access_key_id), Some(secret_access_key)) => {
                tessera_core::integrations::validate_access_key(&access_key_id, &secret_access_key)
                    .map_err(|e| {
                        anyhow::anyhow!("--aws-access-key-id / --aws-secret-access-key: {e}")
                    })?;
                let region = tessera_core::integrations::clean_region(&self.aws_region)
                    .map_err(|e| anyhow::anyhow!("--aws-region: {e}"))?;
                if let Some(url) = &self.aws_sts_endpoint {
                    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                        bail!("--aws-sts-endpoint must be an http:// or https:// URL");
                    }
                }
                Some(tessera_server::config::PlatformAws {
                    access_key_id,
                    secret_access_key,
                    region,
                    sts_endpoint: self.aws_sts_endpoint,
                })
            }
            _ => bail!("--aws-access-key-id and --aws-secret-access-key go together"),
        };
        config.support_email = nonempty(self.support_email)
            .map(|raw| tessera_core::Email::parse(&raw))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--support-email: {e}"))?;
        if let Some(raw) = nonempty(self.file_store) {
            config.file_store =
                tessera_server::config::FileStore::parse(&raw).map_err(anyhow::Error::msg)?;
            // Refused now, with the reason, rather than at the first upload.
            config
                .file_store
                .open(&config.data_dir)
                .map_err(anyhow::Error::msg)?;
        }
        Ok(config)
    }
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let config = args.into_config()?;
    let app = Application::build(config.clone()).await?;
    print_banner(app.local_addr(), &config);
    app.run(shutdown_signal()).await?;
    println!("Tessera stopped.");
    Ok(())
}

/// Where the server runs and how to start using it (the README quotes these lines).
fn print_banner(addr: SocketAddr, config: &Config) {
    let backend = if config.database_url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let mail = match (config.smtp_url.is_some(), config.log_mail_bodies) {
        (true, _) => "sent over SMTP",
        (false, true) => "kept in the outbox and printed whole to this log (--log-mail-bodies)",
        (false, false) => "kept in the outbox, not sent (no --smtp-url; --log-mail-bodies prints them here for a local trial)",
    };
    println!(
        "Tessera is running at http://{addr}  (public URL {})",
        config.public_url
    );
    println!(
        "  Open it and sign up: the first person of each team creates it and becomes its Admin."
    );
    println!(
        "  Database: {backend}; data directory: {}",
        config.data_dir.display()
    );
    let payments = match &config.stripe {
        Some(stripe) => format!("charged through Stripe at {}", stripe.api_base),
        None => "not configured (no --stripe-secret-key): invoices open without a charge".into(),
    };
    println!("  Payments: {payments}.");
    let roles = match &config.aws {
        Some(aws) => format!(
            "IAM roles assumed as {} through {}",
            aws.access_key_id,
            aws.sts_url()
        ),
        None => "access keys only (no --aws-access-key-id: IAM roles cannot be assumed)".into(),
    };
    println!("  Cloud storage: {roles}.");
    if let Ok(files) = config.file_store.open(&config.data_dir) {
        println!("  Files: stored in {}.", files.describe());
    }
    println!(
        "  Mail: {mail}. Staff console: create a staff user with `tessera admin create-staff`."
    );
}

/// Completes on SIGINT or SIGTERM, and says that the server is shutting down.
async fn shutdown_signal() {
    tessera_server::serve::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
}
