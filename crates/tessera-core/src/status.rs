//! The closed sets of words the schema stores in `status` and `kind` columns, as enums: one
//! spelling, checked by the compiler, and the same list the migrations' `CHECK` constraints
//! name (pinned by the tests below).

use crate::Invalid;

/// Declares an enum stored and sent as a fixed lower-case word.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order (for filters, forms and schema checks).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value a stored or typed word names, if any.
            pub fn from_word(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;

            fn from_str(word: &str) -> Result<Self, Invalid> {
                Self::from_word(word).ok_or_else(|| {
                    let expected: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    Invalid(format!(
                        "Unknown {} \"{}\" (expected one of: {}).",
                        stringify!($name),
                        word.chars().take(40).collect::<String>(),
                        expected.join(", ")
                    ))
                })
            }
        }
    };
}
pub(crate) use word_enum;

word_enum!(
    /// Where a task is in its life (Scale's four states).
    TaskStatus {
        Pending = "pending",
        Completed = "completed",
        Canceled = "canceled",
        Error = "error",
    }
);

impl TaskStatus {
    /// A final task never changes state again and has had its callback queued.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Pending)
    }
}

word_enum!(
    /// A batch: open for tasks while staging, then in progress until every task is final.
    BatchStatus {
        Staging = "staging",
        InProgress = "in_progress",
        Completed = "completed",
    }
);

word_enum!(
    /// A customer's review of a completed task (Scale's audit feature).
    ReviewStatus {
        Pending = "pending",
        Fixed = "fixed",
        Accepted = "accepted",
        Rejected = "rejected",
        Commented = "commented",
    }
);

word_enum!(
    /// A callback message in the outbox.
    DeliveryStatus {
        /// Not yet delivered; attempted again when due.
        Pending = "pending",
        /// A 2xx answer was received.
        Succeeded = "succeeded",
        /// Given up after the retry schedule (or a test send failed).
        Failed = "failed",
    }
);

word_enum!(
    /// What a callback message reports.
    DeliveryKind {
        /// A task reached a final state: the body is built from the task when sent.
        Task = "task",
        /// Every task of a finalised batch is final.
        Batch = "batch",
        /// "Send test callback" from the dashboard.
        Test = "test",
    }
);

word_enum!(
    /// An invitation to join a team.
    InvitationStatus {
        Pending = "pending",
        Accepted = "accepted",
        Revoked = "revoked",
    }
);

word_enum!(
    /// An offer of a team's Admin role to one of its Managers (the Admin hand-over).
    HandoverStatus {
        /// Waiting for the Manager to accept by the mailed link.
        Pending = "pending",
        /// Accepted: the roles were swapped.
        Accepted = "accepted",
        /// Withdrawn by the Admin.
        Cancelled = "cancelled",
        /// Closed because it could no longer be accepted (expired, the Manager no longer a
        /// Manager, or the Admin changed) when a new offer was made.
        Lapsed = "lapsed",
    }
);

word_enum!(
    /// A message in the mail outbox.
    MailStatus {
        /// Waiting for (another) delivery attempt.
        Queued = "queued",
        /// Delivered to the SMTP server.
        Sent = "sent",
        /// No SMTP server configured: kept for staff to read.
        Held = "held",
        /// Given up after the retry schedule.
        Failed = "failed",
    }
);

word_enum!(
    /// The per-team secrets Tessera keeps sealed under the master key.
    SecretKind {
        /// Sent as `scale-callback-auth` with every callback.
        CallbackAuth = "callback_auth",
        /// Signs callbacks (Standard Webhooks).
        CallbackSigning = "callback_signing",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Each enum is exactly the list its column's `CHECK (… IN (…))` allows in the migrations,
    /// so an enum that drifts from the schema fails here instead of at the database.
    #[test]
    fn words_match_the_schema() {
        const MIGRATIONS: [&str; 4] = [
            include_str!("../../tessera-store/migrations/0001_foundation.sql"),
            include_str!("../../tessera-store/migrations/0002_api.sql"),
            include_str!("../../tessera-store/migrations/0003_callbacks_labeling.sql"),
            include_str!("../../tessera-store/migrations/0016_admin_handover.sql"),
        ];
        fn check<T: Copy>(column: &str, all: &[T], word: fn(T) -> &'static str) {
            let list: Vec<String> = all.iter().map(|v| format!("'{}'", word(*v))).collect();
            let constraint = format!("CHECK ({column} IN ({}))", list.join(", "));
            assert!(
                MIGRATIONS.iter().any(|sql| sql.contains(&constraint)),
                "no migration declares {constraint}"
            );
        }
        check("status", TaskStatus::ALL, TaskStatus::as_str);
        check("status", BatchStatus::ALL, BatchStatus::as_str);
        check(
            "customer_review_status",
            ReviewStatus::ALL,
            ReviewStatus::as_str,
        );
        check("status", DeliveryStatus::ALL, DeliveryStatus::as_str);
        check("kind", DeliveryKind::ALL, DeliveryKind::as_str);
        check("status", InvitationStatus::ALL, InvitationStatus::as_str);
        check("status", MailStatus::ALL, MailStatus::as_str);
        check("status", HandoverStatus::ALL, HandoverStatus::as_str);
        check("kind", SecretKind::ALL, SecretKind::as_str);
    }

    #[test]
    fn round_trips_and_refuses_unknown_words() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), *status);
            assert_eq!(
                serde_json::to_string(status).unwrap(),
                format!("\"{status}\"")
            );
        }
        let err = "done".parse::<TaskStatus>().unwrap_err().0;
        assert!(err.contains("pending, completed, canceled, error"), "{err}");
        assert!(!TaskStatus::Pending.is_final());
        assert!(TaskStatus::Canceled.is_final());
    }
}
