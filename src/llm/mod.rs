//! The models that answer prompts: providers speaking the OpenAI-compatible
//! chat-completions API (configured by `PRACTICE_MODELS_FILE`), or, with no
//! file, a built-in development model that answers offline.

mod chat_events;
mod dev;
pub mod fair;
pub mod models_file;
mod openai;
mod sse;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;
use serde_json::{Map, Value};

use crate::domain::conversation::ChatMessage;
use crate::domain::generation::{ParamRules, Prices};
use fair::FairSlots;

/// What a model's answer stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Text(String),
    /// The provider's token counts, when it reports them.
    Usage {
        prompt_tokens: i64,
        completion_tokens: i64,
    },
}

/// Why a model gave no (complete) answer, in words fit for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ModelError(pub String);

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, ModelError>> + Send>>;

/// One request to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Generation parameters (`temperature`, `max_tokens`, `stop`, ...),
    /// passed through.
    pub params: Map<String, Value>,
}

#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Sends the request; the stream yields the answer as it arrives.
    /// Dropping the stream closes the upstream request.
    async fn open(&self, request: &ChatRequest) -> Result<ChunkStream, ModelError>;

    /// The longest one answer may take.
    fn timeout(&self) -> Duration;

    /// The generation parameters sessions may set for this model.
    fn params(&self) -> ParamRules {
        ParamRules::default()
    }

    /// How many requests it takes at once; `None`: no limit.
    fn max_concurrency(&self) -> Option<usize> {
        None
    }

    /// Its prices, if the operator gave them.
    fn prices(&self) -> Option<Prices> {
        None
    }
}

/// Every model the service can call, by name.
#[derive(Clone)]
pub struct Models {
    /// `None`: no models file; the development model answers for every name.
    configured: Option<Arc<BTreeMap<String, Configured>>>,
    dev: Arc<dyn ChatModel>,
    /// The development model's slots (one pool for every name), if limited.
    dev_slots: Option<Arc<FairSlots>>,
}

struct Configured {
    model: Arc<dyn ChatModel>,
    /// Its `max_concurrency` slots, shared fairly across users.
    slots: Option<Arc<FairSlots>>,
}

impl Models {
    /// The development model for every name; `max_concurrency` answers at
    /// once across all names, or no limit.
    pub fn development(word_delay: Duration, max_concurrency: Option<usize>) -> Self {
        Self {
            configured: None,
            dev: Arc::new(dev::DevModel::new(word_delay)),
            dev_slots: max_concurrency.map(FairSlots::new),
        }
    }

    /// The models of a models file's text (see `models_file`).
    pub fn from_file_text(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let configs = models_file::parse(text, env)?;
        // One client a protocol choice: each pools its connections.
        let (client, http2_client) = (openai::client(false)?, openai::client(true)?);
        let models = configs
            .into_iter()
            .map(|(name, config)| {
                let client = match config.http2_prior_knowledge {
                    true => http2_client.clone(),
                    false => client.clone(),
                };
                let model: Arc<dyn ChatModel> = Arc::new(openai::OpenAiModel::new(client, config));
                let slots = model.max_concurrency().map(FairSlots::new);
                (name, Configured { model, slots })
            })
            .collect();
        Ok(Self {
            configured: Some(Arc::new(models)),
            dev: Arc::new(dev::DevModel::new(Duration::ZERO)),
            dev_slots: None,
        })
    }

    /// Is every name answered by the development model?
    pub fn is_development(&self) -> bool {
        self.configured.is_none()
    }

    /// The parameter rules of a model by name: a name no model answers
    /// (it can't be sent anything) gets the defaults.
    pub fn params(&self, name: &str) -> ParamRules {
        self.get(name).map(|m| m.params()).unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn ChatModel>, ModelError> {
        match &self.configured {
            None => Ok(self.dev.clone()),
            Some(models) => models.get(name).map(|c| c.model.clone()).ok_or_else(|| {
                ModelError(format!("model {name:?} is not configured on this server"))
            }),
        }
    }

    /// The model's prices, if it has them.
    pub fn prices(&self, name: &str) -> Option<Prices> {
        self.get(name).ok()?.prices()
    }

    /// The model's concurrency slots, if it has a limit.
    pub fn slots(&self, name: &str) -> Option<Arc<FairSlots>> {
        match &self.configured {
            None => self.dev_slots.clone(),
            Some(models) => models.get(name)?.slots.clone(),
        }
    }
}
