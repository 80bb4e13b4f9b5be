//! Listing tasks: keyset-paginated pages, newest first, with the filters of `GET /v1/tasks`
//! and the total number of matches.

use sqlx::Row;
use tessera_core::Scope;

use super::{
    columns::{SQLITE_TASK_OBJECT, TASK_SELECT},
    read::task_from_row,
    PageCursor, Task, TaskFilter, TaskPage,
};
use crate::{sql::Sql, Dialect, Store, StoreError, StoreResult};

/// The conditions of `filter` within `scope`.
fn push_filter<'a>(q: &mut Sql<'a>, scope: &'a Scope, filter: &'a TaskFilter) {
    let dialect = q.dialect();
    let mut c = q.conditions();
    c.eq("t.team_id", scope.team_id())
        .eq("t.mode", scope.mode().as_str());
    let words = [
        ("t.status", filter.status.map(|s| s.as_str())),
        ("t.type", filter.task_type.map(|t| t.as_str())),
    ];
    let ids = [
        ("t.project_id", filter.project_id.as_deref()),
        ("t.batch_id", filter.batch_id.as_deref()),
    ];
    for (column, value) in words.into_iter().chain(ids) {
        if let Some(v) = value {
            c.eq(column, v);
        }
    }
    let bounds = [
        ("t.created_at >= ", filter.created_after),
        ("t.created_at <= ", filter.created_before),
        ("t.completed_at >= ", filter.completed_after),
        ("t.completed_at <= ", filter.completed_before),
        ("t.updated_at >= ", filter.updated_after),
        ("t.updated_at <= ", filter.updated_before),
    ];
    for (condition, value) in bounds {
        if let Some(v) = value {
            c.and().push(condition).bind(v);
        }
    }
    c.is_in(
        "t.customer_review_status",
        filter.review_statuses.iter().map(|s| s.as_str()),
    )
    .is_in("t.unique_id", &filter.unique_ids);
    if let Some(term) = &filter.id_or_unique_id {
        c.and()
            .push("(t.id = ")
            .bind(term)
            .push(" OR t.unique_id = ")
            .bind(term)
            .push(")");
    }
    // Strings only on both databases (SQLite's json_extract gives numbers as numbers, which
    // never equal the text; PostgreSQL's containment compares JSON strings). Not indexed (any key may be asked for): evaluated on the rows the team+mode index
    // yields, newest first, so a page stops at its first matches; the count reads the
    // team's tasks of the mode. Combined with a date range it reads only those days.
    if let Some(field) = &filter.metadata_field {
        match dialect {
            Dialect::Sqlite => c
                .and()
                .push("json_extract(t.metadata, ")
                .bind(format!("$.\"{}\"", field.key))
                .push(") = ")
                .bind(&field.value),
            Dialect::Postgres => c
                .and()
                .push("CAST(t.metadata AS JSONB) @> jsonb_build_object(CAST(")
                .bind(&field.key)
                .push(" AS TEXT), CAST(")
                .bind(&field.value)
                .push(" AS TEXT))"),
        };
    }
    if !filter.tags.is_empty() {
        c.and()
            .push("t.id IN (SELECT task_id FROM task_tags WHERE team_id = ")
            .bind(scope.team_id())
            .push(" AND mode = ")
            .bind(scope.mode().as_str())
            .push(" AND tag IN (")
            .list(&filter.tags)
            .push("))");
    }
}

impl Store {
    /// A page of tasks of `scope`, newest first, starting after `after` (keyset
    /// pagination), with the total number of matches.
    pub async fn list_tasks(
        &self,
        scope: &Scope,
        filter: &TaskFilter,
        limit: i64,
        after: Option<PageCursor>,
    ) -> StoreResult<TaskPage> {
        let select = page_query(self.dialect, scope, filter, limit, after.as_ref());
        // Pages are the heaviest reads: a few at a time, the rest queue here in order, rather
        // than every request competing for the CPU inside the database.
        let _permit = self.page_permits.acquire().await;
        let mut tasks: Vec<Task> = match self.dialect {
            // One row holding the page as JSON, not a row per task: sqlx hands every SQLite row
            // over between threads and converts every column for the Any driver, which made
            // up most of a page's cost.
            Dialect::Sqlite => {
                let page: String = select.query().fetch_one(&self.reader).await?.try_get(0)?;
                serde_json::from_str(&page)
                    .map_err(|e| StoreError::Config(format!("bad task page JSON: {e}")))?
            }
            // PostgreSQL streams rows on one socket; building the JSON there (json_agg)
            // measured slower than decoding the rows here.
            Dialect::Postgres => select
                .query()
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(task_from_row)
                .collect::<StoreResult<_>>()?,
        };
        let has_more = tasks.len() as i64 > limit;
        tasks.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if has_more {
            tasks.last().map(|t| PageCursor {
                created_at: t.created_at,
                id: t.id.clone(),
            })
        } else {
            None
        };
        let total = self.count_tasks(scope, filter).await?;
        Ok(TaskPage { tasks, total, next })
    }

    /// The tasks of `scope` matching `filter`: unfiltered, the kept count, not a count of
    /// every row.
    async fn count_tasks(&self, scope: &Scope, filter: &TaskFilter) -> StoreResult<i64> {
        if filter.is_empty() {
            let row: Option<(i64,)> = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) FROM task_counts \
                 WHERE team_id = $1 AND mode = $2",
            )
            .bind(scope.team_id())
            .bind(scope.mode().as_str())
            .fetch_optional(&self.reader)
            .await?;
            return Ok(row.map_or(0, |r| r.0));
        }
        let mut count = Sql::new(self.dialect);
        count.push("SELECT COUNT(*) FROM tasks t WHERE ");
        push_filter(&mut count, scope, filter);
        Ok(count.query().fetch_one(&self.reader).await?.try_get(0)?)
    }
}

/// The page's statement: on SQLite one row holding the page as a JSON array (see
/// `list_tasks`), on PostgreSQL a row per task; one more than `limit`, to tell whether
/// another page follows.
fn page_query<'a>(
    dialect: Dialect,
    scope: &'a Scope,
    filter: &'a TaskFilter,
    limit: i64,
    after: Option<&'a PageCursor>,
) -> Sql<'a> {
    let mut select = Sql::new(dialect);
    if dialect == Dialect::Sqlite {
        select
            .push("SELECT json_group_array(")
            .push(&SQLITE_TASK_OBJECT)
            .push(" ORDER BY created_at DESC, id DESC) FROM (");
    }
    select.push(&TASK_SELECT).push(" WHERE ");
    push_filter(&mut select, scope, filter);
    if let Some(after) = after {
        select
            .push(" AND (t.created_at < ")
            .bind(after.created_at)
            .push(" OR (t.created_at = ")
            .bind(after.created_at)
            .push(" AND t.id < ")
            .bind(&after.id)
            .push("))");
    }
    select
        .push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
        .bind(limit + 1);
    if dialect == Dialect::Sqlite {
        select.push(")");
    }
    select
}
