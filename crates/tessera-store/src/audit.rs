//! The per-team audit log: who did what, when, from where. Written in the same transaction as
//! the change it describes.

use sqlx::{any::AnyRow, Row};
pub use tessera_core::AuditAction;
use tessera_core::{ids::AuditEventId, Scope};

use crate::{new_id, now_ms, sql::Sql, Store, StoreError, StoreResult};

/// An audit entry about to be written. `actor` is a label that survives the user (their email,
/// or "operator (CLI)").
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub actor_user_id: Option<String>,
    pub actor: String,
    pub action: AuditAction,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

impl NewAuditEvent {
    /// An entry by `actor` with no target, detail or address (operator tools and tests fill in
    /// what they know).
    pub fn new(action: AuditAction, actor: impl Into<String>) -> Self {
        Self {
            actor_user_id: None,
            actor: actor.into(),
            action,
            target: String::new(),
            detail: String::new(),
            ip: String::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub actor: String,
    pub action: AuditAction,
    pub target: String,
    pub detail: String,
    pub ip: String,
    pub created_at: i64,
}

/// One page of the log, newest first, with the cursor of the next (older) page.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    team_id: Option<&str>,
    event: &NewAuditEvent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, team_id, actor_user_id, actor, action, target, detail, ip, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id("evt"))
    .bind(team_id)
    .bind(event.actor_user_id.as_deref())
    .bind(&event.actor)
    .bind(event.action.as_str())
    .bind(&event.target)
    .bind(&event.detail)
    .bind(&event.ip)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn event_from_row(row: &AnyRow) -> StoreResult<AuditEvent> {
    let action: String = row.try_get("action")?;
    Ok(AuditEvent {
        id: AuditEventId::from_stored(row.try_get("id")?),
        actor: row.try_get("actor")?,
        action: action
            .parse()
            .map_err(|e| StoreError::Config(format!("bad audit action in database: {e}")))?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        ip: row.try_get("ip")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Cursor format: `<created_at>.<id>` of the last event shown (keyset pagination). `None` when
/// it is not one (the page says so rather than guessing where to start).
pub fn parse_audit_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (at, id) = cursor.split_once('.')?;
    if id.is_empty() || id.len() > 64 {
        return None;
    }
    Some((at.parse().ok()?, id))
}

/// Which entries of a log to show; every part is optional and they combine (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Part of the actor's label (an email, "API key …"), any case.
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    /// Entries at or after this time (epoch ms).
    pub from: Option<i64>,
    /// Entries before this time (epoch ms).
    pub before: Option<i64>,
}

/// `text` as a LIKE pattern matching it anywhere, its wildcards taken literally (`\` escapes).
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Writes an entry in the scope's team log on its own (for events with no other write,
    /// such as a reveal).
    pub async fn record_audit(&self, scope: &Scope, event: &NewAuditEvent) -> StoreResult<()> {
        let mut conn = self.writer.acquire().await?;
        insert(&mut conn, Some(scope.team_id()), event).await
    }

    /// A page of the scope's team log, newest first. An unreadable cursor starts from the
    /// newest.
    pub async fn list_audit(
        &self,
        scope: &Scope,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<AuditPage> {
        let after = cursor.and_then(parse_audit_cursor);
        self.list_audit_filtered(scope, &AuditFilter::default(), after, limit)
            .await
    }

    /// A page of the scope's team log matching `filter`, newest first, starting after the
    /// entry `after` names (`created_at`, `id`), as the previous page's `next_cursor` gives.
    pub async fn list_audit_filtered(
        &self,
        scope: &Scope,
        filter: &AuditFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> StoreResult<AuditPage> {
        let mut q = Sql::new(self.dialect);
        q.push("SELECT id, actor, action, target, detail, ip, created_at FROM audit_events WHERE ");
        let mut c = q.conditions();
        c.eq("team_id", scope.team_id());
        if let Some(action) = filter.action {
            c.eq("action", action.as_str());
        }
        if let Some(actor) = filter.actor.as_deref().filter(|a| !a.is_empty()) {
            c.and()
                .push("LOWER(actor) LIKE ")
                .bind(contains_pattern(actor))
                .push(" ESCAPE '\\'");
        }
        if let Some(from) = filter.from {
            c.and().push("created_at >= ").bind(from);
        }
        if let Some(before) = filter.before {
            c.and().push("created_at < ").bind(before);
        }
        if let Some((at, id)) = after {
            c.and()
                .push("(created_at < ")
                .bind(at)
                .push(" OR (created_at = ")
                .bind(at)
                .push(" AND id < ")
                .bind(id)
                .push("))");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .bind(limit + 1);
        let rows = q.query().fetch_all(&self.reader).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = if events.len() as i64 > limit {
            events.truncate(usize::try_from(limit).unwrap_or(0));
            events.last().map(|e| format!("{}.{}", e.created_at, e.id))
        } else {
            None
        };
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_search_takes_wildcards_literally() {
        assert_eq!(contains_pattern("Ann_%"), "%ann\\_\\%%");
        assert_eq!(parse_audit_cursor("12.evt_a"), Some((12, "evt_a")));
        assert_eq!(parse_audit_cursor("x.evt_a"), None);
        assert_eq!(parse_audit_cursor("12."), None);
    }
}
