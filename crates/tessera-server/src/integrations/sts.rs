//! AWS STS, the two calls Tessera makes with the platform's own credentials: `AssumeRole`
//! into a customer's role with the team's external ID, and `GetCallerIdentity` for the
//! account customers must trust. Signed with object_store's SigV4 signer; object_store itself
//! only knows AssumeRoleWithWebIdentity.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::http::{header, Method, Request};
use object_store::{
    aws::{AwsAuthorizer, AwsCredential},
    client::HttpRequestBody,
    CredentialProvider,
};
use tokio::sync::Mutex;

use crate::config::PlatformAws;

/// How long an assumed session lasts (STS's default; role chaining caps it at one hour).
const SESSION_SECONDS: u64 = 3600;
/// Credentials are renewed this long before they expire, so a signed URL (at most 15
/// minutes) never outlives the session that signed it.
const RENEW_BEFORE: Duration = Duration::from_secs(20 * 60);

/// Why STS refused.
#[derive(Debug, Clone)]
pub enum StsError {
    /// STS said no (`AccessDenied`, `InvalidClientTokenId`, …): its code and message.
    Refused { code: String, message: String },
    /// STS could not be reached or answered something unreadable.
    Unavailable(String),
}

impl std::fmt::Display for StsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StsError::Refused { code, message } => write!(f, "STS refused ({code}): {message}"),
            StsError::Unavailable(detail) => write!(f, "STS unavailable: {detail}"),
        }
    }
}

impl std::error::Error for StsError {}

/// The platform's STS client.
#[derive(Clone)]
pub struct Sts {
    platform: PlatformAws,
    http: reqwest::Client,
}

impl std::fmt::Debug for Sts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sts")
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

/// Temporary credentials and when they expire.
#[derive(Debug, Clone)]
pub struct Session {
    pub credential: Arc<AwsCredential>,
    pub expires_at: SystemTime,
}

impl Sts {
    /// `http` reaches the operator's STS endpoint (configured by the operator, so not
    /// subject to the customer-URL guard).
    pub fn new(platform: PlatformAws, http: reqwest::Client) -> Self {
        Self { platform, http }
    }

    /// The platform's account id, which customers' trust policies name.
    pub async fn caller_account(&self) -> Result<String, StsError> {
        let body = self
            .call("Action=GetCallerIdentity&Version=2011-06-15".into())
            .await?;
        element(&body, "Account")
            .ok_or_else(|| StsError::Unavailable("GetCallerIdentity returned no account".into()))
    }

    /// Assumes `role_arn` with `external_id`, for `session_name` (the team id, so the
    /// customer's CloudTrail says which team read their bucket).
    pub async fn assume_role(
        &self,
        role_arn: &str,
        external_id: &str,
        session_name: &str,
    ) -> Result<Session, StsError> {
        let form = serde_urlencoded::to_string([
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name),
            ("ExternalId", external_id),
            ("DurationSeconds", &SESSION_SECONDS.to_string()),
        ])
        .map_err(|e| StsError::Unavailable(e.to_string()))?;
        let body = self.call(form).await?;
        let credential = AwsCredential {
            key_id: element(&body, "AccessKeyId").unwrap_or_default(),
            secret_key: element(&body, "SecretAccessKey").unwrap_or_default(),
            token: element(&body, "SessionToken"),
        };
        if credential.key_id.is_empty() || credential.secret_key.is_empty() {
            return Err(StsError::Unavailable(
                "AssumeRole returned no credentials".into(),
            ));
        }
        let expires_at = element(&body, "Expiration")
            .and_then(|raw| {
                time::OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(SystemTime::from)
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(SESSION_SECONDS));
        Ok(Session {
            credential: Arc::new(credential),
            expires_at,
        })
    }

    /// POSTs a signed STS query and returns the body of a 2xx answer.
    async fn call(&self, form: String) -> Result<String, StsError> {
        let url = self.platform.sts_url();
        let credential = AwsCredential {
            key_id: self.platform.access_key_id.clone(),
            secret_key: self.platform.secret_access_key.clone(),
            token: None,
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(HttpRequestBody::from(form.clone()))
            .map_err(|e| StsError::Unavailable(format!("bad STS endpoint {url}: {e}")))?;
        AwsAuthorizer::new(&credential, "sts", &self.platform.region).authorize(&mut request, None);
        let mut outgoing = self.http.post(&url).body(form);
        for (name, value) in request.headers() {
            outgoing = outgoing.header(name, value);
        }
        let response = outgoing
            .send()
            .await
            .map_err(|e| StsError::Unavailable(format!("{url}: {e}")))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| StsError::Unavailable(e.to_string()))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(StsError::Refused {
            code: element(&body, "Code").unwrap_or_else(|| status.to_string()),
            message: element(&body, "Message").unwrap_or_default(),
        })
    }
}

/// The text of the first `<name>…</name>` in an STS XML answer (the answers are flat and
/// small; the values are unescaped XML text).
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A customer role's credentials for object_store, assumed on first use and renewed before
/// they expire (one STS call per team role per ~40 minutes, not per request).
#[derive(Debug)]
pub struct AssumedRole {
    pub sts: Sts,
    pub role_arn: String,
    pub external_id: String,
    pub session_name: String,
    cached: Mutex<Option<Session>>,
}

impl AssumedRole {
    pub fn new(sts: Sts, role_arn: String, external_id: String, session_name: String) -> Self {
        Self {
            sts,
            role_arn,
            external_id,
            session_name,
            cached: Mutex::new(None),
        }
    }

    /// The current session, assuming the role if there is none or it is about to expire.
    pub async fn session(&self) -> Result<Session, StsError> {
        let mut cached = self.cached.lock().await;
        if let Some(session) = cached.as_ref() {
            if session.expires_at > SystemTime::now() + RENEW_BEFORE {
                return Ok(session.clone());
            }
        }
        let session = self
            .sts
            .assume_role(&self.role_arn, &self.external_id, &self.session_name)
            .await?;
        *cached = Some(session.clone());
        Ok(session)
    }
}

#[async_trait::async_trait]
impl CredentialProvider for AssumedRole {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        self.session()
            .await
            .map(|s| s.credential)
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sts_answers() {
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>\
                   <SecretAccessKey>s&amp;k</SecretAccessKey><SessionToken>tok</SessionToken>\
                   <Expiration>2026-12-03T16:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert_eq!(element(xml, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(element(xml, "SecretAccessKey").as_deref(), Some("s&k"));
        assert_eq!(element(xml, "Missing"), None);
        let error = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized</Message></Error></ErrorResponse>";
        assert_eq!(element(error, "Code").as_deref(), Some("AccessDenied"));
    }
}
