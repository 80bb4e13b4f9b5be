//! A read cache for single-task reads (`GET /v1/task/{id}`, the API's hottest read: SDK users
//! poll it), so that a repeated read costs no database round trip.
//!
//! Correctness rests on invalidation, not on expiry:
//! - every change to a task row goes through the [`Store`](crate::Store), which evicts the task
//!   here once its transaction has committed;
//! - on PostgreSQL the same transaction sends `NOTIFY tessera_task_changed` with the task ids,
//!   and every replica's listener ([`CrossTenant::follow_task_changes`](crate::CrossTenant::follow_task_changes))
//!   evicts them; while that listener is not connected the cache is off and empty, since
//!   notifications sent meanwhile are lost;
//! - a read only fills the cache if no invalidation touched its shard between the moment it
//!   asked the database and the moment it inserts (a generation counter per shard), so a read
//!   that raced a change can never leave the old version behind.
//!
//! Entries also expire ([`TaskCache::ttl`]): on SQLite that is the bound for a second process
//! serving the same file, which no notification reaches.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use sqlx::postgres::PgListener;
use tessera_core::Scope;

use crate::{CrossTenant, Dialect, Store, StoreResult, Task, TASK_CHANGED_CHANNEL};

/// Generation shards: an invalidation only blocks concurrent fills of tasks in its shard.
const SHARDS: usize = 64;
/// Bytes of stored task text kept at most (parsed, a task takes a few times its text in
/// memory); past it the cache starts over: bounded memory, no LRU bookkeeping on the hot path.
const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Tasks larger than this are never cached (one would crowd out hundreds of others).
const MAX_ENTRY_BYTES: usize = 64 * 1024;

struct Entry {
    task: Arc<Task>,
    at: Instant,
    bytes: usize,
}

struct Inner {
    entries: HashMap<String, Entry>,
    bytes: usize,
    generations: [u64; SHARDS],
}

/// Cached tasks by id, with per-shard invalidation generations.
pub(crate) struct TaskCache {
    inner: RwLock<Inner>,
    hasher: RandomState,
    ttl: Duration,
    /// False while invalidations from other replicas could be missed.
    live: AtomicBool,
}

impl TaskCache {
    pub(crate) fn new(ttl: Duration, live: bool) -> Self {
        Self {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
                generations: [0; SHARDS],
            }),
            hasher: RandomState::new(),
            ttl,
            live: AtomicBool::new(live),
        }
    }

    fn shard(&self, task_id: &str) -> usize {
        (self.hasher.hash_one(task_id) % SHARDS as u64) as usize
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached task, when fresh.
    pub(crate) fn get(&self, task_id: &str) -> Option<Arc<Task>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let inner = self.read();
        let entry = inner.entries.get(task_id)?;
        (entry.at.elapsed() < self.ttl).then(|| entry.task.clone())
    }

    /// The shard's generation, taken before reading the task from the database.
    pub(crate) fn generation(&self, task_id: &str) -> u64 {
        self.read().generations[self.shard(task_id)]
    }

    /// Caches `task` read from the database, unless an invalidation of its shard happened
    /// since `generation` was taken (the read may then predate the change).
    pub(crate) fn fill(&self, task: Arc<Task>, bytes: usize, generation: u64) {
        if bytes > MAX_ENTRY_BYTES || !self.live.load(Ordering::Acquire) {
            return;
        }
        let shard = self.shard(&task.id);
        let mut inner = self.write();
        if inner.generations[shard] != generation {
            return;
        }
        if inner.bytes + bytes > MAX_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        let id = task.id.clone();
        let old = inner.entries.insert(
            id,
            Entry {
                task,
                at: Instant::now(),
                bytes,
            },
        );
        inner.bytes = inner.bytes + bytes - old.map_or(0, |e| e.bytes);
    }

    /// Forgets these tasks and blocks fills of reads that started before now.
    pub(crate) fn invalidate<'a>(&self, task_ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.write();
        for id in task_ids {
            let shard = self.shard(id);
            inner.generations[shard] = inner.generations[shard].wrapping_add(1);
            if let Some(old) = inner.entries.remove(id) {
                inner.bytes -= old.bytes;
            }
        }
    }

    /// Turns the cache on or off (off empties it): off while another replica's changes could
    /// go unnoticed.
    pub(crate) fn set_live(&self, live: bool) {
        let mut inner = self.write();
        inner.entries.clear();
        inner.bytes = 0;
        for generation in &mut inner.generations {
            *generation = generation.wrapping_add(1);
        }
        self.live.store(live, Ordering::Release);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.read().entries.len()
    }
}

impl Store {
    /// One task of `scope`, served from the read cache when it holds a fresh copy. For the
    /// API's task reads; pages that then change the task read it with [`Store::get_task`].
    pub async fn cached_task(
        &self,
        scope: &Scope,
        task_id: &str,
    ) -> StoreResult<Option<Arc<Task>>> {
        let cache = &self.task_cache;
        if let Some(task) = cache.get(task_id) {
            let in_scope = task.team_id == scope.team_id() && task.mode == scope.mode();
            return Ok(in_scope.then_some(task));
        }
        let generation = cache.generation(task_id);
        let Some((task, bytes)) = self.read_task_sized(scope, task_id).await? else {
            return Ok(None);
        };
        let task = Arc::new(task);
        cache.fill(task.clone(), bytes, generation);
        Ok(Some(task))
    }

    /// Inside a transaction that changes these tasks: on PostgreSQL, tells every replica
    /// (delivered when the transaction commits, not before, and not at all if it rolls back).
    pub(crate) async fn announce_task_changes(
        &self,
        conn: &mut sqlx::AnyConnection,
        task_ids: &[&str],
    ) -> StoreResult<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        // NOTIFY payloads stop at 8000 bytes: ids go 256 (about 6 KB) a notification.
        for chunk in task_ids.chunks(256) {
            sqlx::query("SELECT CAST(pg_notify($1, $2) AS TEXT)")
                .bind(TASK_CHANGED_CHANNEL)
                .bind(chunk.join(","))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// After a transaction that changed these tasks committed: forgets them on this replica.
    pub(crate) fn tasks_changed<'a>(&self, task_ids: impl IntoIterator<Item = &'a str>) {
        self.task_cache.invalidate(task_ids);
    }
}

impl CrossTenant {
    /// PostgreSQL: listens for other replicas' task changes and evicts them from the read
    /// cache, which is on only while this listener is connected; reconnects with a pause
    /// after a failure. Returns when `stop` completes. Nothing to do on SQLite. Cross-tenant:
    /// a change of any team's task evicts it.
    pub async fn follow_task_changes(&self, stop: impl std::future::Future<Output = ()>) {
        let store = &self.store;
        if store.dialect != Dialect::Postgres {
            return stop.await;
        }
        tokio::pin!(stop);
        loop {
            let listening = async {
                let mut listener = PgListener::connect(&store.database_url).await?;
                listener.listen(TASK_CHANGED_CHANNEL).await?;
                // Changes committed before LISTEN took effect were never heard: start empty.
                store.task_cache.set_live(true);
                loop {
                    match listener.try_recv().await? {
                        Some(note) => store.task_cache.invalidate(note.payload().split(',')),
                        None => return Ok::<(), sqlx::Error>(()),
                    }
                }
            };
            let result = tokio::select! {
                result = listening => result,
                () = &mut stop => {
                    store.task_cache.set_live(false);
                    return;
                }
            };
            store.task_cache.set_live(false);
            match result {
                Ok(()) => tracing::warn!("task change listener lost its connection; reconnecting"),
                Err(err) => tracing::warn!(error = %err, "task change listener failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(LISTENER_RETRY) => {}
                () = &mut stop => return,
            }
        }
    }
}

/// Pause before the task change listener reconnects.
const LISTENER_RETRY: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_core::{status::TaskStatus, tasks::TaskType, Mode};

    fn task(id: &str, status: TaskStatus) -> Arc<Task> {
        Arc::new(Task {
            id: id.into(),
            team_id: "team_1".into(),
            mode: Mode::Test,
            task_type: TaskType::Categorization,
            status,
            project_name: None,
            batch_name: None,
            unique_id: None,
            callback_url: None,
            instruction: None,
            params: json!({}),
            metadata: json!({}),
            tags: None,
            response: None,
            extra: json!({}),
            callback_succeeded: None,
            customer_review_status: None,
            audits: json!([]),
            created_at: 1,
            updated_at: 1,
            completed_at: None,
        })
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_cached() {
        let cache = TaskCache::new(Duration::from_secs(60), true);
        let before = cache.generation("a");
        cache.invalidate(["a"]);
        cache.fill(task("a", TaskStatus::Pending), 100, before);
        assert!(cache.get("a").is_none(), "stale read must not be cached");

        let now = cache.generation("a");
        cache.fill(task("a", TaskStatus::Canceled), 100, now);
        assert_eq!(cache.get("a").unwrap().status, TaskStatus::Canceled);
        cache.invalidate(["a"]);
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn off_means_empty_and_no_fills() {
        let cache = TaskCache::new(Duration::from_secs(60), true);
        let g = cache.generation("a");
        cache.fill(task("a", TaskStatus::Pending), 100, g);
        assert!(cache.get("a").is_some());
        let g = cache.generation("b");
        cache.set_live(false);
        assert!(cache.get("a").is_none());
        cache.fill(task("b", TaskStatus::Pending), 100, g);
        let g = cache.generation("b");
        cache.fill(task("b", TaskStatus::Pending), 100, g);
        assert_eq!(cache.len(), 0);
        cache.set_live(true);
        cache.fill(task("b", TaskStatus::Pending), 100, g);
        assert!(
            cache.get("b").is_none(),
            "generation taken before going live"
        );
    }

    #[test]
    fn expires_and_stays_bounded() {
        let cache = TaskCache::new(Duration::ZERO, true);
        let g = cache.generation("a");
        cache.fill(task("a", TaskStatus::Pending), 100, g);
        assert!(cache.get("a").is_none(), "expired");

        let cache = TaskCache::new(Duration::from_secs(60), true);
        let g = cache.generation("big");
        cache.fill(task("big", TaskStatus::Pending), MAX_ENTRY_BYTES + 1, g);
        assert_eq!(cache.len(), 0, "too large to cache");
        for i in 0..(MAX_BYTES / MAX_ENTRY_BYTES + 3) {
            let id = format!("t{i}");
            let g = cache.generation(&id);
            cache.fill(task(&id, TaskStatus::Pending), MAX_ENTRY_BYTES, g);
        }
        assert!(cache.read().bytes <= MAX_BYTES);
        assert!(cache.len() <= MAX_BYTES / MAX_ENTRY_BYTES);
    }
}
