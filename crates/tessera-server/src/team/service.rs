//! The rules of a team's membership, shared by the v1 API and the dashboard: who is in the
//! team, whom a member may remove, and how a change of details or role is described in the
//! audit log.

use tessera_core::{
    policy::{check_removal, MemberRef},
    Invalid, Role, Scope,
};
use tessera_store::{Invitation, Store, StoreResult, Team, User};

/// Everyone in a team: its members (Admin first, then by name) and the pending invitations
/// (newest first).
pub struct Roster {
    pub members: Vec<User>,
    pub invitations: Vec<Invitation>,
}

pub async fn roster(store: &Store, scope: &Scope) -> StoreResult<Roster> {
    Ok(Roster {
        members: store.list_members(scope).await?,
        invitations: store.list_pending_invitations(scope).await?,
    })
}

/// The member `user_id` of the scope's team, if `acting_user_id` may remove them (never the
/// Admin, never oneself); `NotFound` when they are not in the team.
pub async fn removable_member(
    store: &Store,
    scope: &Scope,
    acting_user_id: &str,
    user_id: &str,
) -> StoreResult<Result<User, Invalid>> {
    let target = store.find_member(scope, user_id).await?;
    let allowed = check_removal(
        acting_user_id,
        MemberRef {
            user_id: &target.id,
            role: target.role.unwrap_or(Role::Member),
        },
    );
    Ok(allowed.map(|()| target))
}

/// The audit detail of a role change: "Member → Manager".
pub fn role_change(from: &str, to: Role) -> String {
    format!("{from} → {}", to.label())
}

/// What saving these details changes, one audit phrase per field; empty when nothing does.
pub fn detail_changes(before: &Team, name: &str, url: Option<&str>) -> Vec<String> {
    let mut changes = Vec::new();
    if before.name != name {
        changes.push(format!("name: \"{}\" → \"{}\"", before.name, name));
    }
    if before.default_callback_url.as_deref() != url {
        changes.push(format!(
            "default callback URL: {} → {}",
            before.default_callback_url.as_deref().unwrap_or("(none)"),
            url.unwrap_or("(none)")
        ));
    }
    changes
}
