//! The conversation use case: a prompt is written with one response in
//! progress per model asked, every model is called at once, and each
//! model's events flow to the caller while its outcome is stored.
//!
//! The model calls run in tasks of their own (`model_call`), so a caller
//! that goes away doesn't lose what arrived: its tasks see the event
//! channel close, stop their upstream requests and store the text as
//! `cancelled`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::answers::Answers;
use super::checkpoints::{Checkpoints, SAVE_EVERY};
use super::keys;
use super::limits::{
    Limiter, PromptPermit, check_budget, check_cost, class_subject, total_cost, total_tokens,
    until_next_day, usage_day, user_subject,
};
use super::model_call::{HistoryAsked, ModelCall, histories};
use super::model_open::{Prepared, model_request, open_early};
use super::tx::{self, TxError};
use crate::domain::conversation::{NewPrompt, ResponseStatus};
use crate::domain::session::{Response, Settings};
use crate::domain::{IdempotencyKey, Session, UserId, now_micros};
use crate::error::Error;
use crate::llm::Models;
use crate::store::{ModelUsage, PromptRows, Responses, Store};

/// The longest answer stored per model, in bytes of UTF-8: with every model
/// a class may have, a prompt's answers still fit in one response message.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Events buffered per prompt before the slowest reader holds models back:
/// with the answer's size cap, what one stream can hold in memory.
pub(super) const EVENT_BUFFER: usize = 256;

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
    pub(super) store: Arc<dyn Store>,
    pub(super) models: Models,
    /// How many characters of few-shot examples and earlier turns a model
    /// is shown at most.
    pub(super) history_chars: usize,
    pub(super) answers: Arc<Answers>,
    pub(super) limiter: Arc<Limiter>,
    pub(super) checkpoints: Arc<Checkpoints>,
    /// Answers storing their end take turns (`model_call::ENDING_AT_ONCE`).
    ending: Arc<tokio::sync::Semaphore>,
}

/// What the prompt's transaction produced.
enum Written {
    /// The prompt's id and its responses' ids, in the models' order.
    New(i64, Vec<i64>),
    /// The prompt an earlier request with the same key wrote.
    Replay(i64),
}

impl ConversationService {
    pub fn new(
        store: Arc<dyn Store>,
        models: Models,
        history_chars: usize,
        answers: Arc<Answers>,
        limiter: Arc<Limiter>,
    ) -> Self {
        Self {
            checkpoints: Checkpoints::start(store.clone(), SAVE_EVERY),
            ending: Arc::new(tokio::sync::Semaphore::new(
                super::model_call::ENDING_AT_ONCE,
            )),
            store,
            models,
            history_chars,
            answers,
            limiter,
        }
    }

    /// Refuses new answers while the server shuts down; `what` is the
    /// request to send again.
    pub(super) fn ensure_open(&self, what: &str) -> Result<(), Error> {
        if self.answers.is_open() {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "the server is shutting down; send the {what} again"
            )))
        }
    }

    /// The user's usage of today, where a user budget is set: read beside
    /// the session, since it needs nothing of it.
    pub(super) async fn user_usage(&self, user: UserId) -> Result<Option<Vec<ModelUsage>>, Error> {
        let limits = self.limiter.limits();
        if limits.user_tokens_per_day <= 0 && limits.user_cost_per_day_micros <= 0 {
            return Ok(None);
        }
        let day = usage_day(now_micros());
        Ok(Some(
            self.store.usage(&user_subject(user.get()), &day).await?,
        ))
    }

    /// The user's slot for `models` answers, once the day's budgets allow
    /// them (`user_usage` as read by `Self::user_usage`): limits come
    /// before anything is written, so a refused prompt writes nothing.
    pub(super) async fn admit(
        &self,
        user: UserId,
        class_id: Option<i64>,
        models: usize,
        user_usage: Option<Vec<ModelUsage>>,
    ) -> Result<PromptPermit, Error> {
        let permit = self.limiter.admit(user.get(), models)?;
        if let Err(e) = self.check_budgets(user, class_id, user_usage).await {
            permit.refund();
            return Err(e);
        }
        Ok(permit)
    }

    /// Refuses a prompt of `user` in a session of `class_id` whose daily
    /// budget is spent (counted in the database: across replicas).
    async fn check_budgets(
        &self,
        user: UserId,
        class_id: Option<i64>,
        user_usage: Option<Vec<ModelUsage>>,
    ) -> Result<(), Error> {
        let limits = self.limiter.limits();
        let now = now_micros();
        let day = usage_day(now);
        let wait = until_next_day(now);
        if let Some(usage) = user_usage {
            let subject = user_subject(user.get());
            check_budget(
                &subject,
                total_tokens(&usage),
                limits.user_tokens_per_day,
                wait,
            )?;
            check_cost(
                &subject,
                total_cost(&usage),
                limits.user_cost_per_day_micros,
                wait,
            )?;
        }
        if let Some(class_id) = class_id.filter(|_| limits.class_tokens_per_day > 0) {
            let subject = class_subject(class_id);
            let used = total_tokens(&self.store.usage(&subject, &day).await?);
            check_budget(&subject, used, limits.class_tokens_per_day, wait)?;
        }
        Ok(())
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
        self.ensure_open("prompt")?;
        let span = tracing::info_span!(
            "db.query",
            db.system = self.store.backend(),
            db.operation = "get_session"
        );
        let session = self
            .store
            .session(user, prompt.session_id, Responses::Skip)
            .instrument(span);
        let (session, usage) = tokio::join!(session, self.user_usage(user));
        let session = session?
            .ok_or_else(|| Error::NotFound(format!("session {} not found", prompt.session_id)))?;
        let models = asked_models(&session, &prompt.session_model_ids)?;
        let permit = self
            .admit(user, session.class_id, models.len(), usage?)
            .await?;

        let key = idempotency_key.as_ref().map(IdempotencyKey::as_str);
        let now = now_micros();
        let span = tracing::info_span!(
            "db.transaction",
            db.system = self.store.backend(),
            db.operation = "send_prompt"
        );
        let write = tx::run(|attempt| self.write_once(user, &prompt, &models, key, now, attempt))
            .instrument(span);
        // While the prompt's write commits (and, when every commit is
        // synced, syncs), each model's history is read (the new prompt is
        // not part of it) and, without an idempotency key, the model is
        // called: the write then costs the time to first token nothing. Its
        // answer reaches the client only once the prompt is stored; if the
        // write fails, dropping the opening cancels the request. A keyed
        // prompt may be a replay, which never calls a model: its models
        // are called after the write.
        let ids: Vec<i64> = models.iter().map(|(id, _)| *id).collect();
        let asked = HistoryAsked {
            session_model_ids: &ids,
            session_id: session.session_id,
            before_prompt_id: i64::MAX,
        };
        let settings = &session.settings;
        let prepare = async {
            let read = histories(&*self.store, settings, self.history_chars, asked).await;
            let prepared = models
                .iter()
                .zip(read)
                .map(|((_, name), history)| match history {
                    Ok(turns) if key.is_none() => {
                        let text = &prompt.prompt_text;
                        let request = model_request(settings, self.history_chars, &turns, text);
                        let models = self.models.clone();
                        open_early(models, user.get(), name.clone(), request, deadline)
                    }
                    history => Prepared::History(history),
                });
            prepared.collect::<Vec<_>>()
        };
        let (written, prepared) = tokio::join!(write, prepare);
        let written = written?;

        let (events, receiver) = mpsc::channel(EVENT_BUFFER);
        let (prompt_id, response_ids) = match written {
            Written::Replay(prompt_id) => {
                let responses = self.store.prompt_responses(user, prompt_id).await?;
                // The prompt's own answers, not later attempts at it.
                let first: Vec<Response> =
                    responses.into_iter().filter(|r| r.attempt == 1).collect();
                replay(first, events)?;
                return Ok(receiver);
            }
            Written::New(prompt_id, ids) => (prompt_id, ids),
        };
        let call = Call {
            user,
            class_id: session.class_id,
            settings: Arc::new(session.settings),
            permit: Arc::new(permit),
            events,
            deadline,
        };
        let answers = models.into_iter().zip(response_ids).zip(prepared);
        for (((session_model_id, model_name), response_id), prepared) in answers {
            self.start(
                &call,
                Some(prepared),
                Response {
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
                    prompt_id,
                    attempt: 1,
                    rating: None,
                    rating_comment: None,
                    choice: String::new(),
                    blind: call.settings.blind,
                    cost_micros: None,
                },
            );
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
                replica_id: self.answers.replica_id(),
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
        Ok(Written::New(ids.0, ids.1))
    }

    /// Starts one model answering, as a task of its own; `prepared`: its
    /// history read, or its stream opened, beside the prompt's write.
    pub(super) fn start(&self, call: &Call, prepared: Option<Prepared>, response: Response) {
        let registration = self.answers.register(response.session_id);
        let job = ModelCall {
            user: call.user.get(),
            class_id: call.class_id,
            permit: call.permit.clone(),
            store: self.store.clone(),
            checkpoints: self.checkpoints.clone(),
            ending: self.ending.clone(),
            models: self.models.clone(),
            events: call.events.clone(),
            response,
            settings: call.settings.clone(),
            history_chars: self.history_chars,
            prepared,
            deadline: call.deadline,
            registration,
        };
        tokio::spawn(job.run().in_current_span());
    }
}

/// What the model calls of one request share.
pub(super) struct Call {
    pub user: UserId,
    pub class_id: Option<i64>,
    pub settings: Arc<Settings>,
    /// The request counts as a prompt in flight until its last call ends.
    pub permit: Arc<PromptPermit>,
    pub events: mpsc::Sender<PromptEvent>,
    pub deadline: Instant,
}

/// Stored responses of an earlier request with the same key, as the events
/// that ended them; no model is called again. While one is still being
/// answered the request is refused (`ABORTED`): retry when it is done.
pub(super) fn replay(
    responses: Vec<Response>,
    events: mpsc::Sender<PromptEvent>,
) -> Result<(), Error> {
    if responses
        .iter()
        .any(|r| r.status == ResponseStatus::InProgress)
    {
        return Err(Error::Aborted(
            "the request with this Idempotency-Key is still being answered; retry when it is done"
                .into(),
        ));
    }
    let mut replayed = Vec::with_capacity(responses.len() * 2);
    for r in responses.into_iter().map(Response::shown) {
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
