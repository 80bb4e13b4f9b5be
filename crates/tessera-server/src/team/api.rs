//! `/v1/teams` and `/v1/teams/set_role`: teammates and their roles, through the same rules as
//! the dashboard. An API key acts for its team with the Admin's authority.

use axum::{extract::State, Json};
use serde::Serialize;
use serde_json::Value;
use tessera_core::{AuditAction, Email, InvitableRole, Role, Scope};
use tessera_store::Store;
use utoipa::ToSchema;

use super::service;
use crate::{
    api::{
        wire::{iso, string_field, ApiError, ApiResult, JsonBody},
        ErrorBody,
    },
    audit,
    authz::{perm, Authorized},
    state::AppState,
    web::ClientIp,
};

/// Addresses one API call may invite or change.
pub const MAX_EMAILS: usize = 50;

/// A teammate as Scale's SDK reads it: a member (with `company`, `firstName`, `lastName`), or
/// an invited person (with their invitation's `expiry`). Fields are in alphabetical order, the
/// order the body always had.
#[derive(Debug, Serialize, ToSchema)]
pub struct Teammate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    pub email: String,
    /// When the invitation expires (invited people only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    #[serde(rename = "firstName", skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(rename = "isStudioLabeler")]
    pub is_studio_labeler: bool,
    #[serde(rename = "lastName", skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `admin`, `manager`, `member` or `labeler`.
    pub role: String,
}

/// Everyone in the team, members first, with invited people carrying their invitation's
/// `expiry`: the body of every `/v1/teams` answer.
pub async fn teammates(store: &Store, scope: &Scope) -> ApiResult<Vec<Teammate>> {
    let roster = service::roster(store, scope).await?;
    let members = roster.members.into_iter().map(|member| {
        let role = member.role.unwrap_or(Role::Member);
        let (first, last) = member
            .name
            .split_once(' ')
            .unwrap_or((member.name.as_str(), ""));
        Teammate {
            company: Some(member.company.clone()),
            first_name: Some(first.to_owned()),
            last_name: Some(last.to_owned()),
            email: member.email,
            expiry: None,
            is_studio_labeler: role == Role::Labeler,
            role: role.as_str().to_owned(),
        }
    });
    let invited = roster.invitations.into_iter().map(|invitation| Teammate {
        company: None,
        first_name: None,
        last_name: None,
        expiry: Some(iso(invitation.expires_at)),
        is_studio_labeler: invitation.role == Role::Labeler,
        role: invitation.role.as_str().to_owned(),
        email: invitation.email,
    });
    Ok(members.chain(invited).collect())
}

/// `{"emails": [...], "team_role": ...}`, validated.
pub fn parse_request(body: JsonBody) -> ApiResult<(Vec<Email>, InvitableRole)> {
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
    responses((status = 200, body = Vec<Teammate>)),
)]
pub async fn list_teammates(
    State(state): State<AppState>,
    Authorized { scope, .. }: Authorized<perm::ViewTeam>,
) -> ApiResult<Json<Vec<Teammate>>> {
    Ok(Json(teammates(&state.store, &scope).await?))
}

/// Change the role of teammates (or of pending invitations) to member, manager or labeler.
/// The Admin's role is changed only by support.
#[utoipa::path(
    post, path = "/v1/teams/set_role", tag = "teams", request_body = serde_json::Value,
    responses((status = 200, description = "All teammates", body = Vec<Teammate>), (status = 400, body = ErrorBody)),
)]
pub async fn set_role(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::ChangeMemberRole>,
    ip: ClientIp,
    body: JsonBody,
) -> ApiResult<Json<Vec<Teammate>>> {
    let (emails, role) = parse_request(body)?;
    let role = role.role();
    let roster = service::roster(&state.store, &scope).await?;
    let member_with = |email: &Email| {
        roster
            .members
            .iter()
            .find(|m| m.email.to_lowercase() == email.normalized())
    };
    let invitation_to = |email: &Email| {
        roster
            .invitations
            .iter()
            .find(|i| i.email.to_lowercase() == email.normalized())
    };
    // Check every address first, so a bad one changes nothing.
    for email in &emails {
        match member_with(email) {
            Some(m) if m.role == Some(Role::Admin) => {
                return Err(ApiError::bad_request(format!(
                    "{} is the team's Admin; changing the Admin is a support operation.",
                    m.email
                )))
            }
            Some(_) => {}
            None if invitation_to(email).is_some() => {}
            None => {
                return Err(ApiError::bad_request(format!(
                    "{email} is not a member of your team."
                )))
            }
        }
    }
    for email in &emails {
        if let Some(m) = member_with(email) {
            if m.role != Some(role) {
                let from = m.role.map(Role::label).unwrap_or_default();
                let ev = audit::event(
                    &caller,
                    &ip,
                    AuditAction::MemberRoleChanged,
                    &m.email,
                    format!("{} through the API", service::role_change(from, role)),
                );
                state.store.set_member_role(&scope, &m.id, role, ev).await?;
            }
        } else if let Some(i) = invitation_to(email) {
            let ev = audit::event(
                &caller,
                &ip,
                AuditAction::InvitationRoleChanged,
                &i.email,
                format!(
                    "{} through the API",
                    service::role_change(i.role.label(), role)
                ),
            );
            state
                .store
                .set_invitation_role(&scope, &i.id, role, &ev)
                .await?;
        }
    }
    Ok(Json(teammates(&state.store, &scope).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body keeps the shape the untyped `json!` maps had: members with their profile
    /// fields, invited people with `expiry` and nothing else, keys in alphabetical order.
    #[test]
    fn teammates_serialize_as_before() {
        let member = Teammate {
            company: Some("Acme".into()),
            email: "ann@acme.test".into(),
            expiry: None,
            first_name: Some("Ann".into()),
            is_studio_labeler: false,
            last_name: Some("Lee".into()),
            role: "admin".into(),
        };
        assert_eq!(
            serde_json::to_string(&member).unwrap(),
            r#"{"company":"Acme","email":"ann@acme.test","firstName":"Ann","isStudioLabeler":false,"lastName":"Lee","role":"admin"}"#
        );
        let invited = Teammate {
            company: None,
            email: "bob@acme.test".into(),
            expiry: Some("2026-12-02T00:00:00.000Z".into()),
            first_name: None,
            is_studio_labeler: true,
            last_name: None,
            role: "labeler".into(),
        };
        assert_eq!(
            serde_json::to_string(&invited).unwrap(),
            r#"{"email":"bob@acme.test","expiry":"2026-12-02T00:00:00.000Z","isStudioLabeler":true,"role":"labeler"}"#
        );
    }

    #[test]
    fn the_openapi_document_describes_the_teammate_body() {
        let (_, doc) = crate::team::api_router().split_for_parts();
        let doc = serde_json::to_value(doc).unwrap();
        let teammate = &doc["components"]["schemas"]["Teammate"];
        assert!(
            teammate["properties"]["isStudioLabeler"].is_object(),
            "{doc}"
        );
        assert_eq!(
            doc["paths"]["/v1/teams"]["get"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["items"]["$ref"],
            "#/components/schemas/Teammate"
        );
    }
}
