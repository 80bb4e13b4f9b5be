//! Payment against a real Stripe emulator (`localstripe`, started here): the Admin's card
//! saved through the SetupIntent flow Stripe.js drives, a successful off-session charge
//! marking the invoice paid, a declining card leaving it open with the attempt recorded and
//! the Admin emailed, and the webhook endpoint refusing bad signatures and handling each
//! event once.

use serde_json::json;
use tessera_core::{billing::PaymentStatus, Email};
use tessera_server::{billing::provider::webhook, state::Wrote};
use tessera_store::CloseOutcome;

use crate::{backend_test, helpers::*};

/// The card page's client secret (a `seti_…_secret_…`).
fn client_secret(page: &str) -> String {
    extract_between(page, "data-client-secret=\"", "\"").expect("the card page has a SetupIntent")
}

/// Adds a card numbered `number` the way the browser does: open the card page, confirm its
/// SetupIntent with the provider, post the SetupIntent id back.
async fn add_card(admin: &mut Browser, stripe: &LocalStripe, number: &str) -> Page {
    let page = admin.visit("/billing/card").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = client_secret(&page.body);
    let intent = stripe.confirm_card_setup(&secret, number).await;
    assert_eq!(intent["status"], "succeeded", "{intent}");
    let seti = intent["id"].as_str().unwrap().to_owned();
    admin
        .submit("/billing/card", &[("setup_intent_id", &seti)])
        .await
}

/// Closes everything completed so far with a charge due, and wakes the charge job.
async fn close_now(app: &TestApp, scope: &tessera_store::Scope) -> (String, String) {
    let end = tessera_store::now_ms() + 1;
    let CloseOutcome::Closed { invoice_id, number } = app
        .store
        .close_period(scope, end, PaymentStatus::Pending)
        .await
        .unwrap()
    else {
        panic!("nothing to close")
    };
    app.state.wake(Wrote::Charges);
    (invoice_id, number)
}

/// The invoice through the API once `done` accepts it.
async fn invoice_when(
    live: &Api,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    TestApp::eventually(20, || async {
        let (status, invoice) = live.get(&format!("/billing/invoices/{id}")).await;
        assert_eq!(status, 200, "{invoice}");
        done(&invoice).then_some(invoice)
    })
    .await
}

async fn post_webhook(
    app: &TestApp,
    signature: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(json!(null)))
}

async fn cards_and_charges(backend: Backend) {
    let stripe = LocalStripe::start().await;
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            stripe: Some(stripe.config()),
            smtp_url: Some(smtp.url()),
            ..Options::default()
        },
    )
    .await;
    stripe
        .register_webhook(&format!("{}/webhooks/stripe", app.base))
        .await;
    let mut admin = app.sign_up("admin@pay.test", "Pay Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let (_, scope, labeler) = team_of(&app, "admin@pay.test").await;

    let billing = admin.visit("/billing").await;
    assert!(
        billing.body.contains("href=\"/billing/card\""),
        "{}",
        billing.body
    );
    assert!(billing.body.contains("No card on file"));

    // Bad input on the card form: the page again with the message, nothing saved.
    for (bad, says) in [
        ("", "not a card setup"),
        ("../../v1/customers", "not a card setup"),
        ("seti_doesnotexist", "did not accept"),
    ] {
        let page = admin
            .submit("/billing/card", &[("setup_intent_id", bad)])
            .await;
        assert_eq!(page.status, 400, "{bad}: {}", page.body);
        assert!(page.body.contains(says), "{bad}: {}", page.body);
        assert!(page.body.contains("data-client-secret"), "a fresh form");
    }
    // A SetupIntent not yet confirmed by the browser saves nothing.
    let page = admin.visit("/billing/card").await;
    let unconfirmed = client_secret(&page.body);
    let seti = unconfirmed.split("_secret_").next().unwrap();
    let page = admin
        .submit("/billing/card", &[("setup_intent_id", seti)])
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("not confirmed"), "{}", page.body);
    assert!(app
        .store
        .billing_account(&scope)
        .await
        .unwrap()
        .card
        .is_none());

    // The card, through the real SetupIntent flow.
    let billing = add_card(&mut admin, &stripe, "4242424242424242").await;
    assert_eq!(billing.status, 200, "{}", billing.body);
    assert!(
        billing.body.contains("Card saved: visa ending in 4242."),
        "{}",
        billing.body
    );
    assert!(
        billing
            .body
            .contains("visa ending in 4242, expires 12/2034"),
        "{}",
        billing.body
    );
    assert!(billing.body.contains("Replace card"));
    let account = app.store.billing_account(&scope).await.unwrap();
    let card = account.card.clone().unwrap();
    assert!(card.payment_method_id.starts_with("pm_"), "{card:?}");
    assert!(account
        .provider_customer_id
        .as_deref()
        .unwrap()
        .starts_with("cus_"));
    // A second team cannot save the first one's SetupIntent.
    let mut other = app.sign_up("admin@other.test", "Other Co").await;
    let stolen = stripe
        .confirm_card_setup(
            &client_secret(&admin.visit("/billing/card").await.body),
            "4242424242424242",
        )
        .await;
    let page = other
        .submit(
            "/billing/card",
            &[("setup_intent_id", stolen["id"].as_str().unwrap())],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    let other_user = app
        .store
        .find_user_by_email(&Email::parse("admin@other.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let other_scope = team_scope(other_user.team_id.as_deref().unwrap());
    assert!(app
        .store
        .billing_account(&other_scope)
        .await
        .unwrap()
        .card
        .is_none());

    // Two live tasks at the book's 8 cents: charged when the period closes.
    for n in 0..2 {
        let (status, task) = live
            .post("/task/categorization", categorization(&format!("paid {n}")))
            .await;
        assert_eq!(status, 200, "{task}");
        complete_next(&app, &labeler).await;
    }
    let (paid_id, paid_number) = close_now(&app, &scope).await;
    let invoice = invoice_when(&live, &paid_id, |i| i["status"] == "paid").await;
    assert_eq!(invoice["amount_due"], 16, "{invoice}");
    let detail = app
        .store
        .get_invoice(&scope, &paid_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.attempts.len(), 1, "{:?}", detail.attempts);
    assert_eq!(detail.attempts[0].status.as_str(), "succeeded");
    assert_eq!(detail.invoice.payment_status, PaymentStatus::Succeeded);
    let page = admin.visit(&format!("/billing/invoices/{paid_id}")).await;
    assert!(page.body.contains("charged"), "{}", page.body);
    assert!(page.body.contains(&paid_number));
    // localstripe's own signed webhook for that charge arrives and is recorded once.
    let pool = pg_pool(&app.db.url).await;
    TestApp::eventually(15, || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM provider_events WHERE provider = 'stripe' AND event_type = 'payment_intent.succeeded'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (n >= 1).then_some(())
    })
    .await;

    // A card that declines off-session: the invoice stays open, the attempt is recorded,
    // the Admin is emailed, the next try is scheduled about a day later.
    let replaced = add_card(&mut admin, &stripe, "4000000000000341").await;
    assert!(
        replaced.body.contains("Card saved: visa ending in 0341."),
        "{}",
        replaced.body
    );
    let (status, _) = live
        .post("/task/categorization", categorization("declined"))
        .await;
    assert_eq!(status, 200);
    complete_next(&app, &labeler).await;
    let (declined_id, declined_number) = close_now(&app, &scope).await;
    let detail = TestApp::eventually(20, || async {
        let detail = app
            .store
            .get_invoice(&scope, &declined_id)
            .await
            .unwrap()
            .unwrap();
        (!detail.attempts.is_empty()).then_some(detail)
    })
    .await;
    assert_eq!(detail.invoice.status.as_str(), "open");
    assert_eq!(detail.invoice.payment_status, PaymentStatus::Pending);
    assert_eq!(detail.attempts[0].status.as_str(), "declined");
    assert_eq!(
        detail.attempts[0].error_code.as_deref(),
        Some("card_declined"),
        "{:?}",
        detail.attempts
    );
    let retry_in = detail.invoice.next_payment_at.unwrap() - tessera_store::now_ms();
    assert!(
        (23 * 3_600_000..=24 * 3_600_000).contains(&retry_in),
        "{retry_in}"
    );
    let mail = smtp
        .wait_for_containing("admin@pay.test", "Payment failed", 20)
        .await;
    let mail = decode_quoted_printable(&mail);
    assert!(
        mail.contains(&format!("Payment failed for {declined_number}")),
        "{mail}"
    );
    assert!(mail.contains("0.08 USD"), "{mail}");
    let page = admin
        .visit(&format!("/billing/invoices/{declined_id}"))
        .await;
    assert!(page.body.contains("declined"), "{}", page.body);

    // Webhooks: a bad, missing or stale signature is refused and changes nothing.
    let event = json!({
        "id": "evt_tessera_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_manual", "metadata": {"invoice_id": declined_id}}},
    })
    .to_string();
    let now = tessera_store::now_ms() / 1000;
    for signature in [
        Some(webhook::sign("whsec_wrong", now, event.as_bytes())),
        Some(webhook::sign(
            STRIPE_WEBHOOK_SECRET,
            now - 3_600,
            event.as_bytes(),
        )),
        Some("t=1,v1=zz".to_owned()),
        None,
    ] {
        let (status, body) = post_webhook(&app, signature.as_deref(), &event).await;
        assert_eq!(status, 400, "{signature:?}: {body}");
        assert_eq!(body["status_code"], 400);
        assert!(
            body["error"].as_str().unwrap().contains("Webhook refused"),
            "{body}"
        );
    }
    let open = app
        .store
        .get_invoice(&scope, &declined_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.invoice.status.as_str(), "open");
    // A signed event is handled; its replay is answered as a duplicate and changes nothing.
    let signature = webhook::sign(STRIPE_WEBHOOK_SECRET, now, event.as_bytes());
    let (status, body) = post_webhook(&app, Some(&signature), &event).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(false)), "{body}");
    let (status, body) = post_webhook(&app, Some(&signature), &event).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)), "{body}");
    let paid = app
        .store
        .get_invoice(&scope, &declined_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.invoice.status.as_str(), "paid");
    let (webhook_audits,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'invoice.paid' AND actor = 'Stripe webhook' AND target = $1",
    )
    .bind(&declined_number)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(webhook_audits, 1, "the event was acted on once");
    app.stop().await;
    smtp.stop().await;
}

backend_test!(cards_and_charges);
