//! The conversation of a session: a prompt as it is asked, what each session
//! model is shown for it, and the outcome stored for each model.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::session::Settings;

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
        digest(&json!([
            "prompt",
            self.session_id,
            self.prompt_text,
            self.session_model_ids
        ]))
    }
}

/// A RegenerateResponse's digest, for its idempotency key.
pub fn regenerate_fingerprint(session_id: i64, response_id: i64) -> String {
    digest(&json!(["regenerate", session_id, response_id]))
}

fn digest(canonical: &Value) -> String {
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

/// The model name a reader is shown for an answer: in a blind session,
/// none until the answer's turn is chosen (or called a tie, or none good).
pub fn shown_model(blind: bool, choice: &str, model_name: String) -> String {
    if blind && choice.is_empty() {
        String::new()
    } else {
        model_name
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

/// One earlier turn of a model: the prompt and the model's completed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub prompt_text: String,
    pub response_text: String,
}

/// How many characters a stored turn or example costs of a budget.
pub fn turn_chars(prompt: &str, answer: &str) -> i64 {
    (prompt.chars().count() + answer.chars().count()) as i64
}

/// How many of the newest items, whose sizes are given newest first, fit in
/// `budget` together; at least `least` of them whatever their size (a read
/// that must show something shows one item even when it alone is larger).
pub fn fitting(sizes: impl IntoIterator<Item = i64>, budget: i64, least: usize) -> usize {
    let mut left = budget;
    let mut n = 0;
    for size in sizes {
        if size.max(0) > left && n >= least {
            break;
        }
        left -= size.max(0);
        n += 1;
    }
    n
}

/// The context budget of one prompt, in characters: the few-shot examples
/// take it first, in link order (an example that doesn't fit is left out
/// with every one after it), and the model's history gets what is left.
/// The number of examples sent, and the characters left for history.
pub fn example_share(settings: &Settings, budget: usize) -> (usize, i64) {
    let budget = budget as i64;
    let sizes = settings
        .few_shot_links
        .iter()
        .map(|l| turn_chars(&l.example.input_text, &l.example.output_text));
    let n = fitting(sizes.clone(), budget, 0);
    let used: i64 = sizes.take(n).sum();
    (n, budget - used)
}

/// What one session model is sent for a prompt: the system prompt (the
/// agent snapshot's, or the preset's), the first `examples` few-shot
/// examples as user and assistant turns in link order, that model's earlier
/// turns (given newest first, already cut to the budget), then the prompt.
pub fn model_messages(
    settings: &Settings,
    examples: usize,
    history_newest_first: &[Turn],
    prompt: &str,
) -> Vec<ChatMessage> {
    let system = settings
        .agent_snapshot
        .get("system_prompt")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_system_prompt(&settings.style_preset));
    let mut messages = Vec::with_capacity(2 + 2 * (examples + history_newest_first.len()));
    messages.push(ChatMessage::new("system", system));
    for link in settings.few_shot_links.iter().take(examples) {
        messages.push(ChatMessage::new("user", &link.example.input_text));
        messages.push(ChatMessage::new("assistant", &link.example.output_text));
    }
    for turn in history_newest_first.iter().rev() {
        messages.push(ChatMessage::new("user", &turn.prompt_text));
        messages.push(ChatMessage::new("assistant", &turn.response_text));
    }
    messages.push(ChatMessage::new("user", prompt));
    messages
}

/// The generation parameters sent with the messages: the session's, with
/// the style preset's `temperature` when they carry none.
pub fn generation_params(settings: &Settings) -> Map<String, Value> {
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
/// Counts are never negative and the total saturates, whatever a provider
/// reported.
pub fn token_usage(prompt_tokens: i64, completion_tokens: i64) -> Map<String, Value> {
    let (p, c) = (prompt_tokens.max(0), completion_tokens.max(0));
    let mut usage = Map::new();
    usage.insert("prompt_tokens".into(), json!(p));
    usage.insert("completion_tokens".into(), json!(c));
    usage.insert("total_tokens".into(), json!(p.saturating_add(c)));
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
        let huge = token_usage(i64::MAX, i64::MAX);
        assert_eq!(huge["total_tokens"], json!(i64::MAX));
        assert_eq!(token_usage(-4, 3)["prompt_tokens"], json!(0));
    }

    #[test]
    fn fitting_takes_the_newest_that_fit_and_at_least_the_least() {
        assert_eq!(fitting([3, 3, 3], 7, 0), 2);
        assert_eq!(fitting([3, 3, 3], 9, 0), 3);
        assert_eq!(fitting([10, 1], 5, 0), 0);
        assert_eq!(fitting([10, 1], 5, 1), 1);
        assert_eq!(fitting(Vec::<i64>::new(), 5, 1), 0);
    }
}
