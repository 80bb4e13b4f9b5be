//! Rate limits on sign-in, sign-up and invitations, counted in the database so that every
//! replica enforces the same budget.

use tessera_store::now_ms;

use crate::{
    state::AppState,
    web::{humanize_ms, WebResult},
};

/// A limit: at most `max` events per `window_ms` in one bucket.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// Failed sign-ins per account and network (see [`account_at`]).
    LoginPerAccount,
    /// Failed sign-ins per client IP.
    LoginPerIp,
    /// Sign-up attempts per client IP (every attempt, successful or not).
    SignupPerIp,
    /// Invitation emails per team (new and resent).
    InvitesPerTeam,
    /// Wrong current passwords on the profile page, per user.
    PasswordCheckPerUser,
    /// "Someone tried to sign up with your address" notices, per address.
    SignupNoticePerEmail,
    /// "Send test callback" and "Redeliver" per team: people's clicks, not task traffic.
    CallbackSendsPerTeam,
    /// Confirmation links for callback email addresses, per team and per address.
    CallbackEmailConfirmationsPerTeam,
    CallbackEmailConfirmationsPerAddress,
    /// Password-reset requests per address and per client IP.
    PasswordResetPerEmail,
    PasswordResetPerIp,
    /// "Resend the link" clicks of an unverified account, per user.
    VerificationResendPerUser,
    /// Offers of the Admin role per team (each mails a Manager; cancel and offer again must
    /// not become a way to flood someone's inbox).
    AdminHandoverOffersPerTeam,
}

const MINUTE: i64 = 60_000;

impl Limit {
    fn spec(self) -> (&'static str, i64, i64) {
        match self {
            Limit::LoginPerAccount => ("login:account", 5, 15 * MINUTE),
            Limit::LoginPerIp => ("login:ip", 30, 15 * MINUTE),
            Limit::SignupPerIp => ("signup:ip", 20, 60 * MINUTE),
            Limit::InvitesPerTeam => ("invite:team", 100, 60 * MINUTE),
            Limit::PasswordCheckPerUser => ("password:user", 5, 15 * MINUTE),
            Limit::SignupNoticePerEmail => ("signup-notice:email", 1, 60 * MINUTE),
            Limit::CallbackSendsPerTeam => ("callback-send:team", 100, 60 * MINUTE),
            Limit::CallbackEmailConfirmationsPerTeam => {
                ("callback-email-confirm:team", 20, 60 * MINUTE)
            }
            Limit::CallbackEmailConfirmationsPerAddress => {
                ("callback-email-confirm:email", 1, 10 * MINUTE)
            }
            Limit::PasswordResetPerEmail => ("password-reset:email", 3, 60 * MINUTE),
            Limit::PasswordResetPerIp => ("password-reset:ip", 20, 60 * MINUTE),
            Limit::VerificationResendPerUser => ("verify-resend:user", 3, 60 * MINUTE),
            Limit::AdminHandoverOffersPerTeam => ("admin-handover:team", 5, 60 * MINUTE),
        }
    }

    /// The longest window, for pruning old events.
    pub const LONGEST_WINDOW_MS: i64 = 60 * MINUTE;

    pub fn max(self) -> i64 {
        self.spec().1
    }

    pub fn window_ms(self) -> i64 {
        self.spec().2
    }
}

fn bucket(limit: Limit, key: &str) -> String {
    match limit {
        Limit::LoginPerIp | Limit::SignupPerIp => format!("{}:{}", limit.spec().0, network_of(key)),
        _ => format!("{}:{}", limit.spec().0, key),
    }
}

/// The key of [`Limit::LoginPerAccount`]: an account as seen from one network, so that
/// failures from elsewhere never lock its owner out.
pub fn account_at(email: &str, ip: &str) -> String {
    format!("{email}|{}", network_of(ip))
}

/// The unit a per-IP budget is counted for: the address for IPv4, the /64 network for IPv6
/// (one customer line gets a whole /64, so counting single addresses would be no limit).
fn network_of(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_budgets_count_ipv6_networks() {
        assert_eq!(
            bucket(Limit::LoginPerIp, "2001:db8:1:2:aaaa::1"),
            bucket(Limit::LoginPerIp, "2001:db8:1:2:bbbb::2")
        );
        assert_ne!(
            bucket(Limit::LoginPerIp, "2001:db8:1:2::1"),
            bucket(Limit::LoginPerIp, "2001:db8:1:3::1")
        );
        assert_eq!(
            bucket(Limit::SignupPerIp, "192.0.2.7"),
            "signup:ip:192.0.2.7"
        );
        assert_eq!(
            bucket(Limit::LoginPerAccount, "a@b.c"),
            "login:account:a@b.c"
        );
    }
}

/// One unit of a limit, taken atomically by [`take`]; give it back with [`Slot::release`]
/// when the attempt turns out not to count (a successful sign-in).
#[derive(Debug)]
pub struct Slot {
    bucket: String,
    at: i64,
    /// Units of the window in use, this one included, when it was taken.
    used: i64,
}

impl Slot {
    /// Units in use when this one was taken, itself included (to warn before the last).
    pub fn used(&self) -> i64 {
        self.used
    }

    pub async fn release(self, state: &AppState) -> WebResult<()> {
        state.store.release_rate_slot(&self.bucket, self.at).await?;
        Ok(())
    }
}

/// Takes one unit of `limit` for `key`: `Ok(Ok(slot))` when within the limit, else
/// `Ok(Err(wait))` (and nothing is kept). Concurrent requests can never all pass: the check
/// and the record are one step (see `Store::take_rate_slots`).
pub async fn take(state: &AppState, limit: Limit, key: &str) -> WebResult<Result<Slot, String>> {
    Ok(take_many(state, limit, key, 1).await?.map(one))
}

/// Like [`take`] for `count` units at once (an invitation form with several addresses):
/// all or none. Give back what was not used with [`Slot::release`].
pub async fn take_many(
    state: &AppState,
    limit: Limit,
    key: &str,
    count: usize,
) -> WebResult<Result<Vec<Slot>, String>> {
    let (_, max, window) = limit.spec();
    Ok(take_bucket(state, bucket(limit, key), count, max, window)
        .await?
        .map_err(humanize_ms))
}

/// Like [`take`] for a budget whose size is configured (`max` per `window_ms`); the error
/// is the wait in milliseconds.
pub async fn take_configured(
    state: &AppState,
    name: &str,
    key: &str,
    max: i64,
    window_ms: i64,
) -> WebResult<Result<Slot, i64>> {
    Ok(
        take_bucket(state, format!("{name}:{key}"), 1, max, window_ms)
            .await?
            .map(one),
    )
}

fn one(mut slots: Vec<Slot>) -> Slot {
    slots.pop().expect("take_bucket returns at least one slot")
}

/// Takes `count` units (at least one) of `bucket` in one statement, or gives them all back
/// and says how many milliseconds until the oldest unit of the window frees up.
async fn take_bucket(
    state: &AppState,
    bucket: String,
    count: usize,
    max: i64,
    window: i64,
) -> WebResult<Result<Vec<Slot>, i64>> {
    let (at, used) = state.store.take_rate_slots(&bucket, count, window).await?;
    let slots: Vec<Slot> = (0..count.max(1))
        .map(|_| Slot {
            bucket: bucket.clone(),
            at,
            used,
        })
        .collect();
    if used <= max {
        return Ok(Ok(slots));
    }
    let oldest = state
        .store
        .oldest_rate_event(&bucket, window)
        .await?
        .unwrap_or_else(now_ms);
    for slot in slots {
        slot.release(state).await?;
    }
    Ok(Err((oldest + window - now_ms()).max(1000)))
}

/// Forgets every event of `key` (a successful sign-in clears its account's failures).
pub async fn clear(state: &AppState, limit: Limit, key: &str) -> WebResult<()> {
    state.store.clear_rate_events(&bucket(limit, key)).await?;
    Ok(())
}
