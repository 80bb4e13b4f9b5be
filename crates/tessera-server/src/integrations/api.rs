//! `/v1/integrations`: connect, list, read, verify and remove cloud storage integrations, and
//! the team's AWS external ID (an extension: Scale configures these in its dashboard only).
//! Secrets are write-only: no answer contains one.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Serialize;
use serde_json::{Map, Value};
use tessera_core::{ids::IntegrationId, AuditAction};
use tessera_store::StorageIntegration;
use utoipa::ToSchema;

use super::{
    clients::IntegrationSettings,
    service::{self, Connect, ConnectError},
};
use crate::{
    api::{
        wire::{iso, ApiError, ApiResult, JsonBody},
        ErrorBody,
    },
    audit,
    authz::{perm, Authorized},
    state::AppState,
    web::ClientIp,
};

/// An integration as the API shows it: everything but the secret.
#[derive(Serialize, ToSchema)]
pub struct IntegrationBody {
    id: String,
    /// `aws_s3`, `gcs` or `azure_blob`.
    provider: &'static str,
    /// `aws_role`, `aws_access_key`, `gcs_service_account`, `azure_account_key` or
    /// `azure_service_principal`.
    credential: &'static str,
    name: String,
    /// As attachment URLs name them (Azure: the containers of `account`).
    buckets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// A digest of the stored secret (to tell keys apart), never the secret.
    secret_fingerprint: Option<String>,
    created_by: String,
    created_at: String,
    /// The last Verify: null until the first.
    last_verification: Option<VerifyBody>,
}

/// The result of a Verify.
#[derive(Serialize, ToSchema)]
pub struct VerifyBody {
    ok: bool,
    /// What is wrong, in words to act on; null when it worked.
    error: Option<String>,
    checked_at: String,
}

/// What a team's IAM role must trust.
#[derive(Serialize, ToSchema)]
pub struct AwsBody {
    /// The `sts:ExternalId` the role's trust policy must require.
    external_id: String,
    /// The platform's AWS account id the trust policy names (null: this installation has no
    /// AWS credentials, so roles cannot be assumed).
    platform_account: Option<String>,
}

/// The list of integrations.
#[derive(Serialize, ToSchema)]
pub struct IntegrationList {
    docs: Vec<IntegrationBody>,
}

fn body(i: &StorageIntegration) -> IntegrationBody {
    let s = IntegrationSettings::of(i);
    let buckets = i
        .buckets
        .iter()
        .map(|b| b.split_once('/').map_or(b.as_str(), |(_, c)| c).to_owned())
        .collect();
    IntegrationBody {
        id: i.id.to_string(),
        provider: i.provider.as_str(),
        credential: i.kind.as_str(),
        name: i.name.clone(),
        buckets,
        role_arn: s.role_arn,
        access_key_id: s.access_key_id,
        region: s.region,
        endpoint: s.endpoint,
        account: s.account,
        client_email: s.client_email,
        tenant_id: s.tenant_id,
        client_id: s.client_id,
        secret_fingerprint: i.secret_fingerprint.clone(),
        created_by: i.created_by.clone(),
        created_at: iso(i.created_at),
        last_verification: i.verified_at.map(|at| VerifyBody {
            ok: i.verified_ok == Some(true),
            error: i.verify_error.clone(),
            checked_at: iso(at),
        }),
    }
}

fn parse_id(raw: &str) -> ApiResult<IntegrationId> {
    IntegrationId::parse(raw).map_err(|_| ApiError::not_found("No such integration."))
}

/// Reads one string field (absent or null: empty), refusing other types and long values.
fn text(body: &Map<String, Value>, key: &str, max: usize) -> ApiResult<String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.len() <= max => Ok(s.clone()),
        Some(Value::String(_)) => Err(ApiError::bad_request(format!(
            "{key} must be at most {max} characters."
        ))),
        Some(Value::Object(_)) if key == "service_account_key" => Ok(body[key].to_string()),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string."))),
    }
}

/// The request body as [`Connect`].
fn connect_input(body: &Map<String, Value>) -> ApiResult<Connect> {
    let buckets = match body.get("buckets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 200 => items
            .iter()
            .map(|v| match v {
                Value::String(s) if s.len() <= 300 => Ok(s.clone()),
                _ => Err(ApiError::bad_request(
                    "buckets must be a list of bucket (or container) names.",
                )),
            })
            .collect::<ApiResult<_>>()?,
        Some(Value::String(one)) if one.len() <= 10_000 => vec![one.clone()],
        Some(_) => {
            return Err(ApiError::bad_request(
                "buckets must be a list of bucket (or container) names.",
            ))
        }
    };
    let path_style = match body.get("path_style") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::bad_request("path_style must be true or false.")),
    };
    Ok(Connect {
        provider: text(body, "provider", 40)?,
        name: text(body, "name", 200)?,
        buckets,
        role_arn: text(body, "role_arn", 2048)?,
        access_key_id: text(body, "access_key_id", 200)?,
        secret_access_key: text(body, "secret_access_key", 200)?,
        region: text(body, "region", 60)?,
        endpoint: text(body, "endpoint", 600)?,
        path_style,
        service_account_key: text(body, "service_account_key", 20_000)?,
        account: text(body, "account", 60)?,
        account_key: text(body, "account_key", 300)?,
        tenant_id: text(body, "tenant_id", 300)?,
        client_id: text(body, "client_id", 100)?,
        client_secret: text(body, "client_secret", 300)?,
    })
}

#[utoipa::path(
    get, path = "/v1/integrations", tag = "integrations",
    responses((status = 200, body = IntegrationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
)]
pub async fn list(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ManageIntegrations>,
) -> ApiResult<Json<IntegrationList>> {
    let all = state.store.integrations(&scope).await?;
    Ok(Json(IntegrationList {
        docs: all.iter().map(body).collect(),
    }))
}

#[utoipa::path(
    post, path = "/v1/integrations", tag = "integrations",
    responses((status = 201, body = IntegrationBody), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
pub async fn create(
    State(state): State<AppState>,
    ip: ClientIp,
    Authorized { caller, scope, .. }: Authorized<perm::ManageIntegrations>,
    json: JsonBody,
) -> ApiResult<(StatusCode, Json<IntegrationBody>)> {
    let input = connect_input(&json.object()?)?;
    let event = audit::event(
        &caller,
        &ip,
        AuditAction::IntegrationAdded,
        "",
        String::new(),
    );
    match service::connect(&state, &scope, &input, &caller.label(), event).await {
        Ok(added) => Ok((StatusCode::CREATED, Json(body(&added)))),
        Err(ConnectError::Invalid(message)) => Err(ApiError::bad_request(message)),
        Err(ConnectError::Conflict(message)) => Err(ApiError::conflict(message)),
        Err(ConnectError::Store(e)) => Err(e.into()),
    }
}

#[utoipa::path(
    get, path = "/v1/integrations/aws", tag = "integrations",
    responses((status = 200, body = AwsBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
)]
pub async fn aws(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ManageIntegrations>,
) -> ApiResult<Json<AwsBody>> {
    let settings = service::settings(&state, &scope).await?;
    Ok(Json(AwsBody {
        external_id: settings.aws_external_id,
        platform_account: service::platform_account(&state).await,
    }))
}

#[utoipa::path(
    get, path = "/v1/integrations/{id}", tag = "integrations",
    responses((status = 200, body = IntegrationBody), (status = 404, body = ErrorBody)),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ManageIntegrations>,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationBody>> {
    let id = parse_id(&id)?;
    let found = state
        .store
        .integration(&scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such integration."))?;
    Ok(Json(body(&found)))
}

#[utoipa::path(
    post, path = "/v1/integrations/{id}/verify", tag = "integrations",
    responses((status = 200, body = VerifyBody), (status = 404, body = ErrorBody)),
)]
pub async fn verify(
    State(state): State<AppState>,
    ip: ClientIp,
    Authorized { caller, scope, .. }: Authorized<perm::ManageIntegrations>,
    Path(id): Path<String>,
) -> ApiResult<Json<VerifyBody>> {
    let id = parse_id(&id)?;
    let event = audit::event(
        &caller,
        &ip,
        AuditAction::IntegrationVerified,
        "",
        String::new(),
    );
    let verified = service::verify(&state, &scope, &id, event)
        .await?
        .ok_or_else(|| ApiError::not_found("No such integration."))?;
    Ok(Json(VerifyBody {
        ok: verified.error.is_none(),
        error: verified.error,
        checked_at: iso(verified.checked_at),
    }))
}

#[utoipa::path(
    delete, path = "/v1/integrations/{id}", tag = "integrations",
    responses((status = 200, description = "Removed"), (status = 404, body = ErrorBody)),
)]
pub async fn remove(
    State(state): State<AppState>,
    ip: ClientIp,
    Authorized { caller, scope, .. }: Authorized<perm::ManageIntegrations>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let event = audit::event(
        &caller,
        &ip,
        AuditAction::IntegrationRemoved,
        "",
        String::new(),
    );
    if !service::remove(&state, &scope, &id, event).await? {
        return Err(ApiError::not_found("No such integration."));
    }
    Ok(Json(
        serde_json::json!({"id": id.as_str(), "removed": true}),
    ))
}
