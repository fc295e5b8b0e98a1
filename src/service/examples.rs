//! The user's few-shot example library. A user sees and changes only their
//! own examples; another user's id reads as a missing one.

use std::sync::Arc;

use base64::Engine;

use super::keys;
use super::tx::{self, TxError};
use crate::domain::{Example, ExamplePatch, IdempotencyKey, NewExample, UserId, now_micros};
use crate::error::Error;
use crate::store::Store;

pub const DEFAULT_PAGE_SIZE: i32 = 50;
pub const MAX_PAGE_SIZE: i32 = 200;

#[derive(Clone)]
pub struct ExampleService {
    store: Arc<dyn Store>,
}

/// A page of examples and the token for the next one (empty on the last).
pub struct Page {
    pub examples: Vec<Example>,
    pub next_page_token: String,
}

fn not_found(id: i64) -> Error {
    Error::NotFound(format!("example {id} not found"))
}

/// Page tokens are opaque to clients: the last id seen, versioned and
/// base64url-encoded. Pages go by id, so examples added while a client pages
/// through land after its cursor and every earlier example shows up once.
fn encode_token(last_id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{last_id}"))
}

fn decode_token(token: &str) -> Result<i64, Error> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || {
        Error::invalid_field(
            "page_token",
            "is not a token this API issued; start again with an empty one",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix("v1:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}

impl ExampleService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates the example. With an idempotency key, the key is claimed in
    /// the same transaction: a replay answers the example the first request
    /// made, as it is now.
    pub async fn create(
        &self,
        user: UserId,
        example: NewExample,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Example, Error> {
        example.validate()?;
        let now = now_micros();
        let example_id = match &idempotency_key {
            None => self.store.create_example(user, &example, now).await?,
            Some(key) => {
                let created =
                    tx::run(|attempt| self.create_once(user, &example, key.as_str(), now, attempt))
                        .await?;
                match created {
                    Ok(id) => id,
                    Err(earlier) => return self.get(user, earlier).await,
                }
            }
        };
        Ok(Example {
            example_id,
            user_id: user.get(),
            input_text: example.input_text,
            output_text: example.output_text,
            is_active: example.is_active,
            created_at: now,
            updated_at: now,
            title: example.title,
            meta: example.meta,
        })
    }

    /// One run of a keyed create's transaction: `Ok(Ok(id))` for a new
    /// example, `Ok(Err(id))` for the one an earlier request made.
    async fn create_once(
        &self,
        user: UserId,
        example: &NewExample,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
        attempt: u32,
    ) -> Result<Result<i64, i64>, TxError> {
        let mut tx = self.store.begin_write(attempt).await?;
        if let Some(earlier) = keys::claim(&mut *tx, user, key, &example.fingerprint(), now).await?
        {
            let id = earlier.example_id.ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "an idempotency key's request made no example"
                ))
            })?;
            tx.commit().await?;
            return Ok(Err(id));
        }
        let id = tx.insert_example(user, example, now, Some(key)).await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    pub async fn get(&self, user: UserId, id: i64) -> Result<Example, Error> {
        self.store
            .example(user, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list(
        &self,
        user: UserId,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page, Error> {
        let size = super::paging::page_size(page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let after = decode_token(page_token)?;
        // One extra row tells whether another page follows.
        let mut examples = self.store.examples(user, after, size as i64 + 1).await?;
        let next_page_token = if examples.len() > size {
            examples.truncate(size);
            encode_token(examples.last().map_or(after, |e| e.example_id))
        } else {
            String::new()
        };
        Ok(Page {
            examples,
            next_page_token,
        })
    }

    pub async fn update(
        &self,
        user: UserId,
        id: i64,
        patch: ExamplePatch,
    ) -> Result<Example, Error> {
        patch.validate()?;
        self.store
            .update_example(user, id, &patch, now_micros())
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn delete(&self, user: UserId, id: i64) -> Result<(), Error> {
        if self.store.delete_example(user, id, now_micros()).await? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_forgeries() {
        assert_eq!(decode_token(&encode_token(42)).unwrap(), 42);
        assert_eq!(decode_token("").unwrap(), 0);
        for bad in ["x", "djE6LTE", "djI6NQ", "!!!"] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }
}
