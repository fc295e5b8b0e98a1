//! The clients of the `stream` scenario: one prompt, answered by the
//! class's three models, read to its end over Server-Sent Events, native
//! gRPC or Connect (server streaming, protobuf); and the same three answers
//! read straight from the model server, the baseline the service's added
//! latency is measured against.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{PromptEvent, SendPromptRequest, prompt_event::Event};
use prost::Message;

use super::prompt::authed;
use tonic::transport::Channel;

/// What one prompt (three answers) took, in µs from its request.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Until the first text of any answer.
    pub first_us: u64,
    /// Text deltas received, all answers together.
    pub deltas: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Straight to the model server: three chat completions at once.
    Direct,
    Sse,
    Grpc,
    Connect,
}

impl std::str::FromStr for Wire {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "sse" => Wire::Sse,
            "grpc" => Wire::Grpc,
            "connect" => Wire::Connect,
            other => bail!("unknown streaming protocol {other:?} (sse, grpc, connect)"),
        })
    }
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::Direct => "model server, direct",
            Wire::Sse => "HTTP/JSON SSE",
            Wire::Grpc => "gRPC",
            Wire::Connect => "Connect",
        }
    }
}

/// A client of one wire, shared by every worker of a run.
#[derive(Clone)]
pub struct Client {
    wire: Wire,
    base: String,
    http: reqwest::Client,
    grpc: Vec<PracticeServiceClient<Channel>>,
}

/// The models the bench's class allows, as the model server is asked.
pub const MODELS: [&str; 3] = ["gpt-4o-mini", "claude-3-haiku", "llama-3-8b"];

impl Client {
    /// `base` is the service's URL, or the model server's for `Direct`;
    /// gRPC spreads `streams` over connections of at most 200 streams (the
    /// service allows 256 a connection).
    pub async fn new(wire: Wire, base: &str, streams: usize) -> anyhow::Result<Self> {
        let http = match wire {
            // The service reaches the model server over HTTP/2, and so
            // does the baseline.
            Wire::Direct => reqwest::Client::builder().http2_prior_knowledge(),
            _ => reqwest::Client::builder().http1_only(),
        }
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
        let mut grpc = Vec::new();
        if wire == Wire::Grpc {
            for _ in 0..streams.div_ceil(200).max(1) {
                let channel = Channel::from_shared(base.to_owned())?.connect().await?;
                grpc.push(PracticeServiceClient::new(channel));
            }
        }
        Ok(Self {
            wire,
            base: base.to_owned(),
            http,
            grpc,
        })
    }

    /// Sends one prompt and reads every answer to its end.
    pub async fn prompt(
        &self,
        worker: usize,
        token: &str,
        session_id: i64,
        text: &str,
    ) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        let mut seen = Seen::default();
        let ask = Ask {
            token,
            session_id,
            text,
        };
        match self.wire {
            Wire::Direct => {
                let answers = MODELS.map(|m| self.direct(m, text, start));
                for answer in futures_util::future::join_all(answers).await {
                    let (first, deltas) = answer?;
                    seen.first = seen.first.min(first);
                    seen.deltas += deltas;
                }
                seen.finished = 3;
            }
            Wire::Sse => self.sse(ask, start, &mut seen).await?,
            Wire::Grpc => {
                let mut events = self.grpc_events(worker, token, session_id, text).await?;
                while let Some(event) = events.message().await? {
                    seen.event(event, start)?;
                }
            }
            Wire::Connect => self.connect(ask, start, &mut seen).await?,
        }
        ensure!(
            seen.finished == 3,
            "{} of 3 answers finished",
            seen.finished
        );
        ensure!(seen.first < u64::MAX, "no text arrived");
        Ok(Outcome {
            first_us: seen.first,
            deltas: seen.deltas,
        })
    }

    /// Sends one prompt over gRPC and reads it until the caller aborts:
    /// at its first delta, counts it in `started` and its µs in `firsts`.
    pub async fn hold_open(
        &self,
        worker: usize,
        token: &str,
        session_id: i64,
        text: &str,
        started: &AtomicU64,
        firsts: &Mutex<Vec<u64>>,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut events = self.grpc_events(worker, token, session_id, text).await?;
        let mut first = true;
        while let Some(event) = events.message().await? {
            if let Some(Event::Failed(r)) = &event.event {
                bail!("an answer failed: {:?}", r.error);
            }
            if first && matches!(event.event, Some(Event::Delta(_))) {
                first = false;
                let us = start.elapsed().as_micros() as u64;
                firsts.lock().expect("firsts").push(us);
                started.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A prompt's events over gRPC, on the worker's connection.
    async fn grpc_events(
        &self,
        worker: usize,
        token: &str,
        session_id: i64,
        text: &str,
    ) -> anyhow::Result<tonic::Streaming<PromptEvent>> {
        let request = SendPromptRequest {
            session_id,
            prompt_text: text.to_owned(),
            session_model_ids: vec![],
        };
        let mut client = self.grpc[worker % self.grpc.len()].clone();
        Ok(client
            .send_prompt(authed(request, token))
            .await?
            .into_inner())
    }

    /// One chat completion from the model server: µs to its first text,
    /// and its deltas.
    async fn direct(&self, model: &str, text: &str, start: Instant) -> anyhow::Result<(u64, u64)> {
        let body = serde_json::json!({
            "model": model,
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": text}],
        });
        let response = self
            .http
            .post(format!("{}/v1/chat/completions", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?
            .error_for_status()?;
        let (mut first, mut deltas) = (u64::MAX, 0);
        let mut events = SseEvents::default();
        let mut body = response.bytes_stream();
        while let Some(bytes) = body.next().await {
            events.buf.extend_from_slice(&bytes?);
            while let Some(event) = events.next() {
                if event.contains("\"content\":\"w") {
                    first = first.min(start.elapsed().as_micros() as u64);
                    deltas += 1;
                }
            }
        }
        Ok((first, deltas))
    }

    async fn sse(&self, ask: Ask<'_>, start: Instant, seen: &mut Seen) -> anyhow::Result<()> {
        let Ask {
            token,
            session_id,
            text,
        } = ask;
        let response = self
            .http
            .post(format!(
                "{}/user/practice/sessions/{session_id}/prompts",
                self.base
            ))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .header("content-type", "application/json")
            .body(serde_json::json!({"prompt_text": text}).to_string())
            .send()
            .await?
            .error_for_status()?;
        let mut events = SseEvents::default();
        let mut body = response.bytes_stream();
        while let Some(bytes) = body.next().await {
            events.buf.extend_from_slice(&bytes?);
            while let Some(event) = events.next() {
                match event.lines().next().and_then(|l| l.strip_prefix("event: ")) {
                    Some("delta") => seen.delta(start),
                    Some("finished") => seen.finished += 1,
                    Some("failed") => bail!("an answer failed: {event}"),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn connect(&self, ask: Ask<'_>, start: Instant, seen: &mut Seen) -> anyhow::Result<()> {
        let Ask {
            token,
            session_id,
            text,
        } = ask;
        let request = SendPromptRequest {
            session_id,
            prompt_text: text.to_owned(),
            session_model_ids: vec![],
        }
        .encode_to_vec();
        let mut body = vec![0u8];
        body.extend_from_slice(&(request.len() as u32).to_be_bytes());
        body.extend_from_slice(&request);
        let response = self
            .http
            .post(format!(
                "{}/practice.v1.PracticeService/SendPrompt",
                self.base
            ))
            .bearer_auth(token)
            .header("content-type", "application/connect+proto")
            .header("connect-protocol-version", "1")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let mut buf = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(bytes) = stream.next().await {
            buf.extend_from_slice(&bytes?);
            while buf.len() >= 5 {
                let len = u32::from_be_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
                if buf.len() < 5 + len {
                    break;
                }
                let flags = buf[0];
                buf.advance(5);
                let message = buf.split_to(len);
                if flags & 0x02 != 0 {
                    // The end of the stream: `{}`, or `{"error": ...}`.
                    let end: serde_json::Value = serde_json::from_slice(&message)?;
                    ensure!(end.get("error").is_none(), "the stream ended with {end}");
                } else {
                    seen.event(PromptEvent::decode(message.freeze())?, start)?;
                }
            }
        }
        Ok(())
    }
}

/// One prompt to send: whose, in which session, what.
#[derive(Clone, Copy)]
struct Ask<'a> {
    token: &'a str,
    session_id: i64,
    text: &'a str,
}

/// What a prompt's events showed so far.
struct Seen {
    first: u64,
    deltas: u64,
    finished: usize,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            first: u64::MAX,
            deltas: 0,
            finished: 0,
        }
    }
}

impl Seen {
    fn delta(&mut self, start: Instant) {
        if self.deltas == 0 {
            self.first = start.elapsed().as_micros() as u64;
        }
        self.deltas += 1;
    }

    fn event(&mut self, event: PromptEvent, start: Instant) -> anyhow::Result<()> {
        match event.event.context("an event without a kind")? {
            Event::Delta(_) => self.delta(start),
            Event::Finished(_) => self.finished += 1,
            Event::Failed(r) => bail!("an answer failed: {:?}", r.error),
            _ => {}
        }
        Ok(())
    }
}

/// Server-Sent Events split out of a byte stream at their blank lines.
#[derive(Default)]
struct SseEvents {
    buf: BytesMut,
}

impl SseEvents {
    fn next(&mut self) -> Option<String> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let event = self.buf.split_to(end + 2);
        Some(String::from_utf8_lossy(&event).into_owned())
    }
}
