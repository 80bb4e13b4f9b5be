//! Sliding-window rate-limit counters shared by every replica.

use crate::{now_ms, Store, StoreResult};

impl Store {
    /// Counts events in `bucket` during the last `window_ms`.
    pub async fn count_rate_events(&self, bucket: &str, window_ms: i64) -> StoreResult<i64> {
        let row: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM rate_events WHERE bucket = $1 AND at > $2")
                .bind(bucket)
                .bind(now_ms() - window_ms)
                .fetch_one(&self.reader)
                .await?;
        Ok(row.0)
    }

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

    pub async fn add_rate_event(&self, bucket: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO rate_events (bucket, at) VALUES ($1, $2)")
            .bind(bucket)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn clear_rate_events(&self, bucket: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM rate_events WHERE bucket = $1")
            .bind(bucket)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
