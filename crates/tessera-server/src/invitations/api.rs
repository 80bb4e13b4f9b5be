//! `/v1/teams/invite`: inviting people by email through the same rules as the dashboard. An
//! API key acts for its team with the Admin's authority, so the invitation is from the Admin.

use axum::{extract::State, Json};
use tessera_core::{verification::Gated, AuditAction};
use tessera_store::StoreError;

use super::service::{invite_one, Answer, Inviter};
use crate::{
    api::{
        wire::{ApiError, ApiResult, JsonBody},
        ErrorBody,
    },
    audit,
    authz::{perm, Authorized},
    ratelimit::{self, Limit},
    state::AppState,
    team::api::{parse_request, teammates, Teammate},
    web::ClientIp,
};

/// Invite people by email with a role (member, manager or labeler; never admin).
#[utoipa::path(
    post, path = "/v1/teams/invite", tag = "teams", request_body = serde_json::Value,
    responses((status = 200, description = "All teammates", body = Vec<Teammate>), (status = 400, body = ErrorBody), (status = 403, description = "The team's Admin has not verified their email address", body = ErrorBody), (status = 429, body = ErrorBody)),
)]
pub async fn invite_teammates(
    State(state): State<AppState>,
    Authorized { caller, scope, .. }: Authorized<perm::InviteMember>,
    ip: ClientIp,
    body: JsonBody,
) -> ApiResult<Json<Vec<Teammate>>> {
    let (emails, role) = parse_request(body)?;
    if let Err(refusal) = state
        .verified_teams
        .check(&state.store, &scope, Gated::Invitations)
        .await?
    {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            refusal.to_string(),
        ));
    }
    // One unit per address, taken together before anything is sent; units of addresses
    // that get no mail are given back.
    let mut slots =
        match ratelimit::take_many(&state, Limit::InvitesPerTeam, scope.team_id(), emails.len())
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
    let team = state.store.get_team(&scope).await?;
    let admin = state.store.get_user(&team.admin_user_id).await?;
    let inviter = Inviter {
        user_id: &admin.id,
        name: &admin.name,
    };
    for email in emails {
        let event = audit::event(
            &caller,
            &ip,
            AuditAction::InvitationSent,
            email.as_str(),
            format!("invited as {} through the API", role.role().label()),
        );
        let answer = invite_one(
            &state,
            &scope,
            &team.name,
            &inviter,
            &email,
            role.role(),
            event,
        )
        .await?;
        if answer.sent_mail() {
            slots.pop();
        }
        match answer {
            // Emailed moments ago: the role is changed (and audited), nothing is sent.
            Answer::AlreadyMember
            | Answer::Invited {
                outcome:
                    Ok(_)
                    | Err(
                        StoreError::TooSoon { .. }
                        | StoreError::Unique(_)
                        | StoreError::Conflict(_),
                    ),
                ..
            } => {}
            Answer::Invited {
                outcome: Err(err), ..
            } => return Err(err.into()),
        }
    }
    for unused in slots {
        unused
            .release(&state)
            .await
            .map_err(|_| ApiError::internal("rate limit"))?;
    }
    state.wake(crate::state::Wrote::Mail);
    Ok(Json(teammates(&state.store, &scope).await?))
}
