//! Every column that holds a value sealed under the master key, walked for key rotation
//! (`tessera admin rotate-master-key`). The store never decrypts: the caller re-seals.

use sqlx::{AnyConnection, Row};
use tessera_core::ids::{ApiKeyId, TeamId};
use tessera_core::status::SecretKind;
use tessera_core::Mode;

use crate::{keys::parse_mode, CrossTenant, StoreError};

/// Rows read per query while walking a table.
const PAGE: i64 = 500;

/// One sealed value with the row identity it is bound to (its AES-GCM associated data).
#[derive(Debug, Clone)]
pub enum SealedValue {
    /// `api_keys.sealed` (deleted keys too: their ciphertext is still stored).
    ApiKey {
        id: ApiKeyId,
        team_id: TeamId,
        mode: Mode,
        sealed: String,
    },
    /// `team_secrets.sealed`, or `previous_sealed` when `previous`.
    TeamSecret {
        team_id: TeamId,
        kind: SecretKind,
        mode: Mode,
        previous: bool,
        sealed: String,
    },
    /// `storage_integrations.secret_sealed`.
    IntegrationSecret {
        id: String,
        team_id: TeamId,
        sealed: String,
    },
    /// `mail_outbox.body_sealed`.
    MailBody {
        id: String,
        to: String,
        sealed: String,
    },
    /// `user_two_factor.secret_sealed` (a set-up not yet confirmed too).
    TwoFactorSecret { user_id: String, sealed: String },
}

impl SealedValue {
    /// The stored ciphertext.
    pub fn sealed(&self) -> &str {
        match self {
            SealedValue::ApiKey { sealed, .. }
            | SealedValue::TeamSecret { sealed, .. }
            | SealedValue::IntegrationSecret { sealed, .. }
            | SealedValue::MailBody { sealed, .. }
            | SealedValue::TwoFactorSecret { sealed, .. } => sealed,
        }
    }

    /// Names the row for an operator (no secret in it).
    pub fn describe(&self) -> String {
        match self {
            SealedValue::ApiKey { id, .. } => format!("API key {id}"),
            SealedValue::TeamSecret {
                team_id,
                kind,
                mode,
                previous,
                ..
            } => format!(
                "{}{} secret ({}) of team {team_id}",
                if *previous { "previous " } else { "" },
                kind.as_str(),
                mode.as_str()
            ),
            SealedValue::IntegrationSecret { id, team_id, .. } => {
                format!("storage integration {id} of team {team_id}")
            }
            SealedValue::MailBody { id, .. } => format!("mail {id}"),
            SealedValue::TwoFactorSecret { user_id, .. } => {
                format!("two-factor secret of user {user_id}")
            }
        }
    }
}

/// What a re-sealing pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResealCounts {
    /// Sealed values read.
    pub examined: u64,
    /// Values replaced by what the caller returned.
    pub resealed: u64,
    /// Values a server changed between the read and the write: left as that server wrote
    /// them (still under a key it holds).
    pub changed_meanwhile: u64,
}

impl CrossTenant {
    /// Passes every sealed value to `reseal` and stores what it returns (`None`: keep it), all
    /// in one transaction: if `reseal` fails on any value, nothing is changed. A row is only
    /// overwritten if it still holds the value that was read. Cross-tenant: the master key
    /// seals every team's secrets, so rotating it walks them all.
    pub async fn reseal_all<E, F>(&self, mut reseal: F) -> Result<ResealCounts, E>
    where
        E: From<StoreError>,
        F: FnMut(&SealedValue) -> Result<Option<String>, E>,
    {
        let mut counts = ResealCounts::default();
        let mut tx = self.store.writer.begin().await.map_err(StoreError::from)?;
        reseal_api_keys(&mut tx, &mut reseal, &mut counts).await?;
        reseal_team_secrets(&mut tx, &mut reseal, &mut counts).await?;
        reseal_integration_secrets(&mut tx, &mut reseal, &mut counts).await?;
        reseal_mail_bodies(&mut tx, &mut reseal, &mut counts).await?;
        reseal_two_factor_secrets(&mut tx, &mut reseal, &mut counts).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(counts)
    }
}

/// Re-seals the API keys, a page at a time.
async fn reseal_api_keys<E, F>(
    conn: &mut AnyConnection,
    reseal: &mut F,
    counts: &mut ResealCounts,
) -> Result<(), E>
where
    E: From<StoreError>,
    F: FnMut(&SealedValue) -> Result<Option<String>, E>,
{
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, team_id, mode, sealed FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id").map_err(StoreError::from)?;
        for row in &rows {
            let value = SealedValue::ApiKey {
                id: ApiKeyId::from_stored(row.try_get("id").map_err(StoreError::from)?),
                team_id: TeamId::from_stored(row.try_get("team_id").map_err(StoreError::from)?),
                mode: parse_mode(row.try_get("mode").map_err(StoreError::from)?)?,
                sealed: row.try_get("sealed").map_err(StoreError::from)?,
            };
            counts.examined += 1;
            let Some(new) = reseal(&value)? else { continue };
            let SealedValue::ApiKey { id, sealed, .. } = &value else {
                unreachable!("built above")
            };
            let done = sqlx::query("UPDATE api_keys SET sealed = $1 WHERE id = $2 AND sealed = $3")
                .bind(&new)
                .bind(id.as_str())
                .bind(sealed)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::from)?;
            counts.add(done.rows_affected());
        }
    }
    Ok(())
}

/// Re-seals the team secrets, the current and the previous value of each.
async fn reseal_team_secrets<E, F>(
    conn: &mut AnyConnection,
    reseal: &mut F,
    counts: &mut ResealCounts,
) -> Result<(), E>
where
    E: From<StoreError>,
    F: FnMut(&SealedValue) -> Result<Option<String>, E>,
{
    let mut after = (String::new(), String::new(), String::new());
    loop {
        let rows = sqlx::query(
            "SELECT team_id, kind, mode, sealed, previous_sealed FROM team_secrets \
             WHERE (team_id, kind, mode) > ($1, $2, $3) ORDER BY team_id, kind, mode LIMIT $4",
        )
        .bind(&after.0)
        .bind(&after.1)
        .bind(&after.2)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let Some(last) = rows.last() else { break };
        after = (
            last.try_get("team_id").map_err(StoreError::from)?,
            last.try_get("kind").map_err(StoreError::from)?,
            last.try_get("mode").map_err(StoreError::from)?,
        );
        for row in &rows {
            let team_id = TeamId::from_stored(row.try_get("team_id").map_err(StoreError::from)?);
            let kind: String = row.try_get("kind").map_err(StoreError::from)?;
            let kind = SecretKind::from_word(&kind).ok_or_else(|| {
                StoreError::Config(format!("unknown team secret kind {kind:?} in the database"))
            })?;
            let mode = parse_mode(row.try_get("mode").map_err(StoreError::from)?)?;
            let current: String = row.try_get("sealed").map_err(StoreError::from)?;
            let previous: Option<String> =
                row.try_get("previous_sealed").map_err(StoreError::from)?;
            let values = std::iter::once((false, current)).chain(previous.map(|p| (true, p)));
            for (is_previous, sealed) in values {
                let value = SealedValue::TeamSecret {
                    team_id: team_id.clone(),
                    kind,
                    mode,
                    previous: is_previous,
                    sealed,
                };
                counts.examined += 1;
                let Some(new) = reseal(&value)? else { continue };
                let update = if is_previous {
                    "UPDATE team_secrets SET previous_sealed = $1 \
                     WHERE team_id = $2 AND kind = $3 AND mode = $4 AND previous_sealed = $5"
                } else {
                    "UPDATE team_secrets SET sealed = $1 \
                     WHERE team_id = $2 AND kind = $3 AND mode = $4 AND sealed = $5"
                };
                let done = sqlx::query(update)
                    .bind(&new)
                    .bind(team_id.as_str())
                    .bind(kind.as_str())
                    .bind(mode.as_str())
                    .bind(value.sealed())
                    .execute(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                counts.add(done.rows_affected());
            }
        }
    }
    Ok(())
}

/// Re-seals the storage integrations' secrets (a role has none).
async fn reseal_integration_secrets<E, F>(
    conn: &mut AnyConnection,
    reseal: &mut F,
    counts: &mut ResealCounts,
) -> Result<(), E>
where
    E: From<StoreError>,
    F: FnMut(&SealedValue) -> Result<Option<String>, E>,
{
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, team_id, secret_sealed FROM storage_integrations \
             WHERE id > $1 AND secret_sealed IS NOT NULL ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id").map_err(StoreError::from)?;
        for row in &rows {
            let value = SealedValue::IntegrationSecret {
                id: row.try_get("id").map_err(StoreError::from)?,
                team_id: TeamId::from_stored(row.try_get("team_id").map_err(StoreError::from)?),
                sealed: row.try_get("secret_sealed").map_err(StoreError::from)?,
            };
            counts.examined += 1;
            let Some(new) = reseal(&value)? else { continue };
            let done = sqlx::query(
                "UPDATE storage_integrations SET secret_sealed = $1 WHERE id = $2 AND secret_sealed = $3",
            )
            .bind(&new)
            .bind(match &value {
                SealedValue::IntegrationSecret { id, .. } => id.as_str(),
                _ => unreachable!("built above"),
            })
            .bind(value.sealed())
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            counts.add(done.rows_affected());
        }
    }
    Ok(())
}

/// Re-seals the bodies in the mail outbox.
async fn reseal_mail_bodies<E, F>(
    conn: &mut AnyConnection,
    reseal: &mut F,
    counts: &mut ResealCounts,
) -> Result<(), E>
where
    E: From<StoreError>,
    F: FnMut(&SealedValue) -> Result<Option<String>, E>,
{
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, to_addr, body_sealed FROM mail_outbox WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id").map_err(StoreError::from)?;
        for row in &rows {
            let value = SealedValue::MailBody {
                id: row.try_get("id").map_err(StoreError::from)?,
                to: row.try_get("to_addr").map_err(StoreError::from)?,
                sealed: row.try_get("body_sealed").map_err(StoreError::from)?,
            };
            counts.examined += 1;
            let Some(new) = reseal(&value)? else { continue };
            let SealedValue::MailBody { id, sealed, .. } = &value else {
                unreachable!("built above")
            };
            let done = sqlx::query(
                "UPDATE mail_outbox SET body_sealed = $1 WHERE id = $2 AND body_sealed = $3",
            )
            .bind(&new)
            .bind(id)
            .bind(sealed)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            counts.add(done.rows_affected());
        }
    }
    Ok(())
}

/// Re-seals the users' two-factor secrets.
async fn reseal_two_factor_secrets<E, F>(
    conn: &mut AnyConnection,
    reseal: &mut F,
    counts: &mut ResealCounts,
) -> Result<(), E>
where
    E: From<StoreError>,
    F: FnMut(&SealedValue) -> Result<Option<String>, E>,
{
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT user_id, secret_sealed FROM user_two_factor WHERE user_id > $1 \
             ORDER BY user_id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("user_id").map_err(StoreError::from)?;
        for row in &rows {
            let user_id: String = row.try_get("user_id").map_err(StoreError::from)?;
            let sealed: String = row.try_get("secret_sealed").map_err(StoreError::from)?;
            let value = SealedValue::TwoFactorSecret {
                user_id: user_id.clone(),
                sealed: sealed.clone(),
            };
            counts.examined += 1;
            let Some(new) = reseal(&value)? else { continue };
            let done = sqlx::query(
                "UPDATE user_two_factor SET secret_sealed = $1 WHERE user_id = $2 AND secret_sealed = $3",
            )
            .bind(&new)
            .bind(&user_id)
            .bind(&sealed)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
            counts.add(done.rows_affected());
        }
    }
    Ok(())
}

impl ResealCounts {
    fn add(&mut self, rows_affected: u64) {
        if rows_affected == 0 {
            self.changed_meanwhile += 1;
        } else {
            self.resealed += 1;
        }
    }
}
