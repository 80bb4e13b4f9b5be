//! Invitations and their single-use links.

use sqlx::{any::AnyRow, Row};
use tessera_core::{
    ids::{InvitationId, TeamId},
    status::InvitationStatus,
    AuditAction, Email, Role, Scope,
};

use crate::{
    audit,
    email_verifications::{close_unverified_signup, ClosedSignup, SupersededSignup},
    mail, new_id, now_ms,
    users::{insert_user, Address, NewUser},
    Constraint, CrossTenant, NewAuditEvent, NewMail, Store, StoreError, StoreResult, User,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub team_id: TeamId,
    pub email: String,
    pub role: Role,
    pub status: InvitationStatus,
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_sent_at: i64,
    pub send_count: i64,
}

/// An invitation to write (into the team of the scope it is written in), with the digest of
/// its first link, the mail that carries the link and the audit entry — all committed together.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: Email,
    pub role: Role,
    pub invited_by: String,
    pub token_hash: String,
    pub expires_at: i64,
    /// Re-inviting a pending address is a resend: refused (`TooSoon`) within this interval of
    /// the previous email, like the Resend button.
    pub min_resend_interval_ms: i64,
    pub mail: NewMail,
    pub event: NewAuditEvent,
}

/// A fresh link for a pending invitation (a resend), with its mail and audit entry.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub token_hash: String,
    pub expires_at: i64,
    pub mail: NewMail,
    pub event: NewAuditEvent,
}

/// Whether inviting created an invitation, refreshed a pending one (new link, new expiry,
/// the role asked for), or — within the resend interval — only changed its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    Created(Invitation),
    /// Emailed again; `previous_role` is the role the invitation had before.
    Refreshed {
        invitation: Invitation,
        previous_role: Role,
    },
    /// Emailed moments ago, so not emailed again, but asked with another role: the
    /// invitation now grants the new one (its existing link included), so re-inviting never
    /// silently keeps the old role. The email may be resent in `retry_in_ms`.
    RoleChanged {
        invitation: Invitation,
        previous_role: Role,
        retry_in_ms: i64,
    },
}

/// What a link in an invitation email points at, for the accept page.
#[derive(Debug, Clone)]
pub struct InvitationLink {
    pub invitation: Invitation,
    pub team_name: String,
    pub link_expires_at: i64,
    pub superseded_at: Option<i64>,
    pub used_at: Option<i64>,
}

/// Why a link can or cannot be used, in the order the accept page checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    Valid,
    Used,
    Revoked,
    Superseded,
    Expired,
}

impl InvitationLink {
    pub fn state(&self, now: i64) -> AcceptOutcome {
        if self.used_at.is_some() || self.invitation.status == InvitationStatus::Accepted {
            AcceptOutcome::Used
        } else if self.invitation.status == InvitationStatus::Revoked {
            AcceptOutcome::Revoked
        } else if self.superseded_at.is_some() {
            AcceptOutcome::Superseded
        } else if self.link_expires_at <= now {
            AcceptOutcome::Expired
        } else {
            AcceptOutcome::Valid
        }
    }
}

const INVITATION_COLUMNS: &str = "i.id, i.team_id, i.email, i.role, i.status, i.invited_by, \
    i.created_at, i.expires_at, i.last_sent_at, i.send_count";

fn invitation_from_row(row: &AnyRow) -> StoreResult<Invitation> {
    let role: String = row.try_get("role")?;
    let status: String = row.try_get("status")?;
    Ok(Invitation {
        id: InvitationId::from_stored(row.try_get("id")?),
        team_id: TeamId::from_stored(row.try_get("team_id")?),
        email: row.try_get("email")?,
        role: role
            .parse()
            .map_err(|e| StoreError::Config(format!("bad role in database: {e}")))?,
        status: status
            .parse()
            .map_err(|e| StoreError::Config(format!("bad invitation status in database: {e}")))?,
        invited_by: row.try_get("invited_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_sent_at: row.try_get("last_sent_at")?,
        send_count: row.try_get("send_count")?,
    })
}

async fn insert_token(
    conn: &mut sqlx::AnyConnection,
    invitation_id: &str,
    token_hash: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE invitation_tokens SET superseded_at = $1 \
         WHERE invitation_id = $2 AND superseded_at IS NULL AND used_at IS NULL",
    )
    .bind(now)
    .bind(invitation_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO invitation_tokens (token_hash, invitation_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(invitation_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inviting a pending address again, moments after its last email, with another role: the
/// invitation (and its existing link) now grants the new role; nothing is emailed.
async fn change_role_only(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    previous: &Invitation,
    new: &NewInvitation,
) -> StoreResult<()> {
    sqlx::query("UPDATE invitations SET role = $1, invited_by = $2 WHERE id = $3")
        .bind(new.role.as_str())
        .bind(&new.invited_by)
        .bind(previous.id.as_str())
        .execute(&mut *conn)
        .await?;
    let event = NewAuditEvent {
        action: AuditAction::InvitationRoleChanged,
        detail: format!(
            "{} → {}: invited again with another role; the invitation was emailed moments ago, so not again",
            previous.role.label(),
            new.role.label()
        ),
        ..new.event.clone()
    };
    audit::insert(conn, Some(team_id), &event).await
}

/// A pending invitation asked for again: the role asked for, a new expiry, one more send.
async fn refresh(
    conn: &mut sqlx::AnyConnection,
    id: &InvitationId,
    new: &NewInvitation,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE invitations SET role = $1, expires_at = $2, last_sent_at = $3, \
         send_count = send_count + 1, invited_by = $4 WHERE id = $5",
    )
    .bind(new.role.as_str())
    .bind(new.expires_at)
    .bind(now)
    .bind(&new.invited_by)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A new pending invitation of `team_id`.
async fn create(
    conn: &mut sqlx::AnyConnection,
    team_id: &str,
    new: &NewInvitation,
    now: i64,
) -> StoreResult<InvitationId> {
    let id = new_id(InvitationId::PREFIX);
    sqlx::query(
        "INSERT INTO invitations (id, team_id, email, email_key, role, status, invited_by, \
         created_at, expires_at, last_sent_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $7)",
    )
    .bind(&id)
    .bind(team_id)
    .bind(new.email.as_str())
    .bind(new.email.normalized())
    .bind(new.role.as_str())
    .bind(&new.invited_by)
    .bind(now)
    .bind(new.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(InvitationId::from_stored(id))
}

impl Store {
    /// Invites `email` to the scope's team, or — when a pending invitation exists — gives it a
    /// fresh link (the old one dies), role and expiry, unless it was sent within
    /// `min_resend_interval_ms`: then `TooSoon` when the role is the same, and only the role
    /// changed (`RoleChanged`, audited as `invitation.role_changed`) when it differs. The
    /// mail and audit entry commit with it; a changed role is named in the audit detail.
    pub async fn invite(&self, scope: &Scope, new: &NewInvitation) -> StoreResult<InviteOutcome> {
        let team_id = scope.team_id();
        let mut tx = self.writer.begin().await?;
        // Read the clock once the write transaction is ours, so "now" is ordered with commits.
        let now = now_ms();
        let existing = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i \
             WHERE i.team_id = $1 AND i.email_key = $2 AND i.status = 'pending'"
        ))
        .bind(team_id)
        .bind(new.email.normalized())
        .fetch_optional(&mut *tx)
        .await?;
        let (invitation_id, previous_role) = match existing {
            Some(row) => {
                let previous = invitation_from_row(&row)?;
                let last_sent = previous.last_sent_at;
                if last_sent > now - new.min_resend_interval_ms {
                    let retry_in_ms = (last_sent + new.min_resend_interval_ms - now).max(1);
                    if previous.role == new.role {
                        return Err(StoreError::TooSoon { retry_in_ms });
                    }
                    change_role_only(&mut tx, team_id, &previous, new).await?;
                    tx.commit().await?;
                    return Ok(InviteOutcome::RoleChanged {
                        invitation: self.get_invitation(scope, &previous.id).await?,
                        previous_role: previous.role,
                        retry_in_ms,
                    });
                }
                refresh(&mut tx, &previous.id, new, now).await?;
                (previous.id, Some(previous.role))
            }
            None => (create(&mut tx, team_id, new, now).await?, None),
        };
        insert_token(
            &mut tx,
            invitation_id.as_str(),
            &new.token_hash,
            new.expires_at,
            now,
        )
        .await?;
        mail::insert(&mut tx, &new.mail).await?;
        let mut event = new.event.clone();
        if let Some(previous) = previous_role.filter(|r| *r != new.role) {
            event.detail = format!("{} (was {})", event.detail, previous.label());
        }
        audit::insert(&mut tx, Some(team_id), &event).await?;
        tx.commit().await?;
        let invitation = self.get_invitation(scope, &invitation_id).await?;
        Ok(match previous_role {
            Some(previous_role) => InviteOutcome::Refreshed {
                invitation,
                previous_role,
            },
            None => InviteOutcome::Created(invitation),
        })
    }

    /// An invitation of the scope's team, whatever its status, or `NotFound`.
    pub async fn get_invitation(
        &self,
        scope: &Scope,
        invitation_id: &InvitationId,
    ) -> StoreResult<Invitation> {
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i WHERE i.id = $1 AND i.team_id = $2"
        ))
        .bind(invitation_id.as_str())
        .bind(scope.team_id())
        .fetch_optional(&self.writer)
        .await?
        .ok_or(StoreError::NotFound)?;
        invitation_from_row(&row)
    }

    /// Pending invitations (expired ones included, so they can be resent), newest first.
    pub async fn list_pending_invitations(&self, scope: &Scope) -> StoreResult<Vec<Invitation>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i \
             WHERE i.team_id = $1 AND i.status = 'pending' ORDER BY i.created_at DESC, i.id"
        ))
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    /// Sends a pending invitation again with a fresh link; refused (`TooSoon`) within
    /// `min_interval_ms` of the previous send.
    pub async fn resend_invitation(
        &self,
        scope: &Scope,
        invitation_id: &InvitationId,
        link: &NewLink,
        min_interval_ms: i64,
    ) -> StoreResult<Invitation> {
        let NewLink {
            token_hash,
            expires_at,
            mail,
            event,
        } = link;
        let mut tx = self.writer.begin().await?;
        // Read the clock once the write transaction is ours, so "now" is ordered with commits.
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE invitations SET expires_at = $1, last_sent_at = $2, send_count = send_count + 1 \
             WHERE id = $3 AND team_id = $4 AND status = 'pending' AND last_sent_at <= $5",
        )
        .bind(*expires_at)
        .bind(now)
        .bind(invitation_id.as_str())
        .bind(scope.team_id())
        .bind(now - min_interval_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let row = sqlx::query(
                "SELECT last_sent_at FROM invitations WHERE id = $1 AND team_id = $2 AND status = 'pending'",
            )
            .bind(invitation_id.as_str())
            .bind(scope.team_id())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            let last: i64 = row.try_get("last_sent_at")?;
            return Err(StoreError::TooSoon {
                retry_in_ms: (last + min_interval_ms - now).max(1),
            });
        }
        insert_token(
            &mut tx,
            invitation_id.as_str(),
            token_hash,
            *expires_at,
            now,
        )
        .await?;
        mail::insert(&mut tx, mail).await?;
        audit::insert(&mut tx, Some(scope.team_id()), event).await?;
        tx.commit().await?;
        self.get_invitation(scope, invitation_id).await
    }

    /// Changes the role a pending invitation will grant.
    pub async fn set_invitation_role(
        &self,
        scope: &Scope,
        invitation_id: &InvitationId,
        role: Role,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        if role == Role::Admin {
            return Err(StoreError::Conflict(
                "admin role is granted only by set_admin".into(),
            ));
        }
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE invitations SET role = $1 WHERE id = $2 AND team_id = $3 AND status = 'pending'")
            .bind(role.as_str())
            .bind(invitation_id.as_str())
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

    /// Revokes a pending invitation: its links stop working at once.
    pub async fn revoke_invitation(
        &self,
        scope: &Scope,
        invitation_id: &InvitationId,
        event: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE invitations SET status = 'revoked', revoked_at = $1 \
             WHERE id = $2 AND team_id = $3 AND status = 'pending'",
        )
        .bind(now_ms())
        .bind(invitation_id.as_str())
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
}

/// Following an invitation link: the token's digest is all the request has, and the team is
/// known only once the link is found, so there is no scope yet.
impl CrossTenant {
    /// What the link with this token digest points at, whatever its state.
    pub async fn find_invitation_link(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<InvitationLink>> {
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS}, t.name AS team_name, k.expires_at AS link_expires_at, \
             k.superseded_at, k.used_at FROM invitation_tokens k \
             JOIN invitations i ON i.id = k.invitation_id JOIN teams t ON t.id = i.team_id \
             WHERE k.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.store.writer)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(InvitationLink {
                invitation: invitation_from_row(&row)?,
                team_name: row.try_get("team_name")?,
                link_expires_at: row.try_get("link_expires_at")?,
                superseded_at: row.try_get("superseded_at")?,
                used_at: row.try_get("used_at")?,
            })),
        }
    }

    /// Uses a link: marks it used (once, ever), accepts the invitation and creates the account
    /// in the team with the invited role — or, with `existing_user_id`, brings an account that
    /// belongs to no team into it. `NotFound` when the link is no longer usable (another
    /// request won, or it expired); `Conflict` when the email already has an account.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        new_user: Option<&NewUser>,
        existing_user_id: Option<&str>,
        event: NewAuditEvent,
    ) -> StoreResult<User> {
        self.accept(token_hash, new_user, existing_user_id, None, event)
            .await
            .map(|(user, _)| user)
    }

    /// Uses a link whose address an unverified sign-up holds: the link proves the address,
    /// so in the same transaction the sign-up is closed (see `close_unverified_signup`: its
    /// team closed, keys revoked, sessions ended, audited in both teams) and the invitee's
    /// new account gets the address. `Unique(UserEmail)` when that account turns out to own
    /// the address (verified meanwhile, or not alone in its team): nothing changed.
    pub async fn accept_invitation_superseding(
        &self,
        token_hash: &str,
        new_user: &NewUser,
        superseded: &SupersededSignup,
        event: NewAuditEvent,
    ) -> StoreResult<(User, ClosedSignup)> {
        let (user, closed) = self
            .accept(token_hash, Some(new_user), None, Some(superseded), event)
            .await?;
        let closed = closed.ok_or_else(|| StoreError::Config("nothing was superseded".into()))?;
        Ok((user, closed))
    }

    async fn accept(
        &self,
        token_hash: &str,
        new_user: Option<&NewUser>,
        existing_user_id: Option<&str>,
        superseded: Option<&SupersededSignup>,
        event: NewAuditEvent,
    ) -> StoreResult<(User, Option<ClosedSignup>)> {
        let mut tx = self.store.writer.begin().await?;
        // Read the clock once the write transaction is ours, so "now" is ordered with commits.
        let now = now_ms();
        let used = sqlx::query(
            "UPDATE invitation_tokens SET used_at = $1 WHERE token_hash = $2 \
             AND used_at IS NULL AND superseded_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS}, i.email_key FROM invitations i \
             JOIN invitation_tokens k ON k.invitation_id = i.id WHERE k.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_one(&mut *tx)
        .await?;
        let invitation = invitation_from_row(&row)?;
        let closed = match superseded {
            Some(superseded) => {
                let email_key: String = row.try_get("email_key")?;
                Some(
                    close_unverified_signup(&mut tx, &self.store, superseded, &email_key, now)
                        .await?,
                )
            }
            None => None,
        };
        let user_id = match (new_user, existing_user_id) {
            (Some(new_user), _) => {
                let id = new_id("usr");
                // The link was mailed to the address: opening it proves it.
                insert_user(
                    &mut tx,
                    &id,
                    new_user,
                    Some((invitation.team_id.as_str(), invitation.role)),
                    false,
                    Address::Verified,
                    now,
                )
                .await?;
                id
            }
            (None, Some(existing)) => {
                let done = sqlx::query(
                    "UPDATE users SET team_id = $1, role = $2, joined_team_at = $3, \
                     email_verified_at = COALESCE(email_verified_at, $3) \
                     WHERE id = $4 AND team_id IS NULL AND is_staff = 0 AND is_workforce = 0",
                )
                .bind(invitation.team_id.as_str())
                .bind(invitation.role.as_str())
                .bind(now)
                .bind(existing)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Unique(Constraint::UserEmail));
                }
                existing.to_owned()
            }
            (None, None) => return Err(StoreError::Config("accept needs a user".into())),
        };
        let accepted = sqlx::query(
            "UPDATE invitations SET status = 'accepted', accepted_at = $1, accepted_user_id = $2 \
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(now)
        .bind(&user_id)
        .bind(invitation.id.as_str())
        .execute(&mut *tx)
        .await?;
        if accepted.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let mut event = event;
        event.actor_user_id.get_or_insert_with(|| user_id.clone());
        audit::insert(&mut tx, Some(invitation.team_id.as_str()), &event).await?;
        if let Some(superseded) = superseded {
            audit::insert(
                &mut tx,
                Some(invitation.team_id.as_str()),
                &superseded.inviting_team_event,
            )
            .await?;
        }
        tx.commit().await?;
        Ok((self.store.get_user(&user_id).await?, closed))
    }
}
