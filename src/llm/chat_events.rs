//! Reading the events of a chat-completions stream: each event's data
//! (from `sse`) into text and usage chunks, the end (`[DONE]`) or the
//! provider's error. The usual shape is read without building a JSON tree;
//! any other takes the general reading, and a test holds the two equal.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::{Chunk, ModelError};

/// The chunks of some events, and whether the answer ended with them
/// ([DONE] or an error event). Texts next to each other become one chunk:
/// events read together are handed on as one delta.
pub(super) fn read_events(events: Vec<String>) -> (Vec<Result<Chunk, ModelError>>, bool) {
    let mut items: Vec<Result<Chunk, ModelError>> = Vec::new();
    for data in events {
        match chunks(&data) {
            Parsed::Chunks(c) => {
                for chunk in c {
                    match (items.last_mut(), chunk) {
                        (Some(Ok(Chunk::Text(before))), Chunk::Text(text)) => {
                            before.push_str(&text)
                        }
                        (_, chunk) => items.push(Ok(chunk)),
                    }
                }
            }
            Parsed::Done => return (items, true),
            Parsed::Error(e) => {
                items.push(Err(e));
                return (items, true);
            }
        }
    }
    (items, false)
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Chunks(Vec<Chunk>),
    Done,
    Error(ModelError),
}

/// A provider's text as it is streamed and stored: as sent, except that
/// U+0000, which PostgreSQL's text can't hold, becomes U+FFFD (the
/// replacement character) here, so the stream and the stored answer agree.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// A chat-completions event in the shape every well-behaved provider
/// sends, read without building a tree: the fields the answer needs, the
/// text borrowed when it has no escapes. Anything else in the event, or a
/// field of another shape, leaves it to the general reading (`chunks`).
#[derive(Deserialize)]
struct Usual<'a> {
    #[serde(default, borrow)]
    choices: Vec<UsualChoice<'a>>,
    usage: Option<UsualUsage>,
    /// Present and not null: the general reading reports it.
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct UsualChoice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<UsualDelta<'a>>,
}

#[derive(Deserialize)]
struct UsualDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UsualUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// One event read the fast way, or `None` for the general reading.
fn usual_chunks(data: &str) -> Option<Vec<Chunk>> {
    let event: Usual = serde_json::from_str(data).ok()?;
    if event.error.is_some() {
        return None;
    }
    let mut out = Vec::new();
    let first = event.choices.iter().find(|c| c.index == 0);
    if let Some(text) = first
        .and_then(|c| c.delta.as_ref())
        .and_then(|d| d.content.as_deref())
        .filter(|t| !t.is_empty())
    {
        out.push(Chunk::Text(storable(text)));
    }
    if let Some(usage) = event.usage {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        out.push(Chunk::Usage {
            prompt_tokens: count(usage.prompt_tokens),
            completion_tokens: count(usage.completion_tokens),
        });
    }
    Some(out)
}

/// One event of the chat-completions stream.
fn chunks(data: &str) -> Parsed {
    if data.trim() == "[DONE]" {
        return Parsed::Done;
    }
    match usual_chunks(data) {
        Some(chunks) => Parsed::Chunks(chunks),
        None => general_chunks(data),
    }
}

/// One event read as a JSON tree: any shape, errors included.
fn general_chunks(data: &str) -> Parsed {
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return Parsed::Error(ModelError(
            "the model's provider sent an unreadable event".into(),
        ));
    };
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        let short: String = message.chars().take(200).collect();
        let short = storable(&short);
        return Parsed::Error(ModelError(format!("the model's provider failed: {short}")));
    }
    let mut out = Vec::new();
    // Only the first choice is the answer: a provider that sends more
    // (an `n` it was not asked for) doesn't interleave them into it.
    let first = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| {
            choices
                .iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        });
    if let Some(text) = first
        .and_then(|c| c.pointer("/delta/content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        out.push(Chunk::Text(storable(text)));
    }
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        // Counts as sent, within i64: negative ones are 0, huge ones
        // saturate.
        let count = |k: &str| {
            usage.get(k).map_or(0, |v| match v.as_u64() {
                Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
                None => 0,
            })
        };
        out.push(Chunk::Usage {
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
        });
    }
    Parsed::Chunks(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_reading_agrees_with_the_general_one() {
        let events = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi \"there\"\u0000"}}]}"#,
            r#"{"choices":[{"delta":{"content":"no index"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"other"}},{"index":0,"delta":{"content":"mine"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9223372036854775808,"completion_tokens":-5}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1e3}}"#,
            r#"{"choices":[],"usage":7}"#,
            r#"{"choices":"x"}"#,
            r#"{"choices":null,"usage":null}"#,
            r#"{"error":{"message":"quota"}}"#,
            r#"{"error":null,"choices":[{"index":0,"delta":{"content":"ok"}}]}"#,
            r#"{"choices":[{"index":-1,"delta":{"content":"negative"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":5}}]}"#,
            "not json",
        ];
        for data in events {
            assert_eq!(chunks(data), general_chunks(data), "{data}");
        }
        // The usual events take the fast way.
        assert!(usual_chunks(events[0]).is_some() && usual_chunks(events[5]).is_some());
    }

    #[test]
    fn reads_deltas_usage_done_and_errors() {
        let Parsed::Chunks(c) = chunks(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#) else {
            panic!()
        };
        assert_eq!(c, [Chunk::Text("Hi".into())]);
        let Parsed::Chunks(c) = chunks(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            c,
            [Chunk::Usage {
                prompt_tokens: 3,
                completion_tokens: 4
            }]
        );
        assert!(matches!(chunks("[DONE]"), Parsed::Done));
        assert!(matches!(
            chunks(r#"{"error":{"message":"overloaded"}}"#),
            Parsed::Error(_)
        ));
        assert!(matches!(chunks("not json"), Parsed::Error(_)));
    }

    #[test]
    fn texts_read_together_are_one_chunk_in_order() {
        let delta = |t: &str| format!(r#"{{"choices":[{{"delta":{{"content":"{t}"}}}}]}}"#);
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let events = vec![
            delta("a"),
            delta("b"),
            usage.to_string(),
            delta("c"),
            delta("d"),
        ];
        let (items, finished) = read_events(events);
        assert!(!finished);
        let usage = Chunk::Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
        };
        let text = |t: &str| Ok(Chunk::Text(t.into()));
        assert_eq!(items, [text("ab"), Ok(usage), text("cd")]);
        let (items, finished) = read_events(vec![delta("e"), "[DONE]".into(), delta("f")]);
        assert!(finished);
        assert_eq!(items, [text("e")]);
    }

    #[test]
    fn only_the_first_choice_is_read_and_counts_are_sane() {
        let Parsed::Chunks(c) = chunks(
            r#"{"choices":[{"index":1,"delta":{"content":"other"}},{"index":0,"delta":{"content":"mine"}}]}"#,
        ) else {
            panic!()
        };
        assert_eq!(c, [Chunk::Text("mine".into())]);
        let Parsed::Chunks(c) = chunks(r#"{"choices":[{"index":1,"delta":{"content":"x"}}]}"#)
        else {
            panic!()
        };
        assert!(c.is_empty());
        let Parsed::Chunks(c) = chunks(
            r#"{"choices":[],"usage":{"prompt_tokens":9223372036854775808,"completion_tokens":-5}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            c,
            [Chunk::Usage {
                prompt_tokens: i64::MAX,
                completion_tokens: 0
            }]
        );
    }

    #[test]
    fn nul_from_the_provider_becomes_the_replacement_character() {
        let Parsed::Chunks(c) = chunks(r#"{"choices":[{"delta":{"content":"a\u0000b"}}]}"#) else {
            panic!()
        };
        assert_eq!(c, [Chunk::Text("a\u{FFFD}b".into())]);
        let Parsed::Error(ModelError(why)) = chunks(r#"{"error":{"message":"x\u0000"}}"#) else {
            panic!()
        };
        assert!(why.ends_with("x\u{FFFD}"), "{why}");
    }
}
