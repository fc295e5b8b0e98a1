//! Opening a model's answer stream: what the model is sent, its slot, and
//! the request. A prompt without an idempotency key opens its models while
//! its own write commits (see `ConversationService::send_prompt`), so the
//! write's commit and sync overlap the model's time to its first token;
//! its answers still reach the client only once the prompt is stored.

use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::domain::conversation::{self, Turn};
use crate::domain::session::Settings;
use crate::llm::fair::Slot;
use crate::llm::{ChatModel, ChatRequest, ChunkStream, Models};

/// A model's answer stream, opened.
pub(super) struct Opened {
    /// What the model was sent, to estimate its tokens when it reports none.
    pub sent: String,
    /// A busy model's slot, held as long as the stream.
    pub slot: Option<Slot>,
    pub stream: ChunkStream,
}

/// What a model call starts from, when the prompt prepared it.
pub(super) enum Prepared {
    /// The model's history, read while the prompt's write committed.
    History(Result<Vec<Turn>, String>),
    /// The model's stream, opening or opened while the prompt's write
    /// committed; dropped, it cancels the opening and closes the stream.
    Opening(AbortOnDropHandle<Result<Opened, String>>),
}

/// What the model is sent: the few-shot examples and the newest turns of
/// its history that fit the context budget, then the prompt.
pub(super) fn model_request(
    settings: &Settings,
    history_chars: usize,
    history: &[Turn],
    prompt_text: &str,
) -> ChatRequest {
    let (examples, _) = conversation::example_share(settings, history_chars);
    ChatRequest {
        messages: conversation::model_messages(settings, examples, history, prompt_text),
        params: conversation::generation_params(settings),
    }
}

/// When a model call must be over: the model's own timeout from now,
/// within the prompt's deadline.
pub(super) fn limit(model: &dyn ChatModel, deadline: Instant) -> Instant {
    deadline.min(Instant::now() + model.timeout())
}

/// Opens `model_name`'s stream for `request` by `limit`. A busy model's
/// slots go round-robin across users.
pub(super) async fn open(
    models: &Models,
    model: &dyn ChatModel,
    user: i64,
    model_name: &str,
    request: &ChatRequest,
    limit: Instant,
) -> Result<Opened, String> {
    let slot = match models.slots(model_name) {
        None => None,
        Some(slots) => match tokio::time::timeout_at(limit, slots.acquire(user)).await {
            Ok(slot) => Some(slot),
            Err(_) => return Err(busy(model_name)),
        },
    };
    let stream = match tokio::time::timeout_at(limit, model.open(request)).await {
        Err(_) => return Err(timed_out(model_name)),
        Ok(Err(e)) => return Err(e.0),
        Ok(Ok(stream)) => stream,
    };
    Ok(Opened {
        sent: request
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect(),
        slot,
        stream,
    })
}

/// Starts opening `model_name`'s stream as a task of its own, so the
/// prompt's write and the other models need not wait for it.
pub(super) fn open_early(
    models: Models,
    user: i64,
    model_name: String,
    request: ChatRequest,
    deadline: Instant,
) -> Prepared {
    use tracing::Instrument as _;
    let opening = async move {
        let model = models.get(&model_name).map_err(|e| e.0)?;
        let limit = limit(&*model, deadline);
        open(&models, &*model, user, &model_name, &request, limit).await
    };
    Prepared::Opening(AbortOnDropHandle::new(tokio::spawn(
        opening.in_current_span(),
    )))
}

pub(super) fn timed_out(model: &str) -> String {
    format!("model {model:?} did not finish in time")
}

pub(super) fn busy(model: &str) -> String {
    format!("model {model:?} was busy until the deadline; try again later")
}
