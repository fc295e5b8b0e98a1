//! A local OpenAI-compatible chat-completions server for the conversation
//! tests. It speaks the real wire format over real sockets (HTTP/1.1,
//! chunked Server-Sent Events, a usage chunk, `data: [DONE]`), and each
//! upstream model name selects a behaviour:
//!
//! - `echo`: answers "Answer to <prompt>." word by word, with usage;
//! - `slow`: like `echo`, 150 ms between words;
//! - `nousage`: like `echo`, without the usage chunk;
//! - `fail500`: HTTP 500 every time;
//! - `flaky429`: HTTP 429 the first time, then like `echo`;
//! - `drop`: two words, then the connection closes mid-stream;
//! - `hang`: one word, then nothing until the client goes away;
//! - `big`: a 64,000-byte answer in 16 deltas;
//! - `long`: 100 words, 100 ms apart (10 s);
//! - `trickle`: like `echo`, but a prompt containing "forever" gets a word
//!   every 2 ms until the client goes away (at most a minute);
//! - `other`: like `echo`, but "Another answer to <prompt>.";
//! - `burst`: 200 words ("w0 " to "w199 ") written in one go, as a model
//!   ahead of its reader leaves them;
//! - `rude`: a second choice (index 1) interleaved with the first, and
//!   usage counts past i64 and below zero.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Every request body, in arrival order.
    pub requests: Mutex<Vec<Value>>,
    in_flight: AtomicUsize,
    /// The most requests that were being answered at once.
    pub max_in_flight: AtomicUsize,
    /// Connections the client closed before the answer ended.
    pub closed_early: AtomicUsize,
}

impl Seen {
    pub fn requests_for(&self, model: &str) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["model"] == model)
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

pub struct FakeProvider {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, state.clone()));
            }
        });
        Self { addr, seen }
    }

    /// A models file mapping each `(name, behaviour)` to this server.
    pub fn models_file(&self, models: &[(&str, &str)], dir: &std::path::Path) -> String {
        self.models_file_with(models, "", dir)
    }

    /// The same, with `extra` lines in every model's entry.
    pub fn models_file_with(
        &self,
        models: &[(&str, &str)],
        extra: &str,
        dir: &std::path::Path,
    ) -> String {
        let mut text = String::new();
        for (name, behaviour) in models {
            text.push_str(&format!(
                "[models.\"{name}\"]\nbase_url = \"http://{}/v1\"\nupstream_model = \"{behaviour}\"\ntimeout_secs = 20\n{extra}\n\n",
                self.addr
            ));
        }
        let path = dir.join("models.toml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Waits (a bounded time) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&Seen) -> bool) {
        for _ in 0..200 {
            if check(&self.seen) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the provider never saw: {what}");
    }
}

/// The request head and body of one HTTP/1.1 request.
async fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + length].to_vec())
}

fn chunk(data: &str) -> Vec<u8> {
    let event = format!("data: {data}\n\n");
    format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
}

fn delta(text: &str) -> Vec<u8> {
    chunk(&json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}).to_string())
}

async fn serve(mut socket: TcpStream, seen: Arc<Seen>) {
    let Some(body) = read_request(&mut socket).await else {
        return;
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("").to_owned();
    let earlier = seen.requests_for(&model).len();
    seen.requests.lock().unwrap().push(request.clone());
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    answer(&mut socket, &model, earlier, &request, &seen).await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
}

async fn answer(socket: &mut TcpStream, model: &str, earlier: usize, request: &Value, seen: &Seen) {
    let refuse = match model {
        "fail500" => Some("500 Internal Server Error"),
        "flaky429" if earlier == 0 => Some("429 Too Many Requests"),
        _ => None,
    };
    if let Some(status) = refuse {
        let body = r#"{"error":{"message":"try later"}}"#;
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(reply.as_bytes()).await;
        return;
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let prompt = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let text = if model == "other" {
        format!("Another answer to {prompt}.")
    } else {
        format!("Answer to {prompt}.")
    };
    let mut words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let mut pause = match model {
        "slow" => Duration::from_millis(150),
        "long" => Duration::from_millis(100),
        _ => Duration::from_millis(5),
    };
    match model {
        "big" => words = vec![format!("{:-<3999}\n", ""); 16],
        "long" => words = (0..100).map(|i| format!("w{i} ")).collect(),
        "trickle" if prompt.contains("forever") => {
            pause = Duration::from_millis(2);
            words = vec!["x ".to_owned(); 30_000];
        }
        _ => {}
    }
    if model == "burst" {
        words = (0..200).map(|i| format!("w{i} ")).collect();
        let all: Vec<u8> = words.iter().flat_map(|w| delta(w)).collect();
        if socket.write_all(&all).await.is_err() {
            return;
        }
        words.clear();
    }
    for (i, word) in words.iter().enumerate() {
        if (model == "drop" && i == 2) || (model == "hang" && i == 1) {
            break;
        }
        if model == "rude" {
            let other = json!({"choices": [{"index": 1, "delta": {"content": "OTHER "}}]});
            let _ = socket.write_all(&chunk(&other.to_string())).await;
        }
        if socket.write_all(&delta(word)).await.is_err() {
            seen.closed_early.fetch_add(1, Ordering::SeqCst);
            return;
        }
        tokio::time::sleep(pause).await;
    }
    match model {
        // Closed without the chunked body's end: the answer broke off.
        "drop" => return,
        "hang" => {
            let mut byte = [0u8; 1];
            // The client sends nothing more; a read ends when it closes.
            let _ = socket.read(&mut byte).await;
            seen.closed_early.fetch_add(1, Ordering::SeqCst);
            return;
        }
        _ => {}
    }
    if model == "rude" {
        let usage = r#"{"choices": [], "usage": {"prompt_tokens": 9223372036854775808, "completion_tokens": -5, "total_tokens": 1}}"#;
        let _ = socket.write_all(&chunk(usage)).await;
    } else if model != "nousage" {
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": words.len(), "total_tokens": 11 + words.len()}});
        let _ = socket.write_all(&chunk(&usage.to_string())).await;
    }
    let _ = socket.write_all(&chunk("[DONE]")).await;
    let _ = socket.write_all(b"0\r\n\r\n").await;
}
