//! What a storage or STS error means for the customer: the one place object_store's and
//! STS's wording is mapped to an [`AccessProblem`] Verify and the pages show.

use tessera_core::integrations::{AccessProblem, Provider};

use super::sts::StsError;

/// What an object_store error means for the customer.
pub fn diagnose(
    provider: Provider,
    bucket: &str,
    key: Option<&str>,
    error: &object_store::Error,
) -> AccessProblem {
    let mut text = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(sts) = e.downcast_ref::<StsError>() {
            return sts_problem(sts, None);
        }
        text.push_str(" | ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let bucket = bucket_label(provider, bucket);
    if has(&["STS refused"]) {
        return AccessProblem::RoleNotAssumable {
            role_arn: String::new(),
        };
    }
    if has(&[
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthenticationFailed",
        "InvalidClientTokenId",
        "invalid_grant",
        "ExpiredToken",
        "InvalidAuthenticationInfo",
        "401 Unauthorized",
    ]) {
        return AccessProblem::BadCredentials;
    }
    if has(&[
        "NoSuchBucket",
        "ContainerNotFound",
        "The specified bucket does not exist",
        "bucket does not exist",
    ]) {
        return AccessProblem::BucketMissing { bucket };
    }
    if has(&[
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraint",
        "incorrectly configured region",
        "301 Moved Permanently",
    ]) {
        return AccessProblem::WrongRegionOrEndpoint { bucket };
    }
    if has(&[
        "AccessDenied",
        "AuthorizationPermissionMismatch",
        "AuthorizationFailure",
        "403 Forbidden",
    ]) {
        return AccessProblem::AccessDenied { bucket };
    }
    if let (Some(key), object_store::Error::NotFound { .. }) = (key, error) {
        return AccessProblem::ObjectMissing {
            key: key.to_owned(),
        };
    }
    if matches!(error, object_store::Error::NotFound { .. }) {
        return AccessProblem::BucketMissing { bucket };
    }
    if has(&[
        "error sending request",
        "non-public",
        "dns error",
        "Connection refused",
        "timed out",
        "connect",
    ]) {
        return AccessProblem::Unreachable {
            detail: short(&text),
        };
    }
    AccessProblem::Other {
        detail: short(&text),
    }
}

/// What an STS refusal means (`role_arn`: the role, when known).
pub fn sts_problem(error: &StsError, role_arn: Option<&str>) -> AccessProblem {
    match error {
        StsError::Refused { .. } => AccessProblem::RoleNotAssumable {
            role_arn: role_arn.unwrap_or("(the integration's role)").to_owned(),
        },
        StsError::Unavailable(detail) => AccessProblem::Unreachable {
            detail: short(detail),
        },
    }
}

fn bucket_label(provider: Provider, bucket: &str) -> String {
    match provider {
        Provider::AzureBlob => bucket.split_once('/').map_or(bucket, |(_, c)| c).to_owned(),
        _ => bucket.to_owned(),
    }
}

/// An error's text cut to a length a page can show.
fn short(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}
