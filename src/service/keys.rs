//! Idempotency keys, for every create: a key claimed with one request
//! replays that request's result, is refused with another request, and
//! says so while its first request is still running.

use chrono::{DateTime, Utc};

use super::tx::TxError;
use crate::domain::UserId;
use crate::error::Error;
use crate::store::{KeyClaim, WriteTx};

/// How long an idempotency key keeps its first answer.
pub const KEY_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What the first request with a key created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Earlier {
    pub session_id: Option<i64>,
    pub prompt_id: Option<i64>,
    pub example_id: Option<i64>,
    pub response_id: Option<i64>,
}

/// Claims the key inside the create's transaction. `Some` when an earlier
/// request with the same key and fingerprint committed: its result is the
/// answer again. The caller commits the (empty) transaction before it
/// reads that result: under group commit the earlier request's rows may be
/// visible to this transaction while their group's commit is still to
/// come, and a replay must not answer with what is not yet durable.
pub async fn claim(
    tx: &mut dyn WriteTx,
    user: UserId,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Option<Earlier>, TxError> {
    match tx
        .claim_key(user, key, fingerprint, now, now - KEY_LIFETIME)
        .await?
    {
        KeyClaim::Claimed => Ok(None),
        KeyClaim::Held { request_hash, .. } if request_hash != fingerprint => {
            Err(Error::AlreadyExists(format!(
                "Idempotency-Key {key:?} was already used with a different request; use a new key for a new request"
            ))
            .into())
        }
        KeyClaim::Held {
            session_id: None,
            prompt_id: None,
            example_id: None,
            response_id: None,
            ..
        } => Err(Error::Aborted(
            "a request with this Idempotency-Key is still in progress; retry shortly".into(),
        )
        .into()),
        KeyClaim::Held {
            session_id,
            prompt_id,
            example_id,
            response_id,
            ..
        } => Ok(Some(Earlier {
            session_id,
            prompt_id,
            example_id,
            response_id,
        })),
    }
}

/// Deletes expired keys now and then, so the table holds only live ones.
pub fn spawn_expiry(store: std::sync::Arc<dyn crate::store::Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            let before = crate::domain::now_micros() - KEY_LIFETIME;
            match store.delete_expired_keys(before).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "expired idempotency keys deleted"),
                Err(e) => tracing::warn!(error = %e, "could not delete expired idempotency keys"),
            }
            // Usage counts outlive their day by a month, for reports; no
            // budget reads them.
            let month_ago = crate::domain::now_micros() - chrono::TimeDelta::days(31);
            let day = super::limits::usage_day(month_ago);
            if let Err(e) = store.delete_usage_before(&day).await {
                tracing::warn!(error = %e, "could not delete old usage counts");
            }
        }
    })
}
