//! Support operations shared by the staff console and the `tessera admin` CLI, so both apply
//! the same rules and write the same audit entries.

use tessera_core::AuditAction;
use tessera_core::{
    profile::{check_new_password, Profile},
    team::{looks_like_team_id, parse_team_name},
    Email, Invalid, Role,
};
use tessera_store::{Constraint, NewAuditEvent, NewUser, Store, StoreError, Team, User};

use crate::crypto::{hash_password, MasterKey};

/// A support operation's failure, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Invalid> for SupportError {
    fn from(Invalid(message): Invalid) -> Self {
        SupportError::Invalid(message)
    }
}

impl From<StoreError> for SupportError {
    fn from(err: StoreError) -> Self {
        SupportError::Internal(err.into())
    }
}

pub type SupportResult<T> = Result<T, SupportError>;

/// Who performs a support operation, for the audit log.
#[derive(Debug, Clone)]
pub struct Operator {
    pub user_id: Option<String>,
    pub label: String,
    pub ip: String,
}

impl Operator {
    /// The operator CLI, run on the server itself.
    pub fn cli() -> Self {
        Self {
            user_id: None,
            label: "operator (CLI)".into(),
            ip: "local".into(),
        }
    }

    /// An audit entry of this operator's (billing changes fill in their own action and detail).
    pub fn event(&self, action: AuditAction, target: &str, detail: String) -> NewAuditEvent {
        NewAuditEvent {
            actor_user_id: self.user_id.clone(),
            actor: self.label.clone(),
            action,
            target: target.into(),
            detail,
            ip: self.ip.clone(),
        }
    }
}

/// An account created by an operator: the name defaults to the address's local part until
/// its owner edits the profile.
async fn operator_account(email: &str, password: &str) -> SupportResult<NewUser> {
    let email = Email::parse(email)?;
    check_new_password(password, None)?;
    let local = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let profile = Profile::parse(&local, "", "", "")?;
    Ok(NewUser {
        password_hash: hash_password(password.to_owned()).await?,
        email,
        profile,
    })
}

/// The team an operator means: a team id (`team_…`), or a name that exactly one team has.
/// Names are not unique, so an ambiguous name is refused with the matching ids (as
/// `tessera admin list-teams` shows them) rather than guessed.
pub async fn find_team(store: &Store, reference: &str) -> SupportResult<Team> {
    let reference = reference.trim();
    if looks_like_team_id(reference) {
        return match store.cross_tenant().get_team(reference).await {
            Ok(team) => Ok(team),
            Err(StoreError::NotFound) => Err(SupportError::Invalid(format!(
                "No team has the id {reference}."
            ))),
            Err(err) => Err(err.into()),
        };
    }
    let mut matches = store.cross_tenant().find_teams_by_name(reference).await?;
    match matches.len() {
        0 => Err(SupportError::Invalid(format!(
            "No team is named \"{reference}\"."
        ))),
        1 => Ok(matches.remove(0).team),
        n => Err(SupportError::Invalid(format!(
            "{n} teams are named \"{reference}\": {}. Give the team id instead.",
            matches
                .iter()
                .map(|t| format!("{} (Admin {})", t.team.id, t.admin_email))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn user_with_email(store: &Store, email: &str) -> SupportResult<User> {
    let email = Email::parse(email)?;
    store
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| SupportError::Invalid(format!("No account has the address {email}.")))
}

/// Creates a team with its Admin account.
pub async fn create_team(
    store: &Store,
    master: &MasterKey,
    name: &str,
    admin_email: &str,
    password: &str,
    who: &Operator,
) -> SupportResult<Team> {
    let name = parse_team_name(name)?;
    let user = operator_account(admin_email, password).await?;
    let email = user.email.clone();
    let event = who.event(
        AuditAction::TeamCreated,
        &name,
        format!("team created with {email} as Admin"),
    );
    match store.create_team_with_admin(&name, &user, event).await {
        Ok((team, admin)) => {
            let scope =
                crate::keys::service::new_team_scope(&team.id, &admin).ok_or_else(|| {
                    SupportError::Internal(anyhow::anyhow!(
                        "a new team's Admin may not manage its keys"
                    ))
                })?;
            crate::keys::service::provision_team(store, master, &scope).await?;
            Ok(team)
        }
        Err(err) if err.is_unique(&Constraint::UserEmail) => Err(SupportError::Invalid(format!(
            "An account with the address {email} already exists."
        ))),
        Err(err) => Err(err.into()),
    }
}

/// Creates a platform support (staff) account.
pub async fn create_staff(store: &Store, email: &str, password: &str) -> SupportResult<User> {
    let user = operator_account(email, password).await?;
    let email = user.email.clone();
    match store.create_staff(&user).await {
        Ok(user) => Ok(user),
        Err(err) if err.is_unique(&Constraint::UserEmail) => Err(SupportError::Invalid(format!(
            "An account with the address {email} already exists."
        ))),
        Err(err) => Err(err.into()),
    }
}

/// Creates a platform workforce labeler, who labels every team's live tasks.
pub async fn create_labeler(store: &Store, email: &str, password: &str) -> SupportResult<User> {
    let user = operator_account(email, password).await?;
    let email = user.email.clone();
    match store.create_workforce_labeler(&user).await {
        Ok(user) => Ok(user),
        Err(err) if err.is_unique(&Constraint::UserEmail) => Err(SupportError::Invalid(format!(
            "An account with the address {email} already exists."
        ))),
        Err(err) => Err(err.into()),
    }
}

/// Moves a user into a team with a role (default member). Not for a team's Admin.
pub async fn move_user(
    store: &Store,
    email: &str,
    team_name: &str,
    role: Option<&str>,
    who: &Operator,
) -> SupportResult<(User, Team)> {
    let user = user_with_email(store, email).await?;
    let team = find_team(store, team_name).await?;
    let role: Role = role
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("member")
        .parse()?;
    if role == Role::Admin {
        return Err(SupportError::Invalid(
            "To make someone Admin, move them in and then use set-admin.".into(),
        ));
    }
    if user.is_staff {
        return Err(SupportError::Invalid(format!(
            "{} is a staff account; staff belong to no team.",
            user.email
        )));
    }
    if user.is_workforce {
        return Err(SupportError::Invalid(format!(
            "{} is a workforce labeler account; workforce labelers belong to no team.",
            user.email
        )));
    }
    if user.role == Some(Role::Admin) {
        return Err(SupportError::Invalid(format!(
            "{} is the Admin of their team; make someone else Admin there first (set-admin).",
            user.email
        )));
    }
    let from = match user.team_id.as_deref() {
        Some(id) => store.cross_tenant().get_team(id).await?.name,
        None => "(no team)".into(),
    };
    let event = who.event(
        AuditAction::UserMoved,
        &user.email,
        format!("moved from {from} to {} as {}", team.name, role.label()),
    );
    let moved = store
        .cross_tenant()
        .move_user(&user.id, &team.id, role, event)
        .await?;
    Ok((moved, team))
}

/// Makes a member of the team its Admin; the previous Admin becomes a Manager.
pub async fn set_admin(
    store: &Store,
    team_name: &str,
    email: &str,
    who: &Operator,
) -> SupportResult<Team> {
    let team = find_team(store, team_name).await?;
    let user = user_with_email(store, email).await?;
    if user.team_id.as_deref() != Some(team.id.as_str()) {
        return Err(SupportError::Invalid(format!(
            "{} is not a member of {}; move them into the team first.",
            user.email, team.name
        )));
    }
    if user.role == Some(Role::Admin) {
        return Err(SupportError::Invalid(format!(
            "{} is already the Admin of {}.",
            user.email, team.name
        )));
    }
    let old_admin = store.get_user(&team.admin_user_id).await?;
    let event = who.event(
        AuditAction::TeamAdminChanged,
        &user.email,
        format!(
            "Admin changed from {} to {}; {} is now a Manager",
            old_admin.email, user.email, old_admin.email
        ),
    );
    match store
        .cross_tenant()
        .set_admin(&team.id, &user.id, event)
        .await
    {
        Ok(()) => Ok(team),
        Err(StoreError::NotFound) => Err(SupportError::Invalid(format!(
            "{} is no longer a member of {}.",
            user.email, team.name
        ))),
        Err(StoreError::Unique(_) | StoreError::Conflict(_)) => Err(SupportError::Invalid(
            "The team's Admin changed at the same moment; try again.".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

/// Creates an API key in `scope` (the operator's, made by the CLI); returns the key itself.
pub async fn create_api_key(
    store: &Store,
    master: &MasterKey,
    scope: &tessera_core::Scope,
    label: &str,
    who: &Operator,
) -> SupportResult<String> {
    let label = tessera_core::clean_text("Label", label, crate::keys::MAX_LABEL, false)?;
    let event = who.event(
        AuditAction::ApiKeyCreated,
        &label,
        format!("{} key", scope.mode().label()),
    );
    let request = crate::keys::service::KeyRequest {
        label: &label,
        created_by: who.user_id.as_deref(),
        expiry: tessera_core::keys::KeyExpiry::Never,
        form_nonce: None,
        event,
    };
    let (_, key) = crate::keys::service::create_api_key(store, master, scope, request).await?;
    Ok(key)
}

/// The team and mode a support command names (`team`: a name or an id), for the CLI to make
/// its operator scope from.
pub async fn team_and_mode(
    store: &Store,
    team: &str,
    mode: &str,
) -> SupportResult<(Team, tessera_core::Mode)> {
    let team = find_team(store, team).await?;
    let mode: tessera_core::Mode = mode.parse()?;
    Ok((team, mode))
}

/// A team's callback secret of `kind` (the auth key or the `whsec_…` signing secret) for the
/// scope's mode, created on first use.
pub async fn team_secret(
    store: &Store,
    master: &MasterKey,
    scope: &tessera_core::Scope,
    kind: tessera_core::status::SecretKind,
) -> SupportResult<String> {
    let secret = crate::keys::service::team_secret(store, master, scope, kind).await?;
    Ok(crate::keys::service::reveal_team_secret(
        master,
        scope.team_id(),
        kind,
        scope.mode(),
        &secret.sealed,
    )?)
}
