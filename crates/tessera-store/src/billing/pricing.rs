//! Prices and their use: the book and team overrides (rows inserted, never changed), and the
//! usage record that freezes the price in effect when its task completes.

use sqlx::{any::AnyRow, Row};
use tessera_core::billing::{alert_level, month_start, ANY_TASK_TYPE};

use super::account_in;
use crate::{new_id, now_ms, Scope, Store, StoreResult};

/// A price row of the book (`team_id` `None`) or of one team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub id: String,
    pub team_id: Option<String>,
    pub task_type: String,
    pub currency: String,
    pub unit_amount: i64,
    pub effective_from: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// A price to add (effective from `effective_from`, normally now).
#[derive(Debug, Clone)]
pub struct NewPrice<'a> {
    pub task_type: &'a str,
    pub currency: &'a str,
    pub unit_amount: i64,
    pub effective_from: i64,
    pub created_by: &'a str,
}

const PRICE_COLUMNS: &str =
    "id, task_type, currency, unit_amount, effective_from, created_by, created_at";

fn price_from_row(row: &AnyRow, team: bool) -> StoreResult<Price> {
    Ok(Price {
        id: row.try_get("id")?,
        team_id: if team { row.try_get("team_id")? } else { None },
        task_type: row.try_get("task_type")?,
        currency: row.try_get("currency")?,
        unit_amount: row.try_get("unit_amount")?,
        effective_from: row.try_get("effective_from")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The usage record of a completed live task, with the price in effect at `$7` frozen into
/// it: the team's own price for the type, else the book's, else the book's `*` row, each in the
/// account's currency. One statement, so completion pays one round trip for the price and the
/// record; no row comes back when the team has no billing account yet.
const INSERT_PRICED_USAGE: &str = "INSERT INTO usage_records (id, team_id, task_id, project_id, \
     task_type, labeled_by, completed_at, unit_amount, currency, price_source, price_id) \
     SELECT $1, a.team_id, $3, $4, $5, $6, $7, c.unit_amount, \
       CASE WHEN c.id IS NULL THEN NULL ELSE a.currency END, c.source, c.id \
     FROM billing_accounts a LEFT JOIN (\
       SELECT id, unit_amount, currency, 'team' AS source, 0 AS rank, effective_from \
         FROM team_prices WHERE team_id = $2 AND task_type = $5 AND effective_from <= $7 \
       UNION ALL \
       SELECT id, unit_amount, currency, 'book' AS source, 1 AS rank, effective_from \
         FROM price_book WHERE task_type = $5 AND effective_from <= $7 \
       UNION ALL \
       SELECT id, unit_amount, currency, 'book' AS source, 2 AS rank, effective_from \
         FROM price_book WHERE task_type = $8 AND effective_from <= $7\
     ) AS c ON c.currency = a.currency \
     WHERE a.team_id = $2 ORDER BY c.rank, c.effective_from DESC LIMIT 1 \
     RETURNING unit_amount";

/// What a completed live task bills, written in the transaction that completes it: the usage
/// record with the price in effect now, and this month's accrued amount (for the spend limit;
/// reaching 80 % or 100 % of it raises the alert level the alert job mails). A type no price
/// covers (a currency without a `*` row) is recorded unpriced and never invoiced.
pub(crate) async fn record_usage(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    task_id: &str,
    project_id: Option<&str>,
    task_type: &str,
    labeled_by: &str,
    now: i64,
) -> StoreResult<()> {
    let mut recorded: Option<(Option<i64>,)> = None;
    for attempt in 0..2 {
        if attempt == 1 {
            account_in(&mut *conn, team_id, "").await?;
        }
        recorded = sqlx::query_as(INSERT_PRICED_USAGE)
            .bind(new_id("use"))
            .bind(team_id)
            .bind(task_id)
            .bind(project_id)
            .bind(task_type)
            .bind(labeled_by)
            .bind(now)
            .bind(ANY_TASK_TYPE)
            .fetch_optional(&mut *conn)
            .await?;
        if recorded.is_some() {
            break;
        }
    }
    let Some((Some(unit_amount),)) = recorded else {
        return Ok(());
    };
    let month = month_start(now);
    let (accrued, limit, level): (i64, Option<i64>, i64) = sqlx::query_as(
        "UPDATE billing_accounts SET \
           accrued_amount = CASE WHEN accrued_month = $1 THEN accrued_amount + $2 ELSE $2 END, \
           alert_level = CASE WHEN accrued_month = $1 THEN alert_level ELSE 0 END, \
           alert_mailed = CASE WHEN accrued_month = $1 THEN alert_mailed ELSE 0 END, \
           accrued_month = $1 \
         WHERE team_id = $3 RETURNING accrued_amount, spend_limit, alert_level",
    )
    .bind(month)
    .bind(unit_amount)
    .bind(team_id)
    .fetch_one(&mut *conn)
    .await?;
    let reached = alert_level(accrued, limit);
    if reached > level {
        sqlx::query("UPDATE billing_accounts SET alert_level = $1 WHERE team_id = $2")
            .bind(reached)
            .bind(team_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Adds a book price (platform-wide, staff or the operator). Two prices for the same type,
    /// currency and instant are one too many: the schema refuses the second.
    pub async fn add_book_price(&self, price: &NewPrice<'_>) -> StoreResult<Price> {
        let id = new_id("price");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO price_book (id, task_type, currency, unit_amount, effective_from, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(price.task_type)
        .bind(price.currency)
        .bind(price.unit_amount)
        .bind(price.effective_from)
        .bind(price.created_by)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(Price {
            id,
            team_id: None,
            task_type: price.task_type.to_owned(),
            currency: price.currency.to_owned(),
            unit_amount: price.unit_amount,
            effective_from: price.effective_from,
            created_by: price.created_by.to_owned(),
            created_at: now,
        })
    }

    /// Adds a price of the scope's team (an override of the book while effective).
    pub async fn add_team_price(&self, scope: &Scope, price: &NewPrice<'_>) -> StoreResult<Price> {
        let id = new_id("price");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO team_prices (id, team_id, task_type, currency, unit_amount, effective_from, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(scope.team_id())
        .bind(price.task_type)
        .bind(price.currency)
        .bind(price.unit_amount)
        .bind(price.effective_from)
        .bind(price.created_by)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(Price {
            id,
            team_id: Some(scope.team_id().to_owned()),
            task_type: price.task_type.to_owned(),
            currency: price.currency.to_owned(),
            unit_amount: price.unit_amount,
            effective_from: price.effective_from,
            created_by: price.created_by.to_owned(),
            created_at: now,
        })
    }

    /// The book prices in effect at `at`: the latest row per type and currency.
    pub async fn book_prices(&self, at: i64) -> StoreResult<Vec<Price>> {
        let rows = sqlx::query(&format!(
            "SELECT {PRICE_COLUMNS} FROM price_book p WHERE effective_from <= $1 AND NOT EXISTS (\
               SELECT 1 FROM price_book later WHERE later.task_type = p.task_type \
               AND later.currency = p.currency AND later.effective_from <= $1 \
               AND later.effective_from > p.effective_from) \
             ORDER BY task_type, currency"
        ))
        .bind(at)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| price_from_row(r, false)).collect()
    }

    /// The scope's team's own prices in effect at `at`.
    pub async fn team_prices(&self, scope: &Scope, at: i64) -> StoreResult<Vec<Price>> {
        let rows = sqlx::query(&format!(
            "SELECT team_id, {PRICE_COLUMNS} FROM team_prices p WHERE team_id = $1 \
             AND effective_from <= $2 AND NOT EXISTS (\
               SELECT 1 FROM team_prices later WHERE later.team_id = p.team_id \
               AND later.task_type = p.task_type AND later.currency = p.currency \
               AND later.effective_from <= $2 AND later.effective_from > p.effective_from) \
             ORDER BY task_type, currency"
        ))
        .bind(scope.team_id())
        .bind(at)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| price_from_row(r, true)).collect()
    }
}
