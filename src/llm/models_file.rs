//! `PRACTICE_MODELS_FILE`: which provider serves each model name. Read once
//! at start-up; a file that doesn't parse or names a missing API key stops
//! the start with the line and the reason.
//!
//! ```toml
//! [models."llama-3.1-8b"]
//! base_url = "http://127.0.0.1:11434/v1"   # Ollama, vLLM, llama.cpp ...
//! upstream_model = "llama3.1:8b"
//!
//! [models."gpt-4o-mini"]
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"
//! timeout_secs = 60
//! max_concurrency = 8
//! headers = { "OpenAI-Organization" = "org-123" }
//! # The generation parameters sessions may set for this model (default:
//! # temperature, top_p, max_tokens, stop, presence_penalty,
//! # frequency_penalty, seed), and the most max_tokens may ask for.
//! params = ["temperature", "max_tokens", "reasoning_effort"]
//! max_tokens = 4096
//! # US dollars per million tokens: each answer's cost, and cost budgets.
//! input_price_per_million = 0.15
//! output_price_per_million = 0.60
//!
//! [models."local"]
//! # A gateway that speaks HTTP/2 without TLS: every answer is a stream of
//! # one connection instead of a connection each (few file descriptors for
//! # many answers; but a mass of cancelled answers can make the client close
//! # that connection, failing the answers on it). Models speak HTTP/1.1
//! # otherwise, an answer a connection.
//! base_url = "http://10.0.0.5:8000/v1"
//! http2_prior_knowledge = true
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::generation::{MAX_TOKENS_CAP, ParamRules, Prices};

/// One model as the file describes it, checked.
#[derive(Clone)]
pub struct ModelConfig {
    pub base_url: reqwest::Url,
    pub upstream_model: String,
    /// The key itself, read from the environment at start-up. Never
    /// logged: `Debug` below leaves it out.
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub params: ParamRules,
    pub prices: Option<Prices>,
    /// Speak HTTP/2 from the first byte (`http://` gateways that take it).
    pub http2_prior_knowledge: bool,
}

impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConfig")
            .field("base_url", &self.base_url.as_str())
            .field("upstream_model", &self.upstream_model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    models: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    base_url: String,
    /// Defaults to the model's own name.
    upstream_model: Option<String>,
    /// The name of the environment variable that holds the API key.
    api_key_env: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    #[serde(default = "default_concurrency")]
    max_concurrency: usize,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    params: Option<Vec<String>>,
    max_tokens: Option<i64>,
    /// US dollars per million prompt and completion tokens.
    input_price_per_million: Option<f64>,
    output_price_per_million: Option<f64>,
    #[serde(default)]
    http2_prior_knowledge: bool,
}

fn default_timeout() -> u64 {
    120
}

fn default_concurrency() -> usize {
    16
}

/// Parses the file's text; `env` looks up API keys. Errors name the file's
/// line where there is one.
pub fn parse(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ModelConfig>, String> {
    let file: File = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => format!(
            "line {}: {}",
            line_of(text, span.start),
            e.message().trim_end()
        ),
        None => e.message().trim_end().to_owned(),
    })?;
    let mut models = BTreeMap::new();
    for (name, entry) in file.models {
        let at = |why: String| format!("line {}: model {name:?}: {why}", find_line(text, &name));
        if name.trim().is_empty() {
            return Err(at("a model name must not be blank".into()));
        }
        let base_url = reqwest::Url::parse(&entry.base_url)
            .map_err(|e| at(format!("base_url {:?} is not a URL: {e}", entry.base_url)))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
            return Err(at(format!(
                "base_url {:?} must be an http:// or https:// URL with a host",
                entry.base_url
            )));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(at(
                "base_url must not carry credentials; use api_key_env".into()
            ));
        }
        let api_key = match &entry.api_key_env {
            Some(var) => Some(
                env(var)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| at(format!("api_key_env names {var}, which is not set")))?,
            ),
            None => None,
        };
        if entry.timeout_secs == 0 || entry.timeout_secs > 3600 {
            return Err(at("timeout_secs must be between 1 and 3600".into()));
        }
        if entry.max_concurrency == 0 || entry.max_concurrency > 10_000 {
            return Err(at("max_concurrency must be between 1 and 10000".into()));
        }
        let mut headers = Vec::new();
        for (k, v) in &entry.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| at(format!("header name {k:?} is not valid")))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| at(format!("the value of header {k:?} is not valid")))?;
            headers.push((name, value));
        }
        let mut params = ParamRules::default();
        if let Some(allowed) = entry.params {
            if let Some(reserved) = allowed
                .iter()
                .find(|k| super::openai::RESERVED.contains(&k.as_str()) || k.trim().is_empty())
            {
                return Err(at(format!(
                    "params lists {reserved:?}, which the service sets itself"
                )));
            }
            params.allowed = allowed;
        }
        if let Some(cap) = entry.max_tokens {
            if !(1..=MAX_TOKENS_CAP).contains(&cap) {
                return Err(at(format!(
                    "max_tokens must be between 1 and {MAX_TOKENS_CAP}"
                )));
            }
            params.max_tokens = cap;
        }
        let prices = match (
            entry.input_price_per_million,
            entry.output_price_per_million,
        ) {
            (None, None) => None,
            (Some(input), Some(output))
                if input.is_finite() && output.is_finite() && input >= 0.0 && output >= 0.0 =>
            {
                Some(Prices {
                    input_per_million: input,
                    output_per_million: output,
                })
            }
            _ => {
                return Err(at(
                    "set both input_price_per_million and output_price_per_million, each 0 or more"
                        .into(),
                ));
            }
        };
        models.insert(
            name.clone(),
            ModelConfig {
                base_url,
                upstream_model: entry.upstream_model.unwrap_or_else(|| name.clone()),
                api_key,
                timeout: Duration::from_secs(entry.timeout_secs),
                max_concurrency: entry.max_concurrency,
                headers,
                params,
                prices,
                http2_prior_knowledge: entry.http2_prior_knowledge,
            },
        );
    }
    Ok(models)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of a model's table, for errors found after parsing.
fn find_line(text: &str, name: &str) -> usize {
    text.find(&format!("\"{name}\""))
        .or_else(|| text.find(name))
        .map_or(1, |at| line_of(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "KEY").then(|| "secret".to_owned())
    }

    #[test]
    fn reads_a_file_with_defaults() {
        let text = r#"
[models."a"]
base_url = "http://127.0.0.1:8000/v1"

[models."b"]
base_url = "https://api.example.com/v1"
upstream_model = "b-large"
api_key_env = "KEY"
timeout_secs = 5
max_concurrency = 2
headers = { "X-Team" = "learn" }
params = ["max_tokens", "reasoning_effort"]
max_tokens = 256
http2_prior_knowledge = true
"#;
        let models = parse(text, env).unwrap();
        assert_eq!(models["a"].upstream_model, "a");
        assert!(!models["a"].http2_prior_knowledge && models["b"].http2_prior_knowledge);
        assert_eq!(models["a"].timeout, Duration::from_secs(120));
        assert_eq!(models["b"].api_key.as_deref(), Some("secret"));
        assert_eq!(models["b"].headers.len(), 1);
        assert_eq!(models["a"].params, ParamRules::default());
        assert_eq!(
            models["b"].params.allowed,
            ["max_tokens", "reasoning_effort"]
        );
        assert_eq!(models["b"].params.max_tokens, 256);
        assert!(!format!("{:?}", models["b"]).contains("secret"));
    }

    #[test]
    fn errors_name_the_line_and_the_reason() {
        for (text, line, why) in [
            ("[models.a]\nbase_url = 3\n", "line 2", "string"),
            ("[models.a]\nbase_url = \"x\"\n", "line 1", "not a URL"),
            ("[models.a]\nbase_url = \"ftp://h/\"\n", "line 1", "http"),
            (
                "\n[models.a]\nbase_url = \"http://h/\"\napi_key_env = \"NOPE\"\n",
                "line 2",
                "NOPE",
            ),
            (
                "[models.a]\nbase_url = \"http://h/\"\ncolour = 1\n",
                "line 3",
                "colour",
            ),
            (
                "[models.a]\nbase_url = \"http://h/\"\nmax_concurrency = 0\n",
                "line 1",
                "max_concurrency",
            ),
            (
                "[models.a]\nbase_url = \"http://h/\"\nparams = [\"stream\"]\n",
                "line 1",
                "stream",
            ),
        ] {
            let err = parse(text, env).unwrap_err();
            assert!(err.starts_with(line), "{text:?}: {err}");
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
