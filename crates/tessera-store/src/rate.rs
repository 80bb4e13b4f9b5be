//! Sliding-window rate-limit counters shared by every replica.

use crate::{now_ms, Dialect, Store, StoreResult};

impl Store {
    /// The oldest event in the window, to tell a person when they may try again.
    pub async fn oldest_rate_event(
        &self,
        bucket: &str,
        window_ms: i64,
    ) -> StoreResult<Option<i64>> {
        let row: (Option<i64>,) =
            sqlx::query_as("SELECT MIN(at) FROM rate_events WHERE bucket = $1 AND at > $2")
                .bind(bucket)
                .bind(now_ms() - window_ms)
                .fetch_one(&self.reader)
                .await?;
        Ok(row.0)
    }

    pub async fn clear_rate_events(&self, bucket: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM rate_events WHERE bucket = $1")
            .bind(bucket)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Takes `n` slots (1 to 1,000) in `bucket`, committed together, and returns when they were
    /// taken and how many slots the window holds counting them. The slots are committed before
    /// counting, so of any number of concurrent takers the k-th to commit counts at least its
    /// own and every earlier one: at most `max` units ever see a count within `max`, on either
    /// database and at any isolation level.
    pub async fn take_rate_slots(
        &self,
        bucket: &str,
        n: usize,
        window_ms: i64,
    ) -> StoreResult<(i64, i64)> {
        let at = now_ms();
        let n = n.clamp(1, 1_000);
        let values = (0..n).map(|_| "($1, $2)").collect::<Vec<_>>().join(", ");
        sqlx::query(&format!(
            "INSERT INTO rate_events (bucket, at) VALUES {values}"
        ))
        .bind(bucket)
        .bind(at)
        .execute(&self.writer)
        .await?;
        let row: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM rate_events WHERE bucket = $1 AND at > $2")
                .bind(bucket)
                .bind(at - window_ms)
                .fetch_one(&self.writer)
                .await?;
        Ok((at, row.0))
    }

    /// Gives back one slot taken at `at` (an attempt that turned out not to count). Slots of
    /// one bucket and millisecond are interchangeable; concurrent releases each lock a
    /// different one (`SKIP LOCKED` on PostgreSQL; SQLite serialises writers).
    pub async fn release_rate_slot(&self, bucket: &str, at: i64) -> StoreResult<()> {
        let row_id = match self.dialect {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "ctid",
        };
        sqlx::query(&format!(
            "DELETE FROM rate_events WHERE {row_id} = \
             (SELECT {row_id} FROM rate_events WHERE bucket = $1 AND at = $2 LIMIT 1{})",
            self.skip_locked()
        ))
        .bind(bucket)
        .bind(at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
