//! Command-line interface: `serve`, `migrate` and the `admin` support commands. Every option
//! is also an environment variable, so containers and scripts can configure it either way.

mod admin;
mod serve;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tessera_core::{
    client_ip::TrustedProxies,
    retry::{parse_duration, RetrySchedule},
};
use tessera_server::crypto::MasterKey;
use tessera_store::Store;

use admin::{admin, rotate_master_key, AdminCommand};
use serve::{serve, ServeArgs};

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
