//! practice-openai-stub: a model server speaking the OpenAI chat-completions
//! wire format, for measuring the service against the model itself. It runs
//! as its own process, so its CPU is not the service's, and answers
//! `POST /v1/chat/completions` with `stream: true` as OpenAI does: chunked
//! Server-Sent Events, a first chunk with the role, one chunk a word, a
//! `finish_reason` chunk, a usage chunk, then `data: [DONE]`. It speaks
//! HTTP/1.1 and HTTP/2 without TLS (prior knowledge) on one port, and
//! allows many HTTP/2 streams on one connection, so tens of thousands of
//! answers fit in a process's file descriptors.
//!
//! The answer's length and pace come from its flags, or from the prompt
//! (the last message): `[words=200 rate=2]` in it asks for 200 words at 2 a
//! second, and `first=300` for 300 ms before the first byte (a model's
//! time to first token), so one stub serves a bench's every phase.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Parser, Debug, Clone, Copy)]
#[command(about = "An OpenAI-wire model server for benchmarks")]
struct Args {
    /// Port to listen on (127.0.0.1); 0 picks one. The address is the first
    /// line printed.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Words in an answer, unless the prompt says `[words=N ...]`.
    #[arg(long, default_value_t = 50)]
    words: u32,
    /// Words a second, unless the prompt says `[... rate=R]`; 0 sends them
    /// as fast as the reader takes them.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
}

/// The largest request body read (a chat request with its history).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

type Body = BoxBody<Bytes, Infallible>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("{}", listener.local_addr()?);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(100_000)
        // Deltas are small: one window for many streams of them.
        .initial_connection_window_size(16 * 1024 * 1024);
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |r| answer(r, args));
            let _ = builder
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>, args: Args) -> Result<Response<Body>, Infallible> {
    if request.method() != http::Method::POST
        || !request.uri().path().ends_with("/chat/completions")
    {
        return Ok(refuse(StatusCode::NOT_FOUND, "no such route"));
    }
    let limited = http_body_util::Limited::new(request.into_body(), MAX_REQUEST_BYTES);
    let Ok(body) = limited.collect().await else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "the body could not be read",
        ));
    };
    let Ok(chat) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "the body is not JSON"));
    };
    if chat["stream"] != json!(true) {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "only stream: true is served",
        ));
    }
    let model = chat["model"].as_str().unwrap_or("stub").to_owned();
    let prompt = chat["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let words = asked(prompt, "words=").map_or(args.words, |w| w as u32);
    let rate = asked(prompt, "rate=").unwrap_or(args.rate);
    let pause = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let first = Duration::from_secs_f64(asked(prompt, "first=").unwrap_or(0.0) / 1000.0);
    let chunks = Chunks::new(&model, words);
    let stream = futures_util::stream::unfold((chunks, 0u32), move |(chunks, i)| async move {
        let event = chunks.event(i)?;
        // The pause comes before each word after the first, so the first
        // word is the first byte: time to first delta is the stub's own.
        if let Some(pause) = pause.filter(|_| i > 1 && i <= words) {
            tokio::time::sleep(pause).await;
        }
        if i == 0 && !first.is_zero() {
            tokio::time::sleep(first).await;
        }
        Some((Ok::<_, Infallible>(Frame::data(event)), (chunks, i + 1)))
    });
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("a valid response"))
}

/// `name=value` in the prompt, as a number.
fn asked(prompt: &str, name: &str) -> Option<f64> {
    let at = prompt.find(name)? + name.len();
    let digits: String = prompt[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().ok().filter(|v: &f64| v.is_finite())
}

/// The events of one answer, made as they are sent.
struct Chunks {
    /// The fields every chunk repeats, as OpenAI sends them.
    head: String,
    words: u32,
}

impl Chunks {
    fn new(model: &str, words: u32) -> Self {
        let head = format!(
            r#""id":"chatcmpl-stub","object":"chat.completion.chunk","created":1767225600,"model":{},"system_fingerprint":"fp_stub""#,
            json!(model)
        );
        Self { head, words }
    }

    /// Event `i`: the role, `words` words, the finish reason, the usage,
    /// `[DONE]`; then none.
    fn event(&self, i: u32) -> Option<Bytes> {
        let head = &self.head;
        let data = match i {
            0 => format!(
                r#"{{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
            ),
            i if i <= self.words => format!(
                r#"{{{head},"choices":[{{"index":0,"delta":{{"content":"w{i} "}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
            ),
            i if i == self.words + 1 => format!(
                r#"{{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"usage":null}}"#
            ),
            i if i == self.words + 2 => format!(
                r#"{{{head},"choices":[],"usage":{{"prompt_tokens":20,"completion_tokens":{},"total_tokens":{}}}}}"#,
                self.words,
                self.words + 20
            ),
            i if i == self.words + 3 => "[DONE]".to_owned(),
            _ => return None,
        };
        Some(Bytes::from(format!("data: {data}\n\n")))
    }
}

fn refuse(status: StatusCode, message: &str) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error"}});
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(body.to_string()))))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_openai_chunks_then_done() {
        let chunks = Chunks::new("m", 2);
        let events: Vec<String> = (0..)
            .map_while(|i| chunks.event(i))
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(events.len(), 6);
        let data = |e: &str| -> Value {
            serde_json::from_str(e.strip_prefix("data: ").unwrap().trim()).unwrap()
        };
        assert_eq!(data(&events[0])["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(data(&events[2])["choices"][0]["delta"]["content"], "w2 ");
        assert_eq!(data(&events[3])["choices"][0]["finish_reason"], "stop");
        assert_eq!(data(&events[4])["usage"]["completion_tokens"], 2);
        assert_eq!(events[5], "data: [DONE]\n\n");
    }

    #[test]
    fn the_prompt_can_set_length_and_pace() {
        assert_eq!(asked("hi [words=200 rate=2.5]", "words="), Some(200.0));
        assert_eq!(asked("hi [words=200 rate=2.5]", "rate="), Some(2.5));
        assert_eq!(asked("hi", "rate="), None);
    }
}
