//! Support for the load benchmark (`bench/run`): the reference it compares task creation
//! against (plain one-row commits through the same pools), bulk seeding of tasks, of
//! completed tasks with pending callback deliveries (`bench/callbacks`), and of completed live
//! tasks with priced, unbilled usage (`bench/close`).

use std::time::{Duration, Instant};

use crate::{new_id, now_ms, Dialect, Scope, Store, StoreResult};

/// Rows per INSERT statement when seeding callbacks.
const SEED_CHUNK: i64 = 5_000;
/// Rows per transaction when seeding callbacks.
const SEED_TRANSACTION: i64 = 50_000;

impl Store {
    /// Commits single-row inserts (one statement, one transaction each) from `concurrency`
    /// tasks for `duration`, through the same write pool the server uses; returns commits/s.
    pub async fn bench_single_row_commits(
        &self,
        duration: Duration,
        concurrency: usize,
    ) -> StoreResult<f64> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS bench_commits (id TEXT PRIMARY KEY, at BIGINT NOT NULL)",
        )
        .execute(&self.writer)
        .await?;
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let pool = self.writer.clone();
            workers.push(tokio::spawn(async move {
                let mut n: u64 = 0;
                while started.elapsed() < duration {
                    sqlx::query("INSERT INTO bench_commits (id, at) VALUES ($1, $2)")
                        .bind(new_id("b"))
                        .bind(now_ms())
                        .execute(&pool)
                        .await?;
                    n += 1;
                }
                Ok::<u64, sqlx::Error>(n)
            }));
        }
        let mut total = 0;
        for w in workers {
            total += w
                .await
                .map_err(|e| crate::StoreError::Config(e.to_string()))??;
        }
        let rate = total as f64 / started.elapsed().as_secs_f64();
        sqlx::raw_sql("DROP TABLE bench_commits")
            .execute(&self.writer)
            .await?;
        Ok(rate)
    }

    /// Inserts `count` completed tasks for a team and mode in bulk (generated in SQL), and
    /// keeps the team's task count right. For benchmarks and capacity tests only.
    pub async fn seed_tasks(&self, scope: &Scope, count: i64) -> StoreResult<()> {
        let (team_id, mode) = (scope.team_id(), scope.mode());
        let base = now_ms() - count;
        let numbers = match self.dialect {
            Dialect::Postgres => "SELECT g AS n FROM generate_series(1, $1) AS g".to_owned(),
            Dialect::Sqlite => "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1) SELECT n FROM seq".to_owned(),
        };
        let id_expr = match self.dialect {
            Dialect::Postgres => "lpad(to_hex(n), 24, '0')",
            Dialect::Sqlite => "printf('%024x', n)",
        };
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO tasks (id, team_id, mode, type, status, params, metadata, response, extra, created_at, updated_at, completed_at) \
             SELECT {id_expr}, $2, $3, 'imageannotation', 'completed', \
             '{{\"attachment\": \"https://example.com/image.png\", \"geometries\": {{\"box\": {{\"objects_to_annotate\": [\"car\"]}}}}}}', \
             '{{}}', '{{\"annotations\": [{{\"type\": \"box\", \"label\": \"car\", \"left\": 10, \"top\": 10, \"width\": 50, \"height\": 40}}]}}', '{{}}', \
             $4 + n, $4 + n, $4 + n FROM ({numbers}) AS numbers"
        ))
        .bind(count)
        .bind(team_id)
        .bind(mode.as_str())
        .bind(base)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO task_counts (team_id, mode, shard, total) VALUES ($1, $2, 0, $3) \
             ON CONFLICT (team_id, mode, shard) DO UPDATE SET total = task_counts.total + $3",
        )
        .bind(team_id)
        .bind(mode.as_str())
        .bind(count)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if self.dialect == Dialect::Postgres {
            // Fresh statistics, or the planner picks a poor index for the bulk-loaded rows
            // until autovacuum gets to them.
            sqlx::query("ANALYZE tasks").execute(&self.writer).await?;
        }
        Ok(())
    }

    /// Inserts `count` completed live categorization tasks for a team, each with its usage
    /// record priced at the price book's categorization price (as completion writes them),
    /// spread over `spread_ms` before now, and opens the team's billing account. For the
    /// period-close benchmark only.
    pub async fn seed_unbilled_usage(
        &self,
        scope: &Scope,
        count: i64,
        spread_ms: i64,
    ) -> StoreResult<()> {
        let team_id = scope.team_id();
        let run = new_id("x")[2..14].to_owned();
        let now = now_ms();
        let (price_id, unit_amount): (String, i64) = sqlx::query_as(
            "SELECT id, unit_amount FROM price_book WHERE task_type = 'categorization' \
             AND currency = 'usd' ORDER BY effective_from DESC LIMIT 1",
        )
        .fetch_one(&self.writer)
        .await?;
        let numbers = match self.dialect {
            Dialect::Postgres => "SELECT g AS n FROM generate_series(1, $1::bigint) AS g",
            Dialect::Sqlite => "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1) SELECT n FROM seq",
        };
        let hex = match self.dialect {
            Dialect::Postgres => "lpad(to_hex(n), 12, '0')",
            Dialect::Sqlite => "printf('%012x', n)",
        };
        // Completion times spread evenly over the window, all before now.
        let at = "$3 - ($4 * n) / ($1 + 1)";
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO tasks (id, team_id, mode, type, status, params, metadata, response, extra, \
             created_at, updated_at, completed_at) \
             SELECT 'task_{run}' || {hex}, $2, 'live', 'categorization', 'completed', \
             '{{\"attachment\": \"https://example.com/a.jpg\", \"categories\": [\"a\", \"b\"]}}', \
             '{{}}', '{{\"category\": \"a\"}}', '{{}}', {at}, {at}, {at} FROM ({numbers}) AS numbers"
        ))
        .bind(count)
        .bind(team_id)
        .bind(now)
        .bind(spread_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO usage_records (id, team_id, task_id, task_type, completed_at, unit_amount, \
             currency, price_source, price_id) \
             SELECT 'use_{run}' || {hex}, $2, 'task_{run}' || {hex}, 'categorization', {at}, $5, \
             'usd', 'book', $6 FROM ({numbers}) AS numbers"
        ))
        .bind(count)
        .bind(team_id)
        .bind(now)
        .bind(spread_ms)
        .bind(unit_amount)
        .bind(&price_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO task_counts (team_id, mode, shard, total) VALUES ($1, 'live', 0, $2) \
             ON CONFLICT (team_id, mode, shard) DO UPDATE SET total = task_counts.total + $2",
        )
        .bind(team_id)
        .bind(count)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Opens the billing account as the first completion would.
        self.billing_account(scope).await?;
        Ok(())
    }

    /// After bulk seeding, what autovacuum does soon after a bulk load on PostgreSQL: fresh
    /// planner statistics and the visibility map set, so the benchmark does not pay for
    /// first-touch hint-bit writes that a month-old table would not have (SQLite needs none).
    pub async fn analyze_after_seeding(&self) -> StoreResult<()> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("VACUUM ANALYZE").execute(&self.writer).await?;
        }
        Ok(())
    }

    /// Priced usage records on an invoice, and those on none (the close benchmark's check).
    pub async fn bench_usage_billing_counts(&self) -> StoreResult<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN invoice_id IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN invoice_id IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM usage_records WHERE unit_amount IS NOT NULL",
        )
        .fetch_one(&self.reader)
        .await?)
    }

    /// Inserts `count` completed categorization tasks for a team and mode, each with its
    /// callback to `url` queued as a pending delivery due now, the way a task completion
    /// writes them; keeps the team's task count right. Rows go in with multi-row INSERTs
    /// generated in SQL, [`SEED_CHUNK`] per statement, one transaction per
    /// [`SEED_TRANSACTION`] rows. For benchmarks only.
    pub async fn seed_callbacks(&self, scope: &Scope, count: i64, url: &str) -> StoreResult<()> {
        let (team_id, mode) = (scope.team_id(), scope.mode());
        // Ids unique to this run (`task_` / `msg_` + 12 random hex + 12-digit hex number), so
        // seeding twice into one database works.
        let run = new_id("x")[2..14].to_owned();
        let base = now_ms() - count;
        let numbers = match self.dialect {
            Dialect::Postgres => "SELECT g AS n FROM generate_series($1::bigint, $2::bigint) AS g",
            Dialect::Sqlite => "WITH RECURSIVE seq(n) AS (SELECT $1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2) SELECT n FROM seq",
        };
        let hex = match self.dialect {
            Dialect::Postgres => "lpad(to_hex(n), 12, '0')",
            Dialect::Sqlite => "printf('%012x', n)",
        };
        let concat = |prefix: &str| format!("'{prefix}_{run}' || {hex}");
        let task_id = concat("task");
        let delivery_id = concat("msg");
        let tasks = format!(
            "INSERT INTO tasks (id, team_id, mode, type, status, callback_url, instruction, params, metadata, response, extra, \
             callback_succeeded, created_at, updated_at, completed_at) \
             SELECT {task_id}, $3, $4, 'categorization', 'completed', $5, 'Pick the category of the image.', \
             '{{\"attachment\": \"https://example.com/images/' || {hex} || '.jpg\", \"attachment_type\": \"image\", \"categories\": [\"cat\", \"dog\", \"bird\"]}}', \
             '{{\"source\": \"bench\"}}', '{{\"category\": \"dog\"}}', '{{}}', NULL, $6 + n, $6 + n, $6 + n \
             FROM ({numbers}) AS numbers"
        );
        let deliveries = format!(
            "INSERT INTO callback_deliveries (id, team_id, mode, kind, task_id, target, status, next_attempt_at, created_at, updated_at) \
             SELECT {delivery_id}, $3, $4, 'task', {task_id}, $5, 'pending', $6 + n, $6 + n, $6 + n \
             FROM ({numbers}) AS numbers"
        );
        let mut from = 1;
        while from <= count {
            let mut tx = self.writer.begin().await?;
            let end = (from + SEED_TRANSACTION - 1).min(count);
            let mut chunk = from;
            while chunk <= end {
                let last = (chunk + SEED_CHUNK - 1).min(end);
                for sql in [&tasks, &deliveries] {
                    sqlx::query(sql)
                        .bind(chunk)
                        .bind(last)
                        .bind(team_id)
                        .bind(mode.as_str())
                        .bind(url)
                        .bind(base)
                        .execute(&mut *tx)
                        .await?;
                }
                chunk = last + 1;
            }
            sqlx::query(
                "INSERT INTO task_counts (team_id, mode, shard, total) VALUES ($1, $2, 0, $3) \
                 ON CONFLICT (team_id, mode, shard) DO UPDATE SET total = task_counts.total + $3",
            )
            .bind(team_id)
            .bind(mode.as_str())
            .bind(end - from + 1)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            from = end + 1;
        }
        if self.dialect == Dialect::Postgres {
            sqlx::query("ANALYZE tasks").execute(&self.writer).await?;
            sqlx::query("ANALYZE callback_deliveries")
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Attempts recorded in all, and when the first attempt was made and the last delivery
    /// finished (ms; `None` before any).
    pub async fn bench_delivery_stats(&self) -> StoreResult<(i64, Option<(i64, i64)>)> {
        let (attempts, first, last): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM callback_attempts), (SELECT MIN(at) FROM callback_attempts), \
             (SELECT MAX(finished_at) FROM callback_deliveries)",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok((attempts, first.zip(last)))
    }
}
