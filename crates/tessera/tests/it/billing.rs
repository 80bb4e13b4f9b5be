//! Billing end to end through the API and the store: prices frozen at completion (a later
//! price leaves them), team overrides beating the book, errored and test tasks unbilled,
//! credits consumed and never negative, the close idempotent, open invoices refused edits by
//! the schema, the spend limit's 402 for live tasks only, and billing read by a test key.

use serde_json::json;
use tessera_core::billing::PaymentStatus;
use tessera_store::{CloseOutcome, LabelerScope, NewPrice};

use crate::{backend_test, helpers::*};

async fn billing_flow(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("owner@billing.test", "Billing Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let test = Api::new(&app, &create_key(&mut admin, "test", "ci").await);
    let (_, scope, labeler) = team_of(&app, "owner@billing.test").await;

    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, task) = live
            .post("/task/categorization", categorization(&format!("t{n}")))
            .await;
        assert_eq!(status, 200, "{task}");
        ids.push(task["task_id"].as_str().unwrap().to_owned());
    }
    let (status, _) = test
        .post("/task/categorization", categorization("free"))
        .await;
    assert_eq!(status, 200);

    // The book's categorization price (8 cents) freezes into the first.
    complete_next(&app, &labeler).await;
    // A team override wins from now on; the first task keeps its price.
    app.store
        .add_team_price(
            &scope,
            &NewPrice {
                task_type: "categorization",
                currency: "usd",
                unit_amount: 7,
                effective_from: tessera_store::now_ms(),
                created_by: "test",
            },
        )
        .await
        .unwrap();
    complete_next(&app, &labeler).await;
    // An errored task is not billed.
    let claim = app
        .store
        .claim_next_task(&labeler, 60_000)
        .await
        .unwrap()
        .unwrap();
    app.store
        .error_task(&labeler, "labeler", &claim.task.id, "broken attachment")
        .await
        .unwrap()
        .unwrap();

    let (status, billing) = live.get("/billing").await;
    assert_eq!(status, 200, "{billing}");
    assert_eq!(billing["plan"], "on_demand");
    assert_eq!(billing["currency"], "usd");
    assert_eq!(billing["completed_tasks"], 2, "{billing}");
    assert_eq!(billing["accrued_amount"], 15, "{billing}");
    // Billing belongs to the team: the test key reads the same numbers.
    let (status, seen_by_test) = test.get("/billing").await;
    assert_eq!(status, 200);
    assert_eq!(seen_by_test["accrued_amount"], 15);
    let (status, usage) = live.get("/billing/usage?group_by=task_type").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["docs"][0]["task_type"], "categorization");
    assert_eq!(usage["docs"][0]["completed_tasks"], 2);
    assert_eq!(usage["amount"], 15);
    let (status, bad) = live.get("/billing/usage?group_by=week").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("group_by"));

    // Credits: 10 granted, consumed by the close; never below zero.
    app.store
        .grant_credit(&scope, 10, "welcome", "test")
        .await
        .unwrap();
    let end = tessera_store::now_ms() + 1;
    let closed = app
        .store
        .close_period(&scope, end, PaymentStatus::NotConfigured)
        .await
        .unwrap();
    let CloseOutcome::Closed { invoice_id, number } = closed else {
        panic!("nothing closed")
    };
    assert_eq!(
        app.store
            .close_period(&scope, end, PaymentStatus::NotConfigured)
            .await
            .unwrap(),
        CloseOutcome::NothingToClose,
        "a second close of the same period makes no second invoice"
    );
    let (status, invoice) = live.get(&format!("/billing/invoices/{invoice_id}")).await;
    assert_eq!(status, 200, "{invoice}");
    assert_eq!(invoice["number"], number.as_str());
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["payment_status"], "not_configured");
    assert_eq!(invoice["subtotal"], 15);
    assert_eq!(invoice["credits_applied"], 10);
    assert_eq!(invoice["total"], 5);
    assert_eq!(invoice["amount_due"], 5);
    let lines = invoice["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{invoice}");
    let amounts: Vec<i64> = lines
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts.iter().sum::<i64>(), 15);
    assert!(lines.iter().all(|l| l["quantity"] == 1));
    let (status, list) = live.get("/billing/invoices?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(list["docs"][0]["id"], invoice_id.as_str());
    assert!(list["next_token"].is_null());
    let account = app.store.billing_account(&scope).await.unwrap();
    assert_eq!(account.credit_balance, 0);
    assert!(app
        .store
        .grant_credit(&scope, -1, "oops", "test")
        .await
        .is_err());
    // The closed usage is not this period's any more.
    let (_, billing) = live.get("/billing").await;
    assert_eq!(billing["accrued_amount"], 0);

    // The pages agree with the API, and the CSV lists every billed task.
    let billing_page = admin.get("/billing").await;
    assert_eq!(billing_page.status, 200, "{}", billing_page.body);
    assert!(billing_page.body.contains(&number), "the invoice is listed");
    assert!(
        billing_page.body.contains("<svg"),
        "the usage chart is drawn"
    );
    assert!(billing_page.body.contains("class=\"bar\""));
    let invoice_page = admin.get(&format!("/billing/invoices/{invoice_id}")).await;
    assert_eq!(invoice_page.status, 200);
    assert!(invoice_page.body.contains("0.15 USD") && invoice_page.body.contains("0.05 USD"));
    let csv = admin
        .get(&format!("/billing/invoices/{invoice_id}/csv"))
        .await;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.body.lines().count(), 3, "{}", csv.body);
    assert!(csv.body.contains(&ids[0]) || csv.body.contains(&ids[1]));
    // The PDF: a real PDF whose (uncompressed) text has the number and the total.
    let pdf = admin
        .get(&format!("/billing/invoices/{invoice_id}/pdf"))
        .await;
    assert_eq!(pdf.status, 200);
    assert!(
        pdf.body.starts_with("%PDF-"),
        "{}",
        &pdf.body[..40.min(pdf.body.len())]
    );
    assert!(
        pdf.body.contains(&format!("(Invoice {number})")),
        "{}",
        pdf.body
    );
    assert!(pdf.body.contains("(0.05 USD)"), "the total: {}", pdf.body);
    let mut nosy = app.sign_up("nosy@billing.test", "Nosy Co").await;
    for path in ["", "/csv", "/pdf"] {
        let foreign = nosy
            .get(&format!("/billing/invoices/{invoice_id}{path}"))
            .await;
        assert_eq!(foreign.status, 404, "another team's invoice{path}");
    }
    assert_eq!(
        admin.get("/billing/invoices/inv_nope/pdf").await.status,
        404
    );

    // The schema refuses edits to an open invoice's amounts, and to prices.
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&app.db.url)
        .await
        .unwrap();
    for edit in [
        format!("UPDATE invoices SET subtotal = 0 WHERE id = '{invoice_id}'"),
        format!("UPDATE invoices SET status = 'draft' WHERE id = '{invoice_id}'"),
        format!("DELETE FROM invoice_lines WHERE invoice_id = '{invoice_id}'"),
        format!("UPDATE usage_records SET unit_amount = 1 WHERE invoice_id = '{invoice_id}'"),
        "UPDATE price_book SET unit_amount = 0".to_owned(),
        "DELETE FROM credit_ledger".to_owned(),
    ] {
        assert!(
            sqlx::query(&edit).execute(&pool).await.is_err(),
            "{edit} was allowed"
        );
    }
    sqlx::query(&format!(
        "UPDATE invoices SET status = 'paid', paid_at = 1 WHERE id = '{invoice_id}'"
    ))
    .execute(&pool)
    .await
    .expect("status and payment columns still change");
    pool.close().await;

    // Another team's invoice does not exist for this team.
    let mut other = app.sign_up("other@billing.test", "Other Co").await;
    let other_live = Api::new(&app, &create_key(&mut other, "live", "ci").await);
    let (status, body) = other_live
        .get(&format!("/billing/invoices/{invoice_id}"))
        .await;
    assert_eq!(status, 404, "{body}");

    // Spend limit: live creation refused once reached, test tasks unaffected.
    complete_one(&app, &live, &labeler).await;
    app.store.set_spend_limit(&scope, Some(7)).await.unwrap();
    let refused = TestApp::eventually(10, || {
        let live = live.clone();
        async move {
            let (status, body) = live
                .post("/task/categorization", categorization("over"))
                .await;
            (status == 402).then_some(body)
        }
    })
    .await;
    assert_eq!(refused["status_code"], 402);
    assert!(
        refused["error"].as_str().unwrap().contains("spend limit"),
        "{refused}"
    );
    let (status, _) = test
        .post("/task/categorization", categorization("still free"))
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Creates and completes one more live task (7 cents at the team price).
async fn complete_one(app: &TestApp, live: &Api, labeler: &LabelerScope) {
    let (status, _) = live
        .post("/task/categorization", categorization("one more"))
        .await;
    assert_eq!(status, 200);
    complete_next(app, labeler).await;
}

backend_test!(billing_flow);

/// Two closers race for one team while labelers keep completing tasks: one invoice for the
/// period, and every billed task in exactly one invoice (none twice, none lost).
async fn racing_closers(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("race@billing.test", "Race Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let (_, scope, labeler) = team_of(&app, "race@billing.test").await;
    for n in 0..30 {
        let (status, _) = live
            .post("/task/categorization", categorization(&format!("r{n}")))
            .await;
        assert_eq!(status, 200);
    }
    for _ in 0..10 {
        complete_next(&app, &labeler).await;
    }
    let end = tessera_store::now_ms() + 60_000;
    let store = app.store.clone();
    let worker = {
        let app_store = app.store.clone();
        let labeler = labeler.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                let claim = app_store
                    .claim_next_task(&labeler, 60_000)
                    .await
                    .unwrap()
                    .unwrap();
                app_store
                    .submit_task(
                        &labeler,
                        "labeler",
                        &claim.task.id,
                        &json!({"category": "yes"}),
                    )
                    .await
                    .unwrap()
                    .unwrap();
            }
        })
    };
    let (a, b) = tokio::join!(
        store.close_period(&scope, end, PaymentStatus::NotConfigured),
        store.close_period(&scope, end, PaymentStatus::NotConfigured),
    );
    worker.await.unwrap();
    let outcomes = [a.unwrap(), b.unwrap()];
    let closed = outcomes
        .iter()
        .filter(|o| matches!(o, CloseOutcome::Closed { .. }))
        .count();
    assert_eq!(closed, 1, "{outcomes:?}");
    // Whatever the first close missed is billed by the next one, once.
    let later = store
        .close_period(&scope, end + 120_000, PaymentStatus::NotConfigured)
        .await
        .unwrap();
    let invoices = store.list_invoices(&scope, 10, None).await.unwrap();
    let quantities: i64 = {
        let mut sum = 0;
        for invoice in &invoices {
            let detail = store
                .get_invoice(&scope, &invoice.id)
                .await
                .unwrap()
                .unwrap();
            sum += detail.lines.iter().map(|l| l.quantity).sum::<i64>();
            assert_eq!(
                detail.lines.iter().map(|l| l.amount).sum::<i64>(),
                invoice.subtotal
            );
        }
        sum
    };
    assert_eq!(
        quantities, 30,
        "every completed task billed exactly once ({later:?})"
    );
    assert_eq!(
        store.unbilled_totals(&scope).await.unwrap().completed_tasks,
        0
    );
    let numbers: Vec<i64> = invoices.iter().map(|i| i.sequence).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] == w[1] + 1),
        "gap-free: {numbers:?}"
    );
    app.stop().await;
}

backend_test!(racing_closers);
