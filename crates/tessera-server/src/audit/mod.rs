//! The audit log page, and the helper every feature uses to describe what it did.

use crate::web::PageTime;
use askama::Template;
use axum::{extract::State, response::Response, routing::get, Router};

use crate::web::Query;
use axum::http::StatusCode;
use serde::Deserialize;
use tessera_core::AuditAction;
use tessera_store::{parse_audit_cursor, AuditFilter, NewAuditEvent};

use crate::{
    api::auth::ApiCaller,
    authz::{perm, Authorized},
    state::AppState,
    web::{page, render, ClientIp, Layout, SignedIn, WebResult},
};

/// Whoever an audit entry names as having acted: a signed-in person or an API key.
pub trait AuditActor {
    /// The acting user's id (none for a key) and the name the log shows.
    fn audit_actor(&self) -> (Option<String>, String);
}

impl AuditActor for SignedIn {
    fn audit_actor(&self) -> (Option<String>, String) {
        (Some(self.user.id.clone()), self.user.email.clone())
    }
}

/// A key is named by its label ("API key …"); no user acted.
impl AuditActor for ApiCaller {
    fn audit_actor(&self) -> (Option<String>, String) {
        (None, self.label())
    }
}

/// An audit entry for something `who` did from `ip`.
pub fn event(
    who: &impl AuditActor,
    ip: &ClientIp,
    action: AuditAction,
    target: &str,
    detail: String,
) -> NewAuditEvent {
    let (actor_user_id, actor) = who.audit_actor();
    NewAuditEvent {
        actor_user_id,
        actor,
        action,
        target: target.to_owned(),
        detail,
        ip: ip.0.clone(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/team/audit", get(show))
}

pub const PAGE_SIZE: i64 = 50;

/// The longest actor text the filter takes (labels are emails or key names).
const MAX_ACTOR: usize = 200;

struct Row {
    when: PageTime,
    actor: String,
    action: AuditAction,
    target: String,
    detail: String,
    ip: String,
}

/// One choice of the "What" select.
struct ActionChoice {
    word: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<Row>,
    next_link: Option<String>,
    first_link: Option<String>,
    /// The filter as typed, kept in the form (also when refused).
    actor: String,
    from: String,
    to: String,
    actions: Vec<ActionChoice>,
    any_action: bool,
    filtered: bool,
    /// Why the filter was refused; the page then lists nothing.
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

const DAY_MS: i64 = 86_400_000;

/// A `YYYY-MM-DD` date (UTC) as the epoch milliseconds of its first moment.
fn day_start(field: &str, raw: &str) -> Result<Option<i64>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw, &format).map_err(|_| {
        format!("\"{field}\" must be a date written YYYY-MM-DD, such as 2026-11-22; \"{raw}\" is not one.")
    })?;
    let secs = date.midnight().assume_utc().unix_timestamp();
    Ok(Some(secs * 1000))
}

/// Where a page starts: after the entry (`created_at`, `id`).
type Keyset<'a> = (i64, &'a str);

/// The filter (and where the page starts) the query asks for, or why it cannot be used.
fn read_filter(q: &AuditQuery) -> Result<(AuditFilter, Option<Keyset<'_>>), String> {
    let actor = q.actor.trim();
    if actor.chars().count() > MAX_ACTOR {
        return Err(format!("\"Who\" may be at most {MAX_ACTOR} characters."));
    }
    let action =
        match q.action.as_str() {
            "" => None,
            word => Some(word.parse::<AuditAction>().map_err(|_| {
                format!("\"{word}\" is not an audit event; choose one from the list.")
            })?),
        };
    let from = day_start("From", q.from.trim())?;
    let to = day_start("To", q.to.trim())?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err("\"From\" is after \"To\"; give the earlier date first.".into());
        }
    }
    let after = match q.cursor.as_str() {
        "" => None,
        raw => Some(parse_audit_cursor(raw).ok_or_else(|| {
            "The page link's \"cursor\" is not valid; start again from the newest entries."
                .to_owned()
        })?),
    };
    let filter = AuditFilter {
        actor: Some(actor.to_owned()).filter(|a| !a.is_empty()),
        action,
        from,
        // "To" takes the whole day.
        before: to.map(|t| t + DAY_MS),
    };
    Ok((filter, after))
}

/// `/team/audit` with the filter of `q` and, when given, the cursor.
fn link(q: &AuditQuery, cursor: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("actor", q.actor.trim()),
        ("action", q.action.as_str()),
        ("from", q.from.trim()),
        ("to", q.to.trim()),
    ] {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    if let Some(cursor) = cursor {
        query.append_pair("cursor", cursor);
    }
    let query = query.finish();
    if query.is_empty() {
        "/team/audit".to_owned()
    } else {
        format!("/team/audit?{query}")
    }
}

/// The team's audit log, newest first, 50 a page, filtered by who, what and when. A filter it
/// cannot read gives the page again with the reason (400), the filter kept in the form.
async fn show(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ViewAuditLog, SignedIn>,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    let mut view = AuditPage {
        layout: Layout::signed_in("Audit log", &who, "/team/audit"),
        rows: Vec::new(),
        next_link: None,
        first_link: None,
        actor: q.actor.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        actions: AuditAction::ALL
            .iter()
            .map(|a| ActionChoice {
                word: a.as_str(),
                selected: a.as_str() == q.action,
            })
            .collect(),
        any_action: q.action.is_empty(),
        filtered: [&q.actor, &q.action, &q.from, &q.to]
            .iter()
            .any(|v| !v.trim().is_empty()),
        error: None,
    };
    let (filter, after) = match read_filter(&q) {
        Ok(read) => read,
        Err(message) => {
            view.error = Some(message);
            return Ok(render(StatusCode::BAD_REQUEST, &view));
        }
    };
    let log = state
        .store
        .list_audit_filtered(&scope, &filter, after, PAGE_SIZE)
        .await?;
    view.rows = log
        .events
        .into_iter()
        .map(|e| Row {
            when: PageTime::at(e.created_at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            ip: e.ip,
        })
        .collect();
    view.next_link = log.next_cursor.map(|c| link(&q, Some(&c)));
    view.first_link = after.map(|_| link(&q, None));
    Ok(page(&view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(actor: &str, action: &str, from: &str, to: &str) -> AuditQuery {
        AuditQuery {
            actor: actor.into(),
            action: action.into(),
            from: from.into(),
            to: to.into(),
            ..AuditQuery::default()
        }
    }

    #[test]
    fn filters_are_read_or_refused_with_the_reason() {
        let typed = query(" ann ", "api_key.created", "1970-01-02", "1970-01-02");
        let (filter, after) = read_filter(&typed).unwrap();
        assert_eq!(filter.actor.as_deref(), Some("ann"));
        assert_eq!(filter.action, Some(AuditAction::ApiKeyCreated));
        assert_eq!(
            (filter.from, filter.before),
            (Some(DAY_MS), Some(2 * DAY_MS))
        );
        assert_eq!(after, None);
        assert!(read_filter(&query("", "team.exploded", "", ""))
            .unwrap_err()
            .contains("not an audit event"));
        assert!(read_filter(&query("", "", "22/11/2026", ""))
            .unwrap_err()
            .contains("YYYY-MM-DD"));
        assert!(read_filter(&query("", "", "2026-02-30", "")).is_err());
        assert!(read_filter(&query("", "", "2026-11-23", "2026-11-22"))
            .unwrap_err()
            .contains("after"));
        assert!(read_filter(&query(&"a".repeat(201), "", "", "")).is_err());
        let bad_cursor = AuditQuery {
            cursor: "nope".into(),
            ..AuditQuery::default()
        };
        assert!(read_filter(&bad_cursor).unwrap_err().contains("cursor"));
    }

    #[test]
    fn page_links_keep_the_filter() {
        assert_eq!(link(&query("", "", "", ""), None), "/team/audit");
        assert_eq!(
            link(
                &query("a b", "api_key.created", "", "2026-01-01"),
                Some("1.evt_x")
            ),
            "/team/audit?actor=a+b&action=api_key.created&to=2026-01-01&cursor=1.evt_x"
        );
    }
}
