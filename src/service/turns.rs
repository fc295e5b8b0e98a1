//! Compare and continue: answer a turn again with one model (a new
//! attempt; the earlier ones stay), rate an answer, and choose a turn's
//! best answer (or a tie, or that none was good). Another user's session or
//! response reads as a missing one, and nothing is written for it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::conversation::{Call, ConversationService, EVENT_BUFFER, PromptEvent, replay};
use super::keys;
use super::tx::{self, TxError};
use crate::domain::conversation::{ResponseStatus, regenerate_fingerprint};
use crate::domain::session::Response;
use crate::domain::{IdempotencyKey, UserId, now_micros};
use crate::error::Error;
use crate::store::{Choice, Responses};

fn missing(response_id: i64) -> Error {
    Error::NotFound(format!("response {response_id} not found"))
}

/// What a regenerate's transaction produced.
enum Made {
    /// The new attempt's id and number.
    New(i64, i64),
    /// The attempt an earlier request with the same key made.
    Replay(i64),
}

impl ConversationService {
    /// Answers the turn of `response_id` again with its model; the new
    /// attempt's events, as SendPrompt streams them.
    pub async fn regenerate(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        idempotency_key: Option<IdempotencyKey>,
        deadline: Instant,
    ) -> Result<mpsc::Receiver<PromptEvent>, Error> {
        self.ensure_open("request")?;
        let session = self.store.session(user, session_id, Responses::Skip);
        let (session, usage) = tokio::join!(session, self.user_usage(user));
        let session =
            session?.ok_or_else(|| Error::NotFound(format!("session {session_id} not found")))?;
        let target = self
            .store
            .response(user, session_id, response_id)
            .await?
            .ok_or_else(|| missing(response_id))?;
        let permit = self.admit(user, session.class_id, 1, usage?).await?;
        let key = idempotency_key.as_ref().map(IdempotencyKey::as_str);
        let now = now_micros();
        let made = tx::run(|attempt| {
            self.regenerate_once(user, session_id, response_id, key, now, attempt)
        })
        .await?;
        let (events, receiver) = mpsc::channel(EVENT_BUFFER);
        let (new_id, attempt) = match made {
            Made::Replay(earlier) => {
                let done = self.store.response(user, session_id, earlier).await?;
                replay(done.into_iter().collect(), events)?;
                return Ok(receiver);
            }
            Made::New(id, attempt) => (id, attempt),
        };
        let call = Call {
            user,
            class_id: session.class_id,
            settings: Arc::new(session.settings),
            permit: Arc::new(permit),
            events,
            deadline,
        };
        self.start(
            &call,
            None,
            Response {
                response_id: new_id,
                attempt,
                response_text: String::new(),
                created_at: now,
                token_usage: Default::default(),
                latency_ms: None,
                status: ResponseStatus::InProgress,
                error: None,
                first_byte_ms: None,
                rating: None,
                rating_comment: None,
                choice: String::new(),
                blind: call.settings.blind,
                cost_micros: None,
                ..target
            },
        );
        Ok(receiver)
    }

    async fn regenerate_once(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        key: Option<&str>,
        now: DateTime<Utc>,
        attempt: u32,
    ) -> Result<Made, TxError> {
        let mut tx = self.store.begin_write(attempt).await?;
        let fingerprint = regenerate_fingerprint(session_id, response_id);
        if let Some(key) = key
            && let Some(earlier) = keys::claim(&mut *tx, user, key, &fingerprint, now).await?
        {
            let id = earlier.response_id.ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "an idempotency key's request made no attempt"
                ))
            })?;
            tx.commit().await?;
            return Ok(Made::Replay(id));
        }
        let (id, number) = tx
            .insert_attempt(
                user,
                session_id,
                response_id,
                now,
                self.answers.replica_id(),
                key,
            )
            .await?
            // Deleted since it was read.
            .ok_or_else(|| missing(response_id))?;
        tx.commit().await?;
        Ok(Made::New(id, number))
    }

    /// Rates one of the caller's answers ("up", "down"; "none" takes the
    /// rating back); the answer as stored.
    pub async fn rate(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        rating: &str,
        comment: Option<&str>,
    ) -> Result<Response, Error> {
        let rating = (rating != "none").then_some(rating);
        if !self
            .store
            .rate(user, session_id, response_id, rating, comment)
            .await?
        {
            return Err(missing(response_id));
        }
        self.store
            .response(user, session_id, response_id)
            .await?
            .map(Response::shown)
            .ok_or_else(|| missing(response_id))
    }

    /// Sets the choice of the turn of one of the caller's answers: that
    /// answer is the turn's best, or with `tie` / `none_good` the turn's
    /// other outcomes. The turn's answers as stored.
    pub async fn choose(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        tie: bool,
        none_good: bool,
    ) -> Result<Vec<Response>, Error> {
        // Both: a tie among answers none of which was good.
        let choice = match (tie, none_good) {
            (_, true) => Choice::NoneGood,
            (true, false) => Choice::Tie,
            (false, false) => Choice::Chosen,
        };
        let prompt_id = self
            .store
            .choose(user, session_id, response_id, choice)
            .await?
            .ok_or_else(|| missing(response_id))?;
        let turn = self.store.prompt_responses(user, prompt_id).await?;
        Ok(turn.into_iter().map(Response::shown).collect())
    }
}
