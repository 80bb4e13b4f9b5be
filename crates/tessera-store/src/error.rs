use thiserror::Error;

/// What can go wrong in the store. Constraint violations are told apart so callers can turn a
/// race lost to another request into a clear message instead of a 500.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique index or check rejected the write; the text names the constraint.
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

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            // PostgreSQL names the constraint; SQLite puts table.column in the message.
            let what = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            let message = db.message();
            let is_constraint = db.is_unique_violation()
                || db.is_foreign_key_violation()
                || db.is_check_violation()
                || message.contains("UNIQUE constraint failed")
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
    /// True when a constraint whose name or message mentions `needle` was violated.
    pub fn is_conflict_on(&self, needle: &str) -> bool {
        matches!(self, StoreError::Conflict(what) if what.contains(needle))
    }
}
