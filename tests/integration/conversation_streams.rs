//! A prompt's events as each protocol streams them: gRPC, gRPC-Web,
//! Connect (JSON envelopes) and Server-Sent Events on the JSON route. Each
//! checks that a text delta reaches the client while the answer is still
//! in progress (the stored response says so at that moment), and that the
//! events come in order: started, deltas, finished.

use crate::common;

use super::conversation::{Chat, ME, chat, prompt, wait_until_settled};
use common::{Backend, grpc_frame, http_client, token};
use practice_service::proto::practice::v1::prompt_event::Event;
use prost::Message;
use serde_json::{Value, json};

/// The models: two slow ones, so deltas arrive well before the end.
const MODELS: [(&str, &str); 2] = [("m-a", "slow"), ("m-b", "slow")];

/// Checks a prompt's events: per model, `started`, then deltas that join
/// to the `finished` response's text. Called with every event at the end.
fn check_events(chat: &Chat, events: &[(String, Value)]) {
    for model in &chat.session.models {
        let id = model.session_model_id;
        let mine: Vec<&(String, Value)> = events
            .iter()
            .filter(|(_, e)| e["session_model_id"] == json!(id))
            .collect();
        let names: Vec<&str> = mine.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"started"), "{names:?}");
        assert_eq!(names.last(), Some(&"finished"), "{names:?}");
        assert!(names[1..names.len() - 1].iter().all(|n| *n == "delta"));
        let text: String = mine
            .iter()
            .filter(|(n, _)| n == "delta")
            .map(|(_, e)| e["text"].as_str().unwrap())
            .collect();
        let finished = &mine.last().unwrap().1;
        assert_eq!(finished["response_text"], json!(text));
        assert_eq!(finished["status"], "completed");
        super::conversation::assert_response_shape(finished);
    }
}

/// Called at the first delta: the answer must still be in progress.
async fn still_in_progress(chat: &Chat) {
    let session = chat.app.get(ME, chat.session.session_id).await.unwrap();
    assert!(
        session.responses.iter().any(|r| r.status == "in_progress"),
        "a delta arrived only after every answer was stored"
    );
}

async fn grpc_streams_deltas_before_completion(backend: Backend) {
    let Some(chat) = chat(backend, &MODELS).await else {
        return;
    };
    let request = common::authed(prompt(chat.session.session_id, "stream me"), &token(ME));
    let mut stream = chat.stream(request).await;
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        let (name, value) = match event.event.unwrap() {
            Event::Started(s) => (
                "started",
                json!({"session_model_id": s.session_model_id, "response_id": s.response_id}),
            ),
            Event::Delta(d) => (
                "delta",
                json!({"session_model_id": d.session_model_id, "text": d.text}),
            ),
            Event::Finished(r) | Event::Failed(r) => {
                let name = if r.status == "completed" {
                    "finished"
                } else {
                    "failed"
                };
                (name, practice_response_json(&r))
            }
        };
        if name == "delta" && !events.iter().any(|(n, _)| n == "delta") {
            still_in_progress(&chat).await;
        }
        events.push((name.to_owned(), value));
    }
    check_events(&chat, &events);
}

fn practice_response_json(r: &practice_service::proto::practice::v1::PracticeResponse) -> Value {
    json!({
        "response_id": r.response_id, "session_model_id": r.session_model_id,
        "session_id": r.session_id, "model_name": r.model_name,
        "prompt_text": r.prompt_text, "response_text": r.response_text,
        "created_at": "", "token_usage": {}, "latency_ms": r.latency_ms,
        "status": r.status, "error": r.error,
    })
}

/// Reads a streamed body as it arrives; `split` takes whole events off the
/// front of the buffer.
async fn read_stream(
    chat: &Chat,
    mut response: reqwest::Response,
    split: impl Fn(&mut Vec<u8>) -> Option<Option<(String, Value)>>,
) -> Vec<(String, Value)> {
    let mut buf = Vec::new();
    let mut events: Vec<(String, Value)> = Vec::new();
    loop {
        while let Some(event) = split(&mut buf) {
            let Some((name, value)) = event else {
                return events;
            };
            if name == "delta" && !events.iter().any(|(n, _)| n == "delta") {
                still_in_progress(chat).await;
            }
            events.push((name, value));
        }
        match response.chunk().await.unwrap() {
            Some(bytes) => buf.extend_from_slice(&bytes),
            None => return events,
        }
    }
}

/// POSTs SendPrompt's body as a browser protocol would; the answer's head.
async fn post_rpc(chat: &Chat, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
    let mut request = http_client()
        .post(format!(
            "{}/practice.v1.PracticeService/SendPrompt",
            chat.app.url()
        ))
        .bearer_auth(token(ME))
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// One length-prefixed frame off the front (gRPC-Web, Connect): its flags
/// and payload.
fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    let frame: Vec<u8> = buf.drain(..5 + len).collect();
    Some((frame[0], frame[5..].to_vec()))
}

/// A JSON event of the proto's oneof form as `(name, value)`.
fn oneof_event(v: Value) -> (String, Value) {
    let (name, value) = v.as_object().unwrap().iter().next().unwrap();
    (name.clone(), value.clone())
}

async fn sse_streams_deltas_before_completion(backend: Backend) {
    let Some(chat) = chat(backend, &MODELS).await else {
        return;
    };
    let response = http_client()
        .post(format!(
            "{}/user/practice/sessions/{}/prompts",
            chat.app.url(),
            chat.session.session_id
        ))
        .bearer_auth(token(ME))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(r#"{"prompt_text":"stream me"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_stream(&chat, response, |buf| {
        let end = buf.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        let block = String::from_utf8(block).unwrap();
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap();
        let data = block
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        Some(Some((name.to_owned(), serde_json::from_str(data).unwrap())))
    })
    .await;
    check_events(&chat, &events);
    // Without the Accept header, the same route waits and answers once.
    let reply = chat
        .app
        .http(
            "POST",
            &format!(
                "/user/practice/sessions/{}/prompts",
                chat.session.session_id
            ),
            Some(&token(ME)),
            Some(r#"{"prompt_text":"wait for me"}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let responses = reply.json()["responses"].as_array().unwrap().clone();
    assert_eq!(responses.len(), 2);
    for r in &responses {
        super::conversation::assert_response_shape(r);
        assert_eq!(r["response_text"], "Answer to wait for me.");
    }
    let stored = wait_until_settled(&chat.app, chat.session.session_id).await;
    assert_eq!(stored.len(), 4);
}

async fn grpc_web_streams_deltas_before_completion(backend: Backend) {
    let Some(chat) = chat(backend, &MODELS).await else {
        return;
    };
    let body = grpc_frame(&prompt(chat.session.session_id, "stream me"));
    let response = post_rpc(
        &chat,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        body,
    )
    .await;
    let events = read_stream(&chat, response, |buf| {
        let (flags, payload) = take_frame(buf)?;
        if flags & 0x80 != 0 {
            let trailers = String::from_utf8(payload).unwrap();
            assert!(trailers.contains("grpc-status:0"), "{trailers}");
            return Some(None);
        }
        let event =
            practice_service::proto::practice::v1::PromptEvent::decode(&payload[..]).unwrap();
        let json = match event.event.unwrap() {
            Event::Started(s) => ("started", json!({"session_model_id": s.session_model_id})),
            Event::Delta(d) => (
                "delta",
                json!({"session_model_id": d.session_model_id, "text": d.text}),
            ),
            Event::Finished(r) => ("finished", practice_response_json(&r)),
            Event::Failed(r) => ("failed", practice_response_json(&r)),
        };
        Some(Some((json.0.to_owned(), json.1)))
    })
    .await;
    check_events(&chat, &events);
}

async fn connect_streams_deltas_before_completion(backend: Backend) {
    let Some(chat) = chat(backend, &MODELS).await else {
        return;
    };
    let message = json!({"session_id": chat.session.session_id, "prompt_text": "stream me"});
    let payload = serde_json::to_vec(&message).unwrap();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let response = post_rpc(
        &chat,
        &[
            ("content-type", "application/connect+json"),
            ("connect-protocol-version", "1"),
        ],
        body,
    )
    .await;
    let events = read_stream(&chat, response, |buf| {
        let (flags, payload) = take_frame(buf)?;
        let value: Value = serde_json::from_slice(&payload).unwrap();
        if flags & 0x02 != 0 {
            assert!(value.get("error").is_none(), "{value}");
            return Some(None);
        }
        Some(Some(oneof_event(value)))
    })
    .await;
    // Connect's JSON is canonical protobuf JSON (lowerCamelCase, int64 as
    // strings): compare ids and texts only.
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "started").count(), 2);
    assert_eq!(names.iter().filter(|n| **n == "finished").count(), 2);
    assert!(names.iter().filter(|n| **n == "delta").count() >= 2);
    let first_finished = names.iter().position(|n| *n == "finished").unwrap();
    let first_delta = names.iter().position(|n| *n == "delta").unwrap();
    assert!(first_delta < first_finished);
}

/// Deltas the model sent together (a model ahead of a busy reader) may be
/// joined on the way (see `llm::openai::read_arrived`): the text still
/// arrives whole and in order, and is stored so.
async fn deltas_that_arrive_together_are_sent_on_together(backend: Backend) {
    let Some(chat) = chat(backend, &[("m-burst", "burst")]).await else {
        return;
    };
    let request = common::authed(prompt(chat.session.session_id, "all at once"), &token(ME));
    let mut stream = chat.stream(request).await;
    let (mut deltas, mut text, mut finished) = (0, String::new(), None);
    while let Some(event) = stream.message().await.unwrap() {
        match event.event.unwrap() {
            Event::Delta(d) => {
                deltas += 1;
                text.push_str(&d.text);
            }
            Event::Finished(r) => finished = Some(r),
            Event::Started(_) => {}
            Event::Failed(r) => panic!("failed: {:?}", r.error),
        }
    }
    let whole: String = (0..200).map(|i| format!("w{i} ")).collect();
    assert_eq!(text, whole);
    assert_eq!(finished.unwrap().response_text, whole);
    assert!((1..=200).contains(&deltas), "{deltas} deltas");
}

on_both_backends!(
    deltas_that_arrive_together_are_sent_on_together,
    grpc_streams_deltas_before_completion,
    sse_streams_deltas_before_completion,
    grpc_web_streams_deltas_before_completion,
    connect_streams_deltas_before_completion,
);
