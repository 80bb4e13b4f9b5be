//! Profile fields and passwords.

use crate::{clean_text, Invalid};

pub const MAX_NAME: usize = 100;
pub const MAX_PHONE: usize = 40;
pub const MIN_PASSWORD: usize = 10;
/// Long enough for any passphrase, short enough that hashing cost stays bounded.
pub const MAX_PASSWORD: usize = 256;

/// Profile details a person edits about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub company: String,
    pub job_title: String,
    pub phone: String,
}

impl Profile {
    pub fn parse(name: &str, company: &str, job_title: &str, phone: &str) -> Result<Self, Invalid> {
        let phone = clean_text("Phone", phone, MAX_PHONE, false)?;
        if !phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err(Invalid::new(
                "Phone may contain only digits, spaces and + - ( ) .",
            ));
        }
        Ok(Self {
            name: clean_text("Name", name, MAX_NAME, true)?,
            company: clean_text("Company", company, MAX_NAME, false)?,
            job_title: clean_text("Job title", job_title, MAX_NAME, false)?,
            phone,
        })
    }
}

/// Checks a new password: long enough to resist guessing, bounded so hashing stays cheap.
pub fn check_new_password(password: &str, confirmation: Option<&str>) -> Result<(), Invalid> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err(Invalid(format!(
            "Password must be at least {MIN_PASSWORD} characters."
        )));
    }
    if len > MAX_PASSWORD {
        return Err(Invalid(format!(
            "Password must be at most {MAX_PASSWORD} characters."
        )));
    }
    if let Some(confirmation) = confirmation {
        if confirmation != password {
            return Err(Invalid::new("The two passwords do not match."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_limits() {
        let p = Profile::parse(" Ada ", "Acme", "", "+1 (555) 010-0000").unwrap();
        assert_eq!(p.name, "Ada");
        assert!(Profile::parse("", "", "", "").is_err());
        assert!(Profile::parse("Ada", "", "", "call me").is_err());
        assert!(Profile::parse(&"a".repeat(101), "", "", "").is_err());
    }

    #[test]
    fn passwords() {
        assert!(check_new_password("short", None).is_err());
        assert!(check_new_password("long enough pw", Some("long enough pw")).is_ok());
        assert!(check_new_password("long enough pw", Some("different pw")).is_err());
        assert!(check_new_password(&"x".repeat(257), None).is_err());
    }
}
