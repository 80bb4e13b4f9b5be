//! Billing's rules, shared by the store (which freezes prices and closes periods), the
//! service (pages, API, jobs) and the CLI: plans, invoice and payment states, the monthly UTC
//! period, the spend-limit alert levels and invoice numbers. Amounts are
//! [`Money`](crate::money::Money): integer minor units, never floats.

use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

use crate::{status::word_enum, tasks::KNOWN_TYPES, Invalid};

word_enum!(
    /// How a team pays: `on_demand` teams are charged automatically on the saved card;
    /// `enterprise` teams are invoiced by their account representative (no card).
    Plan {
        OnDemand = "on_demand",
        Enterprise = "enterprise",
    }
);

word_enum!(
    /// An invoice's life, as Stripe's: made as `draft`, `open` once final (its amounts never
    /// change again), then `paid`, `void` or `uncollectible`.
    InvoiceStatus {
        Draft = "draft",
        Open = "open",
        Paid = "paid",
        Void = "void",
        Uncollectible = "uncollectible",
    }
);

impl InvoiceStatus {
    /// Whether an invoice may move from `self` to `next` (the schema's trigger holds the same
    /// table): `paid` and `void` are final; an `uncollectible` invoice may still be paid.
    pub fn may_become(self, next: InvoiceStatus) -> bool {
        use InvoiceStatus::*;
        matches!(
            (self, next),
            (Draft, Open | Void)
                | (Open, Paid | Void | Uncollectible)
                | (Uncollectible, Paid | Void)
        )
    }
}

word_enum!(
    /// Where an open invoice's payment stands.
    PaymentStatus {
        /// Nothing to charge: an enterprise invoice (paid by bank transfer) or a zero total.
        NotRequired = "not_required",
        /// On-demand, but this installation has no payment provider configured.
        NotConfigured = "not_configured",
        /// A charge is due (first try or a retry).
        Pending = "pending",
        /// Every attempt of the schedule failed; the Admin was told each time.
        Failed = "failed",
        Succeeded = "succeeded",
    }
);

word_enum!(
    /// Which price a usage record was frozen with.
    PriceSource {
        Book = "book",
        Team = "team",
    }
);

word_enum!(
    /// A credit ledger entry: staff grants (and corrections) add, invoices consume.
    CreditKind {
        Grant = "grant",
        Adjustment = "adjustment",
        Consumption = "consumption",
    }
);

word_enum!(
    /// How one attempt to charge an invoice ended.
    AttemptStatus {
        Succeeded = "succeeded",
        /// The card was refused (a final answer for this attempt; retried on the schedule).
        Declined = "declined",
        /// No card, or the provider could not be reached.
        Error = "error",
    }
);

/// The price-book row that prices every task type without a row of its own.
pub const ANY_TASK_TYPE: &str = "*";

/// A task type a price may name: one the SDK knows, or [`ANY_TASK_TYPE`].
pub fn priceable_task_type(raw: &str) -> Result<String, Invalid> {
    let word = raw.trim().to_ascii_lowercase();
    if word == ANY_TASK_TYPE || KNOWN_TYPES.contains(&word.as_str()) {
        Ok(word)
    } else {
        Err(Invalid(format!(
            "Unknown task type \"{}\" (expected a Scale task type such as imageannotation, or * for every other type).",
            raw.chars().take(40).collect::<String>()
        )))
    }
}

/// The largest unit price accepted (1,000,000.00 in a two-decimal currency): a typo in an
/// operator's command should not be able to price a task beyond any real contract.
pub const MAX_UNIT_AMOUNT: i64 = 100_000_000;

/// The UTC time of `epoch_ms` (clamped to what `time` represents).
fn utc(epoch_ms: i64) -> OffsetDateTime {
    let nanos = i128::from(epoch_ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn epoch_ms(date: Date) -> i64 {
    let at = date.with_time(Time::MIDNIGHT).assume_offset(UtcOffset::UTC);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The start (epoch ms) of the UTC calendar month holding `epoch_ms`: billing periods are
/// whole UTC months by default.
pub fn month_start(epoch_ms_at: i64) -> i64 {
    let at = utc(epoch_ms_at);
    let first = Date::from_calendar_date(at.year(), at.month(), 1).unwrap_or(at.date());
    epoch_ms(first)
}

/// The start of the UTC month after the one holding `epoch_ms`.
pub fn next_month_start(epoch_ms_at: i64) -> i64 {
    let at = utc(epoch_ms_at);
    let (year, month) = match at.month() {
        Month::December => (at.year() + 1, Month::January),
        month => (at.year(), month.next()),
    };
    Date::from_calendar_date(year, month, 1)
        .map(epoch_ms)
        .unwrap_or(i64::MAX)
}

/// The start of the UTC day holding `epoch_ms` (the usage chart's buckets).
pub fn day_start(epoch_ms_at: i64) -> i64 {
    epoch_ms_at.div_euclid(DAY_MS) * DAY_MS
}

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The spend-limit alert a month's accrued amount has reached: 100 at or past the limit, 80
/// from four fifths of it, else 0 (no limit: 0). Managers and the Admin are mailed once per
/// level per month.
pub fn alert_level(accrued: i64, spend_limit: Option<i64>) -> i64 {
    let Some(limit) = spend_limit.filter(|l| *l > 0) else {
        return 0;
    };
    let accrued = i128::from(accrued);
    let limit = i128::from(limit);
    if accrued >= limit {
        100
    } else if accrued * 5 >= limit * 4 {
        80
    } else {
        0
    }
}

/// An invoice's printed number, from its place in the gap-free sequence.
pub fn invoice_number(sequence: i64) -> String {
    format!("INV-{sequence:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_21_2026: i64 = 1_795_219_200_000; // 2026-11-21T00:00:00Z
    const NOV_1_2026: i64 = 1_793_491_200_000;
    const DEC_1_2026: i64 = 1_796_083_200_000;

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(month_start(NOV_21_2026), NOV_1_2026);
        assert_eq!(next_month_start(NOV_21_2026), DEC_1_2026);
        assert_eq!(month_start(DEC_1_2026), DEC_1_2026);
        assert_eq!(month_start(DEC_1_2026 - 1), NOV_1_2026);
        // December rolls into the next year.
        let dec_20 = DEC_1_2026 + 19 * DAY_MS;
        assert_eq!(next_month_start(dec_20), 1_798_761_600_000); // 2027-01-01
        assert_eq!(day_start(NOV_21_2026 + 5), NOV_21_2026);
    }

    #[test]
    fn alert_levels() {
        assert_eq!(alert_level(79, Some(100)), 0);
        assert_eq!(alert_level(80, Some(100)), 80);
        assert_eq!(alert_level(99, Some(100)), 80);
        assert_eq!(alert_level(100, Some(100)), 100);
        assert_eq!(alert_level(1_000, None), 0);
        assert_eq!(alert_level(i64::MAX, Some(i64::MAX - 1)), 100);
    }

    #[test]
    fn invoice_states_move_forward_only() {
        use InvoiceStatus::*;
        assert!(Draft.may_become(Open));
        assert!(Open.may_become(Paid));
        assert!(Uncollectible.may_become(Paid));
        assert!(!Paid.may_become(Open));
        assert!(!Void.may_become(Paid));
        assert!(!Open.may_become(Draft));
    }

    #[test]
    fn priceable_types() {
        assert_eq!(
            priceable_task_type(" ImageAnnotation ").unwrap(),
            "imageannotation"
        );
        assert_eq!(priceable_task_type("*").unwrap(), "*");
        assert!(priceable_task_type("bogus").is_err());
        assert_eq!(invoice_number(42), "INV-000042");
    }

    #[test]
    fn words_match_the_schema() {
        let sql = include_str!("../../tessera-store/migrations/0010_billing.sql");
        fn check<T: Copy>(sql: &str, column: &str, all: &[T], word: fn(T) -> &'static str) {
            let list: Vec<String> = all.iter().map(|v| format!("'{}'", word(*v))).collect();
            let constraint = format!("CHECK ({column} IN ({}))", list.join(", "));
            assert!(
                sql.contains(&constraint),
                "the migration lacks {constraint}"
            );
        }
        check(sql, "plan", Plan::ALL, Plan::as_str);
        check(sql, "status", InvoiceStatus::ALL, InvoiceStatus::as_str);
        check(
            sql,
            "payment_status",
            PaymentStatus::ALL,
            PaymentStatus::as_str,
        );
        check(sql, "kind", CreditKind::ALL, CreditKind::as_str);
        check(sql, "status", AttemptStatus::ALL, AttemptStatus::as_str);
    }
}
