//! The tenant a request acts in: one team in one mode. Every store method that reads or writes a
//! team's rows takes a [`Scope`], so "which team?" is answered once, by authorisation, and not
//! by each query remembering a `WHERE team_id = …`.
//!
//! A `Scope` cannot be made from a bare team id: [`Scope::authorized`] asks the policy first,
//! and [`Scope::operator`] is the one named elevation (the operator CLI, which has shell access
//! to the server anyway, and tests). A handler that forgets to authorise has no `Scope` to pass
//! to the store, so it does not compile.

use crate::{
    ids::TeamId,
    policy::{can, Action, Actor},
    Mode,
};

/// A team and a mode that an authorised caller may act in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    team: TeamId,
    mode: Mode,
    /// An API key's scope: a key acts only in its own mode, so [`Scope::with_mode`] refuses.
    mode_bound: bool,
}

impl Scope {
    /// The scope `actor` may perform `action` in, on `team`'s rows in `mode`; `None` when the
    /// policy refuses.
    /// An API key only ever gets a scope in its own mode.
    pub fn authorized(actor: &Actor, action: Action, team: &str, mode: Mode) -> Option<Self> {
        let mode_bound = match actor {
            Actor::ApiKey { mode: key_mode, .. } if *key_mode != mode => return None,
            Actor::ApiKey { .. } => true,
            _ => false,
        };
        can(actor, action, Some(team)).then(|| Self {
            team: TeamId::from_stored(team.to_owned()),
            mode,
            mode_bound,
        })
    }

    /// A scope without a policy decision: for the operator CLI (whose user already controls
    /// the server) and tests. Nothing that serves a request calls this.
    pub fn operator(team: TeamId, mode: Mode) -> Self {
        Self {
            team,
            mode,
            mode_bound: false,
        }
    }

    pub fn team(&self) -> &TeamId {
        &self.team
    }

    pub fn team_id(&self) -> &str {
        self.team.as_str()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The same team in the other world (the dashboard's live/test switch): a person's rights
    /// do not depend on the mode. `None` for an API key's scope, which stays in the key's mode.
    pub fn with_mode(&self, mode: Mode) -> Option<Self> {
        (!self.mode_bound || mode == self.mode).then(|| Self {
            team: self.team.clone(),
            mode,
            mode_bound: self.mode_bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn member(team: &str) -> Actor {
        Actor::TeamUser {
            user_id: "u".into(),
            team_id: team.into(),
            role: Role::Member,
        }
    }

    #[test]
    fn a_scope_comes_only_from_an_allowed_action_on_the_callers_team() {
        let scope = Scope::authorized(&member("t1"), Action::ViewTasks, "t1", Mode::Test)
            .expect("a member views their team's tasks");
        assert_eq!(scope.team_id(), "t1");
        assert_eq!(scope.mode(), Mode::Test);
        assert_eq!(
            Scope::authorized(&member("t1"), Action::ViewTasks, "t2", Mode::Test),
            None,
            "another team's rows"
        );
        assert_eq!(
            Scope::authorized(&member("t1"), Action::ManageApiKeys, "t1", Mode::Live),
            None,
            "an action the role may not perform"
        );
    }

    #[test]
    fn an_api_key_gets_a_scope_in_its_own_mode_only() {
        let key = |mode| Actor::ApiKey {
            key_id: "k".into(),
            team_id: "t1".into(),
            mode,
        };
        let scope = Scope::authorized(&key(Mode::Test), Action::ViewTasks, "t1", Mode::Test)
            .expect("a test key reads its team's test tasks");
        assert_eq!(
            Scope::authorized(&key(Mode::Test), Action::ViewTasks, "t1", Mode::Live),
            None,
            "a test key never gets a live scope"
        );
        assert_eq!(scope.with_mode(Mode::Live), None, "nor switches to one");
        assert_eq!(scope.with_mode(Mode::Test), Some(scope.clone()));
    }

    #[test]
    fn switching_mode_keeps_the_team() {
        let scope = Scope::operator(TeamId::generate(), Mode::Live);
        let test = scope.with_mode(Mode::Test).expect("not a key's scope");
        assert_eq!(test.team(), scope.team());
        assert_eq!(test.mode(), Mode::Test);
        assert_ne!(test, scope);
    }
}
