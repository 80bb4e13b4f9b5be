//! `tessera-bench`: the load benchmark's helpers (`bench/run`, `bench/callbacks`), kept out of
//! the product binary. It seeds a Tessera database in bulk, measures the database's plain
//! one-row commit rate, reports callback delivery progress and runs a minimal callback
//! receiver. Built with the store's `bench-seed` feature, which only this crate enables.

#![forbid(unsafe_code)]

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tessera_core::{ids::TeamId, retry::parse_duration, Scope};
use tessera_server::staff::support;
use tessera_store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "tessera-bench",
    about = "Benchmark support for Tessera (see bench/run): reference measurements and bulk seeding."
)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: BenchCommand,
}

/// Where the benchmarked Tessera keeps its data: the same options and variables as `tessera`.
#[derive(Args, Debug, Clone)]
struct StorageArgs {
    /// Directory for the embedded database.
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

impl StorageArgs {
    /// Connects to the database and brings its schema up to date, as `tessera` does.
    async fn store(&self) -> anyhow::Result<Store> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("tessera.db").display()),
        };
        let store = Store::connect(&url)
            .await
            .context("connecting to the database")?;
        store.migrate().await.context("migrating the database")?;
        Ok(store)
    }
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Measures plain one-row commits per second through the server's write pool.
    Commits {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Inserts COUNT completed tasks for a team in bulk.
    Seed {
        #[command(flatten)]
        seed: SeedArgs,
    },
    /// Inserts COUNT completed test tasks for a team, each with a pending callback to URL.
    SeedCallbacks {
        #[command(flatten)]
        seed: SeedArgs,
        #[arg(long)]
        url: String,
    },
    /// Prints the callback deliveries by status and the attempts made (`pending=… succeeded=…
    /// failed=… attempts=…`); with `--wait-for N`, first polls until N deliveries are finished
    /// (succeeded or failed) and also prints `seconds=… rate=…`: from the first attempt to the
    /// last finish, by the server's clock.
    DeliveryCounts {
        #[arg(long)]
        wait_for: Option<i64>,
        /// Give up waiting after this long.
        #[arg(long, default_value = "300s", value_parser = parse_duration_arg)]
        timeout: Duration,
    },
    /// A minimal HTTP receiver for callback benchmarks: answers every request with STATUS
    /// after DELAY_MS, counting requests and body bytes (`GET /__count` prints them).
    Receiver {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 200)]
        status: u16,
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

/// Which team's world to seed, and how many tasks.
#[derive(Args, Debug)]
struct SeedArgs {
    /// The team's name or id.
    #[arg(long)]
    team: String,
    #[arg(long, default_value = "test")]
    mode: String,
    #[arg(long)]
    count: i64,
}

impl SeedArgs {
    /// The team and mode to seed; the benchmark is an operator tool, so no policy applies.
    async fn scope(&self, store: &Store) -> anyhow::Result<Scope> {
        let team = support::find_team(store, &self.team)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mode: tessera_core::Mode = self
            .mode
            .parse()
            .map_err(|e: tessera_core::Invalid| anyhow::anyhow!(e.0))?;
        Ok(Scope::operator(TeamId::from_stored(team.id), mode))
    }
}

fn parse_duration_arg(raw: &str) -> Result<Duration, String> {
    parse_duration(raw).map_err(|e| e.0)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match bench(cli.storage, cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(storage: StorageArgs, command: BenchCommand) -> anyhow::Result<()> {
    if let BenchCommand::Receiver {
        listen,
        status,
        delay_ms,
    } = command
    {
        return bench_receiver(listen, status, Duration::from_millis(delay_ms)).await;
    }
    let store = storage.store().await?;
    match command {
        BenchCommand::Commits {
            seconds,
            concurrency,
        } => {
            let rate = store
                .bench_single_row_commits(Duration::from_secs(seconds), concurrency)
                .await?;
            println!("{rate:.0}");
        }
        BenchCommand::Seed { seed } => {
            store
                .seed_tasks(&seed.scope(&store).await?, seed.count)
                .await?;
            println!("seeded {} tasks", seed.count);
        }
        BenchCommand::SeedCallbacks { seed, url } => {
            let scope = seed.scope(&store).await?;
            store.seed_callbacks(&scope, seed.count, &url).await?;
            println!("seeded {} tasks with pending callbacks", seed.count);
        }
        BenchCommand::DeliveryCounts { wait_for, timeout } => {
            let started = std::time::Instant::now();
            let mut counts = store.cross_tenant().delivery_counts(None).await?;
            if let Some(target) = wait_for {
                while counts.succeeded + counts.failed < target {
                    if started.elapsed() > timeout {
                        bail!(
                            "timed out: pending={} succeeded={} failed={}",
                            counts.pending,
                            counts.succeeded,
                            counts.failed
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    counts = store.cross_tenant().delivery_counts(None).await?;
                }
            }
            let (attempts, span) = store.bench_delivery_stats().await?;
            print!(
                "pending={} succeeded={} failed={} attempts={attempts}",
                counts.pending, counts.succeeded, counts.failed
            );
            if let (Some(_), Some((first, last))) = (wait_for, span) {
                let seconds = (last - first).max(1) as f64 / 1000.0;
                let done = counts.succeeded + counts.failed;
                print!(" seconds={seconds:.3} rate={:.1}", done as f64 / seconds);
            }
            println!();
        }
        BenchCommand::Receiver { .. } => unreachable!("handled above"),
    }
    store.close().await;
    Ok(())
}

/// `tessera-bench receiver`: every request is answered with `status` after `delay`; nothing is
/// printed per request. `GET /__count` answers `requests=N bytes=M` (not counted itself).
async fn bench_receiver(listen: SocketAddr, status: u16, delay: Duration) -> anyhow::Result<()> {
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    };

    use axum::{body::Bytes, extract::State, http::StatusCode, routing::get, Router};

    #[derive(Default)]
    struct Counts {
        requests: AtomicU64,
        bytes: AtomicU64,
    }
    let status = StatusCode::from_u16(status).context("--status")?;
    let counts = Arc::new(Counts::default());
    let app = Router::new()
        .route(
            "/__count",
            get(|State(c): State<Arc<Counts>>| async move {
                format!(
                    "requests={} bytes={}\n",
                    c.requests.load(Ordering::Relaxed),
                    c.bytes.load(Ordering::Relaxed)
                )
            }),
        )
        .fallback(
            move |State(c): State<Arc<Counts>>, body: Bytes| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                c.requests.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                status
            },
        )
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!("receiver listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(tessera_server::serve::shutdown_signal())
        .await?;
    Ok(())
}
