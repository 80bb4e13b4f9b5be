//! What the Billing page, the API and the downloads read: priced usage summed over a range,
//! invoices, their lines, attempts and billed tasks. The sums are over the same rows the
//! close stamps, so the page, the API and the invoice agree to the cent.

use sqlx::Row;
use tessera_core::billing::DAY_MS;

use super::{
    invoice_from_row, word, Invoice, InvoiceDetail, InvoiceLine, PaymentAttempt, INVOICE_COLUMNS,
};
use crate::{Scope, Store, StoreResult};

/// Completed live tasks and their amount (minor units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    pub completed_tasks: i64,
    pub amount: i64,
}

/// How usage rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Day,
    TaskType,
    Project,
}

/// One group of usage: a day (its start, epoch ms), a task type or a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The day's start (`Day`), the task type (`TaskType`) or the project id (`Project`,
    /// `None` for tasks in no project).
    pub day: Option<i64>,
    pub task_type: Option<String>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub totals: UsageTotals,
}

/// A billed task, as the invoice's CSV lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledTask {
    pub task_id: String,
    pub project_name: Option<String>,
    pub task_type: String,
    pub completed_at: i64,
    pub unit_amount: i64,
}

/// Priced usage of a team in `[start, end)`.
const PRICED_IN_RANGE: &str = "u.team_id = $1 AND u.unit_amount IS NOT NULL \
     AND u.completed_at >= $2 AND u.completed_at < $3";

impl Store {
    /// Priced usage completed in `[start, end)` (this period's count and accrued amount).
    pub async fn usage_totals(
        &self,
        scope: &Scope,
        start: i64,
        end: i64,
    ) -> StoreResult<UsageTotals> {
        let (completed_tasks, amount): (i64, i64) = sqlx::query_as(&format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(u.unit_amount), 0) AS BIGINT) \
             FROM usage_records u WHERE {PRICED_IN_RANGE}"
        ))
        .bind(scope.team_id())
        .bind(start)
        .bind(end)
        .fetch_one(&self.reader)
        .await?;
        Ok(UsageTotals {
            completed_tasks,
            amount,
        })
    }

    /// Priced usage not invoiced yet, whenever it completed: the accrued balance (what the
    /// next close invoices).
    pub async fn unbilled_totals(&self, scope: &Scope) -> StoreResult<UsageTotals> {
        let (completed_tasks, amount): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(unit_amount), 0) AS BIGINT) FROM usage_records \
             WHERE team_id = $1 AND invoice_id IS NULL AND unit_amount IS NOT NULL",
        )
        .bind(scope.team_id())
        .fetch_one(&self.reader)
        .await?;
        Ok(UsageTotals {
            completed_tasks,
            amount,
        })
    }

    /// Priced usage in `[start, end)` grouped by day (UTC), task type or project, in order.
    pub async fn usage_breakdown(
        &self,
        scope: &Scope,
        start: i64,
        end: i64,
        group: UsageGroup,
    ) -> StoreResult<Vec<UsageRow>> {
        let (key, join, order) = match group {
            UsageGroup::Day => (
                format!("CAST(u.completed_at / {DAY_MS} AS BIGINT) AS day_key"),
                "",
                "day_key",
            ),
            UsageGroup::TaskType => ("u.task_type AS type_key".to_owned(), "", "type_key"),
            UsageGroup::Project => (
                "u.project_id AS project_key, MAX(p.name) AS project_name".to_owned(),
                " LEFT JOIN projects p ON p.id = u.project_id",
                "project_name, project_key",
            ),
        };
        let group_by = match group {
            UsageGroup::Day => "day_key",
            UsageGroup::TaskType => "type_key",
            UsageGroup::Project => "project_key",
        };
        let rows = sqlx::query(&format!(
            "SELECT {key}, COUNT(*) AS n, CAST(COALESCE(SUM(u.unit_amount), 0) AS BIGINT) AS amount \
             FROM usage_records u{join} WHERE {PRICED_IN_RANGE} GROUP BY {group_by} ORDER BY {order}"
        ))
        .bind(scope.team_id())
        .bind(start)
        .bind(end)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let totals = UsageTotals {
                    completed_tasks: row.try_get("n")?,
                    amount: row.try_get("amount")?,
                };
                Ok(match group {
                    UsageGroup::Day => UsageRow {
                        day: Some(row.try_get::<i64, _>("day_key")? * DAY_MS),
                        task_type: None,
                        project_id: None,
                        project_name: None,
                        totals,
                    },
                    UsageGroup::TaskType => UsageRow {
                        day: None,
                        task_type: Some(row.try_get("type_key")?),
                        project_id: None,
                        project_name: None,
                        totals,
                    },
                    UsageGroup::Project => UsageRow {
                        day: None,
                        task_type: None,
                        project_id: row.try_get("project_key")?,
                        project_name: row.try_get("project_name")?,
                        totals,
                    },
                })
            })
            .collect()
    }

    /// The team's invoices, newest first: up to `limit`, before the invoice numbered
    /// `before_sequence` when paging on.
    pub async fn list_invoices(
        &self,
        scope: &Scope,
        limit: i64,
        before_sequence: Option<i64>,
    ) -> StoreResult<Vec<Invoice>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE team_id = $1 AND sequence < $2 \
             ORDER BY sequence DESC LIMIT $3"
        ))
        .bind(scope.team_id())
        .bind(before_sequence.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(invoice_from_row).collect()
    }

    /// One of the team's invoices with its lines and payment attempts; `None` when it is not
    /// the team's (another team's invoice does not exist for this scope).
    pub async fn get_invoice(
        &self,
        scope: &Scope,
        invoice_id: &str,
    ) -> StoreResult<Option<InvoiceDetail>> {
        // One snapshot: the invoice, its lines and its attempts as of one moment (a charge
        // records its attempt and moves the invoice in one transaction; separate reads could
        // show the attempt beside the invoice as it was before).
        let mut tx = self.reader.begin().await?;
        if self.dialect == crate::Dialect::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let Some(row) = sqlx::query(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1 AND team_id = $2"
        ))
        .bind(invoice_id)
        .bind(scope.team_id())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let invoice = invoice_from_row(&row)?;
        let lines = sqlx::query(
            "SELECT position, project_id, project_name, task_type, quantity, unit_amount, amount \
             FROM invoice_lines WHERE invoice_id = $1 ORDER BY position",
        )
        .bind(&invoice.id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(InvoiceLine {
                position: r.try_get("position")?,
                project_id: r.try_get("project_id")?,
                project_name: r.try_get("project_name")?,
                task_type: r.try_get("task_type")?,
                quantity: r.try_get("quantity")?,
                unit_amount: r.try_get("unit_amount")?,
                amount: r.try_get("amount")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        let attempts = sqlx::query(
            "SELECT attempt, amount, status, provider_intent_id, error_code, error_message, created_at \
             FROM payment_attempts WHERE invoice_id = $1 ORDER BY attempt",
        )
        .bind(&invoice.id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(PaymentAttempt {
                attempt: r.try_get("attempt")?,
                amount: r.try_get("amount")?,
                status: word(&status)?,
                provider_intent_id: r.try_get("provider_intent_id")?,
                error_code: r.try_get("error_code")?,
                error_message: r.try_get("error_message")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Some(InvoiceDetail {
            invoice,
            lines,
            attempts,
        }))
    }

    /// Every task an invoice of the scope's team billed, oldest first (its CSV): `after`
    /// pages on from a `(completed_at, task_id)` so a large invoice streams in pieces.
    pub async fn invoice_billed_tasks(
        &self,
        scope: &Scope,
        invoice_id: &str,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> StoreResult<Vec<BilledTask>> {
        let (at, id) = after.unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(
            "SELECT u.task_id, l.project_name, u.task_type, u.completed_at, u.unit_amount \
             FROM usage_records u JOIN invoices i ON i.id = u.invoice_id \
             LEFT JOIN invoice_lines l ON l.invoice_id = u.invoice_id AND l.task_type = u.task_type \
               AND l.unit_amount = u.unit_amount \
               AND ((l.project_id IS NULL AND u.project_id IS NULL) OR l.project_id = u.project_id) \
             WHERE u.invoice_id = $1 AND i.team_id = $2 \
               AND (u.completed_at > $3 OR (u.completed_at = $3 AND u.task_id > $4)) \
             ORDER BY u.completed_at, u.task_id LIMIT $5",
        )
        .bind(invoice_id)
        .bind(scope.team_id())
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BilledTask {
                    task_id: r.try_get("task_id")?,
                    project_name: r.try_get("project_name")?,
                    task_type: r.try_get("task_type")?,
                    completed_at: r.try_get("completed_at")?,
                    unit_amount: r.try_get::<Option<i64>, _>("unit_amount")?.unwrap_or(0),
                })
            })
            .collect()
    }
}
