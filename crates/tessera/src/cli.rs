//! Command-line interface: `serve`, `migrate` and the `admin` support commands. Every option
//! is also an environment variable, so containers and scripts can configure it either way.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tessera_core::{
    client_ip::TrustedProxies,
    retry::{parse_duration, RetrySchedule},
};
use tessera_server::{
    config::Config,
    crypto::{write_key_file, MasterKey},
    staff::support::{self, Operator, SupportError},
    Application,
};
use tessera_store::Store;
use url::Url;

#[derive(Parser, Debug)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: the account side of a data-labeling API business."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the dashboard, the API and the background workers.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(StorageArgs),
    /// Support operations on teams and users.
    Admin {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Where Tessera keeps its data.
#[derive(Args, Debug, Clone)]
struct StorageArgs {
    /// Directory for the embedded database, the master key and stored files.
    #[arg(
        long,
        env = "TESSERA_DATA_DIR",
        default_value = "./tessera-data",
        global = true
    )]
    data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`; default: SQLite in the data dir.
    #[arg(long, env = "TESSERA_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Args, Debug)]
struct ServeArgs {
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
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create a team and its Admin account; prints the team id.
    CreateTeam {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List teams with their Admin, member count and id (names are not unique; ids are).
    ListTeams,
    /// Move a user into a team (member by default; never Admin — use set-admin).
    MoveUser {
        #[arg(long)]
        email: String,
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        #[arg(long)]
        role: Option<String>,
    },
    /// Make a member of the team its Admin; the previous Admin becomes a Manager.
    SetAdmin {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        #[arg(long)]
        email: String,
    },
    /// Create an API key for a team; prints the key alone.
    CreateApiKey {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        /// `test` or `live`.
        #[arg(long)]
        mode: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Print a team's callback auth key for a mode (the `scale-callback-auth` header value).
    CallbackAuthKey {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        /// `test` or `live`.
        #[arg(long)]
        mode: String,
    },
    /// Print a team's callback signing secret for a mode (`whsec_…`, Standard Webhooks).
    CallbackSigningSecret {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        /// `test` or `live`.
        #[arg(long)]
        mode: String,
    },
    /// Create a platform workforce labeler, who labels every team's live tasks.
    CreateLabeler {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Create a platform support (staff) user, who can open the staff console.
    CreateStaff {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Re-seal every stored secret under a new master key and install it (stop the servers
    /// first; see the README). With the key file, the new key replaces DATA_DIR/master.key
    /// and the old one is kept in DATA_DIR/master.key.old.
    RotateMasterKey {
        /// File with the new key (64 hex characters), created with a fresh key when missing.
        /// Required when the current key comes from TESSERA_MASTER_KEY, unless
        /// TESSERA_NEW_MASTER_KEY is set.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

/// Where an admin command reads a new account's password. Not from the command line by
/// default: arguments are visible to every user in `ps` and land in shell history.
#[derive(Args, Debug)]
struct PasswordArgs {
    /// Deprecated (visible in `ps` and shell history): use the prompt, --password-stdin or
    /// TESSERA_ADMIN_PASSWORD.
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// The environment variable an admin command reads a password from.
const PASSWORD_ENV: &str = "TESSERA_ADMIN_PASSWORD";

impl PasswordArgs {
    /// The password from `--password` (with a warning), `--password-stdin`,
    /// `TESSERA_ADMIN_PASSWORD` or, on a terminal, a prompt without echo, in that order.
    fn read(self) -> anyhow::Result<String> {
        use std::io::IsTerminal;
        if let Some(password) = self.password {
            eprintln!(
                "warning: --password is deprecated: it is visible in `ps` and shell history. \
                 Type the password at the prompt, pipe it with --password-stdin, or set \
                 {PASSWORD_ENV}."
            );
            return Ok(password);
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            if password.is_empty() {
                bail!("--password-stdin: standard input held no password");
            }
            return Ok(password.to_owned());
        }
        if let Some(password) = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()) {
            return Ok(password);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no password given: run the command in a terminal to be prompted, pipe it with \
                 --password-stdin, or set {PASSWORD_ENV}"
            );
        }
        let password = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again =
            rpassword::prompt_password("Repeat password: ").context("reading the password")?;
        if password != again {
            bail!("the two passwords differ");
        }
        Ok(password)
    }
}

fn parse_duration_arg(raw: &str) -> Result<Duration, String> {
    parse_duration(raw).map_err(|e| e.0)
}

fn parse_trusted_proxies_arg(raw: &str) -> Result<TrustedProxies, String> {
    raw.parse().map_err(|e: tessera_core::Invalid| e.0)
}

fn parse_schedule_arg(raw: &str) -> Result<RetrySchedule, String> {
    RetrySchedule::parse(raw).map_err(|e| e.0)
}

impl StorageArgs {
    /// Creates the data directory (private to this user) and resolves the database URL.
    fn prepare(&self) -> anyhow::Result<String> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("tessera.db").display()),
        })
    }

    /// The master key: `TESSERA_MASTER_KEY` (64 hex characters, shared by all replicas) or
    /// `DATA_DIR/master.key`, generated on first start. Retired keys that still open (never
    /// seal) values come from `TESSERA_OLD_MASTER_KEYS` and, with the key file, from
    /// `DATA_DIR/master.key.old`, which `rotate-master-key` writes.
    fn master_key(&self) -> anyhow::Result<MasterKey> {
        let mut previous = match env_value("TESSERA_OLD_MASTER_KEYS") {
            Some(list) => MasterKey::parse_list(&list).context("TESSERA_OLD_MASTER_KEYS")?,
            None => Vec::new(),
        };
        let current = match env_value("TESSERA_MASTER_KEY") {
            Some(hex) => MasterKey::from_hex(&hex).context("TESSERA_MASTER_KEY")?,
            None => {
                previous.extend(MasterKey::load_list(&self.old_key_path())?);
                MasterKey::load_or_create(&self.key_path())?
            }
        };
        Ok(current.with_previous(previous))
    }

    fn key_path(&self) -> PathBuf {
        self.data_dir.join("master.key")
    }

    fn old_key_path(&self) -> PathBuf {
        self.data_dir.join("master.key.old")
    }

    async fn store(&self) -> anyhow::Result<Store> {
        let url = self.prepare()?;
        let store = Store::connect(&url)
            .await
            .context("connecting to the database")?;
        store.migrate().await.context("migrating the database")?;
        Ok(store)
    }
}

/// An environment variable's value, unless it is unset or blank.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(storage) => {
            init_logging();
            storage.store().await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Admin {
            storage,
            command: AdminCommand::RotateMasterKey { new_key_file },
        } => rotate_master_key(&storage, new_key_file).await,
        Command::Admin { storage, command } => admin(storage, command).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let database_url = args.storage.prepare()?;
    let master_key = args.storage.master_key()?;
    let public_url = match args.public_url {
        Some(url) => url,
        None => {
            Url::parse(&format!("http://{}", args.listen)).context("building the public URL")?
        }
    };
    if !matches!(public_url.scheme(), "http" | "https") {
        bail!("--public-url must be an http:// or https:// URL");
    }
    let mut config = Config::new(
        args.listen,
        args.storage.data_dir.clone(),
        database_url,
        public_url,
        master_key,
    );
    config.smtp_url = args.smtp_url.filter(|s| !s.trim().is_empty());
    config.mail_from = args.mail_from;
    config.invitation_ttl = args.invitation_ttl;
    config.allow_private_callbacks = args.allow_private_callbacks;
    if let Some(schedule) = args.mail_retry_schedule {
        config.mail_retry = schedule;
    }
    if let Some(schedule) = args.callback_retry_schedule {
        config.callback_retry = schedule;
    }
    if args.callback_timeout.is_zero() || args.label_lease.is_zero() {
        bail!("--callback-timeout and --label-lease must be longer than zero");
    }
    config.callback_timeout = args.callback_timeout;
    config.label_lease = args.label_lease;
    config.team_test_tasks_per_hour = args.team_test_tasks_per_hour;
    config.team_callback_emails_per_hour = args.team_callback_emails_per_hour;
    config.log_mail_bodies = args.log_mail_bodies;
    if args.session_idle_timeout.is_zero() {
        bail!("--session-idle-timeout must be longer than zero");
    }
    config.session_idle_timeout = args.session_idle_timeout;
    config.storage_quota = tessera_core::storage::StorageQuota {
        bytes: args.storage_quota_bytes,
        files: args.storage_quota_files,
    };
    if args.header_read_timeout.is_zero() || args.idle_timeout.is_zero() {
        bail!("--header-read-timeout and --idle-timeout must be longer than zero");
    }
    config.header_read_timeout = args.header_read_timeout;
    config.idle_timeout = args.idle_timeout;
    config.max_connections = args.max_connections as usize;
    config.trusted_proxies = args.trusted_proxies.unwrap_or_default();
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
    let app = Application::build(config.clone()).await?;
    let addr = app.local_addr();
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
    println!(
        "  Mail: {mail}. Staff console: create a staff user with `tessera admin create-staff`."
    );
    app.run(shutdown_signal()).await?;
    println!("Tessera stopped.");
    Ok(())
}

/// Completes on SIGINT or SIGTERM, and says that the server is shutting down.
async fn shutdown_signal() {
    tessera_server::serve::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn admin(storage: StorageArgs, command: AdminCommand) -> anyhow::Result<()> {
    let store = storage.store().await?;
    let master = storage.master_key()?;
    let operator = Operator::cli();
    let result: Result<(), SupportError> = async {
        match command {
            AdminCommand::CreateTeam {
                name,
                admin_email,
                password,
            } => {
                let password = password.read()?;
                let team = support::create_team(
                    &store,
                    &master,
                    &name,
                    &admin_email,
                    &password,
                    &operator,
                )
                .await?;
                println!("{}", team.id);
            }
            AdminCommand::ListTeams => {
                let teams = store.list_teams().await?;
                println!("{:<30}  {:<40}  {:>7}  ID", "TEAM", "ADMIN", "MEMBERS");
                for t in teams {
                    println!(
                        "{:<30}  {:<40}  {:>7}  {}",
                        t.team.name, t.admin_email, t.members, t.team.id
                    );
                }
            }
            AdminCommand::MoveUser { email, team, role } => {
                let (user, team) =
                    support::move_user(&store, &email, &team, role.as_deref(), &operator).await?;
                println!(
                    "{} is now in {} as {}",
                    user.email,
                    team.name,
                    user.role.map(|r| r.as_str()).unwrap_or("")
                );
            }
            AdminCommand::SetAdmin { team, email } => {
                let team = support::set_admin(&store, &team, &email, &operator).await?;
                println!("{} is now the Admin of {}", email.trim(), team.name);
            }
            AdminCommand::CreateApiKey { team, mode, label } => {
                let key = support::create_api_key(&store, &master, &team, &mode, &label, &operator)
                    .await?;
                println!("{key}");
            }
            AdminCommand::CallbackAuthKey { team, mode } => {
                println!(
                    "{}",
                    support::callback_auth_key(&store, &master, &team, &mode).await?
                );
            }
            AdminCommand::CallbackSigningSecret { team, mode } => {
                println!(
                    "{}",
                    support::callback_signing_secret(&store, &master, &team, &mode).await?
                );
            }
            AdminCommand::CreateLabeler { email, password } => {
                let user = support::create_labeler(&store, &email, &password.read()?).await?;
                println!("{}", user.id);
            }
            AdminCommand::CreateStaff { email, password } => {
                let user = support::create_staff(&store, &email, &password.read()?).await?;
                println!("{}", user.id);
            }
            AdminCommand::RotateMasterKey { .. } => unreachable!("handled in run"),
        }
        Ok(())
    }
    .await;
    store.close().await;
    result.map_err(|err| anyhow::anyhow!("{err}"))
}

/// `tessera admin rotate-master-key`: keys first, data second. With the key file, the current
/// key joins `master.key.old` before `master.key` is replaced (each written atomically), so a
/// crash at any point leaves every stored value readable by the next start; then every sealed
/// value is re-sealed under the new key in one transaction. Running it again is harmless.
async fn rotate_master_key(
    storage: &StorageArgs,
    new_key_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store = storage.store().await?;
    let current = storage.master_key()?;
    let from_env = env_value("TESSERA_MASTER_KEY").is_some();
    let new = match (&new_key_file, env_value("TESSERA_NEW_MASTER_KEY")) {
        (Some(path), _) => MasterKey::load_or_create(path)?,
        (None, Some(hex)) => MasterKey::from_hex(&hex).context("TESSERA_NEW_MASTER_KEY")?,
        (None, None) if from_env => bail!(
            "the master key comes from TESSERA_MASTER_KEY, so the new key cannot be installed for \
             you: pass --new-key-file PATH (created with a fresh key if missing) or set \
             TESSERA_NEW_MASTER_KEY"
        ),
        (None, None) => MasterKey::generate(),
    };
    if !from_env && new != current {
        let mut old = vec![current.to_hex()];
        for key in MasterKey::load_list(&storage.old_key_path())? {
            if key != new && !old.contains(&key.to_hex()) {
                old.push(key.to_hex());
            }
        }
        write_key_file(&storage.old_key_path(), &(old.join("\n") + "\n"))?;
        write_key_file(&storage.key_path(), &new.to_hex())?;
    }
    let result = tessera_server::keys::rotation::reseal_all(&store, &current, &new).await;
    store.close().await;
    let counts = result?;
    println!(
        "Re-sealed {} of {} stored secrets under master key {}.",
        counts.resealed,
        counts.examined,
        new.id()
    );
    if counts.changed_meanwhile > 0 {
        println!(
            "  {} changed while rotating (a server is running): run the command again once \
             every server runs with the new key.",
            counts.changed_meanwhile
        );
    }
    if from_env {
        println!(
            "  Now set TESSERA_MASTER_KEY to the new key on every server and restart them; keep \
             the previous key in TESSERA_OLD_MASTER_KEYS while you need to read older backups."
        );
    } else {
        println!(
            "  {} holds the new key; the previous key is kept in {} to read older backups. \
             Start the servers again.",
            storage.key_path().display(),
            storage.old_key_path().display()
        );
    }
    Ok(())
}
