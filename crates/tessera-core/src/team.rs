//! Team details.

use url::Url;

use crate::{clean_text, Invalid};

pub const MAX_TEAM_NAME: usize = 80;
pub const MAX_URL_LEN: usize = 2048;

/// A team name: shown as the prefix of every project name (`Team / project`), so it may not
/// contain `/` and is unique across the platform (operators address teams by name).
pub fn parse_team_name(raw: &str) -> Result<String, Invalid> {
    let name = clean_text("Team name", raw, MAX_TEAM_NAME, true)?;
    if name.contains('/') {
        return Err(Invalid::new("Team name must not contain \"/\"."));
    }
    Ok(name)
}

/// The comparison key for team names (unique, case-insensitive).
pub fn team_name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// A callback URL: absolute http(s), with a host, no credentials. Empty means "none".
pub fn parse_callback_url(raw: &str) -> Result<Option<String>, Invalid> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_URL_LEN {
        return Err(Invalid(format!(
            "Callback URL must be at most {MAX_URL_LEN} characters."
        )));
    }
    let url = Url::parse(raw)
        .map_err(|_| Invalid::new("Callback URL must be an absolute http:// or https:// URL."))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Invalid::new(
            "Callback URL must be an absolute http:// or https:// URL.",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "Callback URL must not contain a user name or password.",
        ));
    }
    Ok(Some(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names() {
        assert_eq!(parse_team_name("  Acme Vision ").unwrap(), "Acme Vision");
        assert!(parse_team_name("").is_err());
        assert!(parse_team_name("a/b").is_err());
        assert!(parse_team_name(&"x".repeat(81)).is_err());
        assert_eq!(team_name_key(" Acme "), "acme");
    }

    #[test]
    fn callback_urls() {
        assert_eq!(parse_callback_url(" ").unwrap(), None);
        assert_eq!(
            parse_callback_url("https://hooks.example.com/scale")
                .unwrap()
                .as_deref(),
            Some("https://hooks.example.com/scale")
        );
        for bad in [
            "ftp://x.com",
            "/relative",
            "not a url",
            "http://",
            "https://u:p@x.com/",
        ] {
            assert!(parse_callback_url(bad).is_err(), "{bad}");
        }
    }
}
