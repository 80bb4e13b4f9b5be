//! The Integrations page (Managers and the Admin): each cloud's setup steps written out (the
//! trust policy with this team's external ID filled in), a form per cloud, the connected
//! integrations with Verify and Remove, and the proxy-mode switch.

use crate::web::PageTime;
use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_core::{
    ids::IntegrationId,
    integrations::{CredentialKind, Provider},
    AuditAction,
};
use tessera_store::StorageIntegration;

use super::{
    clients::IntegrationSettings,
    service::{self, Connect, ConnectError},
};
use crate::{
    audit,
    authz::{perm, Authorized},
    state::AppState,
    web::{
        page, redirect_with_flash, render, ClientIp, Form, Layout, Path, SignedIn, WebError,
        WebResult,
    },
};

/// One connected integration as the page lists it.
pub(super) struct Row {
    pub id: String,
    pub name: String,
    pub provider: &'static str,
    pub credential: &'static str,
    /// Role ARN, access key id, service account or storage account.
    pub identity: String,
    pub buckets: String,
    pub fingerprint: Option<String>,
    pub added: PageTime,
    pub added_by: String,
    /// `None`: never verified; `Some(None)`: worked; `Some(Some(reason))`: failed.
    pub verified: Option<Option<String>>,
    pub verified_at: PageTime,
}

/// What a form had typed (secrets are never sent back), and its error.
#[derive(Default)]
pub(super) struct Typed {
    pub provider: String,
    pub name: String,
    pub buckets: String,
    pub role_arn: String,
    pub access_key_id: String,
    pub region: String,
    pub endpoint: String,
    pub path_style: bool,
    pub account: String,
    pub tenant_id: String,
    pub client_id: String,
    pub error: Option<String>,
}

impl Typed {
    /// This provider's error, if the typed form was this provider's.
    pub fn error_for(&self, provider: &str) -> Option<&str> {
        (self.provider == provider)
            .then_some(self.error.as_deref())
            .flatten()
    }

    /// A typed value for this provider's form (empty for the other forms).
    pub fn value<'a>(&'a self, provider: &str, value: &'a str) -> &'a str {
        if self.provider == provider {
            value
        } else {
            ""
        }
    }
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    layout: Layout,
    external_id: String,
    platform_account: Option<String>,
    trust_policy: String,
    permission_policy: String,
    proxy: bool,
    rows: Vec<Row>,
    typed: Typed,
}

fn row(i: &StorageIntegration) -> Row {
    let s = IntegrationSettings::of(i);
    let identity = match i.kind {
        CredentialKind::AwsRole => s.role_arn.unwrap_or_default(),
        CredentialKind::AwsAccessKey => s.access_key_id.unwrap_or_default(),
        CredentialKind::GcsServiceAccount => s.client_email.unwrap_or_default(),
        CredentialKind::AzureAccountKey => s.account.unwrap_or_default(),
        CredentialKind::AzureServicePrincipal => format!(
            "{} (client {})",
            s.account.unwrap_or_default(),
            s.client_id.unwrap_or_default()
        ),
    };
    let buckets = i
        .buckets
        .iter()
        .map(|b| b.split_once('/').map_or(b.as_str(), |(_, c)| c))
        .collect::<Vec<_>>()
        .join(", ");
    Row {
        id: i.id.to_string(),
        name: i.name.clone(),
        provider: i.provider.label(),
        credential: i.kind.label(),
        identity,
        buckets,
        fingerprint: i.secret_fingerprint.clone(),
        added: PageTime::at(i.created_at),
        added_by: i.created_by.clone(),
        verified: i.verified_at.map(|_| {
            i.verify_error
                .clone()
                .filter(|_| i.verified_ok != Some(true))
        }),
        verified_at: PageTime::maybe(i.verified_at),
    }
}

/// The trust policy a customer pastes into their role, with this team's external ID.
fn trust_policy(platform_account: Option<&str>, external_id: &str) -> String {
    let principal = format!(
        "arn:aws:iam::{}:root",
        platform_account.unwrap_or("PLATFORM_ACCOUNT_ID")
    );
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}
        }]
    });
    serde_json::to_string_pretty(&policy).unwrap_or_default()
}

/// The least a role needs on one bucket: list it and read its objects.
fn permission_policy() -> String {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::YOUR-BUCKET"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::YOUR-BUCKET/*"}
        ]
    });
    serde_json::to_string_pretty(&policy).unwrap_or_default()
}

async fn integrations_page(
    state: &AppState,
    who: &SignedIn,
    scope: &tessera_store::Scope,
    typed: Typed,
) -> WebResult<IntegrationsPage> {
    let settings = service::settings(state, scope).await?;
    let platform_account = service::platform_account(state).await;
    let rows = state
        .store
        .integrations(scope)
        .await?
        .iter()
        .map(row)
        .collect();
    Ok(IntegrationsPage {
        layout: Layout::signed_in("Integrations", who, "/integrations"),
        trust_policy: trust_policy(platform_account.as_deref(), &settings.aws_external_id),
        permission_policy: permission_policy(),
        external_id: settings.aws_external_id,
        platform_account,
        proxy: settings.proxy_attachments,
        rows,
        typed,
    })
}

pub(super) async fn show(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ManageIntegrations, SignedIn>,
) -> WebResult<Response> {
    let page_ = integrations_page(&state, &who, &scope, Typed::default()).await?;
    Ok(page(&page_))
}

/// The add forms (one per cloud; fields another cloud uses are absent).
#[derive(Deserialize, Default)]
pub(super) struct AddForm {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    buckets: String,
    #[serde(default)]
    role_arn: String,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    path_style: Option<String>,
    #[serde(default)]
    service_account_key: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    account_key: String,
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
}

pub(super) async fn add(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ManageIntegrations, SignedIn>,
    ip: ClientIp,
    Form(form): Form<AddForm>,
) -> WebResult<Response> {
    let input = Connect {
        provider: form.provider.clone(),
        name: form.name.clone(),
        buckets: vec![form.buckets.clone()],
        role_arn: form.role_arn.clone(),
        access_key_id: form.access_key_id.clone(),
        secret_access_key: form.secret_access_key,
        region: form.region.clone(),
        endpoint: form.endpoint.clone(),
        path_style: form.path_style.as_deref().map(|v| v == "on"),
        service_account_key: form.service_account_key,
        account: form.account.clone(),
        account_key: form.account_key,
        tenant_id: form.tenant_id.clone(),
        client_id: form.client_id.clone(),
        client_secret: form.client_secret,
    };
    let event = audit::event(&who, &ip, AuditAction::IntegrationAdded, "", String::new());
    let creator = who.user.email.clone();
    let refused = match service::connect(&state, &scope, &input, &creator, event).await {
        Ok(added) => {
            return Ok(redirect_with_flash(
                "/integrations",
                &format!(
                    "Connected \"{}\". Verify it to check that Tessera can read the {}.",
                    added.name,
                    if added.buckets.len() == 1 {
                        format!("{} {}", added.provider.bucket_word(), row(&added).buckets)
                    } else {
                        format!("{}s", added.provider.bucket_word())
                    }
                ),
            ))
        }
        Err(ConnectError::Invalid(message)) => (StatusCode::BAD_REQUEST, message),
        Err(ConnectError::Conflict(message)) => (StatusCode::CONFLICT, message),
        Err(ConnectError::Store(e)) => return Err(e.into()),
    };
    let provider = form
        .provider
        .parse::<Provider>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let typed = Typed {
        provider,
        name: form.name,
        buckets: form.buckets,
        role_arn: form.role_arn,
        access_key_id: form.access_key_id,
        region: form.region,
        endpoint: form.endpoint,
        path_style: form.path_style.is_some(),
        account: form.account,
        tenant_id: form.tenant_id,
        client_id: form.client_id,
        error: Some(refused.1),
    };
    let page_ = integrations_page(&state, &who, &scope, typed).await?;
    Ok(render(refused.0, &page_))
}

fn parse_id(raw: &str) -> Result<IntegrationId, WebError> {
    IntegrationId::parse(raw).map_err(|_| WebError::NotFound)
}

pub(super) async fn verify(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ManageIntegrations, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> WebResult<Response> {
    let id = parse_id(&id)?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::IntegrationVerified,
        "",
        String::new(),
    );
    let verified = service::verify(&state, &scope, &id, event)
        .await?
        .ok_or(WebError::NotFound)?;
    let message = match verified.error {
        None => "Verified: Tessera can list and read the integration's storage.".to_owned(),
        Some(error) => format!("Verify failed: {error}"),
    };
    Ok(redirect_with_flash("/integrations", &message))
}

/// A form with no fields but the CSRF token (checked by the layer).
#[derive(Deserialize, Default)]
pub(super) struct NoFields {}

#[derive(Template)]
#[template(path = "integration_remove.html")]
struct ConfirmRemovePage {
    layout: Layout,
    id: String,
    name: String,
    provider: &'static str,
    buckets: String,
}

pub(super) async fn confirm_remove(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ManageIntegrations, SignedIn>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = parse_id(&id)?;
    let found = state
        .store
        .integration(&scope, &id)
        .await?
        .ok_or(WebError::NotFound)?;
    let r = row(&found);
    Ok(page(&ConfirmRemovePage {
        layout: Layout::signed_in(format!("Remove {}", found.name), &who, "/integrations"),
        id: r.id,
        name: r.name,
        provider: r.provider,
        buckets: r.buckets,
    }))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ManageIntegrations, SignedIn>,
    ip: ClientIp,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> WebResult<Response> {
    let id = parse_id(&id)?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::IntegrationRemoved,
        "",
        String::new(),
    );
    if !service::remove(&state, &scope, &id, event).await? {
        return Err(WebError::NotFound);
    }
    Ok(redirect_with_flash(
        "/integrations",
        "Integration removed: its buckets' attachments no longer load, and new tasks naming them are refused.",
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct ProxyForm {
    #[serde(default)]
    proxy: Option<String>,
}

pub(super) async fn set_proxy(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ManageIntegrations, SignedIn>,
    ip: ClientIp,
    Form(form): Form<ProxyForm>,
) -> WebResult<Response> {
    let on = form.proxy.as_deref() == Some("on");
    let detail = if on { "on" } else { "off" }.to_owned();
    let event = audit::event(
        &who,
        &ip,
        AuditAction::AttachmentProxyChanged,
        "integrations",
        detail,
    );
    service::set_proxy(&state, &scope, on, &event).await?;
    Ok(redirect_with_flash(
        "/integrations",
        if on {
            "Proxy mode is on: labelers' browsers load attachments through Tessera, so buckets need no CORS rules."
        } else {
            "Proxy mode is off: labelers load attachments from signed URLs valid for 15 minutes."
        },
    ))
}
