//! What a database error means, decided in one place for both backends
//! (PostgreSQL's SQLSTATEs and SQLite's numeric codes don't overlap): the
//! store retries on it, and the error table answers the client from it.

use crate::error::Error;

/// A database failure, by what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The transaction lost a serialization race or a deadlock, or was in
    /// a write group another member's failure rolled back (25P02): running
    /// it again may succeed; when the retries run out, `ABORTED`.
    Race,
    /// It waited for a lock past its timeout (PostgreSQL 55P03; SQLite busy
    /// or locked past the busy wait): worth running again; when the retries
    /// run out, the database is too busy, `UNAVAILABLE`.
    Busy,
    /// The database can't be reached, is starting or stopping, or has no
    /// connection to spare: `UNAVAILABLE`.
    Unreachable,
    /// A statement ran past `statement_timeout`: `DEADLINE_EXCEEDED`.
    TimedOut,
    /// A bug or a broken schema: `INTERNAL`.
    Other,
}

impl Failure {
    /// Is the transaction worth running again?
    pub fn is_conflict(self) -> bool {
        matches!(self, Failure::Race | Failure::Busy)
    }
}

pub fn classify(err: &sqlx::Error) -> Failure {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => Failure::Unreachable,
        sqlx::Error::Database(db) => match db.code().unwrap_or_default().as_ref() {
            "40001" | "40P01" | "25P02" => Failure::Race,
            "55P03" | "5" | "6" | "517" => Failure::Busy,
            "57014" => Failure::TimedOut,
            "57P01" | "57P02" | "57P03" | "53300" => Failure::Unreachable,
            c if c.starts_with("08") => Failure::Unreachable,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// A database failure, sorted by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The transaction lost a serialization race or a deadlock, waited
    /// for a lock past its timeout (SQLite: the write lock, past the busy
    /// timeout; PostgreSQL: a row lock, inside a write group), or was in a
    /// write group that another member's failure rolled back (PostgreSQL
    /// then refuses the statements after it, SQLSTATE 25P02): running the
    /// whole transaction again may succeed.
    #[error("transaction conflict: {0}")]
    Conflict(sqlx::Error),
    /// Beginning a transaction failed, so nothing was sent: always safe to
    /// try again (a pooled connection the server dropped shows up here, and
    /// the pool then opens a fresh one).
    #[error("could not begin a transaction: {0}")]
    Begin(sqlx::Error),
    #[error(transparent)]
    Db(sqlx::Error),
}

impl StoreError {
    pub(crate) fn begin(e: sqlx::Error) -> Self {
        StoreError::Begin(e)
    }

    /// A create's references, read ahead, were not what its transaction
    /// saw: it runs again.
    pub(crate) fn references_changed() -> Self {
        StoreError::Conflict(sqlx::Error::Protocol(
            "the references changed after they were read".into(),
        ))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if classify(&e).is_conflict() {
            StoreError::Conflict(e)
        } else {
            StoreError::Db(e)
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(e) | StoreError::Begin(e) | StoreError::Db(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::borrow::Cow;

    /// A database error with just a code, as either backend reports one.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "coded"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn code_of(sqlstate: &'static str) -> tonic::Code {
        let err = sqlx::Error::Database(Box::new(Coded(sqlstate)));
        tonic::Status::from(Error::from(err)).code()
    }

    #[test]
    fn each_failure_has_one_answer_on_both_backends() {
        use tonic::Code;
        // A lost race whose retries ran out is ABORTED, never a 500.
        assert_eq!(code_of("40001"), Code::Aborted);
        assert_eq!(code_of("40P01"), Code::Aborted);
        // Busy past the lock wait: PostgreSQL, SQLite.
        assert_eq!(code_of("55P03"), Code::Unavailable);
        assert_eq!(code_of("5"), Code::Unavailable);
        assert_eq!(code_of("57014"), Code::DeadlineExceeded);
        assert_eq!(code_of("08006"), Code::Unavailable);
        assert_eq!(code_of("23505"), Code::Internal);
        assert!(classify(&sqlx::Error::Database(Box::new(Coded("517")))).is_conflict());
        assert!(!classify(&sqlx::Error::PoolTimedOut).is_conflict());
    }
}
