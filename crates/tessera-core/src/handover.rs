//! The Admin hand-over: the Admin offers the role to a Manager of the team, who accepts by a
//! mailed link, and the two swap roles. An offer is only worth accepting while the people it
//! names still hold the roles it was made between, so the decision is made here once, for
//! the team page (an offer shown as no longer valid), the accept page and the new offer that
//! closes a stale one.

use crate::{role::Role, status::HandoverStatus};

/// How long an offer's link works: long enough for a Manager on holiday to come back to it.
pub const HANDOVER_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Why an offer cannot be accepted (any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverProblem {
    /// Accepted already: the link worked once.
    Accepted,
    /// The Admin withdrew it.
    Cancelled,
    /// Closed when a newer offer was made.
    Lapsed,
    /// Its link is past its expiry.
    Expired,
    /// The person who offered it is no longer the team's Admin (support changed the Admin).
    AdminChanged,
    /// The person offered the role is no longer a Manager of the team (demoted or removed).
    NoLongerManager,
}

/// What an offer is checked against: its own state and who holds which role now.
#[derive(Debug, Clone, Copy)]
pub struct HandoverFacts {
    pub status: HandoverStatus,
    pub expires_at: i64,
    /// Whether the person who offered the role is still the team's Admin.
    pub from_is_admin: bool,
    /// The role in the team of the person offered it; `None` when they left the team.
    pub to_role: Option<Role>,
}

/// Why the offer cannot be accepted at `now`, or `None` when it can.
pub fn problem(facts: &HandoverFacts, now: i64) -> Option<HandoverProblem> {
    match facts.status {
        HandoverStatus::Accepted => return Some(HandoverProblem::Accepted),
        HandoverStatus::Cancelled => return Some(HandoverProblem::Cancelled),
        HandoverStatus::Lapsed => return Some(HandoverProblem::Lapsed),
        HandoverStatus::Pending => {}
    }
    if facts.expires_at <= now {
        return Some(HandoverProblem::Expired);
    }
    if !facts.from_is_admin {
        return Some(HandoverProblem::AdminChanged);
    }
    if facts.to_role != Some(Role::Manager) {
        return Some(HandoverProblem::NoLongerManager);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> HandoverFacts {
        HandoverFacts {
            status: HandoverStatus::Pending,
            expires_at: 1_000,
            from_is_admin: true,
            to_role: Some(Role::Manager),
        }
    }

    #[test]
    fn a_pending_offer_between_the_same_roles_can_be_accepted_until_it_expires() {
        assert_eq!(problem(&pending(), 999), None);
        assert_eq!(problem(&pending(), 1_000), Some(HandoverProblem::Expired));
    }

    #[test]
    fn each_change_since_the_offer_is_named() {
        let ended = |status| HandoverFacts {
            status,
            ..pending()
        };
        assert_eq!(
            problem(&ended(HandoverStatus::Accepted), 0),
            Some(HandoverProblem::Accepted)
        );
        assert_eq!(
            problem(&ended(HandoverStatus::Cancelled), 0),
            Some(HandoverProblem::Cancelled)
        );
        assert_eq!(
            problem(&ended(HandoverStatus::Lapsed), 0),
            Some(HandoverProblem::Lapsed)
        );
        let admin_changed = HandoverFacts {
            from_is_admin: false,
            ..pending()
        };
        assert_eq!(
            problem(&admin_changed, 0),
            Some(HandoverProblem::AdminChanged)
        );
        for to_role in [None, Some(Role::Member), Some(Role::Labeler)] {
            let demoted = HandoverFacts {
                to_role,
                ..pending()
            };
            assert_eq!(problem(&demoted, 0), Some(HandoverProblem::NoLongerManager));
        }
    }
}
