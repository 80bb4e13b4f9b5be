//! Pure rendering of billing data (the billed-task CSV, the invoice PDF and the usage chart's SVG): no store,
//! no I/O, so every output can be unit-tested byte for byte. The caller maps store rows into
//! the plain input types below.

mod chart;
mod csv;
mod pdf;

pub use chart::usage_chart_svg;
pub use csv::invoice_csv;
pub use pdf::invoice_pdf;

use tessera_core::money::{Currency, Money};
use time::{macros::format_description, OffsetDateTime};

/// One billed task, a row of the invoice's CSV detail.
pub struct BilledTask {
    pub task_id: String,
    pub project: Option<String>,
    pub task_type: String,
    pub completed_at: i64,
    pub unit_amount: i64,
}

/// One day of usage for the chart; the caller passes every day, zero days included.
pub struct DayUsage {
    pub day_start: i64,
    pub completed_tasks: i64,
    pub amount: i64,
}

fn utc(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `YYYY-MM-DD` in UTC; an out-of-range time prints as such rather than failing a render.
fn date(ms: i64) -> String {
    utc(ms)
        .and_then(|t| t.format(format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_else(|| "invalid date".to_owned())
}

/// RFC 3339 in UTC with milliseconds; falls back to the raw milliseconds when out of range.
fn rfc3339(ms: i64) -> String {
    utc(ms)
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn money(minor: i64, currency: Currency) -> String {
    Money::new(minor, currency).to_string()
}

/// `1,234,567`: counts are easier to read grouped.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 3 == digits.len() % 3 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn dates_and_counts_format() {
        assert_eq!(
            date(1_795_000_000_000 - 1_795_000_000_000 % DAY_MS),
            "2026-11-18"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(-12), "-12");
        assert_eq!(grouped(0), "0");
    }
}
