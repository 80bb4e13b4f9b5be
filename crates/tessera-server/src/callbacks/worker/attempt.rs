//! One attempt of a claimed delivery: the body, the Standard Webhooks headers with the
//! team's secrets (or throwaway ones for a test send to a URL the team has not configured),
//! the POST through the outbound guard or the hand-over of an email target to the mail
//! outbox, and what the outcome means for the delivery (done, retry when, give up).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde_json::{json, Value};
use tessera_core::{status::SecretKind, Email, Mode};
use tessera_store::{
    now_ms, ClaimedDelivery, DeliveryAttempt, DeliveryKind, DeliveryOutcome, NextStep, SentRequest,
    Task,
};

use super::CallbackWorker;
use crate::{
    callbacks::signing,
    jobs,
    keys::service,
    mail::{self, MailBody},
    outbound,
    tasks::wire::task_json,
};

/// Bytes of a receiver's response read at most; the rest is not waited for.
pub const MAX_RESPONSE_READ: usize = 64 * 1024;
/// Bytes of the response kept for the dashboard.
const SNIPPET_BYTES: usize = 1024;
/// How long the worker reuses a team's callback secrets before reading them again (so a
/// rotation is in effect within this bound).
const SECRETS_TTL: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// What a callback is sent with: the auth key and every signing secret in force.
pub(super) struct TeamSecrets {
    auth: String,
    signing: Vec<String>,
}

impl TeamSecrets {
    /// Fresh random secrets for a test callback to a URL the team has not configured: "Send
    /// test callback" is open to Members, who must not obtain the real secrets through it.
    fn throwaway() -> Self {
        Self {
            auth: format!("throwaway_{}", crate::crypto::random_token()),
            signing: vec![signing::new_signing_secret()],
        }
    }
}

/// Marks a test callback sent with throwaway secrets (not the team's).
pub const TEST_SECRETS_HEADER: &str = "x-tessera-test-secrets";

/// Each (team, mode)'s secrets and when they were read.
pub(super) type SecretsCache = HashMap<(String, Mode), (Instant, Arc<TeamSecrets>)>;

/// How an attempt went on the wire.
struct Sent {
    status: u16,
    snippet: String,
    retry_after: Option<Duration>,
}

impl CallbackWorker {
    /// Makes one attempt and decides what comes next.
    pub(super) async fn attempt(&self, claimed: ClaimedDelivery) -> DeliveryOutcome {
        let delivery = &claimed.delivery;
        let at = now_ms();
        let started = Instant::now();
        let mut request = None;
        let result = self.send(&claimed, &mut request).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let failures = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
        // A test callback is tried once: "Send test callback" shows its outcome at once, and a
        // dead test URL must not be retried for a day.
        let retry = |retry_after| {
            if delivery.kind == DeliveryKind::Test {
                NextStep::GiveUp
            } else {
                self.retry(failures, retry_after)
            }
        };
        let (attempt, next) = match result {
            Ok(sent) if (200..300).contains(&sent.status) => (
                DeliveryAttempt {
                    at,
                    status_code: Some(i64::from(sent.status)),
                    latency_ms,
                    error: None,
                    response_snippet: Some(sent.snippet),
                    request,
                },
                NextStep::Succeeded,
            ),
            Ok(sent) => (
                DeliveryAttempt {
                    at,
                    status_code: Some(i64::from(sent.status)),
                    latency_ms,
                    error: Some(format!("the receiver answered {}", sent.status)),
                    response_snippet: Some(sent.snippet),
                    request,
                },
                retry(sent.retry_after),
            ),
            Err(error) => (
                DeliveryAttempt {
                    at,
                    status_code: None,
                    latency_ms,
                    error: Some(error),
                    response_snippet: None,
                    request,
                },
                retry(None),
            ),
        };
        match next {
            NextStep::Succeeded => {
                tracing::debug!(delivery_id = %delivery.id, latency_ms, "callback delivered")
            }
            NextStep::RetryAt(_) => tracing::info!(
                delivery_id = %delivery.id, attempt = failures,
                error = attempt.error.as_deref().unwrap_or_default(), "callback attempt failed; will retry"
            ),
            NextStep::GiveUp => tracing::warn!(
                delivery_id = %delivery.id, attempts = failures,
                error = attempt.error.as_deref().unwrap_or_default(), "callback failed; giving up"
            ),
        }
        DeliveryOutcome {
            delivery_id: delivery.id.clone(),
            claimed_until: delivery.next_attempt_at.unwrap_or_default(),
            task_id: delivery.task_id.clone(),
            attempt,
            next,
        }
    }

    /// The next step after failure number `failures`: the schedule's delay with ±20% jitter
    /// (so retries of many deliveries do not arrive together), at least what `Retry-After`
    /// asked for; giving up when the schedule is used up.
    fn retry(&self, failures: u32, retry_after: Option<Duration>) -> NextStep {
        let jitter = rand::thread_rng().gen_range(0.8..=1.2);
        let asked = retry_after.map(|asked| asked.min(MAX_RETRY_AFTER));
        match jobs::retry_at(
            &self.state.config.callback_retry,
            failures,
            Some(jitter),
            asked,
        ) {
            Some(at) => NextStep::RetryAt(at),
            None => NextStep::GiveUp,
        }
    }

    /// The JSON body of a delivery.
    fn body(claimed: &ClaimedDelivery) -> Result<Vec<u8>, String> {
        let delivery = &claimed.delivery;
        match (delivery.kind, &claimed.task, &delivery.payload) {
            (DeliveryKind::Task, Some(task), _) => {
                serde_json::to_vec(&task_payload(task)).map_err(|e| e.to_string())
            }
            (DeliveryKind::Task, None, _) => Err("the task no longer exists".into()),
            (_, _, Some(payload)) => Ok(payload.clone().into_bytes()),
            (_, _, None) => Err("the delivery has no body".into()),
        }
    }

    /// Sends one attempt; `request` is set to what went out (headers masked, the exact body)
    /// as soon as it is built, so a failed attempt records it too.
    async fn send(
        &self,
        claimed: &ClaimedDelivery,
        request: &mut Option<SentRequest>,
    ) -> Result<Sent, String> {
        let delivery = &claimed.delivery;
        let body = Self::body(claimed)?;
        if !delivery.target.contains("://") {
            *request = Some(SentRequest {
                headers: vec![("to".into(), delivery.target.clone())],
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            return self.send_email(claimed, &body).await;
        }
        let url = outbound::check_url(&delivery.target, self.state.config.allow_private_callbacks)?;
        let throwaway = delivery.kind == DeliveryKind::Test
            && !self
                .is_configured_url(&delivery.team_id, &delivery.target)
                .await?;
        let secrets = if throwaway {
            Arc::new(TeamSecrets::throwaway())
        } else {
            self.team_secrets(&delivery.team_id, delivery.mode)
                .await
                .map_err(|e| format!("the team's callback secrets cannot be read: {e:#}"))?
        };
        let timestamp = now_ms() / 1000;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let header = |v: &str| HeaderValue::from_str(v).map_err(|e| e.to_string());
        if throwaway {
            headers.insert(TEST_SECRETS_HEADER, HeaderValue::from_static("throwaway"));
        }
        headers.insert("scale-callback-auth", header(&secrets.auth)?);
        headers.insert("webhook-id", header(delivery.id.as_str())?);
        headers.insert("webhook-timestamp", header(&timestamp.to_string())?);
        headers.insert(
            "webhook-signature",
            header(&signing::signature_header(
                &secrets.signing,
                delivery.id.as_str(),
                timestamp,
                &body,
            ))?,
        );
        *request = Some(SentRequest {
            headers: masked_headers(&headers),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let mut response = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(describe_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut read = Vec::new();
        while read.len() < MAX_RESPONSE_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                // A body that stalls or breaks does not undo the status already received.
                Ok(None) | Err(_) => break,
            }
        }
        read.truncate(SNIPPET_BYTES);
        Ok(Sent {
            status,
            snippet: String::from_utf8_lossy(&read).into_owned(),
            retry_after,
        })
    }

    /// An email address as callback target: the same JSON goes out through the mail outbox
    /// (which retries on its own schedule); handing it over counts as delivered.
    async fn send_email(&self, claimed: &ClaimedDelivery, body: &[u8]) -> Result<Sent, String> {
        let delivery = &claimed.delivery;
        let to = Email::parse(&delivery.target).map_err(|e| e.0)?;
        // Checked again when sent: an address removed (or a member gone) since the task was
        // created gets nothing, retries and redeliveries included.
        let allowed = self
            .state
            .store
            .cross_tenant()
            .callback_email_allowed(&delivery.team_id, &to)
            .await
            .map_err(|e| format!("the team's callback addresses cannot be read: {e}"))?;
        if !allowed {
            return Err(format!(
                "{to} is no longer a callback address of the team (removed on Callback email addresses, or no longer a member); nothing was sent"
            ));
        }
        let pretty = serde_json::from_slice::<Value>(body)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .map_err(|e| e.to_string())?;
        let subject = match &claimed.task {
            Some(task) => format!("Tessera callback: task {} is {}", task.id, task.status),
            None => "Tessera callback".to_owned(),
        };
        let html = format!(
            "<!doctype html><html><body><pre>{}</pre></body></html>",
            pretty
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        );
        let mail = mail::sealed(
            &self.state,
            Some(&delivery.team_id),
            &to,
            subject,
            &MailBody { text: pretty, html },
        );
        self.state
            .store
            .enqueue_mail(&mail)
            .await
            .map_err(|e| format!("queueing the email failed: {e}"))?;
        self.state.wake(crate::state::Wrote::Mail);
        Ok(Sent {
            status: 200,
            snippet: "queued as email".into(),
            retry_after: None,
        })
    }

    /// Whether `target` is the team's configured default callback URL (set by a Manager):
    /// only there may a test callback carry the team's real secrets.
    async fn is_configured_url(&self, team_id: &str, target: &str) -> Result<bool, String> {
        let team = self
            .state
            .store
            .cross_tenant()
            .get_team(team_id)
            .await
            .map_err(|e| format!("the team cannot be read: {e}"))?;
        Ok(team.default_callback_url.as_deref() == Some(target))
    }

    /// The team's callback secrets for `mode`, from a short-lived cache.
    async fn team_secrets(&self, team_id: &str, mode: Mode) -> anyhow::Result<Arc<TeamSecrets>> {
        let key = (team_id.to_owned(), mode);
        if let Some((at, secrets)) = self.secrets.lock().expect("not poisoned").get(&key) {
            if at.elapsed() < SECRETS_TTL {
                return Ok(secrets.clone());
            }
        }
        let master = &self.state.config.master_key;
        let store = &self.state.store.cross_tenant();
        let auth =
            service::worker_team_secret(store, master, team_id, SecretKind::CallbackAuth, mode)
                .await?;
        let signing =
            service::worker_team_secret(store, master, team_id, SecretKind::CallbackSigning, mode)
                .await?;
        let reveal =
            |kind, sealed| service::reveal_team_secret(master, team_id, kind, mode, sealed);
        let mut signing_secrets = vec![reveal(SecretKind::CallbackSigning, &signing.sealed)?];
        if let (Some(previous), Some(until)) = (&signing.previous_sealed, signing.previous_until) {
            if until > now_ms() {
                signing_secrets.push(reveal(SecretKind::CallbackSigning, previous)?);
            }
        }
        let secrets = Arc::new(TeamSecrets {
            auth: reveal(SecretKind::CallbackAuth, &auth.sealed)?,
            signing: signing_secrets,
        });
        let mut cache = self.secrets.lock().expect("not poisoned");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), secrets.clone()));
        Ok(secrets)
    }
}

/// Headers whose values are secrets, shown masked on the dashboard.
const SECRET_HEADERS: [&str; 2] = ["scale-callback-auth", "webhook-signature"];

/// The first 4 characters of a secret and "…": enough to tell keys apart, useless to forge.
fn mask(secret: &str) -> String {
    let head: String = secret.chars().take(4).collect();
    format!("{head}…")
}

/// The request headers as the dashboard shows them: secrets masked (each signature of
/// `webhook-signature` after its `v1,` version tag).
fn masked_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default();
            let shown = match name.as_str() {
                "webhook-signature" => value
                    .split(' ')
                    .map(|sig| match sig.split_once(',') {
                        Some((version, sig)) => format!("{version},{}", mask(sig)),
                        None => mask(sig),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                n if SECRET_HEADERS.contains(&n) => mask(value),
                _ => value.to_owned(),
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

/// The body of a task callback (scale-api.md §7.1), built from the task as it is now.
pub fn task_payload(task: &Task) -> Value {
    json!({
        "task": task_json(task, false),
        "response": task.response.clone().unwrap_or(Value::Null),
        "task_id": task.id,
    })
}

/// A transport error in words for the dashboard (never with the URL's query string).
fn describe_error(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(raw: &str) -> Option<Duration> {
    if let Ok(seconds) = raw.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(raw.trim()).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let later = std::time::SystemTime::now() + Duration::from_secs(600);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(590) && parsed <= Duration::from_secs(600));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn secrets_are_masked_in_recorded_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("scale-callback-auth", HeaderValue::from_static("abcdefgh"));
        headers.insert(
            "webhook-signature",
            HeaderValue::from_static("v1,SECRETSIG1 v1,OTHERSIG2"),
        );
        headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
        let shown: HashMap<_, _> = masked_headers(&headers).into_iter().collect();
        assert_eq!(shown["scale-callback-auth"], "abcd…");
        assert_eq!(shown["webhook-signature"], "v1,SECR… v1,OTHE…");
        assert_eq!(shown["webhook-id"], "msg_1");
    }
}
