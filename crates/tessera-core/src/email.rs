//! Email addresses as Tessera compares them.

use std::fmt;

use crate::Invalid;

/// The longest address SMTP can carry (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A syntactically plausible email address, trimmed.
///
/// Addresses compare case-insensitively (`Ada@X.com` is `ada@x.com`), but `+tag` parts are
/// kept: `joe+second@x.com` is a different account from `joe@x.com`, which is how one person
/// holds accounts in two teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let display = raw.trim();
        if display.is_empty() {
            return Err(Invalid::new("Email address is required."));
        }
        if display.len() > MAX_EMAIL_LEN {
            return Err(Invalid::new(format!(
                "Email address must be at most {MAX_EMAIL_LEN} characters."
            )));
        }
        let invalid = || Invalid(format!("\"{display}\" is not a valid email address."));
        let (local, domain) = display.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c));
        if !domain_ok || !local_ok {
            return Err(invalid());
        }
        Ok(Self {
            display: display.to_owned(),
            normalized: display.to_lowercase(),
        })
    }

    /// The address as the person typed it (trimmed), for display and for sending mail.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The comparison key: lower-cased, tags kept. Uniqueness in the database uses this.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Splits a free-form list ("a@x.com, b@x.com\nc@x.com") into addresses, dropping duplicates
/// (compared case-insensitively) and reporting the first invalid entry.
pub fn parse_list(raw: &str, max: usize) -> Result<Vec<Email>, Invalid> {
    let mut out: Vec<Email> = Vec::new();
    for part in raw.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
        if part.is_empty() {
            continue;
        }
        let email = Email::parse(part)?;
        if !out.iter().any(|e| e.normalized() == email.normalized()) {
            out.push(email);
        }
        if out.len() > max {
            return Err(Invalid(format!(
                "At most {max} addresses can be invited at once."
            )));
        }
    }
    if out.is_empty() {
        return Err(Invalid::new("Enter at least one email address."));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_compares_case_insensitively() {
        let a = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "Ada@Example.COM");
        assert_eq!(a.normalized(), "ada@example.com");
    }

    #[test]
    fn plus_tags_are_distinct_addresses() {
        let a = Email::parse("joe@x.com").unwrap();
        let b = Email::parse("joe+second@x.com").unwrap();
        assert_ne!(a.normalized(), b.normalized());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "joe",
            "joe@",
            "@x.com",
            "jo e@x.com",
            "a@b..c",
            "a@.x",
            "<a>@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@x.com", "a".repeat(300));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn parses_lists() {
        let list = parse_list("a@x.com, B@x.com\nb@X.com;c@x.com", 10).unwrap();
        let got: Vec<_> = list.iter().map(|e| e.normalized()).collect();
        assert_eq!(got, ["a@x.com", "b@x.com", "c@x.com"]);
        assert!(parse_list("  ,  ", 10).is_err());
        assert!(parse_list("a@x.com, nope", 10).is_err());
        assert!(parse_list("a@x.com b@x.com c@x.com", 2).is_err());
    }
}
