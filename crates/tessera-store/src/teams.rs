//! Teams and their membership: sign-up, roles, removal, moves and the Admin hand-over.

use sqlx::{any::AnyRow, Row};
use tessera_core::{team::team_name_key, Role, Scope};

use crate::{
    audit, new_id, now_ms,
    users::{insert_user, user_from_row, Address, USER_COLUMNS},
    CrossTenant, NewAuditEvent, NewUser, Store, StoreError, StoreResult, User,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub default_callback_url: Option<String>,
    pub admin_user_id: String,
    pub created_at: i64,
}

/// A row of the operator's team list.
#[derive(Debug, Clone)]
pub struct TeamSummary {
    pub team: Team,
    pub admin_email: String,
    pub members: i64,
}

const TEAM_COLUMNS: &str = "t.id, t.name, t.default_callback_url, t.admin_user_id, t.created_at";

fn team_from_row(row: &AnyRow) -> StoreResult<Team> {
    Ok(Team {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        default_callback_url: row.try_get("default_callback_url")?,
        admin_user_id: row.try_get("admin_user_id")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a team and its Admin inside an open transaction; returns their ids.
pub(crate) async fn insert_team_with_admin(
    conn: &mut sqlx::AnyConnection,
    team_name: &str,
    admin: &NewUser,
    address: Address,
    mut event: NewAuditEvent,
) -> StoreResult<(String, String)> {
    let team_id = new_id("team");
    let user_id = new_id("usr");
    let now = now_ms();
    sqlx::query(
        "INSERT INTO teams (id, name, name_key, admin_user_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&team_id)
    .bind(team_name)
    .bind(team_name_key(team_name))
    .bind(&user_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    insert_user(
        conn,
        &user_id,
        admin,
        Some((&team_id, Role::Admin)),
        false,
        address,
        now,
    )
    .await?;
    event.actor_user_id.get_or_insert_with(|| user_id.clone());
    audit::insert(conn, Some(&team_id), &event).await?;
    Ok((team_id, user_id))
}

impl Store {
    /// Creates a team and its Admin together for the operator (CLI, staff console, tools):
    /// the Admin's address counts as verified, the operator vouches for it. The audit event's
    /// actor defaults to the new Admin. Takes no [`Scope`]: the team does not exist until this
    /// commits, and it touches no other team's rows.
    pub async fn create_team_with_admin(
        &self,
        team_name: &str,
        admin: &NewUser,
        event: NewAuditEvent,
    ) -> StoreResult<(Team, User)> {
        let mut tx = self.writer.begin().await?;
        let (team_id, user_id) =
            insert_team_with_admin(&mut tx, team_name, admin, Address::Verified, event).await?;
        tx.commit().await?;
        Ok((
            self.read_team(&team_id).await?,
            self.get_user(&user_id).await?,
        ))
    }

    /// The team a request acts for.
    pub async fn get_team(&self, scope: &Scope) -> StoreResult<Team> {
        self.read_team(scope.team_id()).await
    }

    pub(crate) async fn read_team(&self, team_id: &str) -> StoreResult<Team> {
        let row = sqlx::query(&format!(
            "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.id = $1"
        ))
        .bind(team_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        team_from_row(&row)
    }

    /// Renames the team and sets its default callback URL, auditing what changed.
    pub async fn update_team_details(
        &self,
        scope: &Scope,
        name: &str,
        default_callback_url: Option<&str>,
        event: NewAuditEvent,
    ) -> StoreResult<Team> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE teams SET name = $1, name_key = $2, default_callback_url = $3 WHERE id = $4",
        )
        .bind(name)
        .bind(team_name_key(name))
        .bind(default_callback_url)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        audit::insert(&mut tx, Some(scope.team_id()), &event).await?;
        tx.commit().await?;
        self.get_team(scope).await
    }

    /// Members, Admin first, then by name.
    pub async fn list_members(&self, scope: &Scope) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.team_id = $1 \
             ORDER BY CASE WHEN u.role = 'admin' THEN 0 ELSE 1 END, LOWER(u.name), u.email_key"
        ))
        .bind(scope.team_id())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// A member of the scope's team, or `NotFound` (also when the user is in another team).
    pub async fn find_member(&self, scope: &Scope, user_id: &str) -> StoreResult<User> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1 AND u.team_id = $2"
        ))
        .bind(user_id)
        .bind(scope.team_id())
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    /// Changes a non-Admin member's role. Never grants or takes Admin (the schema agrees).
    pub async fn set_member_role(
        &self,
        scope: &Scope,
        user_id: &str,
        role: Role,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        if role == Role::Admin {
            return Err(StoreError::Conflict(
                "admin role is granted only by set_admin".into(),
            ));
        }
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET role = $1 WHERE id = $2 AND team_id = $3 AND role <> 'admin'",
        )
        .bind(role.as_str())
        .bind(user_id)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if role != Role::Labeler {
            crate::labeling::release_claims(&mut tx, user_id).await?;
        }
        audit::insert(&mut tx, Some(scope.team_id()), &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a non-Admin member out of the team and signs them out everywhere. The account
    /// stays (its history is referenced), in no team, until support moves it.
    pub async fn remove_member(
        &self,
        scope: &Scope,
        user_id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET team_id = NULL, role = NULL, joined_team_at = NULL \
             WHERE id = $1 AND team_id = $2 AND role <> 'admin'",
        )
        .bind(user_id)
        .bind(scope.team_id())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        crate::labeling::release_claims(&mut tx, user_id).await?;
        audit::insert(&mut tx, Some(scope.team_id()), &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Platform staff's view of teams: listings and support operations that span teams, or move
/// people between them, so no one team's [`Scope`] describes them.
impl CrossTenant {
    /// A team by id, for code that has no scope for it: the session loader naming the signed-in
    /// user's team before anything is authorised, workers, the staff console, and pages reached
    /// from an emailed link.
    pub async fn get_team(&self, team_id: &str) -> StoreResult<Team> {
        self.store.read_team(team_id).await
    }

    /// Every team with this name, compared case-insensitively, oldest first. Names are not
    /// unique (two customers may both be "Acme"), so an operator's name may match several.
    pub async fn find_teams_by_name(&self, name: &str) -> StoreResult<Vec<TeamSummary>> {
        self.team_summaries(
            "WHERE t.name_key = $1 ORDER BY t.created_at, t.id",
            Some(name),
            None,
        )
        .await
    }

    /// Every team by name; teams sharing a name by age.
    pub async fn list_teams(&self) -> StoreResult<Vec<TeamSummary>> {
        self.team_summaries("ORDER BY t.name_key, t.created_at, t.id", None, None)
            .await
    }

    /// Up to `limit` teams of [`Self::list_teams`]'s order from `offset`: for a page that lists
    /// teams and must stay small however many there are (the staff billing page).
    pub async fn list_teams_page(&self, limit: i64, offset: i64) -> StoreResult<Vec<TeamSummary>> {
        self.team_summaries(
            "ORDER BY t.name_key, t.created_at, t.id LIMIT $1 OFFSET $2",
            None,
            Some((limit, offset)),
        )
        .await
    }

    /// `name` binds `$1`; `page` (limit, offset) binds `$1` and `$2` (never both).
    async fn team_summaries(
        &self,
        filter_and_order: &'static str,
        name: Option<&str>,
        page: Option<(i64, i64)>,
    ) -> StoreResult<Vec<TeamSummary>> {
        let sql = format!(
            "SELECT {TEAM_COLUMNS}, a.email AS admin_email, \
             (SELECT COUNT(*) FROM users m WHERE m.team_id = t.id) AS members \
             FROM teams t JOIN users a ON a.id = t.admin_user_id {filter_and_order}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(name) = name {
            query = query.bind(team_name_key(name));
        }
        if let Some((limit, offset)) = page {
            query = query.bind(limit).bind(offset);
        }
        let rows = query.fetch_all(&self.store.reader).await?;
        rows.iter()
            .map(|row| {
                Ok(TeamSummary {
                    team: team_from_row(row)?,
                    admin_email: row.try_get("admin_email")?,
                    members: row.try_get("members")?,
                })
            })
            .collect()
    }

    /// Support operation: moves a user into `team_id` with `role` (not Admin). A team's Admin
    /// cannot be moved away until another Admin is set. Ends the user's sessions.
    pub async fn move_user(
        &self,
        user_id: &str,
        team_id: &str,
        role: Role,
        event: NewAuditEvent,
    ) -> StoreResult<User> {
        if role == Role::Admin {
            return Err(StoreError::Conflict(
                "admin role is granted only by set_admin".into(),
            ));
        }
        let mut tx = self.store.writer.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let user = user_from_row(&row)?;
        if user.is_staff || user.is_workforce {
            return Err(StoreError::Conflict(
                "staff and workforce accounts belong to no team".into(),
            ));
        }
        if user.role == Some(Role::Admin) {
            return Err(StoreError::Conflict(
                "users_one_admin_per_team: user is their team's Admin".into(),
            ));
        }
        let closed: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT closed_at FROM teams WHERE id = $1")
                .bind(team_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((Some(_),)) = closed {
            return Err(StoreError::Conflict(
                "the team was closed (its unverified sign-up lost its address)".into(),
            ));
        }
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE users SET team_id = $1, role = $2, joined_team_at = $3 WHERE id = $4 AND (role IS NULL OR role <> 'admin')",
        )
        .bind(team_id)
        .bind(role.as_str())
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "users_one_admin_per_team: user is their team's Admin".into(),
            ));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        crate::labeling::release_claims(&mut tx, user_id).await?;
        if let Some(old_team) = user.team_id.as_deref().filter(|t| *t != team_id) {
            audit::insert(&mut tx, Some(old_team), &event).await?;
        }
        audit::insert(&mut tx, Some(team_id), &event).await?;
        tx.commit().await?;
        self.store.get_user(user_id).await
    }

    /// Support operation: makes `user_id` (already in the team) its Admin; the previous Admin
    /// becomes a Manager. One transaction, so the team is never without an Admin; the schema
    /// rejects any interleaving that would leave two.
    pub async fn set_admin(
        &self,
        team_id: &str,
        user_id: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.store.writer.begin().await?;
        let member = sqlx::query("SELECT role FROM users WHERE id = $1 AND team_id = $2")
            .bind(user_id)
            .bind(team_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let role: String = member.try_get("role")?;
        if role == Role::Admin.as_str() {
            return Ok(());
        }
        sqlx::query("UPDATE users SET role = 'manager' WHERE team_id = $1 AND role = 'admin'")
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1 AND team_id = $2")
            .bind(user_id)
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE teams SET admin_user_id = $1 WHERE id = $2")
            .bind(user_id)
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        audit::insert(&mut tx, Some(team_id), &event).await?;
        tx.commit().await?;
        Ok(())
    }
}
