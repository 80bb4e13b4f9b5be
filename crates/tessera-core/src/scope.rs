//! The tenant a request acts in: one team in one mode. Every store method that reads or writes a
//! team's rows takes a [`Scope`], so "which team?" is answered once, by authentication, and not
//! by each query remembering a `WHERE team_id = …`.

use crate::{ids::TeamId, Mode};

/// A team and a mode, as authentication established them.
///
/// Only the authentication layer (API-key or session extractors) and the operator CLI should
/// build one; everything below takes it as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    team: TeamId,
    mode: Mode,
}

impl Scope {
    /// The scope of a caller authenticated as a member (or key) of `team`, acting in `mode`.
    pub fn new(team: TeamId, mode: Mode) -> Self {
        Self { team, mode }
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

    /// The same team in the other world (the dashboard's live/test switch).
    pub fn with_mode(&self, mode: Mode) -> Self {
        Self {
            team: self.team.clone(),
            mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_mode_keeps_the_team() {
        let scope = Scope::new(TeamId::generate(), Mode::Live);
        let test = scope.with_mode(Mode::Test);
        assert_eq!(test.team(), scope.team());
        assert_eq!(test.mode(), Mode::Test);
        assert_ne!(test, scope);
    }
}
