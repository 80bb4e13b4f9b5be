//! Cloud storage integrations: each team's delegated access to its buckets (sealed secrets;
//! the store never decrypts), the bucket → integration map task creation and attachment
//! signing route through, and the team's storage settings (external ID, proxy mode).

use sqlx::{any::AnyRow, Row};
use tessera_core::{
    ids::IntegrationId,
    integrations::{CredentialKind, Provider},
};

use crate::{audit, now_ms, NewAuditEvent, Scope, Store, StoreError, StoreResult};

/// A team's storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// What the team's IAM role trust policy must require as `sts:ExternalId`.
    pub aws_external_id: String,
    /// Attachments are streamed through Tessera instead of handed out as signed URLs.
    pub proxy_attachments: bool,
}

/// One integration as stored (its secret still sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct StorageIntegration {
    pub id: IntegrationId,
    pub team_id: String,
    pub provider: Provider,
    pub kind: CredentialKind,
    pub name: String,
    /// The non-secret settings (role ARN, region, endpoint, account …) as JSON.
    pub settings: serde_json::Value,
    pub secret_sealed: Option<String>,
    pub secret_fingerprint: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    /// The last Verify: when, and the reason when it failed.
    pub verified_at: Option<i64>,
    pub verified_ok: Option<bool>,
    pub verify_error: Option<String>,
    /// Buckets as the attachment URLs name them (Azure: `account/container`).
    pub buckets: Vec<String>,
}

/// An integration to add: the id is chosen by the caller, which binds the sealed secret to it.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub id: IntegrationId,
    pub kind: CredentialKind,
    pub name: String,
    pub settings: serde_json::Value,
    pub secret_sealed: Option<String>,
    pub secret_fingerprint: Option<String>,
    pub created_by: String,
    pub buckets: Vec<String>,
    pub event: NewAuditEvent,
}

/// Why an integration was not added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddRefused {
    /// The bucket already belongs to another of the team's integrations (its name given).
    BucketTaken { bucket: String, integration: String },
    /// The team has as many integrations as it may.
    TooMany { limit: usize },
}

const COLUMNS: &str = "id, team_id, provider, credential_kind, name, settings, secret_sealed, \
    secret_fingerprint, created_by, created_at, verified_at, verified_ok, verify_error";

fn from_row(row: &AnyRow) -> StoreResult<StorageIntegration> {
    let word = |column: &str| -> StoreResult<String> { Ok(row.try_get(column)?) };
    let bad = |e: tessera_core::Invalid| StoreError::Config(e.0);
    let settings: String = row.try_get("settings")?;
    let verified_ok: Option<i64> = row.try_get("verified_ok")?;
    Ok(StorageIntegration {
        id: IntegrationId::from_stored(row.try_get("id")?),
        team_id: row.try_get("team_id")?,
        provider: word("provider")?.parse().map_err(bad)?,
        kind: word("credential_kind")?.parse().map_err(bad)?,
        name: row.try_get("name")?,
        settings: serde_json::from_str(&settings)
            .map_err(|e| StoreError::Config(format!("integration settings: {e}")))?,
        secret_sealed: row.try_get("secret_sealed")?,
        secret_fingerprint: row.try_get("secret_fingerprint")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        verified_at: row.try_get("verified_at")?,
        verified_ok: verified_ok.map(|v| v == 1),
        verify_error: row.try_get("verify_error")?,
        buckets: Vec::new(),
    })
}

impl Store {
    /// The team's storage settings, made on first use with `new_external_id` (random, from
    /// the caller) — the schema keeps external IDs unique across teams.
    pub async fn storage_settings(
        &self,
        scope: &Scope,
        new_external_id: impl FnOnce() -> String,
    ) -> StoreResult<StorageSettings> {
        if let Some(settings) = self.read_storage_settings(scope).await? {
            return Ok(settings);
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO team_storage_settings (team_id, aws_external_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (team_id) DO NOTHING",
        )
        .bind(scope.team_id())
        .bind(new_external_id())
        .bind(now)
        .execute(&self.writer)
        .await?;
        self.read_storage_settings(scope)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn read_storage_settings(&self, scope: &Scope) -> StoreResult<Option<StorageSettings>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT aws_external_id, proxy_attachments FROM team_storage_settings WHERE team_id = $1",
        )
        .bind(scope.team_id())
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|(aws_external_id, proxy)| StorageSettings {
            aws_external_id,
            proxy_attachments: proxy == 1,
        }))
    }

    /// Turns proxy mode on or off (the settings row must exist: read them first).
    pub async fn set_proxy_attachments(
        &self,
        scope: &Scope,
        on: bool,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE team_storage_settings SET proxy_attachments = $1, updated_at = $2 WHERE team_id = $3",
        )
        .bind(i64::from(on))
        .bind(now_ms())
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an integration with its buckets and audit entry, unless a bucket is already
    /// another integration's or the team is at `limit` integrations.
    pub async fn add_integration(
        &self,
        scope: &Scope,
        new: &NewIntegration,
        limit: usize,
    ) -> StoreResult<Result<StorageIntegration, AddRefused>> {
        let provider = new.kind.provider();
        let mut tx = self.writer.begin().await?;
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM storage_integrations WHERE team_id = $1")
                .bind(scope.team_id())
                .fetch_one(&mut *tx)
                .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= limit {
            return Ok(Err(AddRefused::TooMany { limit }));
        }
        for bucket in &new.buckets {
            let taken: Option<(String,)> = sqlx::query_as(
                "SELECT i.name FROM storage_integration_buckets b \
                 JOIN storage_integrations i ON i.id = b.integration_id \
                 WHERE b.team_id = $1 AND b.provider = $2 AND b.bucket = $3",
            )
            .bind(scope.team_id())
            .bind(provider.as_str())
            .bind(bucket)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((integration,)) = taken {
                return Ok(Err(AddRefused::BucketTaken {
                    bucket: bucket.clone(),
                    integration,
                }));
            }
        }
        sqlx::query(
            "INSERT INTO storage_integrations (id, team_id, provider, credential_kind, name, settings, \
             secret_sealed, secret_fingerprint, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new.id.as_str())
        .bind(scope.team_id())
        .bind(provider.as_str())
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(new.settings.to_string())
        .bind(new.secret_sealed.as_deref())
        .bind(new.secret_fingerprint.as_deref())
        .bind(&new.created_by)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        for bucket in &new.buckets {
            sqlx::query(
                "INSERT INTO storage_integration_buckets (team_id, provider, bucket, integration_id) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(scope.team_id())
            .bind(provider.as_str())
            .bind(bucket)
            .bind(new.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        audit::insert(&mut tx, Some(scope.team_id()), &new.event).await?;
        tx.commit().await?;
        let added = self.integration(scope, &new.id).await?;
        added.map(Ok).ok_or(StoreError::NotFound)
    }

    /// The team's integrations, oldest first, with their buckets.
    pub async fn integrations(&self, scope: &Scope) -> StoreResult<Vec<StorageIntegration>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM storage_integrations WHERE team_id = $1 ORDER BY created_at, id"
        ))
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        let mut list = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
        let buckets: Vec<(String, String)> = sqlx::query_as(
            "SELECT integration_id, bucket FROM storage_integration_buckets WHERE team_id = $1 \
             ORDER BY bucket",
        )
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        for (integration_id, bucket) in buckets {
            if let Some(i) = list.iter_mut().find(|i| i.id.as_str() == integration_id) {
                i.buckets.push(bucket);
            }
        }
        Ok(list)
    }

    /// One of the team's integrations (`None`: no such integration in this team).
    pub async fn integration(
        &self,
        scope: &Scope,
        id: &IntegrationId,
    ) -> StoreResult<Option<StorageIntegration>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM storage_integrations WHERE team_id = $1 AND id = $2"
        ))
        .bind(scope.team_id())
        .bind(id.as_str())
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut integration = from_row(&row)?;
        let buckets: Vec<(String,)> = sqlx::query_as(
            "SELECT bucket FROM storage_integration_buckets WHERE team_id = $1 AND integration_id = $2 \
             ORDER BY bucket",
        )
        .bind(scope.team_id())
        .bind(id.as_str())
        .fetch_all(&self.writer)
        .await?;
        integration.buckets = buckets.into_iter().map(|(b,)| b).collect();
        Ok(Some(integration))
    }

    /// The team's integration that serves `bucket` of `provider` (`None`: the team connected
    /// no such bucket). Read from the primary, so a removal takes effect at once.
    pub async fn integration_for_bucket(
        &self,
        scope: &Scope,
        provider: Provider,
        bucket: &str,
    ) -> StoreResult<Option<StorageIntegration>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM storage_integrations WHERE team_id = $1 AND id = \
             (SELECT integration_id FROM storage_integration_buckets \
              WHERE team_id = $1 AND provider = $2 AND bucket = $3)"
        ))
        .bind(scope.team_id())
        .bind(provider.as_str())
        .bind(bucket)
        .fetch_optional(&self.writer)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut integration = from_row(&row)?;
        integration.buckets = vec![bucket.to_owned()];
        Ok(Some(integration))
    }

    /// Records the result of a Verify (`error` `None`: it worked).
    pub async fn record_verification(
        &self,
        scope: &Scope,
        id: &IntegrationId,
        error: Option<&str>,
        event: &NewAuditEvent,
    ) -> StoreResult<Option<i64>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE storage_integrations SET verified_at = $1, verified_ok = $2, verify_error = $3 \
             WHERE team_id = $4 AND id = $5",
        )
        .bind(now)
        .bind(i64::from(error.is_none()))
        .bind(error)
        .bind(scope.team_id())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        Ok(Some(now))
    }

    /// Removes an integration and its buckets at once (`false`: not the team's).
    pub async fn remove_integration(
        &self,
        scope: &Scope,
        id: &IntegrationId,
        event: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "DELETE FROM storage_integration_buckets WHERE team_id = $1 AND integration_id = $2",
        )
        .bind(scope.team_id())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM storage_integrations WHERE team_id = $1 AND id = $2")
            .bind(scope.team_id())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        Ok(true)
    }
}
