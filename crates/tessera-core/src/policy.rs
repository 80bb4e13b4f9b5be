//! The permission policy: one function, [`can`], decides every action in the product.
//!
//! Routes never compare roles themselves; they name the [`Action`] they perform and the team
//! that owns the resource, and ask. The full role × action × team matrix is tested below and
//! again end to end in the server's integration tests.

use crate::{mode::Mode, role::Role, Invalid};

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person in a team, with their role there.
    TeamUser {
        user_id: String,
        team_id: String,
        role: Role,
    },
    /// Platform support: runs the staff console, belongs to no team.
    Staff { user_id: String },
    /// A signed-in person who belongs to no team (removed, awaiting a move by support).
    Teamless { user_id: String },
    /// A platform workforce labeler: labels any team's live tasks, and nothing else.
    Workforce { user_id: String },
    /// An API key of a team, in its mode. Any Manager can create keys, so a key never gets
    /// more than a Manager has on the dashboard; a test key (the kind teams put in CI and
    /// hand to contractors) works the team's projects and tasks but never manages the team.
    ApiKey {
        key_id: String,
        team_id: String,
        mode: Mode,
    },
}

impl Actor {
    pub fn user_id(&self) -> &str {
        match self {
            Actor::TeamUser { user_id, .. }
            | Actor::Staff { user_id }
            | Actor::Teamless { user_id }
            | Actor::Workforce { user_id } => user_id,
            Actor::ApiKey { key_id, .. } => key_id,
        }
    }

    pub fn team_id(&self) -> Option<&str> {
        match self {
            Actor::TeamUser { team_id, .. } | Actor::ApiKey { team_id, .. } => Some(team_id),
            _ => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::TeamUser { role, .. } => Some(*role),
            _ => None,
        }
    }
}

/// Declares [`Action`], its [`Action::ALL`] list and one [`perm`] marker type per action, from
/// one list, so a new action cannot be missing from either.
macro_rules! actions {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Everything a person can try to do. Later features' actions are listed already so the
        /// dashboard and API grow by adding routes, not by adding role checks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[doc = $doc])* $name,)*
        }

        impl Action {
            pub const ALL: [Action; [$(Action::$name),*].len()] = [$(Action::$name),*];
        }

        /// The actions as types: a handler that takes `Authorized<perm::ViewTasks>` (see the
        /// server's `authz`) says in its signature what the policy must allow.
        pub mod perm {
            use super::{Action, Permission};
            $(
                #[doc = concat!("The type of [`Action::", stringify!($name), "`].")]
                pub struct $name;
                impl Permission for $name {
                    const ACTION: Action = Action::$name;
                }
            )*
        }
    };
}

/// An [`Action`] named as a type (one per action, in [`perm`]).
pub trait Permission {
    const ACTION: Action;
}

actions! {
    /// See the team's members and pending invitations.
    ViewTeam,
    InviteMember,
    ResendInvitation,
    RevokeInvitation,
    RemoveMember,
    ChangeMemberRole,
    /// Rename the team, set its default callback URL.
    EditTeamDetails,
    ViewAuditLog,
    /// See projects, batches and tasks; accept or reject tasks.
    ViewTasks,
    AuditTasks,
    EditProjects,
    ManageApiKeys,
    ViewCallbacks,
    /// Redeliver a callback, send a test callback.
    SendCallbacks,
    /// See plan, usage, invoices and the card summary (a test key too: billing belongs to the
    /// team, and reading it changes nothing).
    ViewBilling,
    /// Add or replace the card, set the spend limit.
    EditPaymentInfo,
    ManageIntegrations,
    /// Offer the Admin role to a Manager of the team, or withdraw the offer (the Admin only).
    HandOverAdmin,
    /// Accept the Admin role offered by the Admin (a Manager, by the mailed link).
    AcceptAdminHandover,
    /// Require two-factor sign-in of every member (the Admin's setting: it can lock out
    /// every teammate who has not set it up).
    RequireTwoFactor,
    /// Work the team's labeling queue.
    LabelTasks,
    /// Platform support actions (staff console).
    StaffConsole,
    MoveUser,
    SetTeamAdmin,
    ReadMailOutbox,
    /// Set a team's plan, prices and credits; close its period now (staff console, CLI).
    ManageBilling,
}

impl Action {
    /// Platform actions are not scoped to a team.
    pub fn is_platform(self) -> bool {
        matches!(
            self,
            Action::StaffConsole
                | Action::MoveUser
                | Action::SetTeamAdmin
                | Action::ReadMailOutbox
                | Action::ManageBilling
        )
    }

    /// The least role that may perform a team action (labeling is its own lane).
    fn allowed_for(self, role: Role) -> bool {
        use Action::*;
        match self {
            LabelTasks => role == Role::Labeler,
            ViewTeam | ViewTasks | AuditTasks | EditProjects | ViewCallbacks | SendCallbacks => {
                matches!(role, Role::Member | Role::Manager | Role::Admin)
            }
            InviteMember | ResendInvitation | RevokeInvitation | RemoveMember
            | ChangeMemberRole | EditTeamDetails | ViewAuditLog | ManageApiKeys | ViewBilling
            | ManageIntegrations => role.manages_team(),
            EditPaymentInfo | HandOverAdmin | RequireTwoFactor => role == Role::Admin,
            AcceptAdminHandover => role == Role::Manager,
            StaffConsole | MoveUser | SetTeamAdmin | ReadMailOutbox | ManageBilling => false,
        }
    }

    /// What an API key of `mode` may do: a live key what a Manager may, except creating
    /// keys and becoming Admin (a person accepts that role, a key holds no role); a test key
    /// only the work on projects, tasks and callbacks a Member does, and reading the team's
    /// billing.
    fn allowed_for_key(self, mode: Mode) -> bool {
        use Action::*;
        match mode {
            Mode::Live => {
                self.allowed_for(Role::Manager)
                    && !matches!(self, ManageApiKeys | AcceptAdminHandover)
            }
            Mode::Test => matches!(
                self,
                ViewTeam
                    | ViewTasks
                    | AuditTasks
                    | EditProjects
                    | ViewCallbacks
                    | SendCallbacks
                    | ViewBilling
            ),
        }
    }

    /// Team management: the actions a test API key is refused, with a message saying why.
    pub fn manages_team(self) -> bool {
        use Action::*;
        matches!(
            self,
            InviteMember
                | ResendInvitation
                | RevokeInvitation
                | RemoveMember
                | ChangeMemberRole
                | EditTeamDetails
                | ViewAuditLog
                | ManageApiKeys
                | ManageIntegrations
                | HandOverAdmin
                | RequireTwoFactor
        )
    }
}

/// What the invite form tells an inviter each role may do: one phrase per group of actions.
/// The phrases are written here, but which roles get them is the policy's answer (a role gets
/// a phrase when [`can`] allows it every action of the group), so the description cannot
/// contradict what the product enforces; a test makes every team action belong to a group.
const ABILITIES: &[(&str, &[Action])] = {
    use Action::*;
    &[
        (
            "see the team and every project, batch and task; accept or reject tasks",
            &[ViewTeam, ViewTasks, AuditTasks],
        ),
        ("create and edit projects and batches", &[EditProjects]),
        (
            "see callback deliveries, redeliver them, cancel their retries and send test callbacks",
            &[ViewCallbacks, SendCallbacks],
        ),
        (
            "invite, remove and change the roles of teammates",
            &[
                InviteMember,
                ResendInvitation,
                RevokeInvitation,
                RemoveMember,
                ChangeMemberRole,
            ],
        ),
        ("create, reveal and delete API keys", &[ManageApiKeys]),
        (
            "edit the team's details and cloud storage integrations",
            &[EditTeamDetails, ManageIntegrations],
        ),
        (
            "see billing and the audit log",
            &[ViewBilling, ViewAuditLog],
        ),
        (
            "accept the Admin role when the Admin hands it over",
            &[AcceptAdminHandover],
        ),
        ("change payment information", &[EditPaymentInfo]),
        ("hand the Admin role to a Manager", &[HandOverAdmin]),
        (
            "require two-factor sign-in of every member",
            &[RequireTwoFactor],
        ),
        (
            "work the team's labeling queue, and nothing else",
            &[LabelTasks],
        ),
    ]
};

/// What `role` may do in its team, in words, as the policy decides it (see [`ABILITIES`]).
pub fn abilities(role: Role) -> Vec<&'static str> {
    let actor = Actor::TeamUser {
        user_id: String::new(),
        team_id: "team".into(),
        role,
    };
    ABILITIES
        .iter()
        .filter(|(_, actions)| actions.iter().all(|a| can(&actor, *a, Some("team"))))
        .map(|(phrase, _)| *phrase)
        .collect()
}

/// Decides whether `actor` may perform `action` on a resource owned by `resource_team`
/// (`None` for platform actions). A team action on another team's resource is always denied,
/// except labeling by the platform workforce, whose work is every team's queue.
pub fn can(actor: &Actor, action: Action, resource_team: Option<&str>) -> bool {
    if action.is_platform() {
        return matches!(actor, Actor::Staff { .. });
    }
    match (actor, resource_team) {
        (Actor::Workforce { .. }, Some(_)) => action == Action::LabelTasks,
        (Actor::TeamUser { team_id, role, .. }, Some(resource_team)) => {
            team_id == resource_team && action.allowed_for(*role)
        }
        (Actor::ApiKey { team_id, mode, .. }, Some(resource_team)) => {
            team_id == resource_team && action.allowed_for_key(*mode)
        }
        _ => false,
    }
}

/// The target of a change on the team page, as the rules need to see it.
#[derive(Debug, Clone, Copy)]
pub struct MemberRef<'a> {
    pub user_id: &'a str,
    pub role: Role,
}

/// Rules for changing a teammate's role from the team page: never to or from Admin, never
/// your own role (ask a colleague, so nobody locks themselves out by accident).
pub fn check_role_change(
    actor_id: &str,
    target: MemberRef<'_>,
    new_role: Role,
) -> Result<(), Invalid> {
    if target.role == Role::Admin {
        return Err(Invalid::new(
            "The Admin's role cannot be changed here; changing a team's Admin is a support operation.",
        ));
    }
    if new_role == Role::Admin {
        return Err(Invalid::new(
            "Nobody can be made Admin here; changing a team's Admin is a support operation.",
        ));
    }
    if target.user_id == actor_id {
        return Err(Invalid::new("You cannot change your own role."));
    }
    Ok(())
}

/// Rules for removing a teammate: the Admin stays, and nobody removes themselves here.
pub fn check_removal(actor_id: &str, target: MemberRef<'_>) -> Result<(), Invalid> {
    if target.role == Role::Admin {
        return Err(Invalid::new(
            "The team's Admin cannot be removed; ask support to make someone else Admin first.",
        ));
    }
    if target.user_id == actor_id {
        return Err(Invalid::new("You cannot remove yourself from the team."));
    }
    Ok(())
}

/// Rules for offering the Admin role from the team page: only to a Manager (promote a
/// Member first, so a hand-over never skips the role that already manages the team), never
/// to oneself.
pub fn check_handover_offer(actor_id: &str, target: MemberRef<'_>) -> Result<(), Invalid> {
    if target.user_id == actor_id {
        return Err(Invalid::new("You are the Admin already."));
    }
    if target.role != Role::Manager {
        return Err(Invalid::new(
            "The Admin role can be handed only to a Manager; make them a Manager first.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> Actor {
        Actor::TeamUser {
            user_id: "usr_1".into(),
            team_id: "team_a".into(),
            role,
        }
    }

    /// The expected matrix, written out by hand so a change to the policy is a visible diff.
    fn expected(role: Role, action: Action) -> bool {
        use Action::*;
        match role {
            Role::Labeler => matches!(action, LabelTasks),
            Role::Member => matches!(
                action,
                ViewTeam | ViewTasks | AuditTasks | EditProjects | ViewCallbacks | SendCallbacks
            ),
            Role::Manager => {
                !matches!(
                    action,
                    LabelTasks | EditPaymentInfo | HandOverAdmin | RequireTwoFactor
                ) && !action.is_platform()
            }
            Role::Admin => {
                !matches!(action, LabelTasks | AcceptAdminHandover) && !action.is_platform()
            }
        }
    }

    #[test]
    fn full_matrix_own_team_and_other_team() {
        for role in Role::ALL {
            let actor = user(role);
            for action in Action::ALL {
                if action.is_platform() {
                    assert!(!can(&actor, action, None), "{role:?} {action:?}");
                    continue;
                }
                assert_eq!(
                    can(&actor, action, Some("team_a")),
                    expected(role, action),
                    "{role:?} {action:?} own team"
                );
                assert!(
                    !can(&actor, action, Some("team_b")),
                    "{role:?} {action:?} other team"
                );
                assert!(!can(&actor, action, None), "{role:?} {action:?} no team");
            }
        }
    }

    #[test]
    fn staff_only_platform_actions() {
        let staff = Actor::Staff {
            user_id: "usr_s".into(),
        };
        let teamless = Actor::Teamless {
            user_id: "usr_t".into(),
        };
        for action in Action::ALL {
            assert_eq!(
                can(&staff, action, None),
                action.is_platform(),
                "{action:?}"
            );
            assert!(!can(&staff, action, Some("team_a")) || action.is_platform());
            assert!(!can(&teamless, action, Some("team_a")));
            assert!(!can(&teamless, action, None));
        }
    }

    #[test]
    fn workforce_labels_every_team_and_does_nothing_else() {
        let workforce = Actor::Workforce {
            user_id: "usr_w".into(),
        };
        for action in Action::ALL {
            for team in ["team_a", "team_b"] {
                assert_eq!(
                    can(&workforce, action, Some(team)),
                    action == Action::LabelTasks,
                    "{action:?} {team}"
                );
            }
            assert!(!can(&workforce, action, None), "{action:?}");
        }
    }

    #[test]
    fn api_keys_never_exceed_a_manager_and_test_keys_never_manage_the_team() {
        use Action::*;
        for mode in [Mode::Live, Mode::Test] {
            let key = Actor::ApiKey {
                key_id: "key_1".into(),
                team_id: "team_a".into(),
                mode,
            };
            for action in Action::ALL {
                let expected = match mode {
                    Mode::Live => {
                        expected(Role::Manager, action)
                            && !matches!(action, ManageApiKeys | AcceptAdminHandover)
                    }
                    // Billing belongs to the team: a test key reads it too.
                    Mode::Test => expected(Role::Member, action) || action == ViewBilling,
                };
                if action.is_platform() {
                    assert!(!can(&key, action, None), "{mode:?} {action:?}");
                    continue;
                }
                assert_eq!(
                    can(&key, action, Some("team_a")),
                    expected,
                    "{mode:?} {action:?}"
                );
                assert!(
                    !can(&key, action, Some("team_b")),
                    "{mode:?} {action:?} other team"
                );
                assert!(!can(&key, action, None), "{mode:?} {action:?} no team");
                if mode == Mode::Test && action.manages_team() {
                    assert!(!can(&key, action, Some("team_a")), "{action:?}");
                }
            }
        }
    }

    #[test]
    fn role_change_rules() {
        let member = MemberRef {
            user_id: "usr_2",
            role: Role::Member,
        };
        let admin = MemberRef {
            user_id: "usr_3",
            role: Role::Admin,
        };
        assert!(check_role_change("usr_1", member, Role::Manager).is_ok());
        assert!(check_role_change("usr_1", member, Role::Admin).is_err());
        assert!(check_role_change("usr_1", admin, Role::Manager).is_err());
        assert!(check_role_change("usr_2", member, Role::Manager).is_err());
        assert!(check_removal("usr_1", member).is_ok());
        assert!(check_removal("usr_1", admin).is_err());
        assert!(check_removal("usr_2", member).is_err());
        let manager = MemberRef {
            user_id: "usr_4",
            role: Role::Manager,
        };
        assert!(check_handover_offer("usr_1", manager).is_ok());
        assert!(check_handover_offer("usr_1", member).is_err());
        assert!(check_handover_offer("usr_4", manager).is_err());
    }

    #[test]
    fn every_team_action_is_described_and_descriptions_follow_the_policy() {
        for action in Action::ALL {
            if action.is_platform() {
                continue;
            }
            assert!(
                ABILITIES.iter().any(|(_, group)| group.contains(&action)),
                "{action:?} has no phrase in ABILITIES"
            );
        }
        let member = abilities(Role::Member);
        assert!(member.contains(&"create and edit projects and batches"));
        assert!(!member.iter().any(|p| p.contains("teammates")));
        let manager = abilities(Role::Manager);
        assert!(manager.iter().any(|p| p.contains("teammates")));
        assert!(!manager.contains(&"change payment information"));
        assert!(abilities(Role::Admin).contains(&"change payment information"));
        assert_eq!(
            abilities(Role::Labeler),
            ["work the team's labeling queue, and nothing else"]
        );
    }
}
