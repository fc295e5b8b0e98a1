//! One model answering one prompt, as a job that can end at any point: the
//! model finishes or fails, the deadline passes (reading from the model or
//! sending to a client that doesn't read), the client goes away, the
//! session is deleted, or the replica stops. Whatever ends it, the row is
//! stored with the text that arrived, and the slot and upstream request are
//! released when the job's stream is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};

use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::answers::{Registration, Stop};
use super::checkpoints::{Checkpoints, SAVE_EVERY};
use super::conversation::{MAX_ANSWER_BYTES, PromptEvent};
use super::limits::{MAX_COUNTED_TOKENS, PromptPermit, class_subject, usage_day, user_subject};
use super::model_open::{self, Opened, Prepared, timed_out};
use super::tx::TxError;
use crate::domain::conversation::{self, ResponseStatus, Turn};
use crate::domain::session::{Response, Settings};
use crate::llm::{ChatModel, ChatRequest, Chunk, Models};
use crate::store::{Charge, ResponseOutcome, Store};

/// The most earlier turns a model is shown, whatever their size.
const MAX_HISTORY_TURNS: i64 = 200;

/// How long the last event may wait for a reader past the deadline.
const LAST_EVENT_WAIT: Duration = Duration::from_secs(1);

pub(super) struct ModelCall {
    /// The user whose prompt this is: slots are shared fairly by user.
    pub user: i64,
    /// The session's class, whose daily budget the answer also counts in.
    pub class_id: Option<i64>,
    /// The prompt counts as in flight until its last model call ends.
    pub permit: Arc<PromptPermit>,
    pub store: Arc<dyn Store>,
    /// Where the text so far is offered for saving.
    pub checkpoints: Arc<Checkpoints>,
    /// Answers storing how they ended, at most `ENDING_AT_ONCE` at a time.
    pub ending: Arc<Semaphore>,
    pub models: Models,
    pub events: mpsc::Sender<PromptEvent>,
    /// The response row, filled in as the answer arrives.
    pub response: Response,
    pub settings: Arc<Settings>,
    pub history_chars: usize,
    /// The history read, or the stream opened, while the prompt's write
    /// committed (see `ConversationService::send_prompt`); both happen at
    /// the start otherwise.
    pub prepared: Option<Prepared>,
    pub deadline: Instant,
    /// `None`: the replica stopped before the answer could start.
    pub registration: Option<Registration>,
}

/// How the answer ended.
enum End {
    Done,
    Failed(String),
    /// The client went away.
    Cancelled,
    Stopped(Stop),
}

impl ModelCall {
    pub async fn run(mut self) {
        let started = StdInstant::now();
        let mut usage = None;
        let mut sent = String::new();
        // Held until the outcome is stored: a stopping replica waits for it,
        // then fails whatever it still owns.
        let mut registration = self.registration.take();
        let end = match registration.as_mut() {
            None => End::Stopped(Stop::Interrupted),
            Some(registration) => {
                let end = self
                    .answer(started, &mut usage, &mut sent, registration)
                    .await;
                // Stopped from outside while the end was being reached.
                match end {
                    End::Cancelled | End::Failed(_) => {
                        match futures_util::FutureExt::now_or_never(registration.stopped()) {
                            Some(stop) => End::Stopped(stop),
                            None => end,
                        }
                    }
                    end => end,
                }
            }
        };
        let r = &mut self.response;
        r.latency_ms = Some(started.elapsed().as_millis() as i64);
        let (prompt_tokens, completion_tokens) = usage.unwrap_or_else(|| {
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
            End::Stopped(Stop::Deleted) => (ResponseStatus::Cancelled, Some(deleted())),
            End::Stopped(Stop::Interrupted) => (ResponseStatus::Failed, Some("interrupted".into())),
        };
        let counted = |n: i64| n.clamp(0, MAX_COUNTED_TOKENS);
        let subjects = [
            Some(user_subject(self.user)),
            self.class_id.map(class_subject),
        ];
        let cost = self
            .models
            .prices(&r.model_name)
            .map(|p| p.cost_micros(prompt_tokens, completion_tokens));
        r.cost_micros = cost;
        let charge = Charge {
            cost_micros: cost,
            subjects,
            day: usage_day(crate::domain::now_micros()),
            model_name: r.model_name.clone(),
            prompt_tokens: counted(prompt_tokens),
            completion_tokens: counted(completion_tokens),
        };
        let outcome = ResponseOutcome {
            charge,
            status: r.status,
            prompt_text: r.prompt_text.clone(),
            response_text: r.response_text.clone(),
            error: r.error.clone(),
            token_usage: r.token_usage.clone(),
            latency_ms: r.latency_ms.unwrap_or(0),
            first_byte_ms: r.first_byte_ms,
        };
        let ended = {
            // Closed never: the semaphore lives as long as the service.
            let _turn = self.ending.acquire().await;
            finish(&*self.store, r.response_id, &outcome).await
        };
        match ended {
            Ok(true) => {}
            // The row had already ended (swept as interrupted while this
            // replica couldn't renew its lease) or is gone (its session was
            // deleted, here or on another replica): report what is stored,
            // never "completed".
            Ok(false) => {
                (r.status, r.error) = match self.store.response_status(r.response_id).await {
                    Ok(Some((status, error))) => (
                        ResponseStatus::parse(&status).unwrap_or(ResponseStatus::Failed),
                        error,
                    ),
                    _ => (ResponseStatus::Cancelled, Some(deleted())),
                }
            }
            Err(e) => {
                tracing::error!(response_id = r.response_id, error = ?e, "could not store a response");
            }
        }
        drop(registration);
        drop(self.permit);
        let shown = self.response.shown();
        let event = if shown.status == ResponseStatus::Completed {
            PromptEvent::Finished(shown)
        } else {
            PromptEvent::Failed(shown)
        };
        // A reader that doesn't read gets the last event only if it makes
        // room soon; the row holds the outcome either way.
        let wait = self
            .deadline
            .saturating_duration_since(Instant::now())
            .max(LAST_EVENT_WAIT);
        let _ = tokio::time::timeout(wait, self.events.send(event)).await;
    }

    /// Streams the model's answer into the response and out as deltas,
    /// until it ends, fails, runs out of time, the caller goes away, or the
    /// answer is stopped from outside.
    async fn answer(
        &mut self,
        started: StdInstant,
        usage: &mut Option<(i64, i64)>,
        sent: &mut String,
        registration: &mut Registration,
    ) -> End {
        let started_event = PromptEvent::Started {
            session_model_id: self.response.session_model_id,
            response_id: self.response.response_id,
            model_name: self.response.clone().shown().model_name,
        };
        let model = match self.models.get(&self.response.model_name) {
            Ok(model) => model,
            Err(e) => return End::Failed(e.0),
        };
        let limit = model_open::limit(&*model, self.deadline);
        let events = self.events.clone();
        let model_name = self.response.model_name.clone();
        let work = async {
            deliver(&events, started_event, limit, &model_name).await?;
            let opened = match self.prepared.take() {
                Some(Prepared::Opening(opening)) => opening
                    .await
                    .unwrap_or_else(|_| Err(format!("model {model_name:?} could not be called"))),
                Some(Prepared::History(read)) => self.open_now(Some(read), &*model, limit).await,
                None => self.open_now(None, &*model, limit).await,
            };
            // The slot is held until the answer's stream is dropped.
            let Opened {
                sent: text,
                slot: _slot,
                mut stream,
            } = opened.map_err(End::Failed)?;
            sent.push_str(&text);
            let mut saved_at = StdInstant::now();
            let gone = Arc::new(AtomicBool::new(false));
            // Each delta waits for the model and for the reader with no
            // timer of its own: the answer's one deadline, below, ends it.
            loop {
                let chunk = match stream.next().await {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(End::Failed(e.0)),
                    Some(Ok(chunk)) => chunk,
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
                    return Err(End::Failed(format!(
                        "the answer was longer than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                r.first_byte_ms
                    .get_or_insert_with(|| started.elapsed().as_millis() as i64);
                r.response_text.push_str(&text);
                if saved_at.elapsed() >= SAVE_EVERY {
                    saved_at = StdInstant::now();
                    let prompt_chars = r.prompt_text.chars().count() as i64;
                    let checkpoints = &self.checkpoints;
                    checkpoints.offer(r.response_id, prompt_chars, &r.response_text, &gone);
                }
                // Swept as interrupted, or deleted on another replica.
                if gone.load(Ordering::Relaxed) {
                    return Err(End::Stopped(Stop::Deleted));
                }
                let delta = PromptEvent::Delta {
                    session_model_id: r.session_model_id,
                    text,
                };
                if events.send(delta).await.is_err() {
                    return Err(End::Cancelled);
                }
            }
        };
        // Biased: at the deadline's instant, the work's own timeouts (a
        // busy model's slot) say why first.
        tokio::select! {
            biased;
            _ = events.closed() => End::Cancelled,
            stop = registration.stopped() => End::Stopped(stop),
            done = work => match done {
                Ok(()) => End::Done,
                Err(end) => end,
            },
            _ = tokio::time::sleep_until(limit) => End::Failed(timed_out(&model_name)),
        }
    }

    /// Opens the model's stream now, with this model's `history` if it was
    /// read before, or read now.
    async fn open_now(
        &mut self,
        history: Option<Result<Vec<Turn>, String>>,
        model: &dyn ChatModel,
        limit: Instant,
    ) -> Result<Opened, String> {
        let request = self.request(history).await?;
        let name = &self.response.model_name;
        model_open::open(&self.models, model, self.user, name, &request, limit).await
    }

    /// What the model is sent (`model_open::model_request`), with this
    /// model's `history` if it was read before, or read now.
    async fn request(
        &mut self,
        history: Option<Result<Vec<Turn>, String>>,
    ) -> Result<ChatRequest, String> {
        let history = match history {
            Some(read) => read?,
            None => {
                let r = &self.response;
                let asked = HistoryAsked {
                    session_model_ids: &[r.session_model_id],
                    session_id: r.session_id,
                    before_prompt_id: r.prompt_id,
                };
                let read = histories(&*self.store, &self.settings, self.history_chars, asked);
                read.await.pop().unwrap_or(Ok(Vec::new()))?
            }
        };
        let r = &self.response;
        Ok(model_open::model_request(
            &self.settings,
            self.history_chars,
            &history,
            &r.prompt_text,
        ))
    }
}

/// Whose histories the models are sent.
pub(super) struct HistoryAsked<'a> {
    pub session_model_ids: &'a [i64],
    pub session_id: i64,
    /// Turns before this prompt (`i64::MAX`: every turn written so far).
    pub before_prompt_id: i64,
}

/// Each asked session model's newest turns that fit the context budget
/// left beside the few-shot examples: its own answers, or the chosen ones
/// when the session continues from those. One per model, in the order
/// asked.
pub(super) async fn histories(
    store: &dyn Store,
    settings: &Settings,
    history_chars: usize,
    asked: HistoryAsked<'_>,
) -> Vec<Result<Vec<Turn>, String>> {
    let n = asked.session_model_ids.len();
    let (_, left) = conversation::example_share(settings, history_chars);
    if left <= 0 {
        return vec![Ok(Vec::new()); n];
    }
    let read = store
        .model_histories(
            asked.session_model_ids,
            asked.before_prompt_id,
            left,
            MAX_HISTORY_TURNS,
            (settings.continue_from == "chosen").then_some(asked.session_id),
        )
        .await;
    match read {
        Ok(histories) => histories.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the models' histories");
            let why = "the conversation's history could not be read".to_string();
            vec![Err(why); n]
        }
    }
}

/// Sends an event within the deadline: a client that doesn't read holds
/// the model no longer than one that reads.
async fn deliver(
    events: &mpsc::Sender<PromptEvent>,
    event: PromptEvent,
    limit: Instant,
    model: &str,
) -> Result<(), End> {
    match tokio::time::timeout_at(limit, events.send(event)).await {
        Err(_) => Err(End::Failed(timed_out(model))),
        Ok(Err(_)) => Err(End::Cancelled),
        Ok(Ok(())) => Ok(()),
    }
}

/// How many answers of a replica store their end at once. When thousands
/// end together (their clients left), the rest wait their turn here,
/// holding little: a write transaction waiting for the writer holds the
/// future that would open the database connection, several KB, and past
/// the pool's acquire timeout fails and is retried outside the group,
/// leaving rows in progress that later read `interrupted`. Two groups'
/// worth keeps group commit full.
pub(super) const ENDING_AT_ONCE: usize = 128;

/// Stores how the answer ended, as a write transaction of its own: the
/// answers ending together share a group's commit.
async fn finish(store: &dyn Store, id: i64, outcome: &ResponseOutcome) -> Result<bool, TxError> {
    super::tx::run(|attempt| async move {
        let mut tx = store.begin_answer_write(attempt).await?;
        let done = tx.finish_response(id, outcome).await?;
        tx.commit().await?;
        Ok(done)
    })
    .await
}

fn deleted() -> String {
    "the session was deleted while it was being answered".into()
}
