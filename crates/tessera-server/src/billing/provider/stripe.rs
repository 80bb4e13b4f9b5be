//! [`PaymentProvider`] over Stripe's HTTP API: form-encoded requests, Bearer auth, and only
//! parameters Stripe documents (and `localstripe`, which the tests run, accepts).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::{
    CardOnFile, ChargeOutcome, ChargeRequest, PaymentProvider, ProviderError, ProviderFuture,
    SetupSession,
};

/// Time allowed for one call to the provider.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Stripe, at `api_base` (`https://api.stripe.com` in production, a `localstripe` in tests).
pub struct StripeProvider {
    http: reqwest::Client,
    api_base: Url,
    secret_key: String,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider")
            .field("api_base", &self.api_base.as_str())
            .finish_non_exhaustive()
    }
}

/// Stripe's error body: `{"error": {"type", "code", "message", "payment_intent": {...}}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ApiError,
}

#[derive(Deserialize, Default)]
struct ApiError {
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    payment_intent: Option<Object>,
}

#[derive(Deserialize)]
struct Object {
    id: String,
}

#[derive(Deserialize)]
struct SetupIntent {
    id: String,
    client_secret: Option<String>,
    customer: Option<String>,
    status: String,
    payment_method: Option<String>,
}

#[derive(Deserialize)]
struct PaymentMethod {
    id: String,
    customer: Option<String>,
    card: Option<Card>,
}

#[derive(Deserialize)]
struct Card {
    brand: String,
    last4: String,
    exp_month: i64,
    exp_year: i64,
}

#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    last_payment_error: Option<ApiError>,
}

impl StripeProvider {
    /// A client for the API at `api_base` with the account's secret key.
    pub fn new(api_base: Url, secret_key: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            api_base,
            secret_key,
        })
    }

    /// `api_base` + `/v1/` + the segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| ProviderError::rejected("the Stripe API base cannot have a path"))?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        Ok(url)
    }

    /// One call: the parsed body on 2xx, the error body otherwise (with its status).
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        segments: &[&str],
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<Result<T, (StatusCode, ApiError)>, ProviderError> {
        let url = self.url(segments)?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.secret_key);
        if method != Method::GET {
            let body = serde_urlencoded::to_string(form)
                .map_err(|e| ProviderError::rejected(format!("encoding the request: {e}")))?;
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::transient(format!("Stripe unreachable: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProviderError::transient(format!("reading Stripe's answer: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map(Ok).map_err(|e| {
                ProviderError::transient(format!("unexpected answer from Stripe: {e}"))
            });
        }
        let error = serde_json::from_slice::<ErrorBody>(&bytes)
            .unwrap_or_default()
            .error;
        Ok(Err((status, error)))
    }

    /// A non-2xx answer as an error: retry later on 429 and 5xx, otherwise refused.
    fn failure((status, error): (StatusCode, ApiError)) -> ProviderError {
        let message = format!(
            "Stripe answered {}: {}",
            status.as_u16(),
            error.message.as_deref().unwrap_or("no message")
        );
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            ProviderError::transient(message)
        } else {
            ProviderError::rejected(message)
        }
    }

    async fn payment_method(&self, id: &str) -> Result<PaymentMethod, ProviderError> {
        self.call(Method::GET, &["payment_methods", id], &[], None)
            .await?
            .map_err(Self::failure)
    }
}

impl PaymentProvider for StripeProvider {
    fn create_customer<'a>(
        &'a self,
        team_id: &'a str,
        team_name: &'a str,
    ) -> ProviderFuture<'a, String> {
        Box::pin(async move {
            let customer: Object = self
                .call(
                    Method::POST,
                    &["customers"],
                    &[("name", team_name), ("metadata[team_id]", team_id)],
                    None,
                )
                .await?
                .map_err(Self::failure)?;
            Ok(customer.id)
        })
    }

    fn create_setup_intent<'a>(&'a self, customer_id: &'a str) -> ProviderFuture<'a, SetupSession> {
        Box::pin(async move {
            let intent: SetupIntent = self
                .call(
                    Method::POST,
                    &["setup_intents"],
                    &[
                        ("customer", customer_id),
                        ("usage", "off_session"),
                        ("payment_method_types[]", "card"),
                    ],
                    None,
                )
                .await?
                .map_err(Self::failure)?;
            let client_secret = intent
                .client_secret
                .ok_or_else(|| ProviderError::transient("Stripe sent no client secret"))?;
            Ok(SetupSession {
                setup_intent_id: intent.id,
                client_secret,
            })
        })
    }

    fn confirmed_card<'a>(
        &'a self,
        customer_id: &'a str,
        setup_intent_id: &'a str,
    ) -> ProviderFuture<'a, Option<CardOnFile>> {
        Box::pin(async move {
            let intent: SetupIntent = self
                .call(Method::GET, &["setup_intents", setup_intent_id], &[], None)
                .await?
                .map_err(Self::failure)?;
            if intent.customer.as_deref() != Some(customer_id) {
                return Err(ProviderError::rejected(
                    "that card setup belongs to another customer",
                ));
            }
            let Some(pm_id) = intent
                .payment_method
                .filter(|_| intent.status == "succeeded")
            else {
                return Ok(None);
            };
            let mut method = self.payment_method(&pm_id).await?;
            match method.customer.as_deref() {
                Some(owner) if owner != customer_id => {
                    return Err(ProviderError::rejected(
                        "that card belongs to another customer",
                    ))
                }
                Some(_) => {}
                // Stripe attaches on confirmation; attach here where it did not (localstripe).
                None => {
                    method = self
                        .call(
                            Method::POST,
                            &["payment_methods", &pm_id, "attach"],
                            &[("customer", customer_id)],
                            None,
                        )
                        .await?
                        .map_err(Self::failure)?;
                }
            }
            let card = method
                .card
                .ok_or_else(|| ProviderError::rejected("the saved payment method is not a card"))?;
            Ok(Some(CardOnFile {
                payment_method_id: method.id,
                brand: card.brand,
                last4: card.last4,
                exp_month: card.exp_month,
                exp_year: card.exp_year,
            }))
        })
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest<'a>) -> ProviderFuture<'a, ChargeOutcome> {
        Box::pin(async move {
            let amount = request.amount.to_string();
            let answer = self
                .call::<PaymentIntent>(
                    Method::POST,
                    &["payment_intents"],
                    &[
                        ("amount", &amount),
                        ("currency", request.currency),
                        ("customer", request.customer_id),
                        ("payment_method", request.payment_method_id),
                        ("confirm", "true"),
                        ("off_session", "true"),
                        ("metadata[invoice_id]", request.invoice_id),
                        ("metadata[invoice_number]", request.invoice_number),
                    ],
                    Some(request.idempotency_key),
                )
                .await?;
            match answer {
                Ok(intent) if intent.status == "succeeded" => Ok(ChargeOutcome::Succeeded {
                    intent_id: intent.id,
                }),
                Ok(intent) => {
                    let error = intent.last_payment_error.unwrap_or_default();
                    Ok(ChargeOutcome::Declined {
                        code: error
                            .decline_code
                            .or(error.code)
                            .unwrap_or_else(|| intent.status.clone()),
                        message: error.message.unwrap_or_else(|| {
                            format!("the payment needs the cardholder ({})", intent.status)
                        }),
                        intent_id: Some(intent.id),
                    })
                }
                Err((StatusCode::PAYMENT_REQUIRED, error)) => Ok(ChargeOutcome::Declined {
                    intent_id: error.payment_intent.map(|pi| pi.id),
                    code: error
                        .decline_code
                        .or(error.code)
                        .unwrap_or_else(|| "card_declined".into()),
                    message: error
                        .message
                        .unwrap_or_else(|| "The card was declined.".into()),
                }),
                Err(failure) => Err(Self::failure(failure)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_their_segments() {
        let stripe =
            StripeProvider::new("http://127.0.0.1:9/".parse().unwrap(), "sk_test".into()).unwrap();
        assert_eq!(
            stripe
                .url(&["setup_intents", "seti_1/../x?y"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v1/setup_intents/seti_1%2F..%2Fx%3Fy"
        );
        let debug = format!("{stripe:?}");
        assert!(!debug.contains("sk_test"), "{debug}");
    }

    #[test]
    fn failures_say_whether_to_retry() {
        let transient = StripeProvider::failure((StatusCode::BAD_GATEWAY, ApiError::default()));
        assert_eq!(transient.kind, super::super::ProviderErrorKind::Transient);
        let rejected = StripeProvider::failure((
            StatusCode::BAD_REQUEST,
            ApiError {
                message: Some("No such customer".into()),
                ..ApiError::default()
            },
        ));
        assert_eq!(rejected.kind, super::super::ProviderErrorKind::Rejected);
        assert!(rejected.message.contains("No such customer"));
    }
}
