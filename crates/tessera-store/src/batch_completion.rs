//! Batch completion: a finalised batch is completed, and its callback queued, in the
//! transaction that makes its last task final — whichever change that is (a cancel, a
//! labeler's answer, a test task created completed, the batch's own finalisation).

use serde_json::json;

use crate::{callbacks::new_delivery_id, StoreResult};

/// Marks a finalised batch completed once every one of its tasks is final, and queues its
/// callback; does nothing otherwise. Runs in the transaction that changed a task or the batch.
pub(crate) async fn complete_batch_if_done(
    conn: &mut sqlx::AnyConnection,
    batch_id: &str,
    now: i64,
) -> StoreResult<()> {
    let completed: Option<(String, String, String, String)> = sqlx::query_as(
        "UPDATE batches SET status = 'completed', completed_at = $1, updated_at = $1 \
         WHERE id = $2 AND finalized = 1 AND status <> 'completed' \
         AND EXISTS (SELECT 1 FROM tasks WHERE batch_id = $2) \
         AND NOT EXISTS (SELECT 1 FROM tasks WHERE batch_id = $2 AND status = 'pending') \
         RETURNING team_id, mode, name, callback",
    )
    .bind(now)
    .bind(batch_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((team_id, mode, name, callback)) = completed else {
        return Ok(());
    };
    if callback.is_empty() {
        return Ok(());
    }
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM tasks WHERE batch_id = $1 GROUP BY status")
            .bind(batch_id)
            .fetch_all(&mut *conn)
            .await?;
    let count = |s: &str| {
        counts
            .iter()
            .find(|(status, _)| status == s)
            .map_or(0, |(_, n)| *n)
    };
    let payload = json!({
        "batch": name,
        "status": "completed",
        "stats": {"completed": count("completed"), "canceled": count("canceled"), "error": count("error")},
    });
    sqlx::query(
        "INSERT INTO callback_deliveries (id, team_id, mode, kind, batch_id, target, payload, status, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'batch', $4, $5, $6, 'pending', $7, $7, $7)",
    )
    .bind(new_delivery_id())
    .bind(team_id)
    .bind(mode)
    .bind(batch_id)
    .bind(callback)
    .bind(payload.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
