//! Identifier types: one newtype per kind of row, so a `TaskId` can never be passed where a
//! `BatchId` is expected and every id carries its wire prefix (`team_…`, `prj_…`), as svix's
//! `core/types` does. Ids are opaque to clients; their shape is checked only where they enter
//! from outside ([`TaskId::parse`] and friends).

use crate::Invalid;

/// Random bits in every generated id: 96, written as 24 hex digits.
const RANDOM_BYTES: usize = 12;

/// The longest id accepted from outside; longer input is refused before any lookup.
pub const MAX_ID_LEN: usize = 64;

/// `prefix_` followed by 24 random hex digits (no prefix: the digits alone, Scale's task-id shape).
fn random_id(prefix: &str) -> String {
    let bytes: [u8; RANDOM_BYTES] = rand::random();
    if prefix.is_empty() {
        hex::encode(bytes)
    } else {
        format!("{prefix}_{}", hex::encode(bytes))
    }
}

/// True when `raw` is an id of this prefix as [`random_id`] makes them.
fn has_shape(prefix: &str, raw: &str) -> bool {
    let digits = if prefix.is_empty() {
        raw
    } else {
        match raw
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
        {
            Some(digits) => digits,
            None => return false,
        }
    };
    digits.len() == RANDOM_BYTES * 2 && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Declares an id newtype with its wire prefix.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident = $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The wire prefix of this kind of id (empty for Scale-shaped task ids).
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(random_id($prefix))
            }

            /// An id from outside (URL, form, JSON): refused unless it has this kind's shape, so
            /// garbage never reaches a query.
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                if raw.len() <= MAX_ID_LEN && has_shape($prefix, raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(Invalid(format!("\"{}\" is not a valid {}.", raw.chars().take(MAX_ID_LEN).collect::<String>(), stringify!($name))))
                }
            }

            /// An id read back from the database, which holds only ids Tessera made (and, for
            /// rows older than the shape check, whatever was stored then).
            pub fn from_stored(raw: String) -> Self {
                Self(raw)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;

            fn from_str(raw: &str) -> Result<Self, Invalid> {
                Self::parse(raw)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

id_type!(
    /// A customer team: the tenant every other row belongs to.
    TeamId = "team"
);
id_type!(
    /// A person with a sign-in (team member, labeler or staff).
    UserId = "usr"
);
id_type!(
    /// A labeling task: 24 hex digits with no prefix, the shape Scale's ids have, so SDK code
    /// that checks ids keeps working.
    TaskId = ""
);
id_type!(
    /// A project: named task defaults inside a team and mode.
    ProjectId = "prj"
);
id_type!(
    /// A batch of tasks inside a project.
    BatchId = "bat"
);
id_type!(
    /// One callback message (task, batch or test) in the delivery outbox.
    DeliveryId = "msg"
);
id_type!(
    /// One attempt to deliver a callback.
    AttemptId = "att"
);
id_type!(
    /// An uploaded or imported file.
    FileId = "file"
);
id_type!(
    /// An invitation to join a team.
    InvitationId = "inv"
);
id_type!(
    /// An API key (the id, never the secret).
    ApiKeyId = "key"
);
id_type!(
    /// One entry of a team's audit log.
    AuditEventId = "evt"
);
id_type!(
    /// One line of a task's history.
    TaskEventId = "tev"
);
id_type!(
    /// One message in the mail outbox.
    MailId = "mail"
);
id_type!(
    /// An email address a team registered as a callback target.
    CallbackEmailId = "cbe"
);
id_type!(
    /// A cloud storage integration (a team's delegated access to its buckets).
    IntegrationId = "stor"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let team = TeamId::generate();
        assert!(team.as_str().starts_with("team_"));
        assert_eq!(team.as_str().len(), "team_".len() + 24);
        assert_eq!(TeamId::parse(team.as_str()).unwrap(), team);
        assert_eq!(team.to_string().parse::<TeamId>().unwrap(), team);
    }

    #[test]
    fn task_ids_have_scales_shape() {
        let task = TaskId::generate();
        assert_eq!(task.as_str().len(), 24);
        assert!(task.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(TaskId::parse(task.as_str()).is_ok());
    }

    #[test]
    fn parse_refuses_other_kinds_and_garbage() {
        let batch = BatchId::generate();
        assert!(
            ProjectId::parse(batch.as_str()).is_err(),
            "a batch id is not a project id"
        );
        assert!(TaskId::parse(batch.as_str()).is_err());
        for bad in [
            "",
            "team_",
            "team_xyz",
            "team_0123456789abcdef0123456",
            "TEAM_0123456789abcdef01234567",
        ] {
            assert!(TeamId::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("team_{}", "a".repeat(100));
        let message = TeamId::parse(&long).unwrap_err().0;
        assert!(
            message.len() < 120,
            "the message quotes at most the id's allowed length"
        );
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let id = DeliveryId::from_stored("msg_00".into());
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"msg_00\"");
        let back: DeliveryId = serde_json::from_str("\"msg_00\"").unwrap();
        assert_eq!(back, id);
    }
}
