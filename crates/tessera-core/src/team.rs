//! Team details.

use url::Url;

use crate::{clean_text, Invalid};

pub const MAX_TEAM_NAME: usize = 80;
pub const MAX_URL_LEN: usize = 2048;

/// A team name: shown as the prefix of every project name (`Team / project`), so it may not
/// contain `/`. Names are not unique — two customers may both be "Acme" and neither learns of
/// the other; ids identify teams. A name may not look like a team id, so an operator's
/// `--team` value is never both.
pub fn parse_team_name(raw: &str) -> Result<String, Invalid> {
    let name = clean_text("Team name", raw, MAX_TEAM_NAME, true)?;
    if name.contains('/') {
        return Err(Invalid::new("Team name must not contain \"/\"."));
    }
    if looks_like_team_id(&name) {
        return Err(Invalid::new(
            "Team name must not look like a team id (team_ followed by hex digits).",
        ));
    }
    Ok(name)
}

/// Whether an operator's team reference is an id (`team_` and hex digits, as ids are made)
/// rather than a name.
pub fn looks_like_team_id(raw: &str) -> bool {
    raw.trim()
        .strip_prefix("team_")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The comparison key for team names (case-insensitive; not unique).
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
        assert!(parse_team_name("team_0a1b2c").is_err(), "looks like an id");
        assert!(parse_team_name("team_building").is_ok());
    }

    #[test]
    fn team_ids() {
        assert!(looks_like_team_id("team_1f2e3d4c5b6a79881a2b3c4d"));
        assert!(looks_like_team_id(" team_abc "));
        assert!(!looks_like_team_id("team_"));
        assert!(!looks_like_team_id("team_building"));
        assert!(!looks_like_team_id("Acme"));
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
