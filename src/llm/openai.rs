//! A model behind the OpenAI-compatible chat-completions API, streamed:
//! `POST {base_url}/chat/completions` with `stream: true` and
//! `stream_options.include_usage`, read as Server-Sent Events.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt as _, StreamExt};
use serde_json::{Map, Value, json};

use super::chat_events::read_events;
use super::models_file::ModelConfig;
use super::sse::SseReader;
use super::{ChatModel, ChatRequest, Chunk, ChunkStream, ModelError};
use crate::domain::generation::ParamRules;

/// Fields of the request body the service sets itself; generation
/// parameters can't override them (the models file can't allow them).
pub const RESERVED: [&str; 4] = ["model", "messages", "stream", "stream_options"];

/// The longest wait before the one retry of a 429 or 5xx.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);

/// The flow-control window of a model's HTTP/2 connection, in bytes.
const HTTP2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The HTTP client for models; `http2_prior_knowledge` speaks HTTP/2 from
/// the first byte, for gateways without TLS that take it.
pub fn client(http2_prior_knowledge: bool) -> Result<reqwest::Client, String> {
    // reqwest is built without a default TLS provider: use ring, like the
    // rest of the binary. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // HTTP/1.1 unless asked: an answer is then a connection of its own,
    // and a client leaving closes only that. Over HTTP/2 every answer
    // shares one connection, and h2 closes it, failing every answer on it,
    // once about a thousand answers were cancelled while their frames were
    // still arriving (hyperium/h2#856), a limit reqwest does not let us set.
    let builder = match http2_prior_knowledge {
        true => reqwest::Client::builder().http2_prior_knowledge(),
        false => reqwest::Client::builder().http1_only(),
    };
    builder
        // Over HTTP/2 a chat completion is many small DATA frames, and h2
        // also ends the connection when small frames received but not yet
        // read pass a budget of half the connection window: a larger
        // window leaves room for many answers at once.
        .http2_initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        // A provider's redirect is a misconfiguration, and following it
        // would send the API key elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client for models: {e}"))
}

pub struct OpenAiModel {
    client: reqwest::Client,
    url: String,
    config: ModelConfig,
}

impl OpenAiModel {
    pub fn new(client: reqwest::Client, config: ModelConfig) -> Self {
        let url = format!(
            "{}/chat/completions",
            config.base_url.as_str().trim_end_matches('/')
        );
        Self {
            client,
            url,
            config,
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut body = Map::new();
        for (k, v) in crate::domain::generation::allowed(&request.params, &self.config.params) {
            if !RESERVED.contains(&k.as_str()) {
                body.insert(k, v);
            }
        }
        body.insert("model".into(), json!(self.config.upstream_model));
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        body.insert("messages".into(), Value::Array(messages));
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
        Value::Object(body)
    }

    async fn send(&self, body: &[u8]) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "text/event-stream")
            .body(body.to_vec());
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        request.send().await
    }
}

/// The most body frames read in one go (see `read_arrived`): bounds the
/// work between two chunks handed on.
const READY_FRAMES: usize = 64;

/// Waits for the body's next frame, then takes the frames already received
/// behind it, so events that arrived together (the model ahead of a busy
/// reader) are parsed and handed on as one chunk of text: one delta, one
/// wake-up and one frame to the client instead of one each. Returns the
/// chunks, and whether the answer ended (`[DONE]`, an error, or the body's
/// end, which without `[DONE]` is an error).
async fn read_arrived<S>(
    body: &mut S,
    reader: &mut SseReader,
) -> (Vec<Result<Chunk, ModelError>>, bool)
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Unpin,
{
    let mut events = Vec::new();
    let mut end: Option<ModelError> = None;
    let mut next = Some(body.next().await);
    let mut frames = 0;
    while let Some(frame) = next.take() {
        match frame {
            Some(Ok(bytes)) => match reader.push(&bytes) {
                Ok(more) => events.extend(more),
                Err(e) => end = Some(ModelError(e)),
            },
            Some(Err(e)) => end = Some(broke_off(e)),
            None => {
                events.extend(reader.finish());
                // Every compatible server ends with [DONE]; a body that
                // stops before it was cut short.
                end = Some(ModelError(
                    "the model's provider ended its answer early".into(),
                ));
            }
        }
        frames += 1;
        if end.is_none() && frames < READY_FRAMES {
            // `None` when nothing more has arrived yet.
            next = body.next().now_or_never();
        }
    }
    let (mut items, finished) = read_events(events);
    match end {
        Some(e) if !finished => {
            items.push(Err(e));
            (items, true)
        }
        _ => (items, finished),
    }
}

/// A body that broke off, in words for the client; why, for the operator.
fn broke_off(e: reqwest::Error) -> ModelError {
    if e.is_timeout() {
        return ModelError("the model's provider timed out".into());
    }
    // Why, for the operator; the URL stays out.
    let mut why = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why.push_str(&format!("{s}; "));
        source = s.source();
    }
    tracing::warn!(error = %e.without_url(), source = %why, "a model's answer broke off");
    ModelError("the model's provider broke off its answer".into())
}

/// How long to wait before retrying: the provider's `Retry-After` in
/// seconds, within bounds.
fn backoff(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_BACKOFF, |s| Duration::from_secs(s).min(MAX_BACKOFF))
}

fn unreachable_provider(e: &reqwest::Error) -> ModelError {
    let why = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    ModelError(format!("the model's provider could not be reached: {why}"))
}

#[async_trait]
impl ChatModel for OpenAiModel {
    async fn open(&self, request: &ChatRequest) -> Result<ChunkStream, ModelError> {
        let body = serde_json::to_vec(&self.body(request)).expect("JSON values serialize");
        let mut retried = false;
        let response = loop {
            let response = self
                .send(&body)
                .await
                .map_err(|e| unreachable_provider(&e))?;
            let status = response.status();
            if status.is_success() {
                break response;
            }
            // Nothing has streamed yet, so one retry can't repeat text.
            if !retried && (status.as_u16() == 429 || status.is_server_error()) {
                retried = true;
                tokio::time::sleep(backoff(&response)).await;
                continue;
            }
            return Err(ModelError(format!(
                "the model's provider answered HTTP {}",
                status.as_u16()
            )));
        };

        let state = (response.bytes_stream(), SseReader::default(), false);
        let stream =
            futures_util::stream::unfold(state, |(mut body, mut reader, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let (items, finished) = read_arrived(&mut body, &mut reader).await;
                    if !items.is_empty() || finished {
                        return Some((items, (body, reader, finished)));
                    }
                }
            })
            .flat_map(futures_util::stream::iter);
        Ok(Box::pin(stream))
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn params(&self) -> ParamRules {
        self.config.params.clone()
    }

    fn max_concurrency(&self) -> Option<usize> {
        Some(self.config.max_concurrency)
    }

    fn prices(&self) -> Option<crate::domain::generation::Prices> {
        self.config.prices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Result<bytes::Bytes, reqwest::Error> {
        let event = json!({"choices": [{"index": 0, "delta": {"content": text}}]});
        Ok(format!("data: {event}\n\n").into())
    }

    #[tokio::test]
    async fn frames_already_received_are_read_as_one_chunk() {
        let arrived = vec![frame("a"), frame("b"), frame("c")];
        let mut body = Box::pin(
            futures_util::stream::iter(arrived)
                .chain(
                    futures_util::stream::iter(vec![frame("d")]).then(|f| async {
                        // Not yet arrived: left for the next read.
                        tokio::task::yield_now().await;
                        f
                    }),
                )
                .chain(futures_util::stream::iter(vec![Ok(
                    "data: [DONE]\n\n".into()
                )])),
        );
        let mut reader = SseReader::default();
        let read = read_arrived(&mut body, &mut reader).await;
        assert_eq!(read, (vec![Ok(Chunk::Text("abc".into()))], false));
        let read = read_arrived(&mut body, &mut reader).await;
        assert_eq!(read, (vec![Ok(Chunk::Text("d".into()))], true));
    }

    #[tokio::test]
    async fn a_body_cut_short_keeps_what_arrived_then_fails() {
        let mut body = futures_util::stream::iter(vec![frame("a"), frame("b")]);
        let read = read_arrived(&mut body, &mut SseReader::default()).await;
        let cut = ModelError("the model's provider ended its answer early".into());
        assert_eq!(read, (vec![Ok(Chunk::Text("ab".into())), Err(cut)], true));
    }

    #[test]
    fn allowed_parameters_pass_through_but_cannot_replace_the_request() {
        let config = super::super::models_file::parse(
            "[models.m]\nbase_url = \"http://127.0.0.1:1/v1/\"\nupstream_model = \"up\"\n",
            |_| None,
        )
        .unwrap()
        .remove("m")
        .unwrap();
        let model = OpenAiModel::new(client(false).unwrap(), config);
        assert_eq!(model.url, "http://127.0.0.1:1/v1/chat/completions");
        let mut params = Map::new();
        params.insert("temperature".into(), json!(0.5));
        params.insert("model".into(), json!("other"));
        params.insert("stream".into(), json!(false));
        params.insert("n".into(), json!(128));
        let body = model.body(&ChatRequest {
            messages: vec![],
            params,
        });
        assert_eq!(body["model"], "up");
        assert_eq!(body["stream"], true);
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(body.get("n").is_none());
    }
}
