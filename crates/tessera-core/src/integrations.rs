//! Cloud storage integrations: which clouds a team can connect, how it proves access, the
//! shapes of the names it types (buckets, role ARNs, keys), where a task's attachment lives,
//! and what Verify tells a customer when access fails. No I/O: the server talks to the clouds.

use std::{fmt, str::FromStr};

use serde::Deserialize;
use serde_json::Value;

use crate::{clean_text, Invalid};

/// The most buckets (or containers) one integration may name.
pub const MAX_BUCKETS: usize = 50;
/// The most integrations one team may have.
pub const MAX_INTEGRATIONS: usize = 50;
/// The largest service-account key JSON accepted (Google's are about 2.3 KB).
pub const MAX_SERVICE_ACCOUNT_KEY_BYTES: usize = 16 * 1024;
/// How long a signed attachment URL stays valid: long enough to label a task, short enough
/// that a leaked link soon stops working.
pub const SIGNED_URL_SECONDS: u64 = 15 * 60;

/// A cloud a team can connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    AwsS3,
    Gcs,
    AzureBlob,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::AwsS3, Provider::Gcs, Provider::AzureBlob];

    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::AwsS3 => "aws_s3",
            Provider::Gcs => "gcs",
            Provider::AzureBlob => "azure_blob",
        }
    }

    /// The name people use.
    pub fn label(self) -> &'static str {
        match self {
            Provider::AwsS3 => "AWS S3",
            Provider::Gcs => "Google Cloud Storage",
            Provider::AzureBlob => "Azure Blob Storage",
        }
    }

    /// What the provider calls a bucket.
    pub fn bucket_word(self) -> &'static str {
        match self {
            Provider::AzureBlob => "container",
            _ => "bucket",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                Invalid(format!(
                    "\"{s}\" is not a storage provider: use aws_s3, gcs or azure_blob."
                ))
            })
    }
}

/// How Tessera proves it may read a team's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An IAM role in the customer's account that trusts the platform's account, assumed with
    /// the team's external ID (no long-lived secret leaves the customer).
    AwsRole,
    AwsAccessKey,
    GcsServiceAccount,
    AzureAccountKey,
    AzureServicePrincipal,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AwsRole => "aws_role",
            CredentialKind::AwsAccessKey => "aws_access_key",
            CredentialKind::GcsServiceAccount => "gcs_service_account",
            CredentialKind::AzureAccountKey => "azure_account_key",
            CredentialKind::AzureServicePrincipal => "azure_service_principal",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CredentialKind::AwsRole => "IAM role",
            CredentialKind::AwsAccessKey => "Access key",
            CredentialKind::GcsServiceAccount => "Service-account key",
            CredentialKind::AzureAccountKey => "Account key",
            CredentialKind::AzureServicePrincipal => "Service principal",
        }
    }

    pub fn provider(self) -> Provider {
        match self {
            CredentialKind::AwsRole | CredentialKind::AwsAccessKey => Provider::AwsS3,
            CredentialKind::GcsServiceAccount => Provider::Gcs,
            CredentialKind::AzureAccountKey | CredentialKind::AzureServicePrincipal => {
                Provider::AzureBlob
            }
        }
    }

    /// Whether a secret is stored (a role needs none: the platform's own keys assume it).
    pub fn has_secret(self) -> bool {
        self != CredentialKind::AwsRole
    }
}

impl FromStr for CredentialKind {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        use CredentialKind::*;
        [
            AwsRole,
            AwsAccessKey,
            GcsServiceAccount,
            AzureAccountKey,
            AzureServicePrincipal,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| Invalid(format!("\"{s}\" is not a credential kind.")))
    }
}

/// Where an attachment lives in a customer's cloud: `bucket` is the S3 or GCS bucket, or
/// `account/container` on Azure (a container name is unique only within its account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub provider: Provider,
    pub bucket: String,
    pub key: String,
}

impl Location {
    /// The bucket as the customer names it in messages (`container` on Azure, with its account).
    pub fn bucket_label(&self) -> String {
        match self.provider {
            Provider::AzureBlob => {
                let (account, container) = self.bucket.split_once('/').unwrap_or(("", ""));
                format!("container \"{container}\" of storage account \"{account}\"")
            }
            provider => format!("{} bucket \"{}\"", provider.label(), self.bucket),
        }
    }
}

/// Reads a storage URL: `s3://bucket/key`, `gs://bucket/key` or
/// `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB`. `None` for any other URL (an
/// ordinary public link or a `scaledata://` file); an error for a storage URL with a bad
/// bucket or no key.
pub fn parse_location(raw: &str) -> Option<Result<Location, Invalid>> {
    let raw = raw.trim();
    let (provider, rest) = if let Some(rest) = strip_prefix_ci(raw, "s3://") {
        (Provider::AwsS3, rest)
    } else if let Some(rest) = strip_prefix_ci(raw, "gs://") {
        (Provider::Gcs, rest)
    } else {
        return azure_blob_location(raw);
    };
    Some(split_bucket_key(provider, rest, raw))
}

fn strip_prefix_ci<'a>(raw: &'a str, prefix: &str) -> Option<&'a str> {
    raw.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        .then(|| &raw[prefix.len()..])
}

fn split_bucket_key(provider: Provider, rest: &str, raw: &str) -> Result<Location, Invalid> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    validate_bucket(provider, bucket)?;
    if key.is_empty() {
        return Err(Invalid(format!(
            "\"{raw}\" names a bucket but no object: write {}://{bucket}/path/to/file.",
            if provider == Provider::AwsS3 {
                "s3"
            } else {
                "gs"
            }
        )));
    }
    check_key(key, raw)?;
    Ok(Location {
        provider,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

fn check_key(key: &str, raw: &str) -> Result<(), Invalid> {
    if key.len() > 1024 || key.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "\"{raw}\": an object name is at most 1024 bytes, without control characters."
        )));
    }
    Ok(())
}

fn azure_blob_location(raw: &str) -> Option<Result<Location, Invalid>> {
    let url = url::Url::parse(raw).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let account = host.strip_suffix(".blob.core.windows.net")?.to_owned();
    Some((|| {
        validate_azure_account(&account)?;
        let path = url.path().trim_start_matches('/');
        let (container, blob) = path.split_once('/').unwrap_or((path, ""));
        validate_bucket(Provider::AzureBlob, container)?;
        if blob.is_empty() {
            return Err(Invalid(format!(
                "\"{raw}\" names a container but no blob: write https://{account}.blob.core.windows.net/{container}/path/to/file."
            )));
        }
        let blob = percent_decode(blob);
        check_key(&blob, raw)?;
        Ok(Location {
            provider: Provider::AzureBlob,
            bucket: format!("{account}/{container}"),
            key: blob,
        })
    })())
}

/// Decodes `%XX` escapes (a blob URL's path is percent-encoded; the blob's name is not).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(byte) = raw
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every attachment URL a task's params name: `attachment`, each of `attachments` (a URL, or
/// an object whose `content`, `attachment` or `url` is one), so the storage check covers them
/// all.
pub fn attachment_urls(params: &Value) -> Vec<&str> {
    let mut urls = Vec::new();
    if let Some(url) = params.get("attachment").and_then(Value::as_str) {
        urls.push(url);
    }
    if let Some(list) = params.get("attachments").and_then(Value::as_array) {
        for item in list {
            match item {
                Value::String(url) => urls.push(url.as_str()),
                Value::Object(fields) => {
                    for name in ["content", "attachment", "url"] {
                        if let Some(url) = fields.get(name).and_then(Value::as_str) {
                            urls.push(url);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    urls
}

/// Checks a bucket (S3, GCS) or container (Azure) name against the provider's naming rules,
/// so a typo is caught when it is typed, not when a labeler opens a task.
pub fn validate_bucket(provider: Provider, name: &str) -> Result<(), Invalid> {
    let word = provider.bucket_word();
    let (min, max, dots) = match provider {
        Provider::AwsS3 => (3, 63, true),
        Provider::Gcs => (3, 222, true),
        Provider::AzureBlob => (3, 63, false),
    };
    let ok_chars = name.chars().all(|c| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || (dots && c == '.')
            || (provider == Provider::Gcs && c == '_')
    });
    let ends_ok = name
        .chars()
        .next()
        .zip(name.chars().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    if name.len() < min
        || name.len() > max
        || !ok_chars
        || !ends_ok
        || name.contains("..")
        || (provider == Provider::AzureBlob && name.contains("--"))
    {
        return Err(Invalid(format!(
            "\"{}\" is not a valid {} {word} name: {min}–{max} lowercase letters, digits{}, starting and ending with a letter or digit.",
            truncate(name, 80),
            provider.label(),
            if dots { ", dots and hyphens" } else { " and single hyphens" },
        )));
    }
    Ok(())
}

/// A storage account name: 3–24 lowercase letters and digits.
pub fn validate_azure_account(name: &str) -> Result<(), Invalid> {
    let ok = (3..=24).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "\"{}\" is not a storage account name: 3–24 lowercase letters and digits.",
            truncate(name, 40)
        )))
    }
}

/// The buckets an integration names: trimmed, each valid, no repeats, at least one and at
/// most [`MAX_BUCKETS`]. On Azure they are containers of `account` and come back as
/// `account/container`.
pub fn clean_buckets(
    provider: Provider,
    account: Option<&str>,
    raw: &[String],
) -> Result<Vec<String>, Invalid> {
    let word = provider.bucket_word();
    let names: Vec<&str> = raw
        .iter()
        .flat_map(|entry| entry.split([',', '\n', ' ']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err(Invalid(format!(
            "Name at least one {word} this integration reads."
        )));
    }
    if names.len() > MAX_BUCKETS {
        return Err(Invalid(format!(
            "An integration names at most {MAX_BUCKETS} {word}s; add another integration for more."
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        validate_bucket(provider, name)?;
        let name = match (provider, account) {
            (Provider::AzureBlob, Some(account)) => format!("{account}/{name}"),
            _ => name.to_owned(),
        };
        if out.contains(&name) {
            return Err(Invalid(format!("The {word} \"{name}\" is listed twice.")));
        }
        out.push(name);
    }
    Ok(out)
}

/// An integration's name as typed: required, at most 80 characters.
pub fn clean_name(raw: &str) -> Result<String, Invalid> {
    clean_text("Name", raw, 80, true)
}

/// An IAM role ARN: `arn:aws:iam::123456789012:role/Name` (other partitions too).
pub fn validate_role_arn(raw: &str) -> Result<(), Invalid> {
    let bad = || {
        Invalid(format!(
            "\"{}\" is not an IAM role ARN: it looks like arn:aws:iam::123456789012:role/ScaleAI-Integration.",
            truncate(raw, 80)
        ))
    };
    let rest = raw.strip_prefix("arn:").ok_or_else(bad)?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, region, account, resource) = (
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
        parts.next().ok_or_else(bad)?,
    );
    let role_name = resource.strip_prefix("role/").ok_or_else(bad)?;
    let role_ok = !role_name.is_empty()
        && raw.len() <= 2048
        && role_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if !partition.starts_with("aws")
        || service != "iam"
        || !region.is_empty()
        || account.len() != 12
        || !account.chars().all(|c| c.is_ascii_digit())
        || !role_ok
    {
        return Err(bad());
    }
    Ok(())
}

/// An AWS region code such as `us-east-1` (an empty field means `us-east-1`).
pub fn clean_region(raw: &str) -> Result<String, Invalid> {
    let region = raw.trim();
    if region.is_empty() {
        return Ok("us-east-1".into());
    }
    let ok = region.len() <= 32
        && region.contains('-')
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(region.to_owned())
    } else {
        Err(Invalid(format!(
            "\"{}\" is not an AWS region: it looks like us-east-1 or eu-west-2.",
            truncate(region, 40)
        )))
    }
}

/// An AWS access key id (`AKIA…`, 16–128 letters and digits) and its secret.
pub fn validate_access_key(id: &str, secret: &str) -> Result<(), Invalid> {
    if !(16..=128).contains(&id.len()) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Invalid(
            "The access key ID is 16–128 letters and digits (it starts with AKIA).".into(),
        ));
    }
    if secret.is_empty() || secret.len() > 128 || secret.chars().any(char::is_whitespace) {
        return Err(Invalid(
            "The secret access key is required: up to 128 characters, no spaces.".into(),
        ));
    }
    Ok(())
}

/// The parts of a Google service-account key file Tessera uses (and keeps: anything else in
/// the file, such as a `gcs_base_url` that would redirect requests, is dropped).
#[derive(Clone, Deserialize, serde::Serialize)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub kind: String,
    pub client_email: String,
    pub private_key: String,
    /// Required (checked after the type, so a wrong kind of file is named as such).
    #[serde(default)]
    pub private_key_id: String,
    #[serde(default)]
    pub project_id: String,
}

impl ServiceAccountKey {
    /// The key as Tessera stores it: only the fields above.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

/// Reads a service-account key file as pasted or uploaded.
pub fn parse_service_account_key(raw: &str) -> Result<ServiceAccountKey, Invalid> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Invalid(
            "Paste the service account's JSON key (IAM → Service accounts → Keys → Add key → JSON).".into(),
        ));
    }
    if raw.len() > MAX_SERVICE_ACCOUNT_KEY_BYTES {
        return Err(Invalid(format!(
            "A service-account key is at most {} KB; this is not one.",
            MAX_SERVICE_ACCOUNT_KEY_BYTES / 1024
        )));
    }
    let key: ServiceAccountKey = serde_json::from_str(raw).map_err(|_| {
        Invalid("That is not a service-account key file: it must be the JSON Google gives you, with client_email, private_key_id and private_key.".into())
    })?;
    if key.kind != "service_account" {
        return Err(Invalid(format!(
            "That key's type is \"{}\"; Tessera needs a service-account key (\"type\": \"service_account\").",
            truncate(&key.kind, 40)
        )));
    }
    if !key.client_email.contains('@')
        || !key.private_key.contains("PRIVATE KEY")
        || key.private_key_id.is_empty()
    {
        return Err(Invalid(
            "That key has no client_email or private_key: download a new JSON key for the service account.".into(),
        ));
    }
    Ok(key)
}

/// An Azure storage account key: base64 (the portal's Access keys show 88 characters).
pub fn validate_azure_account_key(raw: &str) -> Result<(), Invalid> {
    let body = raw.trim_end_matches('=');
    let base64 = raw.len() >= 16
        && raw.len() <= 200
        && raw.len().is_multiple_of(4)
        && raw.len() - body.len() <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    if !base64 {
        return Err(Invalid(
            "The account key is the base64 text under Storage account → Access keys → key1.".into(),
        ));
    }
    Ok(())
}

/// An Azure AD tenant or client id: a GUID (a tenant may also be its domain).
pub fn validate_azure_id(field: &str, raw: &str, domain_ok: bool) -> Result<(), Invalid> {
    let guid = raw.len() == 36
        && raw.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let domain = domain_ok
        && raw.len() <= 253
        && raw.contains('.')
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if guid || domain {
        Ok(())
    } else {
        Err(Invalid(format!(
            "The {field} is a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47."
        )))
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// What went wrong reaching a bucket, in words a customer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessProblem {
    /// STS refused to assume the role: the trust policy or the external ID does not match.
    RoleNotAssumable { role_arn: String },
    /// The operator configured no AWS credentials, so no role can be assumed.
    PlatformAwsMissing,
    /// The credentials were refused (wrong key, deleted key, malformed service account).
    BadCredentials,
    /// The credentials work, but not on this bucket.
    AccessDenied { bucket: String },
    /// No such bucket or container.
    BucketMissing { bucket: String },
    /// The bucket answered from another region or the endpoint is not the bucket's.
    WrongRegionOrEndpoint { bucket: String },
    /// The bucket is readable but the object is not there.
    ObjectMissing { key: String },
    /// The endpoint could not be reached, or refused by the outbound guard.
    Unreachable { detail: String },
    /// Anything else the cloud said.
    Other { detail: String },
}

impl fmt::Display for AccessProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessProblem::RoleNotAssumable { role_arn } => write!(
                f,
                "Tessera could not assume the role {role_arn}. Check that its trust policy names the platform's AWS account as the principal and requires exactly this team's external ID (shown on this page), and that the role ARN is right."
            ),
            AccessProblem::PlatformAwsMissing => f.write_str(
                "This Tessera installation has no AWS credentials of its own, so it cannot assume roles. Use an access key, or ask the operator to set --aws-access-key-id and --aws-secret-access-key.",
            ),
            AccessProblem::BadCredentials => f.write_str(
                "The credentials were refused: the key is wrong, deleted or disabled. Create a new key and update the integration.",
            ),
            AccessProblem::AccessDenied { bucket } => write!(
                f,
                "Access denied on \"{bucket}\": the credentials are valid but may not list or read it. Grant list and read on the bucket (s3:ListBucket and s3:GetObject; Storage Object Viewer; Storage Blob Data Reader)."
            ),
            AccessProblem::BucketMissing { bucket } => write!(
                f,
                "\"{bucket}\" does not exist (or the name is misspelled)."
            ),
            AccessProblem::WrongRegionOrEndpoint { bucket } => write!(
                f,
                "\"{bucket}\" is not in the region or at the endpoint given: set the region the bucket was created in (or clear the custom endpoint)."
            ),
            AccessProblem::ObjectMissing { key } => {
                write!(f, "The object \"{key}\" is not in the bucket.")
            }
            AccessProblem::Unreachable { detail } => {
                write!(f, "The storage endpoint could not be reached: {detail}")
            }
            AccessProblem::Other { detail } => write!(f, "The storage service said: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn storage_urls_are_recognised() {
        let s3 = parse_location("s3://my-bucket/images/cat.png")
            .unwrap()
            .unwrap();
        assert_eq!(
            (s3.provider, s3.bucket.as_str(), s3.key.as_str()),
            (Provider::AwsS3, "my-bucket", "images/cat.png")
        );
        assert!(
            parse_location("日本語.png").is_none(),
            "no panic on a multi-byte start"
        );
        assert!(parse_location("s3:/é").is_none());
        let gs = parse_location("gs://b.example_1/a b.jpg").unwrap().unwrap();
        assert_eq!((gs.provider, gs.key.as_str()), (Provider::Gcs, "a b.jpg"));
        let az = parse_location("https://acct1.blob.core.windows.net/photos/dir/a%20b.png")
            .unwrap()
            .unwrap();
        assert_eq!(
            (az.provider, az.bucket.as_str(), az.key.as_str()),
            (Provider::AzureBlob, "acct1/photos", "dir/a b.png")
        );
        assert!(az
            .bucket_label()
            .contains("\"photos\" of storage account \"acct1\""));
        assert!(parse_location("https://example.com/a.png").is_none());
        assert!(parse_location("scaledata://team/file").is_none());
        assert!(parse_location("http://acct1.blob.core.windows.net/c/x").is_none());
        for bad in [
            "s3://Bad_Bucket/x",
            "s3://bucket",
            "s3://bucket/",
            "gs://a/",
            "s3://ab/x",
        ] {
            assert!(parse_location(bad).unwrap().is_err(), "{bad}");
        }
        assert!(parse_location("https://acct1.blob.core.windows.net/photos")
            .unwrap()
            .is_err());
    }

    #[test]
    fn attachment_urls_cover_every_field() {
        let params = json!({
            "attachment": "s3://a-bucket/x",
            "attachments": ["gs://g-bucket/y", {"type": "image", "content": "s3://c-bucket/z"}, 7],
        });
        assert_eq!(
            attachment_urls(&params),
            vec!["s3://a-bucket/x", "gs://g-bucket/y", "s3://c-bucket/z"]
        );
        assert!(attachment_urls(&json!({})).is_empty());
    }

    #[test]
    fn bucket_names_follow_the_clouds_rules() {
        assert!(validate_bucket(Provider::AwsS3, "my.bucket-1").is_ok());
        assert!(validate_bucket(Provider::AwsS3, "My-Bucket").is_err());
        assert!(validate_bucket(Provider::AwsS3, "-bucket").is_err());
        assert!(validate_bucket(Provider::AwsS3, &"a".repeat(64)).is_err());
        assert!(validate_bucket(Provider::Gcs, "under_score").is_ok());
        assert!(validate_bucket(Provider::AzureBlob, "photos-2024").is_ok());
        assert!(validate_bucket(Provider::AzureBlob, "pho--tos").is_err());
        assert!(validate_bucket(Provider::AzureBlob, "a.b").is_err());
    }

    #[test]
    fn bucket_lists_are_cleaned() {
        let list = clean_buckets(
            Provider::AwsS3,
            None,
            &["one-bucket, two-bucket".into(), " three-bucket ".into()],
        )
        .unwrap();
        assert_eq!(list, ["one-bucket", "two-bucket", "three-bucket"]);
        assert!(clean_buckets(Provider::AwsS3, None, &[]).is_err());
        assert!(clean_buckets(Provider::AwsS3, None, &["aaa, aaa".into()]).is_err());
        let many: Vec<String> = (0..51).map(|n| format!("bucket-{n}")).collect();
        assert!(clean_buckets(Provider::AwsS3, None, &many).is_err());
        let az = clean_buckets(Provider::AzureBlob, Some("acct"), &["photos".into()]).unwrap();
        assert_eq!(az, ["acct/photos"]);
    }

    #[test]
    fn credentials_are_checked_for_shape() {
        assert!(validate_role_arn("arn:aws:iam::123456789012:role/ScaleAI-Integration").is_ok());
        assert!(validate_role_arn("arn:aws:iam::123456789012:role/path/R").is_ok());
        assert!(validate_role_arn("arn:aws:iam::12345:role/R").is_err());
        assert!(validate_role_arn("arn:aws:iam::123456789012:user/R").is_err());
        assert!(validate_role_arn("arn:aws:s3:::bucket").is_err());
        assert!(validate_role_arn("nonsense").is_err());
        assert_eq!(clean_region("").unwrap(), "us-east-1");
        assert!(clean_region("eu-west-2").is_ok());
        assert!(clean_region("EU West").is_err());
        assert!(validate_access_key("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG").is_ok());
        assert!(validate_access_key("short", "x").is_err());
        assert!(validate_access_key("AKIAIOSFODNN7EXAMPLE", "").is_err());
        assert!(validate_azure_account_key(
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
        )
        .is_ok());
        assert!(validate_azure_account_key("not base64!").is_err());
        assert!(validate_azure_id("tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47", false).is_ok());
        assert!(validate_azure_id("tenant", "contoso.onmicrosoft.com", true).is_ok());
        assert!(validate_azure_id("client id", "contoso.onmicrosoft.com", false).is_err());
        assert!(validate_azure_account("devstoreaccount1").is_ok());
        assert!(validate_azure_account("Dev").is_err());
    }

    #[test]
    fn service_account_keys_are_read() {
        let good = json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n",
            "private_key_id": "k1", "project_id": "p",
            "gcs_base_url": "http://169.254.169.254", "disable_oauth": true});
        let key = parse_service_account_key(&good.to_string()).unwrap();
        assert_eq!(key.client_email, "sa@p.iam.gserviceaccount.com");
        let kept = key.to_json();
        assert!(
            !kept.contains("gcs_base_url") && !kept.contains("disable_oauth"),
            "{kept}"
        );
        assert!(
            !format!("{key:?}").contains("PRIVATE KEY"),
            "Debug hides the key"
        );
        let mut no_id = good.clone();
        no_id.as_object_mut().unwrap().remove("private_key_id");
        assert!(parse_service_account_key(&no_id.to_string()).is_err());
        assert!(parse_service_account_key("").is_err());
        assert!(parse_service_account_key("{not json").is_err());
        let user =
            json!({"type": "authorized_user", "client_email": "a@b", "private_key": "PRIVATE KEY"});
        assert!(parse_service_account_key(&user.to_string())
            .unwrap_err()
            .0
            .contains("authorized_user"));
        assert!(parse_service_account_key(&"x".repeat(20_000)).is_err());
    }

    #[test]
    fn providers_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
        }
        assert!("dropbox".parse::<Provider>().is_err());
    }
}
