//! `tessera-bench`: the load benchmark's helpers (`bench/run`, `bench/callbacks`), kept out of
//! the product binary. It seeds a Tessera database in bulk, measures the database's plain
//! one-row commit rate, reports callback delivery progress and runs a minimal callback
//! receiver. Built with the store's `bench-seed` feature, which only this crate enables.

#![forbid(unsafe_code)]

mod labeling;

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
    /// The period-close benchmark: creates TEAMS teams with RECORDS completed live tasks of
    /// priced, unbilled usage among them, then closes every team's period with CONCURRENCY
    /// closers at once, checks that each record landed in exactly one invoice, and prints
    /// `teams=… records=… seed_seconds=… close_seconds=… records_per_second=…`.
    Close {
        #[arg(long, default_value_t = 1_000)]
        teams: i64,
        #[arg(long, default_value_t = 1_000_000)]
        records: i64,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Live task creation and completion through the store (see labeling.rs).
    Labeling {
        #[arg(long, default_value_t = 20_000)]
        tasks: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
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
        BenchCommand::Close {
            teams,
            records,
            concurrency,
        } => bench_close(&store, teams, records, concurrency).await?,
        BenchCommand::Labeling { tasks, concurrency } => {
            labeling::bench_labeling(&store, tasks, concurrency).await?
        }
        BenchCommand::Receiver { .. } => unreachable!("handled above"),
    }
    store.close().await;
    Ok(())
}

/// See [`BenchCommand::Close`].
async fn bench_close(
    store: &Store,
    teams: i64,
    records: i64,
    concurrency: usize,
) -> anyhow::Result<()> {
    if teams < 1 || records < teams {
        bail!("--teams must be at least 1 and --records at least --teams");
    }
    let seeding = std::time::Instant::now();
    // An argon2 hash is not needed: nobody signs in to these teams.
    let mut scopes = Vec::new();
    let per_team = records / teams;
    for n in 0..teams {
        let email = tessera_core::Email::parse(&format!("close-bench-{n}@bench.test"))
            .map_err(|e| anyhow::anyhow!(e.0))?;
        let admin = tessera_store::NewUser {
            email,
            password_hash: "bench-no-login".into(),
            profile: Default::default(),
        };
        let event =
            tessera_store::NewAuditEvent::new(tessera_core::AuditAction::TeamSignedUp, "bench");
        let (team, _) = store
            .create_team_with_admin(
                &format!("Close bench {n} {}", tessera_store::now_ms()),
                &admin,
                event,
            )
            .await?;
        let scope = Scope::operator(TeamId::from_stored(team.id), tessera_core::Mode::Live);
        let count = if n == teams - 1 {
            records - per_team * (teams - 1)
        } else {
            per_team
        };
        store
            .seed_unbilled_usage(&scope, count, 20 * 86_400_000)
            .await?;
        scopes.push(scope);
    }
    store.analyze_after_seeding().await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let end = tessera_store::now_ms();
    let closing = std::time::Instant::now();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(scopes));
    let mut closers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (queue, store) = (queue.clone(), store.clone());
        closers.push(tokio::spawn(async move {
            let mut closed = 0_i64;
            loop {
                let Some(scope) = queue.lock().await.pop() else {
                    break;
                };
                let outcome = store
                    .close_period(
                        &scope,
                        end,
                        tessera_core::billing::PaymentStatus::NotConfigured,
                    )
                    .await?;
                if matches!(outcome, tessera_store::CloseOutcome::Closed { .. }) {
                    closed += 1;
                }
            }
            Ok::<i64, tessera_store::StoreError>(closed)
        }));
    }
    let mut invoices = 0;
    for closer in closers {
        invoices += closer.await??;
    }
    let close_seconds = closing.elapsed().as_secs_f64();
    let (billed, unbilled) = store.bench_usage_billing_counts().await?;
    if invoices != teams || billed != records || unbilled != 0 {
        bail!("the close lost or doubled work: invoices={invoices} (want {teams}), billed={billed} unbilled={unbilled} (want {records}, 0)");
    }
    println!(
        "teams={teams} records={records} concurrency={concurrency} invoices={invoices} seed_seconds={seed_seconds:.1} close_seconds={close_seconds:.2} records_per_second={:.0}",
        records as f64 / close_seconds
    );
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
