//! Tessera's persistence: one [`Store`] over SQLite (embedded default) and PostgreSQL.
//!
//! Queries are written once in portable SQL and run through `sqlx::Any`; the few places where
//! the two databases differ are switched on [`Dialect`]. Handlers never see SQL or sqlx types:
//! they get the records defined here. See `docs/decisions/0001-storage.md`.

#![forbid(unsafe_code)]

mod audit;
mod batch_completion;
#[cfg(feature = "bench-seed")]
mod bench;
mod billing;
mod blobs;
mod callback_emails;
mod callbacks;
mod email_verifications;
mod error;
mod files;
mod handovers;
mod integrations;
mod invitations;
mod keys;
mod labeled;
mod labeling;
mod mail;
mod migrate;
mod password_resets;
mod projects;
mod rate;
mod sealed;
mod sessions;
mod sql;
mod task_cache;
mod task_insert;
mod tasks;
mod teams;
mod two_factor;
mod users;

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, Executor,
};
pub use tessera_core::Scope;

pub use audit::{
    parse_audit_cursor, AuditAction, AuditEvent, AuditFilter, AuditPage, NewAuditEvent,
};
pub use billing::{
    BilledTask, BillingAccount, CardSummary, ChargeDue, CloseOutcome, CreditEntry, Invoice,
    InvoiceDetail, InvoiceLine, NewPaymentAttempt, NewPrice, PaymentAttempt, Price, SpendState,
    UsageGroup, UsageRow, UsageTotals,
};
pub use blobs::{remove_blob, BlobLocation, FileStorage, PartialFile, StoredBlob, WriteError};
pub use callback_emails::{CallbackEmail, NewCallbackEmail};
pub use callbacks::{
    new_delivery_id, ClaimedDelivery, Delivery, DeliveryAttempt, DeliveryCounts, DeliveryKind,
    DeliveryOutcome, DeliveryPage, NewDelivery, NextStep, SentRequest,
};
pub use email_verifications::{
    ClosedSignup, NewVerificationLink, PendingVerification, SupersededSignup,
};
pub use error::{Constraint, StoreError, StoreResult};
pub use files::{FileRecord, NewFile};
pub use handovers::{AdminHandover, NewHandover};
pub use integrations::{AddRefused, NewIntegration, StorageIntegration, StorageSettings};
pub use invitations::{
    AcceptOutcome, Invitation, InvitationLink, InviteOutcome, NewInvitation, NewLink,
};
pub use keys::{ApiKey, KeyIdentity, KeyName, NewApiKey, Rolled, TeamSecret};
pub use labeled::LabeledPage;
pub use labeling::{Claim, ClaimProblem, Holding, LabelerScope, Queue};
pub use mail::{MailMessage, MailStatus, NewMail};
pub use password_resets::NewPasswordReset;
pub use projects::{Batch, BatchCounts, BatchFilter, NewBatch, NewProject, Project};
pub use sealed::{ResealCounts, SealedValue};
pub use sessions::SessionUser;
pub use tasks::{
    new_task_id, MetadataField, NewTask, PageCursor, Parent, Task, TaskEvent, TaskFilter, TaskPage,
};
pub use teams::{Team, TeamSummary};
pub use two_factor::{SignInChallenge, TwoFactor};
pub use users::{NewUser, User};

/// Which SQL database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The one persistence API every feature uses.
///
/// On SQLite, writes go through a single-connection pool so that write transactions queue in
/// Tessera instead of failing with `SQLITE_BUSY`; reads use their own pool (WAL lets them run
/// beside the writer). On PostgreSQL both are the same pool.
#[derive(Clone)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    dialect: Dialect,
    /// Single-task reads of the API (see `task_cache`).
    task_cache: Arc<task_cache::TaskCache>,
    /// Task pages the database builds at once (see `list_tasks`).
    page_permits: Arc<tokio::sync::Semaphore>,
    /// The queue of the group-commit task writer while it runs ([`Store::start_task_writer`]).
    task_writer: Arc<std::sync::RwLock<Option<task_insert::InsertQueue>>>,
    /// PostgreSQL: where [`CrossTenant::follow_task_changes`] listens.
    database_url: String,
}

/// The running group-commit task writer of a [`Store`] (see [`Store::start_task_writer`]).
/// Dropping it without [`TaskWriter::stop`] leaves the writer running until the store's last
/// clone is gone.
#[must_use = "stop the task writer at shutdown so queued tasks are written"]
pub struct TaskWriter {
    slot: Arc<std::sync::RwLock<Option<task_insert::InsertQueue>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TaskWriter {
    /// Stops queueing new tasks (later ones are written alone) and waits until the writer has
    /// written every task already queued.
    pub async fn stop(self) {
        let queue = self
            .slot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(queue);
        let _ = self.task.await;
    }
}

/// How long a cached task is served on SQLite: the staleness a second process serving the
/// same file could see (one process per file is the supported set-up; its own changes are
/// seen at once).
pub const SQLITE_TASK_CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a cached task is served on PostgreSQL, where every replica hears every change
/// (`NOTIFY`): a backstop, not the consistency mechanism.
pub const POSTGRES_TASK_CACHE_TTL: Duration = Duration::from_secs(30);
/// The PostgreSQL channel on which task changes are announced to every replica.
const TASK_CHANGED_CHANNEL: &str = "tessera_task_changed";

/// Milliseconds since the Unix epoch: the one time representation in the schema.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// A fresh random identifier with a readable prefix (`usr_…`, `team_…`), 96 random bits.
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    format!("{prefix}_{}", hex::encode(bytes))
}

impl Store {
    /// Connects to `database_url` (`sqlite://path` or `postgres://…`). SQLite files are created
    /// when missing and opened in WAL mode with foreign keys on.
    pub async fn connect(database_url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if database_url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Dialect::Postgres
        } else {
            return Err(StoreError::Config(
                "database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        match dialect {
            Dialect::Sqlite => {
                let url = if database_url.contains('?') {
                    database_url.to_owned()
                } else {
                    format!("{database_url}?mode=rwc")
                };
                let options = AnyConnectOptions::from_str(&url)?;
                let writer = sqlite_pool(1).connect_with(options.clone()).await?;
                let reader = sqlite_pool(4).connect_with(options).await?;
                Ok(Self {
                    writer,
                    reader,
                    dialect,
                    // One process owns an SQLite file: its own changes invalidate at once;
                    // the expiry bounds what a second process on the same file would see.
                    task_cache: Arc::new(task_cache::TaskCache::new(SQLITE_TASK_CACHE_TTL, true)),
                    page_permits: page_permits(),
                    task_writer: Arc::default(),
                    database_url: database_url.to_owned(),
                })
            }
            Dialect::Postgres => {
                let options = AnyConnectOptions::from_str(database_url)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Ok(Self {
                    writer: pool.clone(),
                    reader: pool,
                    dialect,
                    // Off until `follow_task_changes` listens for other replicas' changes.
                    task_cache: Arc::new(task_cache::TaskCache::new(
                        POSTGRES_TASK_CACHE_TTL,
                        false,
                    )),
                    page_permits: page_permits(),
                    task_writer: Arc::default(),
                    database_url: database_url.to_owned(),
                })
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Brings the schema up to date; safe to run from several replicas at once.
    pub async fn migrate(&self) -> StoreResult<()> {
        migrate::run(self, i64::MAX).await
    }

    /// Brings the schema up to migration `version` only: tests apply a new migration over a
    /// database filled under the previous schema.
    pub async fn migrate_to(&self, version: i64) -> StoreResult<()> {
        migrate::run(self, version).await
    }

    /// Cheap round trip for readiness probes.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Starts the group-commit writer of new tasks (`task_insert`): from now on
    /// [`Store::insert_task`] on this store and its clones queues tasks for it, to be written
    /// in batches. The server starts it before it takes requests and stops it after the last
    /// one. Without a running writer (a CLI, a test on the bare store, or after
    /// [`TaskWriter::stop`]) each task is written alone in its own transaction, with the same
    /// statements and the same result: correct, only not batched.
    ///
    /// Must be called inside a Tokio runtime. `Err` if this store's writer already runs.
    pub fn start_task_writer(&self) -> StoreResult<TaskWriter> {
        let mut slot = self
            .task_writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_some() {
            return Err(StoreError::Config("the task writer already runs".into()));
        }
        let (queue, task) = task_insert::InsertQueue::start(self.writer.clone(), self.dialect);
        *slot = Some(queue);
        Ok(TaskWriter {
            slot: self.task_writer.clone(),
            task,
        })
    }

    /// The running task writer's queue, if any.
    fn task_writer_queue(&self) -> Option<task_insert::InsertQueue> {
        self.task_writer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Closes both pools, letting in-flight statements finish.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// `FOR UPDATE` where the database has it (PostgreSQL): read-modify-write transactions
    /// lock the row they read. SQLite serialises writers through the one write connection.
    fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// `FOR UPDATE SKIP LOCKED` where the database has it (PostgreSQL); SQLite serialises
    /// writers anyway.
    fn skip_locked(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }
}

/// The store as the background machinery sees it: every team's rows at once (claiming due
/// callbacks and mail, pruning, following changes, the staff console). Kept apart from
/// [`Store`]'s tenant methods, which all take a [`Scope`], so code serving one team's request
/// reaches other teams' rows only by asking for this handle by name.
#[derive(Clone)]
pub struct CrossTenant {
    /// Its methods use the store's pools and dialect helpers (`self.store.writer`, …).
    store: Store,
}

impl Store {
    /// The cross-tenant handle for workers, housekeeping and platform staff.
    pub fn cross_tenant(&self) -> CrossTenant {
        CrossTenant {
            store: self.clone(),
        }
    }
}

/// Two task pages per core at once: the database and the server share the machine's cores
/// (measured on 2 cores: the p99 of a page under 16 concurrent requests halves on
/// PostgreSQL, the rate rises).
fn page_permits() -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Arc::new(tokio::sync::Semaphore::new(2 * cores))
}

fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        })
}

/// Converts the schema's 0/1 flags.
fn flag(value: i64) -> bool {
    value != 0
}
