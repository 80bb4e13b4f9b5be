//! Verifying Stripe's webhook signatures: `Stripe-Signature: t=<unix seconds>,v1=<hex>`, where
//! `v1` is HMAC-SHA256 under the endpoint's secret over `"{t}.{raw body}"`. Several `v1`
//! values may be sent (while a secret rolls); any one matching is enough. Old timestamps are
//! refused so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far a signature's timestamp may be from now (Stripe's libraries default to 300 s).
pub const TOLERANCE_SECS: i64 = 300;

/// A verified event: its id (handled once), type, and the object it is about.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: EventData,
}

/// The event's `data`.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(String),
}

/// Checks `header` against `body` under `secret` at `now_secs`, then parses the event.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<WebhookEvent, WebhookError> {
    let header = header.ok_or(WebhookError::Malformed)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => {
                if let Ok(bytes) = hex::decode(sig) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
    if signatures.is_empty() {
        return Err(WebhookError::Malformed);
    }
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale);
    }
    let signed = |mac: &mut Hmac<Sha256>| {
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
    };
    let matches = signatures.iter().any(|sig| {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
        signed(&mut mac);
        // `verify_slice` compares in constant time.
        mac.verify_slice(sig).is_ok()
    });
    if !matches {
        return Err(WebhookError::Mismatch);
    }
    serde_json::from_slice(body).map_err(|e| WebhookError::NotAnEvent(e.to_string()))
}

/// A `Stripe-Signature` header for `body` at `timestamp` (what Stripe sends; tests sign with it).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;

    #[test]
    fn a_signed_event_verifies() {
        let header = sign("whsec_x", 1_000, BODY);
        let event = verify("whsec_x", Some(&header), BODY, 1_100).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.event_type, "payment_intent.succeeded");
        assert_eq!(event.data.object["id"], "pi_1");
        // A rolled secret: one of several signatures matches.
        let rolled = format!("t=1000,v1={},{}", "00".repeat(32), &header[7..]);
        assert!(verify("whsec_x", Some(&rolled), BODY, 1_000).is_ok());
    }

    #[test]
    fn bad_signatures_are_refused() {
        let header = sign("whsec_x", 1_000, BODY);
        assert_eq!(
            verify("whsec_y", Some(&header), BODY, 1_000).unwrap_err(),
            WebhookError::Mismatch
        );
        let tampered = br#"{"id":"evt_2","type":"payment_intent.succeeded","data":{"object":{}}}"#;
        assert_eq!(
            verify("whsec_x", Some(&header), tampered, 1_000).unwrap_err(),
            WebhookError::Mismatch
        );
        assert_eq!(
            verify("whsec_x", Some(&header), BODY, 1_000 + TOLERANCE_SECS + 1).unwrap_err(),
            WebhookError::Stale
        );
        for malformed in ["", "t=1000", "v1=abcd", "t=x,v1=abcd", "garbage"] {
            assert_eq!(
                verify("whsec_x", Some(malformed), BODY, 1_000).unwrap_err(),
                WebhookError::Malformed,
                "{malformed}"
            );
        }
        assert_eq!(
            verify("whsec_x", None, BODY, 1_000).unwrap_err(),
            WebhookError::Malformed
        );
        let not_json = sign("whsec_x", 1_000, b"nope");
        assert!(matches!(
            verify("whsec_x", Some(&not_json), b"nope", 1_000),
            Err(WebhookError::NotAnEvent(_))
        ));
    }
}
