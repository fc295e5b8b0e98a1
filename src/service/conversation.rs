//! The conversation use case: a prompt is written with one response in
//! progress per model asked, every model is called at once, and each
//! model's events flow to the caller while its outcome is stored.
//!
//! The model calls run in tasks of their own, so a caller that goes away
//! doesn't lose what arrived: its tasks see the event channel close, stop
//! their upstream requests and store the text as `cancelled`.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::keys;
use super::tx::{self, TxError};
use crate::domain::conversation::{self, NewPrompt, ResponseStatus};
use crate::domain::session::Response;
use crate::domain::{IdempotencyKey, Session, UserId, now_micros};
use crate::error::Error;
use crate::llm::{ChatRequest, Chunk, Models};
use crate::store::{PromptRows, ResponseOutcome, Responses, Store};

/// The longest answer stored per model, in bytes of UTF-8: with every model
/// a class may have, a prompt's answers still fit in one response message.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Events buffered per prompt before the slowest reader holds models back.
const EVENT_BUFFER: usize = 256;

/// What happens while a prompt is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptEvent {
    Started {
        session_model_id: i64,
        response_id: i64,
        model_name: String,
    },
    Delta {
        session_model_id: i64,
        text: String,
    },
    /// The stored response of a model that answered.
    Finished(Response),
    /// The stored response of a model that failed, timed out or was
    /// cancelled.
    Failed(Response),
}

#[derive(Clone)]
pub struct ConversationService {
    store: Arc<dyn Store>,
    models: Models,
    /// How many characters of earlier turns a model is shown at most.
    history_chars: usize,
}

/// What the prompt's transaction produced.
enum Written {
    New(Vec<i64>),
    /// The prompt an earlier request with the same key wrote.
    Replay(i64),
}

impl ConversationService {
    pub fn new(store: Arc<dyn Store>, models: Models, history_chars: usize) -> Self {
        Self {
            store,
            models,
            history_chars,
        }
    }

    /// Writes the prompt and starts every model; the events arrive on the
    /// receiver, which closes when every model is done. `deadline` bounds
    /// all of it.
    pub async fn send_prompt(
        &self,
        user: UserId,
        prompt: NewPrompt,
        idempotency_key: Option<IdempotencyKey>,
        deadline: Instant,
    ) -> Result<mpsc::Receiver<PromptEvent>, Error> {
        let span = tracing::info_span!(
            "db.query",
            db.system = self.store.backend(),
            db.operation = "get_session"
        );
        let session = self
            .store
            .session(user, prompt.session_id, Responses::Read)
            .instrument(span)
            .await?
            .ok_or_else(|| Error::NotFound(format!("session {} not found", prompt.session_id)))?;
        let models = asked_models(&session, &prompt.session_model_ids)?;

        let key = idempotency_key.as_ref().map(IdempotencyKey::as_str);
        let now = now_micros();
        let span = tracing::info_span!(
            "db.transaction",
            db.system = self.store.backend(),
            db.operation = "send_prompt"
        );
        let written = tx::run(|attempt| self.write_once(user, &prompt, &models, key, now, attempt))
            .instrument(span)
            .await?;

        let (events, receiver) = mpsc::channel(EVENT_BUFFER);
        let response_ids = match written {
            Written::Replay(prompt_id) => {
                self.replay(user, prompt_id, events).await?;
                return Ok(receiver);
            }
            Written::New(ids) => ids,
        };
        for ((session_model_id, model_name), response_id) in models.into_iter().zip(response_ids) {
            let call = ModelCall {
                store: self.store.clone(),
                models: self.models.clone(),
                events: events.clone(),
                response: Response {
                    response_id,
                    session_model_id,
                    session_id: session.session_id,
                    model_name,
                    prompt_text: prompt.prompt_text.clone(),
                    response_text: String::new(),
                    created_at: now,
                    token_usage: Default::default(),
                    latency_ms: None,
                    status: ResponseStatus::InProgress,
                    error: None,
                    first_byte_ms: None,
                },
                request: ChatRequest {
                    messages: conversation::model_messages(
                        &session,
                        session_model_id,
                        &prompt.prompt_text,
                        self.history_chars,
                    ),
                    params: conversation::generation_params(&session),
                },
                deadline,
            };
            tokio::spawn(call.run().in_current_span());
        }
        Ok(receiver)
    }

    /// One run of the prompt's transaction: claim the key, write the prompt
    /// and its responses in progress.
    async fn write_once(
        &self,
        user: UserId,
        prompt: &NewPrompt,
        models: &[(i64, String)],
        key: Option<&str>,
        now: DateTime<Utc>,
        attempt: u32,
    ) -> Result<Written, TxError> {
        let mut tx = self.store.begin_write(attempt).await?;
        if let Some(key) = key
            && let Some(earlier) =
                keys::claim(&mut *tx, user, key, &prompt.fingerprint(), now).await?
        {
            let id = earlier.prompt_id.ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "an idempotency key's request made no prompt"
                ))
            })?;
            tx.commit().await?;
            return Ok(Written::Replay(id));
        }
        let ids = tx
            .insert_prompt(&PromptRows {
                user,
                session_id: prompt.session_id,
                prompt_text: &prompt.prompt_text,
                now,
                models,
                idempotency_key: key,
            })
            .await?
            // Deleted since it was read.
            .ok_or_else(|| Error::NotFound(format!("session {} not found", prompt.session_id)))?;
        tx.commit().await?;
        Ok(Written::New(ids))
    }

    /// The stored responses of an earlier request with the same key, as
    /// the events that ended it; no model is called again.
    async fn replay(
        &self,
        user: UserId,
        prompt_id: i64,
        events: mpsc::Sender<PromptEvent>,
    ) -> Result<(), Error> {
        let responses = self.store.prompt_responses(user, prompt_id).await?;
        if responses
            .iter()
            .any(|r| r.status == ResponseStatus::InProgress)
        {
            return Err(Error::Aborted(
                "the prompt with this Idempotency-Key is still being answered; retry when it is done"
                    .into(),
            ));
        }
        let mut replayed = Vec::with_capacity(responses.len() * 2);
        for r in responses {
            replayed.push(PromptEvent::Started {
                session_model_id: r.session_model_id,
                response_id: r.response_id,
                model_name: r.model_name.clone(),
            });
            replayed.push(if r.status == ResponseStatus::Completed {
                PromptEvent::Finished(r)
            } else {
                PromptEvent::Failed(r)
            });
        }
        tokio::spawn(async move {
            for event in replayed {
                if events.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(())
    }
}

/// The session models a prompt asks, as `(session_model_id, model_name)`
/// in the session's order: the listed ones, or every one.
fn asked_models(session: &Session, ids: &[i64]) -> Result<Vec<(i64, String)>, Error> {
    if let Some(missing) = ids
        .iter()
        .find(|id| !session.models.iter().any(|m| m.session_model_id == **id))
    {
        return Err(Error::NotFound(format!(
            "session model {missing} not found"
        )));
    }
    let models: Vec<(i64, String)> = session
        .models
        .iter()
        .filter(|m| ids.is_empty() || ids.contains(&m.session_model_id))
        .map(|m| (m.session_model_id, m.model_name.clone()))
        .collect();
    if models.is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "session {} has no models to answer",
            session.session_id
        )));
    }
    Ok(models)
}

/// One model answering one prompt.
struct ModelCall {
    store: Arc<dyn Store>,
    models: Models,
    events: mpsc::Sender<PromptEvent>,
    /// The response row, filled in as the answer arrives.
    response: Response,
    request: ChatRequest,
    deadline: Instant,
}

/// How the answer stream ended.
enum End {
    Done,
    Failed(String),
    Cancelled,
}

impl ModelCall {
    async fn run(mut self) {
        let started = StdInstant::now();
        let _ = self
            .events
            .send(PromptEvent::Started {
                session_model_id: self.response.session_model_id,
                response_id: self.response.response_id,
                model_name: self.response.model_name.clone(),
            })
            .await;
        let mut usage = None;
        let end = self.answer(started, &mut usage).await;
        let r = &mut self.response;
        r.latency_ms = Some(started.elapsed().as_millis() as i64);
        let (prompt_tokens, completion_tokens) = usage.unwrap_or_else(|| {
            let sent: String = self
                .request
                .messages
                .iter()
                .map(|m| m.content.as_str())
                .collect();
            (
                conversation::estimate_tokens(&sent),
                conversation::estimate_tokens(&r.response_text),
            )
        });
        r.token_usage = conversation::token_usage(prompt_tokens, completion_tokens);
        (r.status, r.error) = match end {
            End::Done => (ResponseStatus::Completed, None),
            End::Failed(why) => (ResponseStatus::Failed, Some(why)),
            End::Cancelled => (
                ResponseStatus::Cancelled,
                Some("the client went away before the answer was complete".into()),
            ),
        };
        let outcome = ResponseOutcome {
            status: r.status,
            response_text: r.response_text.clone(),
            error: r.error.clone(),
            token_usage: r.token_usage.clone(),
            latency_ms: r.latency_ms.unwrap_or(0),
            first_byte_ms: r.first_byte_ms,
        };
        if let Err(e) = self.store.finish_response(r.response_id, &outcome).await {
            tracing::error!(response_id = r.response_id, error = %e, "could not store a response");
        }
        let event = if r.status == ResponseStatus::Completed {
            PromptEvent::Finished(self.response)
        } else {
            PromptEvent::Failed(self.response)
        };
        let _ = self.events.send(event).await;
    }

    /// Streams the model's answer into the response and out as deltas,
    /// until it ends, fails, runs out of time or the caller goes away.
    async fn answer(&mut self, started: StdInstant, usage: &mut Option<(i64, i64)>) -> End {
        let model = match self.models.get(&self.response.model_name) {
            Ok(model) => model,
            Err(e) => return End::Failed(e.0),
        };
        let limit = self.deadline.min(Instant::now() + model.timeout());
        let events = self.events.clone();
        let opened = tokio::select! {
            _ = events.closed() => return End::Cancelled,
            opened = tokio::time::timeout_at(limit, model.open(&self.request)) => opened,
        };
        let mut stream = match opened {
            Err(_) => return End::Failed(timed_out(&self.response.model_name)),
            Ok(Err(e)) => return End::Failed(e.0),
            Ok(Ok(stream)) => stream,
        };
        loop {
            let next = tokio::select! {
                _ = events.closed() => return End::Cancelled,
                next = tokio::time::timeout_at(limit, stream.next()) => next,
            };
            let chunk = match next {
                Err(_) => return End::Failed(timed_out(&self.response.model_name)),
                Ok(None) => return End::Done,
                Ok(Some(Err(e))) => return End::Failed(e.0),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let text = match chunk {
                Chunk::Usage {
                    prompt_tokens,
                    completion_tokens,
                } => {
                    *usage = Some((prompt_tokens, completion_tokens));
                    continue;
                }
                Chunk::Text(text) => text,
            };
            let r = &mut self.response;
            if r.response_text.len() + text.len() > MAX_ANSWER_BYTES {
                return End::Failed(format!(
                    "the answer was longer than {MAX_ANSWER_BYTES} bytes"
                ));
            }
            r.first_byte_ms
                .get_or_insert_with(|| started.elapsed().as_millis() as i64);
            r.response_text.push_str(&text);
            let delta = PromptEvent::Delta {
                session_model_id: r.session_model_id,
                text,
            };
            if events.send(delta).await.is_err() {
                return End::Cancelled;
            }
        }
    }
}

fn timed_out(model: &str) -> String {
    format!("model {model:?} did not finish in time")
}
