//! The audit log page: filters by who, what and when, keyset paging that keeps the filter,
//! and a filter it cannot read answered with the page and the reason (400), never a 500.

use std::collections::HashSet;

use reqwest::StatusCode;
use tessera_store::{AuditAction, NewAuditEvent};

use crate::{backend_test, helpers::*};

const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` (UTC) of epoch milliseconds (the civil-from-days algorithm).
fn date_of(ms: i64) -> String {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The rows of the audit table: (actor, action, target), `<wbr>`s removed.
fn rows(body: &str) -> Vec<(String, String, String)> {
    let Some(table) = extract_between(body, "id=\"audit\">", "</table>") else {
        return Vec::new();
    };
    table
        .replace("<wbr>", "")
        .split("<tr><td class=\"when\">")
        .skip(1)
        .map(|row| {
            let cells: Vec<String> = row
                .split("<td>")
                .skip(1)
                .map(|c| {
                    c.split("</td>")
                        .next()
                        .unwrap()
                        .replace("<code>", "")
                        .replace("</code>", "")
                })
                .collect();
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

/// The "Older →" link of a page, unescaped.
fn older_link(body: &str) -> Option<String> {
    let pager = extract_between(body, "<p class=\"pager\">", "</p>")?;
    let before = pager
        .split("\">Older →</a>")
        .next()
        .filter(|_| pager.contains("Older →"))?;
    Some(
        before
            .rsplit("href=\"")
            .next()?
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

async fn audit_log_filters_and_pages(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("audit.admin@acme.test", "Audit Co").await;
    let team = app
        .store
        .cross_tenant()
        .find_teams_by_name("Audit Co")
        .await
        .unwrap()
        .remove(0)
        .team
        .id;
    let scope = team_scope(&team);
    for i in 0..55 {
        let mut event = NewAuditEvent::new(AuditAction::ApiKeyCreated, "ann@acme.test");
        event.target = format!("key_{i:03}");
        app.store.record_audit(&scope, &event).await.unwrap();
    }
    // Entries of one millisecond are ordered by id: Bob's come strictly later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for i in 0..5 {
        let mut event = NewAuditEvent::new(AuditAction::MemberRemoved, "Bob@acme.test");
        event.target = format!("member_{i}");
        app.store.record_audit(&scope, &event).await.unwrap();
    }
    let total = app
        .store
        .list_audit(&scope, None, 1000)
        .await
        .unwrap()
        .events
        .len();
    assert!(total > 60, "sign-up wrote its own entries too");

    // Unfiltered: 50 a page, newest first, every entry exactly once across the pages.
    let first = admin.visit("/team/audit").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(rows(&first.body).len(), 50);
    assert_eq!(rows(&first.body)[0].1, "member.removed", "newest first");
    let mut seen = HashSet::new();
    let mut page = first;
    let mut pages = 0;
    loop {
        pages += 1;
        for row in rows(&page.body) {
            assert!(
                seen.insert(row.clone()) || row.2.is_empty(),
                "{row:?} twice"
            );
        }
        let Some(next) = older_link(&page.body) else {
            break;
        };
        page = admin.visit(&next).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<a href=\"/team/audit\">Newest</a>"));
    }
    assert_eq!(pages, total.div_ceil(50));

    // What: one action.
    let removed = admin.visit("/team/audit?action=member.removed").await;
    assert_eq!(removed.status, StatusCode::OK);
    let found = rows(&removed.body);
    assert_eq!(found.len(), 5);
    assert!(found.iter().all(|r| r.1 == "member.removed"));
    assert!(removed
        .body
        .contains("<option value=\"member.removed\" selected>"));

    // Who: part of the actor, any case; wildcards are literal.
    let bob = admin.visit("/team/audit?actor=bob%40ACME").await;
    assert_eq!(rows(&bob.body).len(), 5);
    assert!(
        bob.body.contains("value=\"bob@ACME\""),
        "the filter stays in the form"
    );
    let wildcard = admin.visit("/team/audit?actor=%25").await;
    assert!(
        rows(&wildcard.body).is_empty(),
        "% matches only a literal %"
    );
    assert!(wildcard.body.contains("No events match this filter"));

    // Who and what together, paged: the next page keeps the filter.
    let ann = admin
        .visit("/team/audit?actor=ann&action=api_key.created")
        .await;
    assert_eq!(rows(&ann.body).len(), 50);
    let next = older_link(&ann.body).expect("a second page");
    assert!(
        next.contains("actor=ann") && next.contains("action=api_key.created"),
        "{next}"
    );
    let rest = admin.visit(&next).await;
    let rest_rows = rows(&rest.body);
    assert_eq!(rest_rows.len(), 5, "{next}: {rest_rows:?}");
    assert!(rest_rows.iter().all(|r| r.0 == "ann@acme.test"));
    let targets: HashSet<String> = rows(&ann.body)
        .into_iter()
        .chain(rest_rows)
        .map(|r| r.2)
        .collect();
    assert_eq!(
        targets.len(),
        55,
        "each of Ann's entries once over the two pages"
    );
    assert_eq!(older_link(&rest.body), None);

    // When: whole UTC days, "to" included.
    let now = tessera_store::now_ms();
    let (today, tomorrow, yesterday) = (date_of(now), date_of(now + DAY_MS), date_of(now - DAY_MS));
    let today_page = admin
        .visit(&format!(
            "/team/audit?from={today}&to={today}&action=member.removed"
        ))
        .await;
    assert_eq!(rows(&today_page.body).len(), 5, "{today}");
    let later = admin.visit(&format!("/team/audit?from={tomorrow}")).await;
    assert_eq!(later.status, StatusCode::OK);
    assert!(rows(&later.body).is_empty());
    let earlier = admin.visit(&format!("/team/audit?to={yesterday}")).await;
    assert!(rows(&earlier.body).is_empty());
    app.stop().await;
}
backend_test!(audit_log_filters_and_pages);

async fn bad_audit_filters_are_explained(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("audit.bad@acme.test", "Audit Bad Co").await;
    let long = "a".repeat(201);
    for (query, message) in [
        (
            "action=team.exploded",
            "\"team.exploded\" is not an audit event",
        ),
        (
            "from=2026-13-01",
            "\"From\" must be a date written YYYY-MM-DD",
        ),
        ("to=yesterday", "\"To\" must be a date written YYYY-MM-DD"),
        ("from=2026-02-30", "\"From\" must be a date"),
        ("from=2026-11-23&to=2026-11-22", "\"From\" is after \"To\""),
        ("cursor=garbage", "The page link's \"cursor\" is not valid"),
        ("cursor=12.", "is not valid"),
        (
            &format!("actor={long}"),
            "\"Who\" may be at most 200 characters",
        ),
    ] {
        let page = admin.visit(&format!("/team/audit?{query}")).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            page.body
        );
        let shown = page
            .body
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&#39;", "'");
        assert!(shown.contains(message), "{query}: {shown}");
        assert!(page.body.contains("id=\"audit-error\""), "{query}");
        assert!(
            page.body.contains("id=\"audit-filter\""),
            "the form is there to fix it"
        );
        assert!(
            !page.body.contains("id=\"audit\""),
            "{query}: no rows under an error"
        );
    }
    // What was typed stays in the form.
    let kept = admin
        .visit("/team/audit?actor=ann&from=2026-11-23&to=2026-11-22")
        .await;
    assert!(kept.body.contains("value=\"ann\""));
    assert!(kept.body.contains("value=\"2026-11-23\""));
    // Given twice: refused by the address reader with the parameter named.
    let twice = admin.visit("/team/audit?action=a&action=b").await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}
backend_test!(bad_audit_filters_are_explained);
