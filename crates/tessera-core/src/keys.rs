//! API-key lifetimes: the expiry a Manager picks when adding a key, the grace period an old
//! key keeps working after it was rolled, and whether a key may still authenticate at a given
//! moment. Kept here, without I/O, so the API's authentication, the keys page and the schema's
//! CHECKs (migration 0015) agree on the same few choices.

use crate::Invalid;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long a new key works: forever, or a fixed number of days from its creation. Only a few
/// choices, so a key's lifetime reads the same on the page, in the audit log and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExpiry {
    Never,
    Days(u16),
}

impl KeyExpiry {
    /// Every choice the forms offer, in their order.
    pub const ALL: [KeyExpiry; 4] = [
        KeyExpiry::Never,
        KeyExpiry::Days(30),
        KeyExpiry::Days(90),
        KeyExpiry::Days(365),
    ];

    /// The longest lifetime a key may have (the schema's CHECK allows no more).
    pub const MAX_MS: i64 = 365 * DAY_MS;

    /// Parses a form value: `never` or one of the offered day counts (`30`, `90`, `365`).
    pub fn parse(raw: &str) -> Result<KeyExpiry, Invalid> {
        let value = raw.trim();
        KeyExpiry::ALL
            .into_iter()
            .find(|choice| choice.value() == value)
            .ok_or_else(|| {
                Invalid(format!(
                    "Unknown expiry “{}”: choose never, 30, 90 or 365 days.",
                    value.chars().take(20).collect::<String>()
                ))
            })
    }

    /// The form value of this choice.
    pub fn value(self) -> String {
        match self {
            KeyExpiry::Never => "never".into(),
            KeyExpiry::Days(days) => days.to_string(),
        }
    }

    /// How the forms and the audit log name this choice.
    pub fn label(self) -> String {
        match self {
            KeyExpiry::Never => "never expires".into(),
            KeyExpiry::Days(days) => format!("expires after {days} days"),
        }
    }

    /// When a key made at `created_at` stops working, if ever.
    pub fn expires_at(self, created_at: i64) -> Option<i64> {
        match self {
            KeyExpiry::Never => None,
            KeyExpiry::Days(days) => Some(created_at + i64::from(days) * DAY_MS),
        }
    }

    /// The offered choice a key's lifetime matches (so rolling a 90-day key proposes 90 days
    /// for its replacement); `Never` for keys without expiry or with an unusual lifetime.
    pub fn of_key(created_at: i64, expires_at: Option<i64>) -> KeyExpiry {
        let Some(expires_at) = expires_at else {
            return KeyExpiry::Never;
        };
        KeyExpiry::ALL
            .into_iter()
            .find(|choice| choice.expires_at(created_at) == Some(expires_at))
            .unwrap_or(KeyExpiry::Never)
    }
}

/// How long a rolled key keeps working beside its replacement, so the systems using it can
/// switch without downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollGrace {
    /// Refused from the moment of the roll (a leaked key).
    Now,
    OneHour,
    OneDay,
    SevenDays,
}

impl RollGrace {
    pub const ALL: [RollGrace; 4] = [
        RollGrace::Now,
        RollGrace::OneHour,
        RollGrace::OneDay,
        RollGrace::SevenDays,
    ];

    /// The longest grace (the schema's CHECK allows no more).
    pub const MAX_MS: i64 = 7 * DAY_MS;

    /// Parses a form value: `now`, `1h`, `24h` or `7d`.
    pub fn parse(raw: &str) -> Result<RollGrace, Invalid> {
        let value = raw.trim();
        RollGrace::ALL
            .into_iter()
            .find(|choice| choice.value() == value)
            .ok_or_else(|| {
                Invalid(format!(
                    "Unknown grace period “{}”: choose now, 1 hour, 24 hours or 7 days.",
                    value.chars().take(20).collect::<String>()
                ))
            })
    }

    /// The form value of this choice.
    pub fn value(self) -> &'static str {
        match self {
            RollGrace::Now => "now",
            RollGrace::OneHour => "1h",
            RollGrace::OneDay => "24h",
            RollGrace::SevenDays => "7d",
        }
    }

    /// How the form and the audit log name this choice.
    pub fn label(self) -> &'static str {
        match self {
            RollGrace::Now => "refused at once",
            RollGrace::OneHour => "keeps working for 1 hour",
            RollGrace::OneDay => "keeps working for 24 hours",
            RollGrace::SevenDays => "keeps working for 7 days",
        }
    }

    pub fn as_ms(self) -> i64 {
        match self {
            RollGrace::Now => 0,
            RollGrace::OneHour => HOUR_MS,
            RollGrace::OneDay => DAY_MS,
            RollGrace::SevenDays => 7 * DAY_MS,
        }
    }
}

/// Why a key that exists (not deleted) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Its lifetime ended at `at`.
    Expired { at: i64 },
    /// It was rolled and its grace period ended at `until`.
    Rolled { until: i64 },
}

/// Whether a key with these times is refused at `now`, and why: whichever of its expiry and
/// its grace end came first. Both are compared in memory, so the API's key cache can answer
/// without a query and still never let a key outlive either.
pub fn key_refusal(
    now: i64,
    expires_at: Option<i64>,
    usable_until: Option<i64>,
) -> Option<KeyRefusal> {
    let expired = expires_at.filter(|at| now >= *at);
    let rolled = usable_until.filter(|until| now >= *until);
    match (expired, rolled) {
        (Some(at), Some(until)) if until < at => Some(KeyRefusal::Rolled { until }),
        (Some(at), _) => Some(KeyRefusal::Expired { at }),
        (None, Some(until)) => Some(KeyRefusal::Rolled { until }),
        (None, None) => None,
    }
}

/// A short phrase for the time until something ends ("59 minutes", "23 hours", "30 days"):
/// minutes rounded down (a grace period about to end never looks longer than it is), hours and
/// days to the nearest (a 30-day key made a moment ago reads "30 days", not "29").
pub fn time_left(ms: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match ms.max(0) {
        ms if ms < 60_000 => "less than a minute".into(),
        ms if ms < 2 * HOUR_MS => plural(ms / 60_000, "minute"),
        ms if ms < 2 * DAY_MS => plural((ms + HOUR_MS / 2) / HOUR_MS, "hour"),
        ms => plural((ms + DAY_MS / 2) / DAY_MS, "day"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_choices_parse_and_round_trip() {
        for choice in KeyExpiry::ALL {
            assert_eq!(KeyExpiry::parse(&choice.value()).unwrap(), choice);
        }
        assert_eq!(KeyExpiry::parse(" 90 ").unwrap(), KeyExpiry::Days(90));
        for bad in ["", "7", "forever", "-30", "3650", "90d"] {
            assert!(KeyExpiry::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(KeyExpiry::Never.expires_at(5), None);
        assert_eq!(KeyExpiry::Days(30).expires_at(0), Some(30 * DAY_MS));
        assert!(KeyExpiry::Days(365).expires_at(0).unwrap() <= KeyExpiry::MAX_MS);
        assert_eq!(
            KeyExpiry::of_key(7, Some(7 + 90 * DAY_MS)),
            KeyExpiry::Days(90)
        );
        assert_eq!(KeyExpiry::of_key(7, Some(8)), KeyExpiry::Never);
        assert_eq!(KeyExpiry::of_key(7, None), KeyExpiry::Never);
    }

    #[test]
    fn grace_choices_parse_and_stay_within_a_week() {
        for choice in RollGrace::ALL {
            assert_eq!(RollGrace::parse(choice.value()).unwrap(), choice);
            assert!((0..=RollGrace::MAX_MS).contains(&choice.as_ms()));
        }
        for bad in ["", "2h", "never", "1H", "0"] {
            assert!(RollGrace::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(RollGrace::Now.as_ms(), 0);
    }

    #[test]
    fn a_key_is_refused_from_the_first_of_its_ends() {
        assert_eq!(key_refusal(100, None, None), None);
        assert_eq!(key_refusal(100, Some(101), Some(102)), None);
        assert_eq!(
            key_refusal(100, Some(100), None),
            Some(KeyRefusal::Expired { at: 100 })
        );
        assert_eq!(
            key_refusal(100, None, Some(100)),
            Some(KeyRefusal::Rolled { until: 100 })
        );
        assert_eq!(
            key_refusal(200, Some(150), Some(120)),
            Some(KeyRefusal::Rolled { until: 120 })
        );
        assert_eq!(
            key_refusal(200, Some(120), Some(150)),
            Some(KeyRefusal::Expired { at: 120 })
        );
    }

    #[test]
    fn time_left_rounds_minutes_down_and_days_to_the_nearest() {
        assert_eq!(time_left(-5), "less than a minute");
        assert_eq!(time_left(59_999), "less than a minute");
        assert_eq!(time_left(HOUR_MS - 1), "59 minutes");
        assert_eq!(time_left(HOUR_MS), "60 minutes");
        assert_eq!(time_left(2 * HOUR_MS), "2 hours");
        assert_eq!(time_left(24 * HOUR_MS - 1), "24 hours");
        assert_eq!(time_left(23 * HOUR_MS + 20 * 60_000), "23 hours");
        assert_eq!(time_left(7 * DAY_MS), "7 days");
        assert_eq!(time_left(30 * DAY_MS - 5), "30 days");
        assert_eq!(time_left(2 * DAY_MS), "2 days");
        assert_eq!(time_left(60_000), "1 minute");
    }
}
