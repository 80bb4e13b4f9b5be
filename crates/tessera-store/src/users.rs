//! People: team members, platform staff, and their credentials.

use sqlx::{any::AnyRow, Row};
use tessera_core::{profile::Profile, Email, Mode, Role};

use crate::{
    audit, flag, new_id, now_ms, CrossTenant, NewAuditEvent, Store, StoreError, StoreResult,
};

/// A person as the rest of Tessera sees them (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub company: String,
    pub job_title: String,
    pub phone: String,
    pub team_id: Option<String>,
    pub role: Option<Role>,
    pub is_staff: bool,
    /// A platform workforce labeler: labels any team's live tasks, belongs to no team.
    pub is_workforce: bool,
    pub created_at: i64,
    pub joined_team_at: Option<i64>,
    /// When the account proved it receives mail at its address; `None` for a sign-up whose
    /// link was not opened yet (such an account does not own its address, see
    /// [`User::owns_address`]).
    pub email_verified_at: Option<i64>,
}

impl User {
    /// Whether the address is this account's for good: verified. An unverified sign-up's
    /// address is given to whoever accepts an invitation to it (the link proves it), so an
    /// address typed by someone who does not own it never "belongs to another team".
    pub fn owns_address(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

/// What it takes to create an account; the password is already hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub password_hash: String,
    pub profile: Profile,
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.email, u.name, u.company, u.job_title, u.phone, \
    u.team_id, u.role, u.is_staff, u.is_workforce, u.created_at, u.joined_team_at, \
    u.email_verified_at";

pub(crate) fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    let role: Option<String> = row.try_get("role")?;
    let role = role
        .map(|r| r.parse::<Role>())
        .transpose()
        .map_err(|e| StoreError::Config(format!("bad role in database: {e}")))?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        company: row.try_get("company")?,
        job_title: row.try_get("job_title")?,
        phone: row.try_get("phone")?,
        team_id: row.try_get("team_id")?,
        role,
        is_staff: flag(row.try_get("is_staff")?),
        is_workforce: flag(row.try_get("is_workforce")?),
        created_at: row.try_get("created_at")?,
        joined_team_at: row.try_get("joined_team_at")?,
        email_verified_at: row.try_get("email_verified_at")?,
    })
}

/// Whether a new account's address counts as proven when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Address {
    /// Proven (an invitation link was opened) or vouched for (made by the operator).
    Verified,
    /// Typed at sign-up: proven only once the mailed link is opened.
    Unverified,
}

/// Inserts a user row inside an open transaction.
pub(crate) async fn insert_user(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    user: &NewUser,
    team: Option<(&str, Role)>,
    is_staff: bool,
    address: Address,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, email, email_key, password_hash, name, company, job_title, phone, \
         team_id, role, is_staff, created_at, joined_team_at, email_verified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(id)
    .bind(user.email.as_str())
    .bind(user.email.normalized())
    .bind(&user.password_hash)
    .bind(&user.profile.name)
    .bind(&user.profile.company)
    .bind(&user.profile.job_title)
    .bind(&user.profile.phone)
    .bind(team.map(|(t, _)| t.to_owned()))
    .bind(team.map(|(_, r)| r.as_str().to_owned()))
    .bind(i64::from(is_staff))
    .bind(now)
    .bind(team.map(|_| now))
    .bind((address == Address::Verified).then_some(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    pub async fn get_user(&self, user_id: &str) -> StoreResult<User> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    pub async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.email_key = $1"
        ))
        .bind(email.normalized())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user and their password hash, for sign-in.
    pub async fn user_credentials(&self, email: &Email) -> StoreResult<Option<(User, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.email_key = $1"
        ))
        .bind(email.normalized())
        .fetch_optional(&self.reader)
        .await?;
        match row {
            Some(row) => Ok(Some((user_from_row(&row)?, row.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    pub async fn password_hash(&self, user_id: &str) -> StoreResult<String> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(row.try_get("password_hash")?)
    }

    /// Remembers the dashboard mode `user_id` opened last (only when it changed: the caller
    /// compares with the mode its session loaded).
    pub async fn set_dashboard_mode(&self, user_id: &str, mode: Mode) -> StoreResult<()> {
        sqlx::query("UPDATE users SET dashboard_mode = $1 WHERE id = $2")
            .bind(mode.as_str())
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn update_profile(&self, user_id: &str, profile: &Profile) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE users SET name = $1, company = $2, job_title = $3, phone = $4 WHERE id = $5",
        )
        .bind(&profile.name)
        .bind(&profile.company)
        .bind(&profile.job_title)
        .bind(&profile.phone)
        .bind(user_id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Sets a new password hash and ends every other session of that user.
    pub async fn update_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session_hash: &str,
        event: NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep_session_hash)
            .execute(&mut *tx)
            .await?;
        let team: Option<String> = sqlx::query("SELECT team_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("team_id")?;
        audit::insert(&mut tx, team.as_deref(), &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a platform support (staff) account, in no team.
    pub async fn create_staff(&self, user: &NewUser) -> StoreResult<User> {
        let id = new_id("usr");
        let mut tx = self.writer.begin().await?;
        insert_user(&mut tx, &id, user, None, true, Address::Verified, now_ms()).await?;
        tx.commit().await?;
        self.get_user(&id).await
    }

    /// Creates a platform workforce labeler account, in no team.
    pub async fn create_workforce_labeler(&self, user: &NewUser) -> StoreResult<User> {
        let id = new_id("usr");
        let mut tx = self.writer.begin().await?;
        insert_user(&mut tx, &id, user, None, false, Address::Verified, now_ms()).await?;
        sqlx::query("UPDATE users SET is_workforce = 1 WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_user(&id).await
    }
}

/// Staff search reads every team's people (and accounts in no team).
impl CrossTenant {
    /// Staff search: users whose email or name contains `query` (case-insensitive).
    pub async fn search_users(
        &self,
        query: &str,
        limit: i64,
    ) -> StoreResult<Vec<(User, Option<String>)>> {
        let pattern = format!(
            "%{}%",
            query
                .trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, t.name AS team_name FROM users u \
             LEFT JOIN teams t ON t.id = u.team_id \
             WHERE u.email_key LIKE $1 ESCAPE '\\' OR LOWER(u.name) LIKE $1 ESCAPE '\\' \
             ORDER BY u.email_key LIMIT $2"
        ))
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.store.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((user_from_row(row)?, row.try_get("team_name")?)))
            .collect()
    }
}
