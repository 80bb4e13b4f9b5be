//! Admin hand-overs: the Admin offers the role to a Manager of the team by a mailed,
//! single-use link (only its digest is stored); accepting swaps the two roles in one
//! transaction. The schema allows one pending offer per team; an offer that can no longer be
//! accepted is closed (`lapsed`) when the next one is made.

use sqlx::{any::AnyRow, Row};
use tessera_core::{handover::HandoverFacts, status::HandoverStatus, Role, Scope};

use crate::{
    audit, mail, new_id, CrossTenant, NewAuditEvent, NewMail, Store, StoreError, StoreResult,
};

/// An offer of the Admin role, with the people it names and the roles they hold now.
#[derive(Debug, Clone)]
pub struct AdminHandover {
    pub id: String,
    pub team_id: String,
    pub team_name: String,
    pub from_user_id: String,
    pub from_email: String,
    pub from_name: String,
    pub to_user_id: String,
    pub to_email: String,
    pub to_name: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    /// Its state and who holds which role now, for [`tessera_core::handover::problem`].
    pub facts: HandoverFacts,
}

/// An offer to store: the Manager offered the role, the token's digest, its expiry, and the
/// mail carrying the link (queued in the same transaction as the offer and its audit entry).
#[derive(Debug)]
pub struct NewHandover<'a> {
    pub from_user_id: &'a str,
    pub to_user_id: &'a str,
    pub token_hash: &'a str,
    pub expires_at: i64,
    pub mail: &'a NewMail,
    pub event: &'a NewAuditEvent,
}

const HANDOVER_SELECT: &str = "SELECT h.id, h.team_id, t.name AS team_name, h.from_user_id, \
    f.email AS from_email, f.name AS from_name, h.to_user_id, o.email AS to_email, \
    o.name AS to_name, h.status, h.created_at, h.expires_at, h.ended_at, \
    CAST(CASE WHEN t.admin_user_id = h.from_user_id THEN 1 ELSE 0 END AS BIGINT) AS from_is_admin, \
    CASE WHEN o.team_id = h.team_id THEN o.role ELSE NULL END AS to_role \
    FROM admin_handovers h JOIN teams t ON t.id = h.team_id \
    JOIN users f ON f.id = h.from_user_id JOIN users o ON o.id = h.to_user_id";

fn handover_from_row(row: &AnyRow) -> StoreResult<AdminHandover> {
    let status: String = row.try_get("status")?;
    let status: HandoverStatus = status
        .parse()
        .map_err(|e| StoreError::Config(format!("bad hand-over status in database: {e}")))?;
    let to_role: Option<String> = row.try_get("to_role")?;
    let to_role = to_role
        .map(|r| r.parse::<Role>())
        .transpose()
        .map_err(|e| StoreError::Config(format!("bad role in database: {e}")))?;
    let from_is_admin: i64 = row.try_get("from_is_admin")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    Ok(AdminHandover {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        team_name: row.try_get("team_name")?,
        from_user_id: row.try_get("from_user_id")?,
        from_email: row.try_get("from_email")?,
        from_name: row.try_get("from_name")?,
        to_user_id: row.try_get("to_user_id")?,
        to_email: row.try_get("to_email")?,
        to_name: row.try_get("to_name")?,
        created_at: row.try_get("created_at")?,
        expires_at,
        ended_at: row.try_get("ended_at")?,
        facts: HandoverFacts {
            status,
            expires_at,
            from_is_admin: from_is_admin == 1,
            to_role,
        },
    })
}

impl Store {
    /// The team's pending offer, if any (it may no longer be acceptable: see its facts).
    pub async fn pending_admin_handover(
        &self,
        scope: &Scope,
    ) -> StoreResult<Option<AdminHandover>> {
        let row = sqlx::query(&format!(
            "{HANDOVER_SELECT} WHERE h.team_id = $1 AND h.status = 'pending'"
        ))
        .bind(scope.team_id())
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(handover_from_row).transpose()
    }

    /// Offers the Admin role: closes a pending offer that can no longer be accepted, checks
    /// that the offer is from the team's Admin to one of its Managers, stores it with its
    /// mail and audit entry. `Unique(HandoverPending)`: another offer is pending;
    /// `NotFound`: the Manager is not in the team; `InvalidState`: the roles changed.
    pub async fn offer_admin_handover(
        &self,
        scope: &Scope,
        offer: &NewHandover<'_>,
        now: i64,
    ) -> StoreResult<AdminHandover> {
        let team_id = scope.team_id();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE admin_handovers SET status = 'lapsed', ended_at = $2 \
             WHERE team_id = $1 AND status = 'pending' AND (expires_at <= $2 \
             OR from_user_id <> (SELECT t.admin_user_id FROM teams t WHERE t.id = $1) \
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = admin_handovers.to_user_id \
                 AND u.team_id = $1 AND u.role = 'manager'))",
        )
        .bind(team_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let is_admin = sqlx::query("SELECT 1 FROM teams WHERE id = $1 AND admin_user_id = $2")
            .bind(team_id)
            .bind(offer.from_user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if is_admin.is_none() {
            return Err(StoreError::InvalidState("not the team's Admin".into()));
        }
        let (role,): (String,) =
            sqlx::query_as("SELECT role FROM users WHERE id = $1 AND team_id = $2")
                .bind(offer.to_user_id)
                .bind(team_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        if role != Role::Manager.as_str() {
            return Err(StoreError::InvalidState(format!("a {role}, not a manager")));
        }
        let id = new_id("aho");
        sqlx::query(
            "INSERT INTO admin_handovers (id, team_id, from_user_id, to_user_id, token_hash, \
             status, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(&id)
        .bind(team_id)
        .bind(offer.from_user_id)
        .bind(offer.to_user_id)
        .bind(offer.token_hash)
        .bind(now)
        .bind(offer.expires_at)
        .execute(&mut *tx)
        .await?;
        mail::insert(&mut tx, offer.mail).await?;
        audit::insert(&mut tx, Some(team_id), offer.event).await?;
        tx.commit().await?;
        self.pending_admin_handover(scope)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Withdraws the pending offer `id`: its link stops working. `NotFound` when it is not
    /// pending (accepted, cancelled or closed meanwhile).
    pub async fn cancel_admin_handover(
        &self,
        scope: &Scope,
        id: &str,
        now: i64,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE admin_handovers SET status = 'cancelled', ended_at = $1 \
             WHERE id = $2 AND team_id = $3 AND status = 'pending'",
        )
        .bind(now)
        .bind(id)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Accepts the offer behind `token_hash` as `user_id`, the Manager it names, in the
    /// scope's team: in one transaction the link is used, the Admin becomes a Manager, the
    /// Manager becomes Admin and the team names them. Each step is conditional on the roles
    /// the offer was made between, so a change that raced ahead (a demotion, a removal,
    /// another Admin set by support, another acceptance) makes it change nothing: `false`.
    /// The one-Admin index holds at every statement and the team's deferred foreign key
    /// onto its Admin's row at commit.
    pub async fn accept_admin_handover(
        &self,
        scope: &Scope,
        token_hash: &str,
        user_id: &str,
        now: i64,
        event: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let team_id = scope.team_id();
        let mut tx = self.writer.begin().await?;
        let used: Option<(String,)> = sqlx::query_as(
            "UPDATE admin_handovers SET status = 'accepted', ended_at = $1 \
             WHERE token_hash = $2 AND team_id = $3 AND to_user_id = $4 \
             AND status = 'pending' AND expires_at > $1 RETURNING from_user_id",
        )
        .bind(now)
        .bind(token_hash)
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((from_user_id,)) = used else {
            return Ok(false);
        };
        let steps = [
            sqlx::query(
                "UPDATE users SET role = 'manager' WHERE id = $1 AND team_id = $2 AND role = 'admin'",
            )
            .bind(&from_user_id)
            .bind(team_id),
            sqlx::query(
                "UPDATE users SET role = 'admin' WHERE id = $1 AND team_id = $2 AND role = 'manager'",
            )
            .bind(user_id)
            .bind(team_id),
            sqlx::query("UPDATE teams SET admin_user_id = $1 WHERE id = $2 AND admin_user_id = $3")
                .bind(user_id)
                .bind(team_id)
                .bind(&from_user_id),
        ];
        for step in steps {
            if step.execute(&mut *tx).await?.rows_affected() != 1 {
                // Dropping the transaction rolls back the steps already taken.
                return Ok(false);
            }
        }
        audit::insert(&mut tx, Some(team_id), event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl CrossTenant {
    /// The offer behind a link, whatever its state, for the page the link opens: its token
    /// is all the request has, and the person opening it may no longer be in the team.
    pub async fn find_admin_handover(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<AdminHandover>> {
        let row = sqlx::query(&format!("{HANDOVER_SELECT} WHERE h.token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.store.writer)
            .await?;
        row.as_ref().map(handover_from_row).transpose()
    }
}
