//! Which generation parameters reach a model's provider: an allow-list per
//! model (the models file's `params`, or `DEFAULT_PARAMS`), each known key
//! within its bounds. Everything else would spend the operator's key in
//! ways the operator didn't choose (`n`, `store`, `service_tier`, tools,
//! web search ...), so it is refused when settings are written, never
//! dropped quietly at send time.

use serde_json::{Map, Value, json};

/// A model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl Prices {
    /// What an answer cost, in millionths of a US dollar (rounded, and
    /// within i64 whatever the counts).
    pub fn cost_micros(&self, prompt_tokens: i64, completion_tokens: i64) -> i64 {
        let usd = prompt_tokens.max(0) as f64 * self.input_per_million / 1e6
            + completion_tokens.max(0) as f64 * self.output_per_million / 1e6;
        (usd * 1e6).round().clamp(0.0, i64::MAX as f64) as i64
    }
}

/// The keys every model allows unless its models file entry says otherwise.
pub const DEFAULT_PARAMS: [&str; 7] = [
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
];

/// The largest `max_tokens` when a model's entry sets no cap of its own.
pub const MAX_TOKENS_CAP: i64 = 1_000_000;

/// The largest integer a double holds exactly (2^53 - 1).
const MAX_EXACT: i64 = (1 << 53) - 1;

/// The most stop sequences, and the longest one, as OpenAI allows.
const MAX_STOPS: usize = 4;
const MAX_STOP_CHARS: usize = 200;

/// One model's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamRules {
    pub allowed: Vec<String>,
    /// The most `max_tokens` may ask for.
    pub max_tokens: i64,
}

impl Default for ParamRules {
    fn default() -> Self {
        Self {
            allowed: DEFAULT_PARAMS.iter().map(|k| k.to_string()).collect(),
            max_tokens: MAX_TOKENS_CAP,
        }
    }
}

/// The bounds of a key the service knows; `None` for a key it doesn't
/// (one an operator allowed by name: any value passes).
fn bounds(key: &str, max_tokens: i64) -> Option<Json> {
    Some(match key {
        "temperature" => json!({"type": "number", "minimum": 0, "maximum": 2}),
        "top_p" => json!({"type": "number", "minimum": 0, "maximum": 1}),
        "presence_penalty" | "frequency_penalty" => {
            json!({"type": "number", "minimum": -2, "maximum": 2})
        }
        "max_tokens" => json!({"type": "integer", "minimum": 1, "maximum": max_tokens}),
        // Free-form numbers arrive as doubles: integers are exact to 2^53.
        "seed" => json!({"type": "integer", "minimum": -MAX_EXACT, "maximum": MAX_EXACT}),
        "stop" => json!({"oneOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_STOP_CHARS},
            {"type": "array", "maxItems": MAX_STOPS,
             "items": {"type": "string", "minLength": 1, "maxLength": MAX_STOP_CHARS}},
        ]}),
        _ => return None,
    })
}

type Json = Value;

/// The JSON Schema of `generation_params` under the default rules, for
/// `/openapi.json` (the bounds above are the only statement of them).
pub fn default_schema() -> Json {
    let rules = ParamRules::default();
    let properties: Map<String, Value> = rules
        .allowed
        .iter()
        .filter_map(|k| Some((k.clone(), bounds(k, rules.max_tokens)?)))
        .collect();
    json!({"type": ["object", "null"], "properties": properties, "additionalProperties": false})
}

/// Why a value breaks its key's bounds, if it does.
fn out_of_bounds(key: &str, value: &Value, max_tokens: i64) -> Option<String> {
    let schema = bounds(key, max_tokens)?;
    let ok = match schema.get("type").and_then(Value::as_str) {
        Some("number") => value.as_f64().is_some_and(|n| {
            n >= schema["minimum"].as_f64().unwrap_or(f64::MIN)
                && n <= schema["maximum"].as_f64().unwrap_or(f64::MAX)
        }),
        Some("integer") => as_integer(value).is_some_and(|n| {
            n >= schema["minimum"].as_i64().unwrap_or(i64::MIN)
                && n <= schema["maximum"].as_i64().unwrap_or(i64::MAX)
        }),
        _ => stop_ok(value),
    };
    (!ok).then(|| match key {
        "stop" => format!(
            "must be a string or a list of at most {MAX_STOPS} strings, each 1 to {MAX_STOP_CHARS} characters"
        ),
        _ => {
            let kind = if schema["type"] == "integer" {
                "a whole number"
            } else {
                "a number"
            };
            format!(
                "must be {kind} from {} to {}",
                schema["minimum"], schema["maximum"]
            )
        }
    })
}

/// A JSON number that is a whole number (`512` or `512.0`).
fn as_integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let f = value.as_f64()?;
        (f.fract() == 0.0 && f.abs() <= MAX_EXACT as f64).then_some(f as i64)
    })
}

fn stop_ok(value: &Value) -> bool {
    let one = |v: &Value| {
        v.as_str()
            .is_some_and(|s| (1..=MAX_STOP_CHARS).contains(&s.chars().count()))
    };
    match value {
        Value::Array(items) => items.len() <= MAX_STOPS && items.iter().all(one),
        v => one(v),
    }
}

/// Checks parameters against the rules of every model they will be sent to;
/// the first problem as `(key, why)`.
pub fn check<'a>(
    params: &Map<String, Value>,
    models: impl IntoIterator<Item = (&'a str, ParamRules)>,
) -> Result<(), (String, String)> {
    for (model, rules) in models {
        for (key, value) in params {
            if !rules.allowed.iter().any(|k| k == key) {
                return Err((
                    key.clone(),
                    format!(
                        "is not a parameter model {model:?} accepts here; allowed: {}",
                        rules.allowed.join(", ")
                    ),
                ));
            }
            if let Some(why) = out_of_bounds(key, value, rules.max_tokens) {
                return Err((key.clone(), why));
            }
        }
    }
    Ok(())
}

/// What is sent to one model: the parameters its rules allow. Settings
/// written before the rules existed may hold others; they stay stored but
/// are not sent.
pub fn allowed(params: &Map<String, Value>, rules: &ParamRules) -> Map<String, Value> {
    params
        .iter()
        .filter(|(k, v)| {
            rules.allowed.iter().any(|a| a == *k) && out_of_bounds(k, v, rules.max_tokens).is_none()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_defaults_pass_within_bounds_and_nothing_else_does() {
        let ok = params(
            json!({"temperature": 0.2, "max_tokens": 512, "stop": ["\n\n"], "seed": 7,
                               "top_p": 1, "presence_penalty": -2, "frequency_penalty": 2.0}),
        );
        assert_eq!(check(&ok, [("m", ParamRules::default())]), Ok(()));
        for (bad, key) in [
            (json!({"n": 128}), "n"),
            (json!({"store": true}), "store"),
            (json!({"service_tier": "priority"}), "service_tier"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"max_tokens": 1.5}), "max_tokens"),
            (json!({"seed": 9_223_372_036_854_775_806i64}), "seed"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"stop": ""}), "stop"),
        ] {
            let (k, why) = check(&params(bad.clone()), [("m", ParamRules::default())])
                .expect_err(&bad.to_string());
            assert_eq!(k, key, "{bad}: {why}");
        }
    }

    #[test]
    fn each_model_has_its_own_list_and_cap() {
        let narrow = ParamRules {
            allowed: vec!["max_tokens".into(), "reasoning_effort".into()],
            max_tokens: 100,
        };
        let p = params(json!({"max_tokens": 101}));
        assert!(check(&p, [("wide", ParamRules::default())]).is_ok());
        let (_, why) = check(&p, [("narrow", narrow.clone())]).unwrap_err();
        assert!(why.contains("100"), "{why}");
        assert!(
            check(
                &params(json!({"reasoning_effort": "low"})),
                [("narrow", narrow.clone())]
            )
            .is_ok()
        );
        let sent = allowed(
            &params(json!({"max_tokens": 50, "temperature": 1, "n": 2})),
            &narrow,
        );
        assert_eq!(Value::Object(sent), json!({"max_tokens": 50}));
    }
}
