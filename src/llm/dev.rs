//! The built-in development model: answers every prompt the same way for
//! the same input, word by word with a small delay, so the service can chat
//! offline. It reports no usage (the service estimates it, as for any
//! provider that reports none).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::{ChatModel, ChatRequest, Chunk, ChunkStream, ModelError};

/// The longest piece of the prompt the answer quotes.
const QUOTE_CHARS: usize = 200;

pub struct DevModel {
    word_delay: Duration,
}

impl DevModel {
    pub fn new(word_delay: Duration) -> Self {
        Self { word_delay }
    }
}

/// The answer to the last user message, given the number of earlier turns.
fn answer(request: &ChatRequest) -> String {
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    let quote: String = prompt.chars().take(QUOTE_CHARS).collect();
    let turns = request
        .messages
        .iter()
        .filter(|m| m.role == "assistant")
        .count();
    format!(
        "This is the development model ({turns} earlier turns). You said: \"{}\". \
         Set PRACTICE_MODELS_FILE to talk to a real model.",
        quote.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

#[async_trait]
impl ChatModel for DevModel {
    async fn open(&self, request: &ChatRequest) -> Result<ChunkStream, ModelError> {
        let text = answer(request);
        // Words with their following space, so the deltas join back exactly.
        let mut words: Vec<String> = Vec::new();
        for word in text.split_inclusive(' ') {
            words.push(word.to_owned());
        }
        let delay = self.word_delay;
        let stream = futures_util::stream::iter(words).then(move |word| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(Chunk::Text(word))
        });
        Ok(Box::pin(stream))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::conversation::ChatMessage;

    #[tokio::test]
    async fn answers_the_same_way_word_by_word() {
        let request = ChatRequest {
            messages: vec![ChatMessage {
                role: "user",
                content: "Hello   there".into(),
            }],
            params: Default::default(),
        };
        let model = DevModel::new(Duration::ZERO);
        let chunks: Vec<_> = model.open(&request).await.unwrap().collect().await;
        assert!(chunks.len() > 5);
        let text: String = chunks
            .into_iter()
            .map(|c| match c {
                Ok(Chunk::Text(t)) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(text, answer(&request));
        assert!(text.contains("\"Hello there\""));
    }
}
