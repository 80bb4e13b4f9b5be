//! The workers' side of the callback outbox: claiming due deliveries of every team under a
//! lease, giving back what a team has no room for, recording attempts' outcomes, and pruning
//! old attempts. These serve every team at once, so they live on [`CrossTenant`]; a delivery
//! is only ever changed under the lease its claim took, which only the claimer holds.

use tessera_core::ids::{AttemptId, DeliveryId};

use super::{
    body_digest, delivery_from_row, ClaimedDelivery, DeliveryOutcome, NextStep, FINISH_CHUNK,
    RETURNING_COLUMNS,
};
use crate::{
    now_ms,
    sql::{Arg, Sql},
    CrossTenant, StoreResult,
};

impl CrossTenant {
    /// Claims up to `limit` due deliveries for `lease_ms` (on PostgreSQL skipping rows other
    /// workers are claiming), with the tasks of task callbacks.
    pub async fn claim_due_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        skip_teams: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = now_ms();
        let claimed_until = now + lease_ms;
        let mut q = Sql::new(self.store.dialect);
        q.push("UPDATE callback_deliveries SET next_attempt_at = ")
            .bind(claimed_until)
            .push(" WHERE id IN (SELECT id FROM callback_deliveries WHERE status = 'pending' AND next_attempt_at <= ")
            .bind(now);
        if !skip_teams.is_empty() {
            q.push(" AND team_id NOT IN (").list(skip_teams).push(")");
        }
        q.push(" ORDER BY next_attempt_at LIMIT ")
            .bind(limit)
            .push(self.store.skip_locked())
            .push(") RETURNING ")
            .push(&RETURNING_COLUMNS);
        let rows = q.query().fetch_all(&self.store.writer).await?;
        let deliveries = rows
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let task_ids: Vec<String> = deliveries
            .iter()
            .filter_map(|d| d.task_id.clone())
            .collect();
        let mut tasks = self.tasks_by_ids(&task_ids).await?;
        Ok(deliveries
            .into_iter()
            .map(|delivery| {
                let task = delivery
                    .task_id
                    .as_ref()
                    .and_then(|id| tasks.remove(id.as_str()));
                ClaimedDelivery { delivery, task }
            })
            .collect())
    }

    /// Gives claimed deliveries back unattempted (due at once), each only if still held under
    /// the lease given: the worker claimed more of a team than it lets run at once.
    pub async fn release_deliveries(&self, held: &[(DeliveryId, i64)]) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.store.writer.begin().await?;
        for (id, claimed_until) in held {
            sqlx::query(
                "UPDATE callback_deliveries SET next_attempt_at = $1 \
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
            )
            .bind(now)
            .bind(id.as_str())
            .bind(claimed_until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcomes of attempts in one transaction: the attempt rows, the deliveries'
    /// new state, and `callback_succeeded` on tasks whose delivery finished.
    ///
    /// An outcome changes its delivery only while the delivery is still held under the lease
    /// the attempt was made under (another worker took it over otherwise); its attempt is
    /// recorded either way. A success is never overwritten by a later round's failure.
    ///
    /// A few statements per [`FINISH_CHUNK`] outcomes rather than three per outcome: one
    /// `UPDATE … FROM (VALUES …)` for the deliveries, one multi-row `INSERT` for the attempts,
    /// and one `UPDATE` of the tasks per flag.
    ///
    /// The dashboard's test send records its one attempt here too: it holds the lease
    /// [`Store::start_delivery_now`](crate::Store::start_delivery_now) took.
    pub async fn finish_deliveries(&self, outcomes: &[DeliveryOutcome]) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        // The same order in every transaction, so concurrent finishers lock rows alike.
        let mut sorted: Vec<&DeliveryOutcome> = outcomes.iter().collect();
        sorted.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
        let mut tx = self.store.writer.begin().await?;
        let mut flagged: Vec<&str> = Vec::new();
        for chunk in sorted.chunks(FINISH_CHUNK) {
            let changed = self.update_deliveries(&mut tx, chunk, now).await?;
            self.insert_attempts(&mut tx, chunk, now).await?;
            // Failures first: a success in the same batch then still wins.
            for (flag, step) in [(0_i64, NextStep::GiveUp), (1, NextStep::Succeeded)] {
                let mut tasks: Vec<&str> = chunk
                    .iter()
                    .filter(|o| o.next == step && changed.contains(o.delivery_id.as_str()))
                    .filter_map(|o| o.task_id.as_deref())
                    .collect();
                if tasks.is_empty() {
                    continue;
                }
                tasks.sort_unstable();
                tasks.dedup();
                let mut q = Sql::new(self.store.dialect);
                q.push("UPDATE tasks SET callback_succeeded = ")
                    .bind(flag)
                    .push(" WHERE id IN (")
                    .list(tasks.iter().copied())
                    .push(") AND (callback_succeeded IS NULL OR callback_succeeded = 0)");
                q.query().execute(&mut *tx).await?;
                flagged.extend(tasks);
            }
        }
        // `callback_succeeded` is part of the task: readers' caches must drop it.
        self.store.announce_task_changes(&mut tx, &flagged).await?;
        tx.commit().await?;
        self.store.tasks_changed(flagged);
        Ok(())
    }

    /// The deliveries' new state after `chunk`'s attempts, as one `UPDATE … FROM (VALUES …)`:
    /// (id, claimed_until, status, next_attempt_at, finished_at, last_status_code,
    /// last_error) per row; VALUES columns are column1… on both databases. The ids of the
    /// deliveries still held under the attempt's lease, which it changed.
    async fn update_deliveries(
        &self,
        tx: &mut sqlx::AnyConnection,
        chunk: &[&DeliveryOutcome],
        now: i64,
    ) -> StoreResult<std::collections::HashSet<String>> {
        let mut q = Sql::new(self.store.dialect);
        q.push(
            "UPDATE callback_deliveries SET status = v.column3, next_attempt_at = v.column4, \
             finished_at = v.column5, attempts = attempts + 1, last_status_code = v.column6, \
             last_error = v.column7, updated_at = ",
        )
        .bind(now)
        .push(" FROM (VALUES ");
        for (i, outcome) in chunk.iter().enumerate() {
            let (status, next_at, finished_at) = match outcome.next {
                NextStep::Succeeded => ("succeeded", None, Some(now)),
                NextStep::RetryAt(at) => ("pending", Some(at), None),
                NextStep::GiveUp => ("failed", None, Some(now)),
            };
            if i > 0 {
                q.push(", ");
            }
            q.tuple([
                Arg::from(outcome.delivery_id.as_str()),
                Arg::from(outcome.claimed_until),
                Arg::from(status),
                Arg::from(next_at),
                Arg::from(finished_at),
                Arg::from(outcome.attempt.status_code),
                Arg::from(outcome.attempt.error.as_deref()),
            ]);
        }
        q.push(
            ") AS v WHERE id = v.column1 AND status = 'pending' AND next_attempt_at = v.column2 \
             RETURNING id",
        );
        Ok(q.query_as::<(String,)>()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect())
    }

    /// The attempt rows of `chunk`, and the bodies they sent (once per delivery and digest:
    /// a retry usually sends the same), each as one multi-row `INSERT`.
    async fn insert_attempts(
        &self,
        tx: &mut sqlx::AnyConnection,
        chunk: &[&DeliveryOutcome],
        now: i64,
    ) -> StoreResult<()> {
        let digests: Vec<Option<String>> = chunk
            .iter()
            .map(|o| o.attempt.request.as_ref().map(|r| body_digest(&r.body)))
            .collect();
        let mut bodies: Vec<(&str, &str, &str)> = chunk
            .iter()
            .zip(&digests)
            .filter_map(|(o, d)| {
                let request = o.attempt.request.as_ref()?;
                Some((o.delivery_id.as_str(), d.as_deref()?, request.body.as_str()))
            })
            .collect();
        bodies.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        bodies.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
        if !bodies.is_empty() {
            let mut q = Sql::new(self.store.dialect);
            q.push("INSERT INTO callback_bodies (delivery_id, digest, body, created_at) VALUES ");
            for (i, (delivery_id, digest, body)) in bodies.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.tuple([
                    Arg::from(*delivery_id),
                    Arg::from(*digest),
                    Arg::from(*body),
                    Arg::from(now),
                ]);
            }
            q.push(" ON CONFLICT (delivery_id, digest) DO NOTHING");
            q.query().execute(&mut *tx).await?;
        }

        let mut q = Sql::new(self.store.dialect);
        q.push(
            "INSERT INTO callback_attempts (id, delivery_id, at, status_code, latency_ms, error, \
             response_snippet, request_headers, body_digest) VALUES ",
        );
        for (i, (outcome, digest)) in chunk.iter().zip(&digests).enumerate() {
            let attempt = &outcome.attempt;
            let headers = attempt
                .request
                .as_ref()
                .map(|r| serde_json::to_string(&r.headers).unwrap_or_default());
            if i > 0 {
                q.push(", ");
            }
            q.tuple([
                Arg::from(AttemptId::generate().into_string()),
                Arg::from(outcome.delivery_id.as_str()),
                Arg::from(attempt.at),
                Arg::from(attempt.status_code),
                Arg::from(attempt.latency_ms),
                Arg::from(attempt.error.as_deref()),
                Arg::from(attempt.response_snippet.as_deref()),
                Arg::from(headers),
                Arg::from(digest.as_deref()),
            ]);
        }
        q.query().execute(&mut *tx).await?;
        Ok(())
    }

    /// Drops attempt history older than `before` (finished deliveries keep their summary).
    pub async fn prune_callback_attempts(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM callback_attempts WHERE at < $1")
            .bind(before)
            .execute(&self.store.writer)
            .await?;
        // Bodies as old that no remaining attempt sent (a newer retry may still point at one).
        sqlx::query(
            "DELETE FROM callback_bodies WHERE created_at < $1 AND NOT EXISTS (\
             SELECT 1 FROM callback_attempts a WHERE a.delivery_id = callback_bodies.delivery_id \
             AND a.body_digest = callback_bodies.digest)",
        )
        .bind(before)
        .execute(&self.store.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
