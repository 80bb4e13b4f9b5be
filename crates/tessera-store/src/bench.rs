//! Support for the load benchmark (`bench/run`): the reference it compares task creation
//! against (plain one-row commits through the same pools), and bulk seeding of tasks.

use std::time::{Duration, Instant};

use tessera_core::Mode;

use crate::{new_id, now_ms, Dialect, Store, StoreResult};

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
    pub async fn seed_tasks(&self, team_id: &str, mode: Mode, count: i64) -> StoreResult<()> {
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
}
