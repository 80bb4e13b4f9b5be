//! Retry schedules for durable background work (mail now, callbacks later).

use std::time::Duration;

use crate::Invalid;

/// The delays between attempts: after the first failure wait `delays[0]`, and so on; when
/// the list is exhausted the work is given up. Written as `1s,2s,5m,1h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    /// Parses `1s,2s,5m,1h,250ms`. At most 100 steps, each at most 7 days.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let mut delays = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            delays.push(parse_duration(part)?);
        }
        if delays.is_empty() {
            return Err(Invalid::new(
                "A retry schedule needs at least one delay, e.g. 1s,5s,1m.",
            ));
        }
        if delays.len() > 100 {
            return Err(Invalid::new("A retry schedule has at most 100 steps."));
        }
        Ok(Self { delays })
    }

    /// The delay before retry number `failures` (1-based), or `None` to give up.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let index = usize::try_from(failures).ok()?.checked_sub(1)?;
        self.delays.get(index).copied()
    }

    pub fn retries(&self) -> usize {
        self.delays.len()
    }
}

/// Parses one duration: a whole number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(raw: &str) -> Result<Duration, Invalid> {
    let invalid = || {
        Invalid(format!(
            "\"{raw}\" is not a duration like 500ms, 5s, 2m, 1h or 1d."
        ))
    };
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        "d" => number.checked_mul(86_400_000),
        _ => None,
    }
    .ok_or_else(invalid)?;
    if millis > 7 * 86_400_000 {
        return Err(Invalid(format!("\"{raw}\" is longer than 7 days.")));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_steps() {
        let s = RetrySchedule::parse("1s, 2s,5m,250ms").unwrap();
        assert_eq!(s.delay_after(1), Some(Duration::from_secs(1)));
        assert_eq!(s.delay_after(3), Some(Duration::from_secs(300)));
        assert_eq!(s.delay_after(4), Some(Duration::from_millis(250)));
        assert_eq!(s.delay_after(5), None);
        assert_eq!(s.delay_after(0), None);
        assert_eq!(s.retries(), 4);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "5", "5x", "s", "-1s", "8d", "99999999999999999999s"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }
}
