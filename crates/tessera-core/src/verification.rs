//! Email verification at sign-up: what an account whose address is not yet confirmed may not
//! do, and why. A sign-up works at once (test mode, keys, projects), but nothing that reaches
//! other people or costs money — live tasks, invitations — until the address is proven, so an
//! address typed by someone who does not own it buys them nothing, and the address's owner,
//! once invited somewhere, takes it back (see the store's `accept_invitation_superseding`).

use std::fmt;

/// How long a verification link works: long enough for a weekend away from the inbox.
pub const LINK_TTL_MS: i64 = 48 * 60 * 60 * 1000;

/// What a team whose Admin has not verified their address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    /// Creating live tasks (labelled by people, billed).
    LiveTasks,
    /// Inviting people (mail to third parties).
    Invitations,
}

impl Gated {
    /// The refusal, as the API and the dashboard show it.
    pub fn refusal(self) -> Refusal {
        Refusal(self)
    }
}

/// Why a [`Gated`] action was refused: says who must do what, and that test mode works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(Gated);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.0 {
            Gated::LiveTasks => "create live tasks",
            Gated::Invitations => "invite people",
        };
        write!(
            f,
            "Your team cannot {what} until its Admin verifies their email address: the Admin \
             should open the link we emailed at sign-up (or use \"Resend the link\" on the \
             dashboard). Test mode keeps working meanwhile."
        )
    }
}

/// Whether `gated` is allowed for a team whose Admin's address is verified (`admin_verified`).
pub fn check(gated: Gated, admin_verified: bool) -> Result<(), Refusal> {
    if admin_verified {
        Ok(())
    } else {
        Err(gated.refusal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_teams_are_refused_with_the_reason() {
        for gated in [Gated::LiveTasks, Gated::Invitations] {
            assert!(check(gated, true).is_ok());
            let refusal = check(gated, false).unwrap_err().to_string();
            assert!(
                refusal.contains("Admin verifies their email address"),
                "{refusal}"
            );
            assert!(refusal.contains("Test mode keeps working"), "{refusal}");
        }
        assert!(check(Gated::LiveTasks, false)
            .unwrap_err()
            .to_string()
            .contains("live tasks"));
        assert!(check(Gated::Invitations, false)
            .unwrap_err()
            .to_string()
            .contains("invite"));
    }
}
