//! Live and test modes: two separate worlds of projects, batches, tasks and files per team.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Real work: tasks go to labelers and are billed.
    Live,
    /// Free integration testing: tasks complete at once with a synthetic response.
    Test,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Live, Mode::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    /// The mode a switch leads to.
    pub fn other(self) -> Mode {
        match self {
            Mode::Live => Mode::Test,
            Mode::Test => Mode::Live,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Live => "Live",
            Mode::Test => "Test",
        }
    }

    /// API keys of this mode start with `live_` / `test_`.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Mode::Live => "live_",
            Mode::Test => "test_",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "live" => Ok(Mode::Live),
            "test" => Ok(Mode::Test),
            other => Err(Invalid(format!(
                "Unknown mode \"{other}\" (expected live or test)."
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("LIVE".parse::<Mode>().unwrap(), Mode::Live);
        assert_eq!(Mode::Test.key_prefix(), "test_");
        assert!("prod".parse::<Mode>().is_err());
    }
}
