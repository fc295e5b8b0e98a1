//! The conversation of a session: a prompt as it is asked, what each session
//! model is shown for it, and the outcome stored for each model.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::session::Session;

/// A prompt. Its fields' rules are declared on `SendPromptRequest` in the
/// proto and checked before any use case runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrompt {
    pub session_id: i64,
    pub prompt_text: String,
    /// Empty: every session model.
    pub session_model_ids: Vec<i64>,
}

impl NewPrompt {
    /// A digest of the request, to tell a replay from a different request
    /// that reuses an idempotency key (never equal to a create's digest).
    pub fn fingerprint(&self) -> String {
        let canonical = json!([
            "prompt",
            self.session_id,
            self.prompt_text,
            self.session_model_ids
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where a stored response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl ResponseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::InProgress => "in_progress",
            ResponseStatus::Completed => "completed",
            ResponseStatus::Failed => "failed",
            ResponseStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "in_progress" => ResponseStatus::InProgress,
            "completed" => ResponseStatus::Completed,
            "failed" => ResponseStatus::Failed,
            "cancelled" => ResponseStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One message of the list a model is sent (OpenAI chat roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatMessage {
    fn new(role: &'static str, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// The system prompt of a session without an agent's, per style preset.
pub fn default_system_prompt(style_preset: &str) -> &'static str {
    match style_preset {
        "creative" => "You are a creative assistant. Offer original, vivid answers.",
        "balanced" => "You are a helpful assistant. Answer clearly, with some explanation.",
        _ => "You are a precise assistant. Answer accurately and concisely.",
    }
}

/// The `temperature` a style preset implies when the parameters give none.
pub fn preset_temperature(style_preset: &str) -> f64 {
    match style_preset {
        "creative" => 1.0,
        "balanced" => 0.7,
        _ => 0.2,
    }
}

/// What one session model is sent for a prompt: the system prompt (the
/// agent snapshot's, or the preset's), the few-shot examples as user and
/// assistant turns in link order, that model's earlier completed turns in
/// this session (the newest that fit in `history_chars`), then the prompt.
pub fn model_messages(
    session: &Session,
    session_model_id: i64,
    prompt: &str,
    history_chars: usize,
) -> Vec<ChatMessage> {
    let settings = &session.settings;
    let system = settings
        .agent_snapshot
        .get("system_prompt")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_system_prompt(&settings.style_preset));
    let mut messages = vec![ChatMessage::new("system", system)];
    for link in &settings.few_shot_links {
        messages.push(ChatMessage::new("user", &link.example.input_text));
        messages.push(ChatMessage::new("assistant", &link.example.output_text));
    }

    // Walk back from the newest turn while the budget lasts.
    let mut budget = history_chars;
    let mut turns = Vec::new();
    for r in
        session.responses.iter().rev().filter(|r| {
            r.session_model_id == session_model_id && r.status == ResponseStatus::Completed
        })
    {
        let size = r.prompt_text.chars().count() + r.response_text.chars().count();
        if size > budget {
            break;
        }
        budget -= size;
        turns.push(r);
    }
    for r in turns.into_iter().rev() {
        messages.push(ChatMessage::new("user", &r.prompt_text));
        messages.push(ChatMessage::new("assistant", &r.response_text));
    }
    messages.push(ChatMessage::new("user", prompt));
    messages
}

/// The generation parameters sent with the messages: the session's, with
/// the style preset's `temperature` when they carry none.
pub fn generation_params(session: &Session) -> Map<String, Value> {
    let settings = &session.settings;
    let mut params = settings.generation_params.clone();
    if !params.contains_key("temperature") {
        params.insert(
            "temperature".into(),
            json!(preset_temperature(&settings.style_preset)),
        );
    }
    params
}

/// Token usage as stored: `{prompt_tokens, completion_tokens, total_tokens}`.
pub fn token_usage(prompt_tokens: i64, completion_tokens: i64) -> Map<String, Value> {
    let mut usage = Map::new();
    usage.insert("prompt_tokens".into(), json!(prompt_tokens));
    usage.insert("completion_tokens".into(), json!(completion_tokens));
    usage.insert(
        "total_tokens".into(),
        json!(prompt_tokens + completion_tokens),
    );
    usage
}

/// A token count for a provider that reports none: about four characters a
/// token, as the common tokenizers average on English text.
pub fn estimate_tokens(text: &str) -> i64 {
    (text.chars().count() as i64 + 3) / 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_give_temperatures_and_system_prompts() {
        assert_eq!(preset_temperature("accurate"), 0.2);
        assert_eq!(preset_temperature("balanced"), 0.7);
        assert_eq!(preset_temperature("creative"), 1.0);
        assert_ne!(
            default_system_prompt("creative"),
            default_system_prompt("accurate")
        );
    }

    #[test]
    fn estimates_round_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(token_usage(2, 3)["total_tokens"], json!(5));
    }
}
