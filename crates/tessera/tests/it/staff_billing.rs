//! The staff console's billing pages: the price book, the team picker, a team's plan, prices,
//! credits and "close now", each audited in the team's log; bad input shows the page again
//! with the message and changes nothing; only staff get in.

use tessera_core::billing::Plan;
use tessera_store::now_ms;

use crate::{backend_test, helpers::*};

async fn staff_manage_billing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("admin@staffbill.test", "Staff Bill Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let (team_id, scope, labeler) = team_of(&app, "admin@staffbill.test").await;
    let mut staff = staff_browser(&app).await;
    let team_page = format!("/staff/billing/teams/{team_id}");
    let book_price = |prices: Vec<tessera_store::Price>, task_type: &str| {
        prices
            .into_iter()
            .find(|p| p.task_type == task_type)
            .map(|p| p.unit_amount)
    };

    // The console links here; the picker finds a team by name (any case) or id.
    assert!(staff
        .visit("/staff")
        .await
        .body
        .contains("href=\"/staff/billing\""));
    for wanted in ["staff bill co", team_id.as_str()] {
        let picked = staff
            .get(&format!("/staff/billing?team={}", wanted.replace(' ', "+")))
            .await;
        assert_eq!(picked.status, 303, "{wanted}: {}", picked.body);
        assert_eq!(picked.location.as_deref(), Some(team_page.as_str()));
    }
    for (wanted, says) in [
        ("Nobody+Inc", "No team is named"),
        ("team_000000000000000000000000", "No team has the id"),
    ] {
        let page = staff.get(&format!("/staff/billing?team={wanted}")).await;
        assert_eq!(page.status, 400, "{wanted}: {}", page.body);
        assert!(page.body.contains(says), "{wanted}: {}", page.body);
    }

    // The price book, and a new book price.
    let book = staff.visit("/staff/billing").await;
    assert_eq!(book.status, 200, "{}", book.body);
    assert!(
        book.body.contains("categorization") && book.body.contains("0.08 USD"),
        "{}",
        book.body
    );
    assert!(book.body.contains(&format!("href=\"{team_page}\"")));
    let set = staff
        .submit(
            "/staff/billing/prices",
            &[
                ("task_type", "comparison"),
                ("amount", "0.09"),
                ("currency", "usd"),
            ],
        )
        .await;
    assert!(
        set.body
            .contains("The price book now prices comparison at 0.09 USD per task."),
        "{}",
        set.body
    );
    for (fields, says) in [
        (
            [
                ("task_type", "nosuchtype"),
                ("amount", "0.10"),
                ("currency", "usd"),
            ],
            "task type",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "-1"),
                ("currency", "usd"),
            ],
            "amount",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", ""),
                ("currency", "usd"),
            ],
            "Enter the price",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "0.10"),
                ("currency", "dollars"),
            ],
            "currency",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "1000000.01"),
                ("currency", "usd"),
            ],
            "between 0 and",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "99999999999999999999"),
                ("currency", "usd"),
            ],
            "is not an amount",
        ),
    ] {
        let page = staff.submit("/staff/billing/prices", &fields).await;
        assert_eq!(page.status, 400, "{fields:?}: {}", page.body);
        assert!(
            page.body.to_lowercase().contains(&says.to_lowercase()),
            "{fields:?}: {}",
            page.body
        );
        assert!(page.body.contains("id=\"price-book\""), "the page again");
    }
    // Without the form's CSRF token nothing happens either.
    let forged = staff
        .post_raw(
            "/staff/billing/prices",
            &[("task_type", "comparison"), ("amount", "0.20")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let now = tessera_store::now_ms();
    assert_eq!(
        book_price(app.store.book_prices(now).await.unwrap(), "comparison"),
        Some(9),
        "the book keeps the good price only"
    );

    // A team price and a credit; bad ones refused.
    let page = staff
        .submit(
            &format!("{team_page}/prices"),
            &[
                ("task_type", "categorization"),
                ("amount", "0.05"),
                ("currency", "usd"),
            ],
        )
        .await;
    assert!(
        page.body
            .contains("now pays 0.05 USD per categorization task"),
        "{}",
        page.body
    );
    for (fields, says) in [
        (
            [
                ("task_type", "nosuchtype"),
                ("amount", "0.10"),
                ("currency", "usd"),
            ],
            "Unknown task type",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "2000000"),
                ("currency", "usd"),
            ],
            "between 0 and",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "-0.01"),
                ("currency", "usd"),
            ],
            "is not an amount",
        ),
        (
            [
                ("task_type", "comparison"),
                ("amount", "0.10"),
                ("currency", "eur"),
            ],
            "billed in usd",
        ),
    ] {
        let page = staff.submit(&format!("{team_page}/prices"), &fields).await;
        assert_eq!(page.status, 400, "{fields:?}: {}", page.body);
        assert!(page.body.contains(says), "{fields:?}: {}", page.body);
        assert!(page.body.contains("id=\"credit-balance\""), "the team page");
    }
    let team_prices = app.store.team_prices(&scope, now_ms()).await.unwrap();
    assert_eq!(team_prices.len(), 1, "{team_prices:?}");
    assert_eq!(
        book_price(team_prices, "categorization"),
        Some(5),
        "only the good team price"
    );

    let page = staff
        .submit(
            &format!("{team_page}/credits"),
            &[("amount", "0.05"), ("reason", "welcome")],
        )
        .await;
    assert!(page.body.contains("0.05 USD credited"), "{}", page.body);
    assert!(page.body.contains("welcome"), "the entry is listed");
    let page = staff
        .submit(
            &format!("{team_page}/credits"),
            &[("amount", "-0.02"), ("reason", "correction")],
        )
        .await;
    assert!(
        page.body
            .contains("0.02 USD of Staff Bill Co&#39;s credit taken back")
            || page
                .body
                .contains("0.02 USD of Staff Bill Co&#x27;s credit taken back"),
        "{}",
        page.body
    );
    let long_reason = "r".repeat(201);
    for (fields, says) in [
        ([("amount", "0.03"), ("reason", "")], "Reason is required"),
        (
            [("amount", "0.03"), ("reason", "   ")],
            "Reason is required",
        ),
        (
            [("amount", "0.03"), ("reason", long_reason.as_str())],
            "at most 200 characters",
        ),
        ([("amount", "abc"), ("reason", "x")], "amount"),
        ([("amount", "0"), ("reason", "x")], "Enter an amount"),
        (
            [("amount", "99999999999999"), ("reason", "x")],
            "is not an amount",
        ),
        ([("amount", "-1.00"), ("reason", "too much")], "below zero"),
    ] {
        let page = staff.submit(&format!("{team_page}/credits"), &fields).await;
        assert_eq!(page.status, 400, "{fields:?}: {}", page.body);
        assert!(page.body.contains(says), "{fields:?}: {}", page.body);
    }
    assert_eq!(
        app.store
            .billing_account(&scope)
            .await
            .unwrap()
            .credit_balance,
        3
    );

    // Two tasks at the team's 5 cents; closing needs the confirmation.
    for n in 0..2 {
        let (status, body) = live
            .post("/task/categorization", categorization(&format!("s{n}")))
            .await;
        assert_eq!(status, 200, "{body}");
        complete_next(&app, &labeler).await;
    }
    let page = staff.submit(&format!("{team_page}/close"), &[]).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Tick the box"), "{}", page.body);
    let page = staff
        .submit(&format!("{team_page}/close"), &[("confirm", "yes")])
        .await;
    assert!(
        page.body
            .contains("Invoice INV-000001 issued to Staff Bill Co."),
        "{}",
        page.body
    );
    let page = staff
        .submit(&format!("{team_page}/close"), &[("confirm", "yes")])
        .await;
    assert!(page.body.contains("nothing to close"), "{}", page.body);
    // The team's Billing page: nothing unbilled, and the month's breakdown says why it still
    // shows the two tasks.
    let billing = admin.visit("/billing").await;
    assert!(
        billing.body.contains("<dd id=\"completed-tasks\">0</dd>"),
        "{}",
        billing.body
    );
    assert!(
        billing
            .body
            .contains("they include 2 tasks already invoiced this month"),
        "{}",
        billing.body
    );
    let (status, invoices) = live.get("/billing/invoices").await;
    assert_eq!(status, 200);
    let invoice = &invoices["docs"][0];
    assert_eq!(invoice["subtotal"], 10, "{invoice}");
    assert_eq!(invoice["credits_applied"], 3);
    assert_eq!(invoice["total"], 7);

    // The plan, and bad plans.
    let page = staff
        .submit(&format!("{team_page}/plan"), &[("plan", "enterprise")])
        .await;
    assert!(
        page.body.contains("is on the enterprise plan now"),
        "{}",
        page.body
    );
    let page = staff
        .submit(&format!("{team_page}/plan"), &[("plan", "free")])
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Choose a plan"), "{}", page.body);
    assert_eq!(
        app.store.billing_account(&scope).await.unwrap().plan,
        Plan::Enterprise
    );
    let (_, billing) = live.get("/billing").await;
    assert_eq!(billing["plan"], "enterprise");
    assert_eq!(
        billing["credit_balance"], 0,
        "the credit went to the invoice"
    );

    // Every change is in the team's audit log.
    let audit = admin.visit("/team/audit").await.without_wbr();
    for action in [
        "price.set",
        "credit.granted",
        "invoice.issued",
        "billing.plan_changed",
    ] {
        assert!(
            audit.body.contains(action),
            "{action} audited: {}",
            audit.body
        );
    }
    assert!(audit.body.contains("support@tessera.test (staff)"));

    let entries = app.store.credit_entries(&scope, 10).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.reason == "welcome" && e.actor == "support@tessera.test (staff)"),
        "{entries:?}"
    );

    // Unknown teams are 404 with the billing page saying so; people who are not staff get
    // nothing.
    let page = staff.get("/staff/billing/teams/team_nope").await;
    assert_eq!(page.status, 404);
    assert!(
        page.body.contains("No team has the id team_nope"),
        "{}",
        page.body
    );
    for path in ["plan", "prices", "credits", "close"] {
        let page = staff
            .post_form(
                &format!("/staff/billing/teams/team_nope/{path}"),
                &[
                    ("plan", "on_demand"),
                    ("amount", "1"),
                    ("reason", "x"),
                    ("confirm", "yes"),
                    ("task_type", "comparison"),
                ],
            )
            .await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            page.body.contains("No team has the id"),
            "{path}: {}",
            page.body
        );
    }
    // A name two teams share picks neither: the ids are given to choose from.
    let _other = app.sign_up("other@staffbill.test", "Staff Bill Co").await;
    let page = staff.get("/staff/billing?team=Staff+Bill+Co").await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("2 teams are named") && page.body.contains(&team_id),
        "{}",
        page.body
    );

    for path in [
        "/staff/billing",
        "/staff/billing?team=Staff+Bill+Co",
        team_page.as_str(),
    ] {
        let page = admin.get(path).await;
        assert!(
            page.status == 403 || page.status == 404,
            "{path}: {}",
            page.status
        );
    }
    for path in [
        "/staff/billing/prices",
        &format!("{team_page}/plan"),
        &format!("{team_page}/prices"),
        &format!("{team_page}/credits"),
        &format!("{team_page}/close"),
    ] {
        let page = admin
            .post_form(
                path,
                &[
                    ("plan", "on_demand"),
                    ("amount", "100"),
                    ("reason", "me"),
                    ("confirm", "yes"),
                    ("task_type", "comparison"),
                ],
            )
            .await;
        assert!(
            page.status == 403 || page.status == 404,
            "{path}: {}",
            page.status
        );
    }
    assert_eq!(
        app.store.billing_account(&scope).await.unwrap().plan,
        Plan::Enterprise
    );
    assert_eq!(
        app.store
            .billing_account(&scope)
            .await
            .unwrap()
            .credit_balance,
        0
    );
    assert_eq!(
        book_price(app.store.book_prices(now_ms()).await.unwrap(), "comparison"),
        Some(9)
    );
    assert_eq!(
        app.store.team_prices(&scope, now_ms()).await.unwrap().len(),
        1
    );
    app.stop().await;
}

backend_test!(staff_manage_billing);
