//! Money: integer minor units (cents) in one currency, never floats. Billing (issue 11) sums
//! usage into invoices; every step must be exact and an overflow must be an error, not a wrap,
//! so amounts only combine through the checked operations here.

use std::fmt;

use crate::Invalid;

/// Currencies whose minor unit is the major unit (Stripe's zero-decimal list): an amount of
/// 500 JPY is five hundred yen, not five.
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// An ISO 4217 currency code, kept in lower case as the payment provider spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The default currency of a team's billing account.
    pub const USD: Currency = Currency(*b"usd");

    /// Three ASCII letters, in either case (`usd`, `EUR`).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let code = raw.trim().to_ascii_lowercase();
        match <[u8; 3]>::try_from(code.as_bytes()) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_lowercase) => Ok(Currency(bytes)),
            _ => Err(Invalid::new(
                "A currency is a three-letter ISO 4217 code, such as usd or eur.",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("currency codes are ASCII letters")
    }

    /// Decimal places between the major and the minor unit (2 for most, 0 for yen and the like).
    pub fn exponent(&self) -> u32 {
        if ZERO_DECIMAL.contains(&self.as_str()) {
            0
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why two amounts could not be combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amounts in {0} and {1} cannot be combined")]
    CurrencyMismatch(Currency, Currency),
    #[error("the amount is too large")]
    Overflow,
}

/// An amount of money: minor units of one currency (may be negative: credits, refunds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// The amount in minor units, as stored and as the API reports it.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The sum of two amounts in the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `quantity` times this unit price: an invoice line's amount, exact.
    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(quantity)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// The sum of `amounts` (zero when empty), all in `currency`.
    pub fn sum(
        currency: Currency,
        amounts: impl IntoIterator<Item = Money>,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }
}

impl Money {
    /// The amount without its currency (`12.34`, `500`): what a form field shows for editing.
    pub fn amount_string(&self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        let units = self.minor.unsigned_abs();
        match self.currency.exponent() {
            0 => format!("{sign}{units}"),
            exponent => {
                let scale = 10u64.pow(exponent);
                let width = exponent as usize;
                format!("{sign}{}.{:0width$}", units / scale, units % scale)
            }
        }
    }
}

/// `12.34 USD`, `-0.05 EUR`, `500 JPY`: for pages, invoices and mail.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.currency.as_str().to_ascii_uppercase();
        write!(f, "{} {code}", self.amount_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::USD)
    }

    #[test]
    fn currencies_are_three_letters_in_lower_case() {
        assert_eq!(Currency::parse(" EUR ").unwrap().as_str(), "eur");
        assert_eq!(Currency::parse("usd").unwrap(), Currency::USD);
        for bad in ["", "us", "usdd", "u$d", "12a", "ÜSD"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn amounts_add_and_multiply_exactly_or_refuse() {
        assert_eq!(usd(1999).checked_add(usd(1)).unwrap(), usd(2000));
        assert_eq!(usd(7).checked_mul(3).unwrap(), usd(21));
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), Err(MoneyError::Overflow));
        assert_eq!(
            usd(i64::MAX / 2 + 1).checked_mul(2),
            Err(MoneyError::Overflow)
        );
        let eur = Money::new(1, Currency::parse("eur").unwrap());
        assert!(matches!(
            usd(1).checked_add(eur),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert_eq!(
            Money::sum(Currency::USD, [usd(5), usd(-2), usd(10)]).unwrap(),
            usd(13)
        );
        assert_eq!(Money::sum(Currency::USD, []).unwrap(), usd(0));
    }

    #[test]
    fn amounts_print_in_major_units_of_their_currency() {
        assert_eq!(usd(1234).to_string(), "12.34 USD");
        assert_eq!(usd(5).to_string(), "0.05 USD");
        assert_eq!(usd(-250).to_string(), "-2.50 USD");
        assert_eq!(usd(i64::MIN).to_string(), "-92233720368547758.08 USD");
        let yen = Money::new(500, Currency::parse("jpy").unwrap());
        assert_eq!(yen.to_string(), "500 JPY");
    }
}
