//! Running a use case inside one write transaction: what may go wrong there,
//! and when the whole transaction is worth running again.

use crate::error::Error;
use crate::store::StoreError;

/// How many times in all a transaction is run when it keeps losing
/// serialization races or deadlocks.
const MAX_ATTEMPTS: u32 = 5;

/// A failure inside a write transaction: the answer for the client, or a
/// database error that may be worth running the transaction again for.
#[derive(Debug)]
pub enum TxError {
    Domain(Error),
    Store(StoreError),
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Domain(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl From<TxError> for Error {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => e.into(),
        }
    }
}

/// Runs `once`, one run of a use case's write transaction given its attempt
/// number (from 1, for `Store::begin_write`), until it succeeds, fails for
/// good, or has run as often as `retry` allows.
pub async fn run<T, F>(mut once: impl FnMut(u32) -> F) -> Result<T, TxError>
where
    F: Future<Output = Result<T, TxError>>,
{
    let mut attempt = 1;
    loop {
        match once(attempt).await {
            Err(e) if retry(&e, &mut attempt) => continue,
            other => return other,
        }
    }
}

/// Should the transaction that failed with `e` on attempt `*attempt` run
/// again? Counts the attempt when it should. A conflict is retried a
/// bounded number of times; a failed BEGIN once, on a fresh connection.
fn retry(e: &TxError, attempt: &mut u32) -> bool {
    let again = match e {
        TxError::Store(StoreError::Conflict(_)) => *attempt < MAX_ATTEMPTS,
        TxError::Store(StoreError::Begin(_)) => *attempt < 2,
        _ => false,
    };
    if again {
        tracing::debug!(attempt = *attempt, error = ?e, "running the transaction again");
        *attempt += 1;
    }
    again
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_retry_a_bounded_number_of_times_and_domain_errors_never() {
        let conflict = TxError::Store(StoreError::Conflict(sqlx::Error::RowNotFound));
        let mut attempt = 1;
        while retry(&conflict, &mut attempt) {}
        assert_eq!(attempt, MAX_ATTEMPTS);

        let begin = TxError::Store(StoreError::Begin(sqlx::Error::PoolTimedOut));
        let mut attempt = 1;
        assert!(retry(&begin, &mut attempt));
        assert!(!retry(&begin, &mut attempt));

        let domain = TxError::Domain(Error::NotFound("x".into()));
        assert!(!retry(&domain, &mut 1));
    }

    #[tokio::test]
    async fn run_passes_each_attempt_its_number_until_one_succeeds() {
        let mut seen = Vec::new();
        let done = run(|attempt| {
            seen.push(attempt);
            async move {
                match attempt {
                    1 | 2 => Err(TxError::Store(StoreError::Conflict(
                        sqlx::Error::RowNotFound,
                    ))),
                    _ => Ok(attempt),
                }
            }
        })
        .await;
        assert_eq!(done.unwrap(), 3);
        assert_eq!(seen, [1, 2, 3]);
    }
}
