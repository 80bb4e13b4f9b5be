//! `/v1/teams`: teammates, invitations and roles, through the same rules as the dashboard.
//! An API key acts for its team with the Admin's authority.

use axum::{extract::State, Json};
use serde_json::{json, Value};
use tessera_core::Action;
use tessera_core::{AuditAction, Email, InvitableRole, Role};
use tessera_store::{InviteOutcome, NewAuditEvent, NewInvitation, StoreError};

use super::{
    auth::ApiCaller,
    wire::{iso, string_field, ApiError, ApiResult, JsonBody},
};
use crate::{
    invitations::{fresh_link, resend_interval_ms},
    ratelimit::{self, Limit},
    state::AppState,
    web::ClientIp,
};

/// Addresses one API call may invite or change.
pub const MAX_EMAILS: usize = 50;

async fn teammates(state: &AppState, team_id: &str) -> ApiResult<Value> {
    let mut out = Vec::new();
    for member in state.store.list_members(team_id).await? {
        let role = member.role.unwrap_or(Role::Member);
        let (first, last) = member
            .name
            .split_once(' ')
            .unwrap_or((member.name.as_str(), ""));
        out.push(json!({
            "email": member.email,
            "role": role.as_str(),
            "company": member.company,
            "firstName": first,
            "lastName": last,
            "isStudioLabeler": role == Role::Labeler,
        }));
    }
    for invitation in state.store.list_pending_invitations(team_id).await? {
        out.push(json!({
            "email": invitation.email,
            "role": invitation.role.as_str(),
            "isStudioLabeler": invitation.role == Role::Labeler,
            "expiry": iso(invitation.expires_at),
        }));
    }
    Ok(Value::Array(out))
}

fn event(
    caller: &ApiCaller,
    ip: &ClientIp,
    action: AuditAction,
    target: &str,
    detail: String,
) -> NewAuditEvent {
    NewAuditEvent {
        actor_user_id: None,
        actor: caller.label(),
        action,
        target: target.into(),
        detail,
        ip: ip.0.clone(),
    }
}

/// `{"emails": [...], "team_role": ...}`, validated.
fn parse_request(body: JsonBody) -> ApiResult<(Vec<Email>, InvitableRole)> {
    let body = body.object()?;
    let role = string_field(&body, "team_role", 32)?.ok_or_else(|| {
        ApiError::bad_request("Please include \"team_role\" (member, manager or labeler).")
    })?;
    let role: InvitableRole = role.parse()?;
    let emails = match body.get("emails") {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::String(one)) => vec![Value::String(one.clone())],
        _ => {
            return Err(ApiError::bad_request(
                "Please include \"emails\", a list of email addresses.",
            ))
        }
    };
    if emails.is_empty() || emails.len() > MAX_EMAILS {
        return Err(ApiError::bad_request(format!(
            "\"emails\" must list 1 to {MAX_EMAILS} addresses."
        )));
    }
    let emails = emails
        .iter()
        .map(|e| {
            e.as_str()
                .ok_or_else(|| ApiError::bad_request("\"emails\" must be strings."))
                .and_then(|s| Ok(Email::parse(s)?))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((emails, role))
}

/// Everyone in the team, with invited people carrying their invitation's `expiry`.
#[utoipa::path(
    get, path = "/v1/teams", tag = "teams",
    responses((status = 200, body = Vec<serde_json::Value>)),
)]
pub async fn list_teammates(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ViewTeam)?;
    Ok(Json(teammates(&state, &caller.team_id).await?))
}

/// Invite people by email with a role (member, manager or labeler; never admin).
#[utoipa::path(
    post, path = "/v1/teams/invite", tag = "teams", request_body = serde_json::Value,
    responses((status = 200, description = "All teammates", body = Vec<serde_json::Value>), (status = 400, body = super::ErrorBody), (status = 429, body = super::ErrorBody)),
)]
pub async fn invite_teammates(
    State(state): State<AppState>,
    caller: ApiCaller,
    ip: ClientIp,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::InviteMember)?;
    let (emails, role) = parse_request(body)?;
    // One unit per address, taken together before anything is sent; units of addresses
    // that get no mail are given back.
    let mut slots =
        match ratelimit::take_many(&state, Limit::InvitesPerTeam, &caller.team_id, emails.len())
            .await
            .map_err(|_| ApiError::internal("rate limit"))?
        {
            Ok(slots) => slots,
            Err(wait) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many invitations recently; try again in {wait}."),
                ))
            }
        };
    let team = state.store.get_team(&caller.team_id).await?;
    let admin = state.store.get_user(&team.admin_user_id).await?;
    for email in emails {
        if let Some(existing) = state.store.find_user_by_email(&email).await? {
            if existing.team_id.as_deref() == Some(team.id.as_str()) {
                continue;
            }
        }
        let link = fresh_link(&state, &team.name, &admin.name, &email, role.role());
        let new = NewInvitation {
            team_id: team.id.clone(),
            email: email.clone(),
            role: role.role(),
            invited_by: admin.id.clone(),
            token_hash: link.token_hash,
            expires_at: link.expires_at,
            min_resend_interval_ms: resend_interval_ms(&state),
            mail: link.mail,
            event: event(
                &caller,
                &ip,
                AuditAction::InvitationSent,
                email.as_str(),
                format!("invited as {} through the API", role.role().label()),
            ),
        };
        match state.store.invite(&new).await {
            Ok(InviteOutcome::Created(_) | InviteOutcome::Refreshed { .. }) => {
                slots.pop();
            }
            // Emailed moments ago: the role is changed (and audited), nothing is sent.
            Ok(InviteOutcome::RoleChanged { .. }) => {}
            Err(StoreError::TooSoon { .. } | StoreError::Unique(_) | StoreError::Conflict(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    for unused in slots {
        unused
            .release(&state)
            .await
            .map_err(|_| ApiError::internal("rate limit"))?;
    }
    state.wake(crate::state::Wrote::Mail);
    Ok(Json(teammates(&state, &caller.team_id).await?))
}

/// Change the role of teammates (or of pending invitations) to member, manager or labeler.
/// The Admin's role is changed only by support.
#[utoipa::path(
    post, path = "/v1/teams/set_role", tag = "teams", request_body = serde_json::Value,
    responses((status = 200, description = "All teammates", body = Vec<serde_json::Value>), (status = 400, body = super::ErrorBody)),
)]
pub async fn set_role(
    State(state): State<AppState>,
    caller: ApiCaller,
    ip: ClientIp,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    caller.authorize(Action::ChangeMemberRole)?;
    let (emails, role) = parse_request(body)?;
    let members = state.store.list_members(&caller.team_id).await?;
    let invitations = state
        .store
        .list_pending_invitations(&caller.team_id)
        .await?;
    // Check every address first, so a bad one changes nothing.
    for email in &emails {
        let member = members
            .iter()
            .find(|m| m.email.to_lowercase() == email.normalized());
        match member {
            Some(m) if m.role == Some(Role::Admin) => {
                return Err(ApiError::bad_request(format!(
                    "{} is the team's Admin; changing the Admin is a support operation.",
                    m.email
                )))
            }
            Some(_) => {}
            None if invitations
                .iter()
                .any(|i| i.email.to_lowercase() == email.normalized()) => {}
            None => {
                return Err(ApiError::bad_request(format!(
                    "{email} is not a member of your team."
                )))
            }
        }
    }
    for email in &emails {
        if let Some(m) = members
            .iter()
            .find(|m| m.email.to_lowercase() == email.normalized())
        {
            if m.role != Some(role.role()) {
                let from = m.role.map(Role::label).unwrap_or_default();
                let ev = event(
                    &caller,
                    &ip,
                    AuditAction::MemberRoleChanged,
                    &m.email,
                    format!("{from} → {} through the API", role.role().label()),
                );
                state
                    .store
                    .set_member_role(&caller.team_id, &m.id, role.role(), ev)
                    .await?;
            }
        } else if let Some(i) = invitations
            .iter()
            .find(|i| i.email.to_lowercase() == email.normalized())
        {
            let ev = event(
                &caller,
                &ip,
                AuditAction::InvitationRoleChanged,
                &i.email,
                format!(
                    "{} → {} through the API",
                    i.role.label(),
                    role.role().label()
                ),
            );
            state
                .store
                .set_invitation_role(&caller.team_id, &i.id, role.role(), &ev)
                .await?;
        }
    }
    Ok(Json(teammates(&state, &caller.team_id).await?))
}
