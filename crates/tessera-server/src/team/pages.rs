//! The "Your Team" page (members, invitations, roles, removal) and team details.

use crate::web::PageTime;
use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use tessera_core::{
    policy::{check_role_change, MemberRef},
    team::{parse_callback_url, parse_team_name},
    Action, AuditAction, Invalid, InvitableRole, Role,
};
use tessera_store::StoreError;

use super::service;
use crate::web::{Form, Path};
use crate::{
    audit,
    authz::{perm, Authorized},
    state::AppState,
    web::{
        humanize_ms, page, redirect_with_flash, render, ClientIp, Layout, SignedIn, WebError,
        WebResult,
    },
};

pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub role_label: String,
    pub joined: PageTime,
    pub is_admin: bool,
    pub is_self: bool,
    pub two_factor: bool,
}

pub struct InvitationRow {
    pub id: String,
    pub email: String,
    /// The role's word, for the role picker of a pending invitation.
    pub role: String,
    pub role_label: String,
    pub expires: PageTime,
    pub expired: bool,
    pub sent_count: i64,
    /// While the resend interval since the last email runs: how long until Resend works
    /// again, in words and in milliseconds (the button is shown disabled meanwhile).
    pub resend_in: Option<(String, i64)>,
}

/// Options for role pickers: never Admin.
pub struct RoleOption {
    pub value: &'static str,
    pub label: &'static str,
}

/// What a role may do, in words, for the invite form (derived from the policy).
pub struct RoleHelp {
    pub label: &'static str,
    pub abilities: Vec<&'static str>,
}

fn role_help() -> Vec<RoleHelp> {
    InvitableRole::ALL
        .iter()
        .map(|r| RoleHelp {
            label: r.label(),
            abilities: tessera_core::policy::abilities(*r),
        })
        .collect()
}

pub fn role_options() -> Vec<RoleOption> {
    InvitableRole::ALL
        .iter()
        .map(|r| RoleOption {
            value: r.as_str(),
            label: r.label(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub layout: Layout,
    pub team_name: String,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    pub can_manage: bool,
    pub roles: Vec<RoleOption>,
    pub invite_error: Option<String>,
    pub invite_emails: String,
    pub invite_role: String,
    pub role_help: Vec<RoleHelp>,
    /// The Admin hand-over section (the Admin only; see [`super::handover`]).
    pub handover: Option<super::handover::HandoverSection>,
    /// Every member must sign in with a second factor.
    pub require_two_factor: bool,
    /// The viewer may change that (the Admin).
    pub can_require_two_factor: bool,
    /// The viewer has two-factor sign-in on (required before requiring it of others).
    pub viewer_has_two_factor: bool,
    pub two_factor_error: Option<String>,
}

/// Builds the team page; the invite form's state is passed in so a failed invite shows the
/// form again with what was typed.
pub async fn team_page(
    state: &AppState,
    who: &SignedIn,
    invite_error: Option<String>,
    invite_emails: String,
    invite_role: String,
) -> WebResult<TeamPage> {
    let scope = who.authorize(Action::ViewTeam)?;
    let team = state.store.get_team(&scope).await?;
    let now = tessera_store::now_ms();
    let roster = service::roster(&state.store, &scope).await?;
    let handover = if who.may(Action::HandOverAdmin) {
        Some(super::handover::section(state, &scope, &roster.members, now).await?)
    } else {
        None
    };
    let with_two_factor = state.store.two_factor_members(&scope).await?;
    let members = roster
        .members
        .into_iter()
        .map(|m| {
            let role = m.role.unwrap_or(Role::Member);
            MemberRow {
                is_self: m.id == who.user.id,
                is_admin: role == Role::Admin,
                role: role.as_str().to_owned(),
                role_label: role.label().to_owned(),
                joined: PageTime::maybe(m.joined_team_at),
                two_factor: with_two_factor.contains(&m.id),
                name: m.name,
                email: m.email,
                id: m.id,
            }
        })
        .collect();
    let resend_interval = crate::invitations::service::resend_interval_ms(state);
    let invitations = roster
        .invitations
        .into_iter()
        .map(|i| InvitationRow {
            resend_in: Some(i.last_sent_at + resend_interval - now)
                .filter(|wait| *wait > 0)
                .map(|wait| (humanize_ms(wait), wait)),
            expired: i.expires_at <= now,
            expires: PageTime::at(i.expires_at),
            role: i.role.as_str().to_owned(),
            role_label: i.role.label().to_owned(),
            sent_count: i.send_count,
            email: i.email,
            id: i.id.into_string(),
        })
        .collect();
    Ok(TeamPage {
        layout: Layout::signed_in("Your Team", who, "/team"),
        team_name: team.name,
        members,
        invitations,
        can_manage: who.may(Action::InviteMember),
        roles: role_options(),
        invite_error,
        invite_emails,
        invite_role,
        role_help: role_help(),
        handover,
        require_two_factor: state.store.team_requires_two_factor(&scope).await?,
        can_require_two_factor: who.may(Action::RequireTwoFactor),
        viewer_has_two_factor: who.two_factor_enabled,
        two_factor_error: None,
    })
}

pub(super) async fn show(State(state): State<AppState>, who: SignedIn) -> WebResult<Response> {
    Ok(page(
        &team_page(&state, &who, None, String::new(), "member".into()).await?,
    ))
}

#[derive(Deserialize)]
pub(super) struct RoleInput {
    #[serde(default)]
    role: String,
}

pub(super) async fn change_role(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::ChangeMemberRole, SignedIn>,
    ip: ClientIp,
    Path(user_id): Path<String>,
    Form(input): Form<RoleInput>,
) -> WebResult<Response> {
    let target = state.store.find_member(&scope, &user_id).await?;
    let current = target.role.unwrap_or(Role::Member);
    let new_role: Role = input
        .role
        .parse()
        .map_err(|Invalid(m)| WebError::BadRequest(m))?;
    check_role_change(
        &who.user.id,
        MemberRef {
            user_id: &target.id,
            role: current,
        },
        new_role,
    )
    .map_err(|Invalid(m)| WebError::BadRequest(m))?;
    if new_role == current {
        return Ok(redirect_with_flash(
            "/team",
            &format!("{} is already a {}.", target.email, current.label()),
        ));
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::MemberRoleChanged,
        &target.email,
        service::role_change(current.label(), new_role),
    );
    state
        .store
        .set_member_role(&scope, &target.id, new_role, event)
        .await?;
    Ok(redirect_with_flash(
        "/team",
        &format!("{} is now a {}.", target.email, new_role.label()),
    ))
}

#[derive(Template)]
#[template(path = "confirm_remove.html")]
struct ConfirmRemovePage {
    layout: Layout,
    user_id: String,
    name: String,
    email: String,
}

pub(super) async fn confirm_remove(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::RemoveMember, SignedIn>,
    Path(user_id): Path<String>,
) -> WebResult<Response> {
    let target = service::removable_member(&state.store, &scope, &who.user.id, &user_id)
        .await?
        .map_err(|Invalid(m)| WebError::BadRequest(m))?;
    Ok(page(&ConfirmRemovePage {
        layout: Layout::signed_in("Remove member", &who, "/team"),
        user_id: target.id,
        name: target.name,
        email: target.email,
    }))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::RemoveMember, SignedIn>,
    ip: ClientIp,
    Path(user_id): Path<String>,
) -> WebResult<Response> {
    let target = service::removable_member(&state.store, &scope, &who.user.id, &user_id)
        .await?
        .map_err(|Invalid(m)| WebError::BadRequest(m))?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::MemberRemoved,
        &target.email,
        format!("removed ({})", target.role.map(Role::label).unwrap_or("")),
    );
    state.store.remove_member(&scope, &target.id, event).await?;
    Ok(redirect_with_flash(
        "/team",
        &format!("{} has been removed from the team.", target.email),
    ))
}

#[derive(Deserialize, Default)]
pub(super) struct TwoFactorRequirementInput {
    /// The checkbox: present ("1") when checked.
    #[serde(default)]
    required: Option<String>,
}

/// The Admin's "Require two-factor authentication for every member". Turning it on needs the
/// Admin's own two-factor sign-in first, so the one person who can turn it off again is never
/// the first one locked out.
pub(super) async fn set_two_factor_requirement(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::RequireTwoFactor, SignedIn>,
    ip: ClientIp,
    Form(input): Form<TwoFactorRequirementInput>,
) -> WebResult<Response> {
    let required = input.required.is_some_and(|v| !v.is_empty() && v != "0");
    if required == state.store.team_requires_two_factor(&scope).await? {
        return Ok(redirect_with_flash("/team", "Nothing changed."));
    }
    if required && !who.two_factor_enabled {
        let mut page = team_page(&state, &who, None, String::new(), "member".into()).await?;
        page.two_factor_error = Some(
            "Set up two-factor authentication for yourself first (Profile → Two-factor authentication): the requirement applies to you too.".into(),
        );
        return Ok(render(StatusCode::BAD_REQUEST, &page));
    }
    let without = state.store.list_members(&scope).await?.len()
        - state.store.two_factor_members(&scope).await?.len();
    let (detail, flash) = if required {
        (
            format!("two-factor authentication required of every member ({without} without it yet)"),
            format!(
                "Two-factor authentication is now required. Members without it ({without}) are asked to set it up before anything else."
            ),
        )
    } else {
        (
            "two-factor authentication no longer required".to_owned(),
            "Two-factor authentication is no longer required of every member.".to_owned(),
        )
    };
    let team = state.store.get_team(&scope).await?;
    let event = audit::event(
        &who,
        &ip,
        AuditAction::TeamTwoFactorRequirementChanged,
        &team.name,
        detail,
    );
    state
        .store
        .set_team_two_factor_requirement(&scope, required, &event)
        .await?;
    Ok(redirect_with_flash("/team", &flash))
}

// ----- team details --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub(super) struct DetailsInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    default_callback_url: String,
}

#[derive(Template)]
#[template(path = "team_details.html")]
struct DetailsPage {
    layout: Layout,
    error: Option<String>,
    name: String,
    default_callback_url: String,
}

pub(super) async fn details_form(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditTeamDetails, SignedIn>,
) -> WebResult<Response> {
    let team = state.store.get_team(&scope).await?;
    Ok(page(&DetailsPage {
        layout: Layout::signed_in("Team details", &who, "/team/details"),
        error: None,
        name: team.name,
        default_callback_url: team.default_callback_url.unwrap_or_default(),
    }))
}

pub(super) async fn update_details(
    State(state): State<AppState>,
    Authorized {
        caller: who, scope, ..
    }: Authorized<perm::EditTeamDetails, SignedIn>,
    ip: ClientIp,
    Form(input): Form<DetailsInput>,
) -> WebResult<Response> {
    let again = |message: String| {
        render(
            StatusCode::BAD_REQUEST,
            &DetailsPage {
                layout: Layout::signed_in("Team details", &who, "/team/details"),
                error: Some(message),
                name: input.name.clone(),
                default_callback_url: input.default_callback_url.clone(),
            },
        )
    };
    let parsed = parse_team_name(&input.name)
        .and_then(|n| Ok((n, parse_callback_url(&input.default_callback_url)?)));
    let (name, url) = match parsed {
        Ok(v) => v,
        Err(Invalid(message)) => return Ok(again(message)),
    };
    let before = state.store.get_team(&scope).await?;
    let changes = service::detail_changes(&before, &name, url.as_deref());
    if changes.is_empty() {
        return Ok(redirect_with_flash("/team/details", "Nothing changed."));
    }
    let event = audit::event(
        &who,
        &ip,
        AuditAction::TeamDetailsChanged,
        &name,
        changes.join("; "),
    );
    match state
        .store
        .update_team_details(&scope, &name, url.as_deref(), event)
        .await
    {
        Ok(_) => {
            state.team_defaults.forget(scope.team_id());
            Ok(redirect_with_flash("/team/details", "Team details saved."))
        }
        Err(StoreError::NotFound) => Err(WebError::NotFound),
        Err(err) => Err(err.into()),
    }
}
