use thiserror::Error;

/// What can go wrong in the store. Constraint violations are told apart so callers can turn a
/// race lost to another request into a clear message instead of a 500.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique index rejected the write (see [`Constraint`]).
    #[error("conflict: {0}")]
    Unique(Constraint),
    /// A foreign key or check rejected the write, or the store refused a change that would
    /// duplicate something; the text says what.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The object is not in a state that allows the change (carries its current state).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// A throttled action was tried again too soon.
    #[error("too soon: retry in {retry_in_ms} ms")]
    TooSoon { retry_in_ms: i64 },
    #[error("configuration: {0}")]
    Config(String),
    #[error("migration {version} failed: {message}")]
    Migration { version: i64, message: String },
    #[error("database: {0}")]
    Database(sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The unique indexes whose violation callers tell apart (a name taken, a race lost);
/// any other is [`Constraint::Other`] with what the database said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// `tasks_unique_id_uq`: a task's unique_id, per team and mode.
    TaskUniqueId,
    /// `users_email_key_uq`: one account per email address.
    UserEmail,
    /// `projects_name_uq`: a project name, per team and mode.
    ProjectName,
    /// `batches_name_uq`: a batch name, per team and mode.
    BatchName,
    /// `invitations_one_pending_uq`: one pending invitation per team and address.
    InvitationPending,
    /// `api_keys_form_nonce_uq`: one key per submitted form.
    ApiKeyFormNonce,
    /// `admin_handovers_one_pending_uq`: one pending Admin hand-over per team.
    HandoverPending,
    /// Another unique index: its name (PostgreSQL) or the database's message (SQLite).
    Other(String),
}

impl Constraint {
    /// The named constraints: index name (PostgreSQL reports it) and the columns SQLite's
    /// message lists instead ("UNIQUE constraint failed: {columns}").
    const NAMED: [(Constraint, &'static str, &'static str); 7] = [
        (
            Constraint::TaskUniqueId,
            "tasks_unique_id_uq",
            "tasks.team_id, tasks.mode, tasks.unique_id",
        ),
        (
            Constraint::UserEmail,
            "users_email_key_uq",
            "users.email_key",
        ),
        (
            Constraint::ProjectName,
            "projects_name_uq",
            "projects.team_id, projects.mode, projects.name",
        ),
        (
            Constraint::BatchName,
            "batches_name_uq",
            "batches.team_id, batches.mode, batches.name",
        ),
        (
            Constraint::InvitationPending,
            "invitations_one_pending_uq",
            "invitations.team_id, invitations.email_key",
        ),
        (
            Constraint::ApiKeyFormNonce,
            "api_keys_form_nonce_uq",
            "api_keys.team_id, api_keys.form_nonce",
        ),
        (
            Constraint::HandoverPending,
            "admin_handovers_one_pending_uq",
            "admin_handovers.team_id",
        ),
    ];

    /// The constraint a unique violation names: `name` as PostgreSQL reports it, else
    /// SQLite's `message`. The one place database wording is mapped to Rust.
    pub(crate) fn classify(name: Option<&str>, message: &str) -> Constraint {
        let columns = message.strip_prefix("UNIQUE constraint failed: ");
        Self::NAMED
            .iter()
            .find(|(_, index, cols)| name == Some(*index) || columns == Some(*cols))
            .map_or_else(
                || Constraint::Other(name.unwrap_or(message).to_owned()),
                |(c, _, _)| c.clone(),
            )
    }

    /// The index name (or, for another one, what the database said).
    pub fn name(&self) -> &str {
        match self {
            Constraint::Other(what) => what,
            named => Self::NAMED
                .iter()
                .find(|(c, _, _)| c == named)
                .map_or("", |(_, index, _)| index),
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            let message = db.message();
            if db.is_unique_violation() || message.contains("UNIQUE constraint failed") {
                return StoreError::Unique(Constraint::classify(db.constraint(), message));
            }
            // PostgreSQL names the constraint; SQLite says what failed in the message.
            let what = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| message.to_owned());
            let is_constraint = db.is_foreign_key_violation()
                || db.is_check_violation()
                || message.contains("FOREIGN KEY constraint failed")
                || message.contains("CHECK constraint failed");
            if is_constraint {
                return StoreError::Conflict(what);
            }
        }
        if matches!(err, sqlx::Error::RowNotFound) {
            return StoreError::NotFound;
        }
        StoreError::Database(err)
    }
}

impl StoreError {
    /// True when the write broke the unique index `constraint`.
    pub fn is_unique(&self, constraint: &Constraint) -> bool {
        matches!(self, StoreError::Unique(c) if c == constraint)
    }
}

#[cfg(test)]
mod tests {
    use super::Constraint;

    #[test]
    fn classifies_postgres_constraint_names_and_sqlite_messages() {
        for (constraint, index, columns) in Constraint::NAMED {
            let message = format!("UNIQUE constraint failed: {columns}");
            assert_eq!(
                Constraint::classify(Some(index), "duplicate key value"),
                constraint
            );
            assert_eq!(Constraint::classify(None, &message), constraint);
            assert_eq!(constraint.name(), index);
        }
    }

    #[test]
    fn other_constraints_keep_what_the_database_said() {
        assert_eq!(
            Constraint::classify(Some("usage_records_task_uq"), "duplicate key value"),
            Constraint::Other("usage_records_task_uq".into())
        );
        let message = "UNIQUE constraint failed: usage_records.task_id";
        assert_eq!(
            Constraint::classify(None, message),
            Constraint::Other(message.into())
        );
    }
}
