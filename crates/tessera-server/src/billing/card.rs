//! The Admin's card page (`/billing/card`) and the payment provider's webhook.
//!
//! The card goes from the browser to Stripe through Stripe.js (Card Element +
//! `confirmCardSetup` on a SetupIntent made here); the form sends back only the SetupIntent's
//! id, and the server asks Stripe which card it saved. The page's Content-Security-Policy lets
//! in Stripe.js and its API and nothing else.

use askama::Template;
use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use tessera_core::{AuditAction, Scope};
use tessera_store::NewAuditEvent;

use super::{
    provider::{webhook, ProviderErrorKind},
    service::{self, CardError},
};
use crate::{
    api::wire::ApiError,
    audit,
    authz::{perm, Authorized},
    state::AppState,
    web::{
        redirect_with_flash, redirect_with_warning, render, ClientIp, Form, Layout, SignedIn,
        WebResult,
    },
};

#[derive(Template)]
#[template(path = "billing_card.html")]
struct CardPage {
    layout: Layout,
    replacing: bool,
    error: Option<String>,
    publishable_key: String,
    client_secret: String,
    js_url: String,
}

/// What the page says when the provider could not be reached.
const PROVIDER_DOWN: &str =
    "The payment provider could not be reached, so the card cannot be changed right now. Try again in a moment.";

/// The origin (`scheme://host[:port]`) of a URL, as a CSP source.
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// The card page's policy: Stripe.js from its origin, its calls to the API, its frames.
fn card_page_policy(state: &AppState) -> Option<HeaderValue> {
    let stripe = state.config.stripe.as_ref()?;
    let js = origin(&stripe.js_url);
    let api = origin(&stripe.api_base);
    HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' data: {js} {api}; style-src 'self'; \
         script-src 'self' {js}; connect-src 'self' {js} {api}; frame-src {js} https://hooks.stripe.com; \
         form-action 'self'; frame-ancestors 'none'"
    ))
    .ok()
}

/// The page with a fresh SetupIntent, or a way back to Billing saying why there is none.
async fn card_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    status: StatusCode,
    error: Option<String>,
) -> WebResult<Response> {
    let setup = match service::start_card_setup(state, scope).await {
        Ok(setup) => setup,
        Err(err) => return refusal(err),
    };
    let (Some(stripe), Some(policy)) = (state.config.stripe.as_ref(), card_page_policy(state))
    else {
        return refusal(CardError::NotTaken);
    };
    let account = state.store.billing_account(scope).await?;
    let page = CardPage {
        layout: Layout::signed_in("Card", who, "/billing"),
        replacing: account.card.is_some(),
        error,
        publishable_key: stripe.publishable_key.clone(),
        client_secret: setup.client_secret,
        js_url: stripe.js_url.to_string(),
    };
    let mut response = render(status, &page);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Back to Billing with why the card cannot be changed here.
fn refusal(err: CardError) -> WebResult<Response> {
    match err {
        CardError::NotTaken => Ok(redirect_with_warning(
            "/billing",
            "This team does not pay by card here: payment is not configured on this installation, or the team is invoiced.",
        )),
        CardError::Provider(err) => {
            tracing::warn!(error = %err, "payment provider call failed");
            Ok(redirect_with_warning("/billing", PROVIDER_DOWN))
        }
        CardError::Store(err) => Err(err.into()),
        CardError::Invalid(message) => Ok(redirect_with_warning("/billing", &message)),
        CardError::NotConfirmed => Ok(redirect_with_warning(
            "/billing",
            "The card was not confirmed with the payment provider; add it again.",
        )),
    }
}

pub(super) async fn show(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditPaymentInfo, SignedIn>,
) -> WebResult<Response> {
    card_page(&state, &who, &scope, StatusCode::OK, None).await
}

#[derive(Deserialize, Default)]
pub(super) struct CardInput {
    #[serde(default)]
    setup_intent_id: String,
}

pub(super) async fn save(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditPaymentInfo, SignedIn>,
    ip: ClientIp,
    Form(input): Form<CardInput>,
) -> WebResult<Response> {
    let event = audit::event(
        &who,
        &ip,
        AuditAction::PaymentMethodUpdated,
        "card",
        String::new(),
    );
    match service::finish_card_setup(&state, &scope, &input.setup_intent_id, event).await {
        Ok(card) => Ok(redirect_with_flash(
            "/billing",
            &format!("Card saved: {} ending in {}.", card.brand, card.last4),
        )),
        Err(CardError::Invalid(message)) => {
            card_page(&state, &who, &scope, StatusCode::BAD_REQUEST, Some(message)).await
        }
        Err(CardError::NotConfirmed) => {
            let message = "The card was not confirmed with the payment provider; enter it again.";
            card_page(
                &state,
                &who,
                &scope,
                StatusCode::BAD_REQUEST,
                Some(message.into()),
            )
            .await
        }
        Err(CardError::Provider(err)) if err.kind == ProviderErrorKind::Rejected => {
            tracing::warn!(error = %err, "card setup refused");
            let message =
                "The payment provider did not accept that card setup; enter the card again.";
            card_page(
                &state,
                &who,
                &scope,
                StatusCode::BAD_REQUEST,
                Some(message.into()),
            )
            .await
        }
        Err(other) => refusal(other),
    }
}

/// `POST /webhooks/stripe`: Stripe's events, signed with the endpoint's secret. A verified
/// event is acted on and its id recorded; a replay is answered as a duplicate, not acted on.
/// Without `--stripe-webhook-secret` the endpoint does not exist.
pub(super) async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = state
        .config
        .stripe
        .as_ref()
        .and_then(|s| s.webhook_secret.as_deref())
    else {
        return ApiError::not_found("No such endpoint.").into_response();
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now_secs = tessera_store::now_ms() / 1000;
    let event = match webhook::verify(secret, signature, &body, now_secs) {
        Ok(event) => event,
        Err(err) => {
            tracing::warn!(error = %err, "webhook refused");
            return ApiError::bad_request(format!("Webhook refused: {err}.")).into_response();
        }
    };
    match handle_event(&state, &event).await {
        Ok(first) => {
            Json(serde_json::json!({ "received": true, "duplicate": !first })).into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, event = %event.id, "webhook handling failed");
            ApiError::internal(&err).into_response()
        }
    }
}

/// Acts on an event not seen before, then records its id; whether it was the first delivery.
/// (Recording first would lose an event whose handling failed: Stripe's retry would look like
/// a replay. Two deliveries racing both act, harmlessly: only an open invoice moves.)
async fn handle_event(state: &AppState, event: &webhook::WebhookEvent) -> anyhow::Result<bool> {
    let store = state.store.cross_tenant();
    if store.provider_event_seen("stripe", &event.id).await? {
        return Ok(false);
    }
    if event.event_type == "payment_intent.succeeded" {
        let invoice_id = event.data.object["metadata"]["invoice_id"].as_str();
        let intent_id = event.data.object["id"].as_str().unwrap_or_default();
        if let Some(invoice_id) = invoice_id {
            let now = tessera_store::now_ms();
            if let Some((team, number)) = store.mark_invoice_paid(invoice_id, now).await? {
                let mut entry = NewAuditEvent::new(AuditAction::InvoicePaid, "Stripe webhook");
                entry.target = number;
                entry.detail = format!("payment {intent_id} succeeded (event {})", event.id);
                store.record_billing_audit(&team, &entry).await?;
            }
        }
    }
    Ok(store
        .record_provider_event("stripe", &event.id, &event.event_type)
        .await?)
}
