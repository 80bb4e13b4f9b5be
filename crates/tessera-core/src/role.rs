//! Team roles.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// A person's role in their team. Stored as text (`member`, `manager`, `admin`, `labeler`),
/// never as an integer, so the database reads the same as the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and audits tasks; creates and edits projects and batches.
    Member,
    /// A Member who also runs the team: teammates, keys, billing view, team details.
    Manager,
    /// Exactly one per team: everything, including payment information.
    Admin,
    /// Works the team's own labeling queue and nothing else.
    Labeler,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Member, Role::Manager, Role::Admin, Role::Labeler];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Manager => "manager",
            Role::Admin => "admin",
            Role::Labeler => "labeler",
        }
    }

    /// Human label for pages.
    pub fn label(self) -> &'static str {
        match self {
            Role::Member => "Member",
            Role::Manager => "Manager",
            Role::Admin => "Admin",
            Role::Labeler => "Labeler",
        }
    }

    /// True for the roles that manage the team (Manager and Admin).
    pub fn manages_team(self) -> bool {
        matches!(self, Role::Manager | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "member" => Ok(Role::Member),
            "manager" => Ok(Role::Manager),
            "admin" => Ok(Role::Admin),
            "labeler" => Ok(Role::Labeler),
            other => Err(Invalid(format!(
                "Unknown role \"{other}\" (expected member, manager, admin or labeler)."
            ))),
        }
    }
}

/// The roles an invitation or a role change on the team page may grant: never Admin, which
/// changes hands only through support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvitableRole(Role);

impl InvitableRole {
    pub const ALL: [Role; 3] = [Role::Member, Role::Manager, Role::Labeler];

    pub fn role(self) -> Role {
        self.0
    }
}

impl TryFrom<Role> for InvitableRole {
    type Error = Invalid;

    fn try_from(role: Role) -> Result<Self, Self::Error> {
        if role == Role::Admin {
            Err(Invalid::new(
                "The Admin role cannot be granted here; changing a team's Admin is a support operation.",
            ))
        } else {
            Ok(Self(role))
        }
    }
}

impl FromStr for InvitableRole {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<Role>()?.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!(" Manager ".parse::<Role>().unwrap(), Role::Manager);
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn admin_is_never_invitable() {
        assert!("admin".parse::<InvitableRole>().is_err());
        for role in InvitableRole::ALL {
            assert_eq!(InvitableRole::try_from(role).unwrap().role(), role);
        }
    }
}
