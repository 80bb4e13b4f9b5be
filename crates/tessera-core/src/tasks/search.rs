//! The dashboard's task search: what the search, metadata and date fields of the task list
//! accept, checked here so the list can point at the field that is wrong.
//!
//! The search box is an exact task id or `unique_id` (both indexed within a team's mode); the
//! metadata search is `key=value` on one top-level string field — an exact match, not a
//! substring, so the database compares one value per task instead of scanning text; dates
//! are whole days in UTC, the day of `to` included.

use time::{macros::format_description, Date, Duration, Time};

use crate::Invalid;

/// Characters of the search box at most (task ids are 24, `unique_id`s are bounded by the API).
pub const MAX_SEARCH_CHARS: usize = 200;
/// Characters of a metadata key at most.
pub const MAX_METADATA_KEY_CHARS: usize = 100;
/// Characters of a metadata value searched for at most.
pub const MAX_METADATA_VALUE_CHARS: usize = 500;

/// The search box: `None` when empty.
pub fn search_term(raw: &str) -> Result<Option<String>, Invalid> {
    let term = raw.trim();
    if term.chars().count() > MAX_SEARCH_CHARS {
        return Err(Invalid(format!(
            "Search for one task id or unique_id, at most {MAX_SEARCH_CHARS} characters."
        )));
    }
    Ok((!term.is_empty()).then(|| term.to_owned()))
}

/// `key=value` of the metadata search: `None` when empty. The key is a top-level field
/// name of letters, digits, `_`, `-` and `.`; the value is everything after the first `=`
/// (it may be empty, matching an empty string).
pub fn metadata_search(raw: &str) -> Result<Option<(String, String)>, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let Some((key, value)) = text.split_once('=') else {
        return Err(Invalid(
            "Write the metadata search as key=value, for example customer=acme.".into(),
        ));
    };
    let key = key.trim();
    let value = value.trim();
    if key.is_empty() {
        return Err(Invalid(
            "Name the metadata field before \"=\", for example customer=acme.".into(),
        ));
    }
    if key.chars().count() > MAX_METADATA_KEY_CHARS
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Invalid(format!(
            "A metadata field name is letters, digits, \"_\", \"-\" and \".\", at most {MAX_METADATA_KEY_CHARS} characters."
        )));
    }
    if value.chars().count() > MAX_METADATA_VALUE_CHARS {
        return Err(Invalid(format!(
            "Search for a metadata value of at most {MAX_METADATA_VALUE_CHARS} characters."
        )));
    }
    Ok(Some((key.to_owned(), value.to_owned())))
}

/// A date field (`YYYY-MM-DD`, as a date input sends it): `None` when empty. `name` is how
/// the message calls the field.
pub fn day(name: &str, raw: &str) -> Result<Option<Date>, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| Invalid(format!("{name} is a date like 2026-01-31.")))
}

/// The creation times (ms since the epoch, inclusive) from the start of `from` to the end of
/// `to`, UTC; refused when `to` comes before `from`.
pub fn created_range(
    from: Option<Date>,
    to: Option<Date>,
) -> Result<(Option<i64>, Option<i64>), Invalid> {
    if let (Some(from), Some(to)) = (from, to) {
        if to < from {
            return Err(Invalid(format!(
                "The end date comes before the start date ({from})."
            )));
        }
    }
    let start_ms = |d: Date| {
        i64::try_from(
            d.with_time(Time::MIDNIGHT)
                .assume_utc()
                .unix_timestamp_nanos()
                / 1_000_000,
        )
        .unwrap_or(i64::MAX)
    };
    let end_ms = |d: Date| {
        start_ms(d)
            .saturating_add(Duration::DAY.whole_milliseconds() as i64)
            .saturating_sub(1)
    };
    Ok((from.map(start_ms), to.map(end_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_search_box_is_trimmed_and_bounded() {
        assert_eq!(search_term("  "), Ok(None));
        assert_eq!(search_term(" abc "), Ok(Some("abc".into())));
        assert!(search_term(&"x".repeat(201)).is_err());
    }

    #[test]
    fn metadata_search_is_key_equals_value() {
        assert_eq!(metadata_search(""), Ok(None));
        assert_eq!(
            metadata_search(" customer = acme = 1 "),
            Ok(Some(("customer".into(), "acme = 1".into())))
        );
        assert_eq!(
            metadata_search("a.b-c_d="),
            Ok(Some(("a.b-c_d".into(), String::new())))
        );
        for bad in ["acme", "=acme", "cust\"omer=a", "a b=c", "é=1"] {
            assert!(metadata_search(bad).is_err(), "{bad}");
        }
        assert!(metadata_search(&format!("{}=1", "k".repeat(101))).is_err());
        assert!(metadata_search(&format!("k={}", "v".repeat(501))).is_err());
    }

    #[test]
    fn dates_are_whole_utc_days_with_the_end_included() {
        assert_eq!(day("From", ""), Ok(None));
        assert_eq!(day("From", "2026-01-31"), Ok(Some(date!(2026 - 01 - 31))));
        for bad in ["2026-02-30", "31/01/2026", "2026-1-5", "yesterday"] {
            assert!(day("From", bad).is_err(), "{bad}");
        }
        let (from, to) =
            created_range(Some(date!(1970 - 01 - 02)), Some(date!(1970 - 01 - 02))).unwrap();
        assert_eq!(from, Some(86_400_000));
        assert_eq!(to, Some(2 * 86_400_000 - 1));
        assert!(created_range(Some(date!(2026 - 01 - 02)), Some(date!(2026 - 01 - 01))).is_err());
        assert_eq!(created_range(None, None), Ok((None, None)));
    }
}
