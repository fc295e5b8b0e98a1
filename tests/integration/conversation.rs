//! The conversation on both backends, against a local OpenAI-compatible
//! server (`common::llm`): fan-out to every model, what each model is sent,
//! the stored responses, failures, retries, cancellation, idempotent
//! replay, and who may prompt which session. (Streaming on each protocol:
//! `conversation_streams.rs`.)

use crate::common;

use common::llm::FakeProvider;
use common::{Backend, TestApp, authed, token};
use practice_service::proto::practice::v1::{
    PracticeResponse, SendPromptRequest, Session, prompt_event::Event,
};
use serde_json::{Value, json};
use tonic::Code;

pub const ME: i64 = 7;
const OTHER: i64 = 8;

/// A server whose models live on the fake provider, and a session of
/// `ME` in a class with those models.
pub struct Chat {
    pub app: TestApp,
    pub provider: FakeProvider,
    pub session: Session,
    _dir: tempfile::TempDir,
}

/// `models` are `(name, behaviour)`; the class offers them in that order.
pub async fn chat(backend: Backend, models: &[(&str, &str)]) -> Option<Chat> {
    chat_with(backend, models, "", &[]).await
}

/// `chat`, with `model_lines` in each model's entry of the models file and
/// `env` for the server.
pub async fn chat_with(
    backend: Backend,
    models: &[(&str, &str)],
    model_lines: &str,
    env: &[(&str, &str)],
) -> Option<Chat> {
    let provider = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = provider.models_file_with(models, model_lines, dir.path());
    let mut env = env.to_vec();
    env.push(("PRACTICE_MODELS_FILE", &file));
    let app = common::spawn_app_with(backend, &env).await?;
    let names: Vec<(&str, bool)> = models.iter().map(|(n, _)| (*n, true)).collect();
    app.class(1, &[ME, OTHER], &names).await;
    let session = app.create(ME, common::in_class(1)).await.unwrap();
    Some(Chat {
        app,
        provider,
        session,
        _dir: dir,
    })
}

pub fn prompt(session_id: i64, text: &str) -> SendPromptRequest {
    SendPromptRequest {
        session_id,
        prompt_text: text.into(),
        session_model_ids: vec![],
    }
}

impl Chat {
    pub async fn wait(
        &self,
        user: i64,
        request: SendPromptRequest,
        key: Option<&str>,
    ) -> Result<Vec<PracticeResponse>, tonic::Status> {
        let mut request = authed(request, &token(user));
        if let Some(key) = key {
            request
                .metadata_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        let reply = self
            .app
            .client()
            .await
            .send_prompt_and_wait(request)
            .await?;
        Ok(reply.into_inner().responses)
    }

    /// SendPrompt over gRPC: the event stream.
    pub async fn stream(
        &self,
        request: tonic::Request<SendPromptRequest>,
    ) -> tonic::Streaming<practice_service::proto::practice::v1::PromptEvent> {
        self.app
            .client()
            .await
            .send_prompt(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// A prompt that must be refused with `code` and write nothing.
    async fn refused(&self, user: i64, request: SendPromptRequest, code: Code) {
        let before = self.app.counts().await;
        let calls = self.provider.seen.count();
        let status = self.wait(user, request.clone(), None).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert_eq!(self.app.counts().await, before, "{request:?} wrote rows");
        assert_eq!(
            self.provider.seen.count(),
            calls,
            "{request:?} called a model"
        );
    }
}

async fn every_model_answers_at_once_and_is_stored(backend: Backend) {
    let Some(chat) = chat(
        backend,
        &[("m-a", "slow"), ("m-b", "slow"), ("m-c", "slow")],
    )
    .await
    else {
        return;
    };
    let id = chat.session.session_id;
    let responses = chat
        .wait(ME, prompt(id, "What is a noun?"), None)
        .await
        .unwrap();
    // All three requests were open at the same moment: fan-out, not a queue.
    assert_eq!(
        chat.provider
            .seen
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let names: Vec<&str> = responses.iter().map(|r| r.model_name.as_str()).collect();
    assert_eq!(names, ["m-a", "m-b", "m-c"]);
    for (r, m) in responses.iter().zip(&chat.session.models) {
        assert_eq!(r.status, "completed");
        assert_eq!(r.error, None);
        assert_eq!(r.session_model_id, m.session_model_id);
        assert_eq!(r.response_text, "Answer to What is a noun?.");
        assert_eq!(r.prompt_text, "What is a noun?");
        let usage = common::struct_json(r.token_usage.clone());
        assert_eq!(
            usage,
            json!({"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17})
        );
        assert!(r.latency_ms.unwrap() >= r.first_byte_ms.unwrap());
    }
    // GetSession shows them, oldest first, exactly as answered.
    let session = chat.app.get(ME, id).await.unwrap();
    assert_eq!(session.responses, responses);
    let counts = chat.app.counts().await;
    assert_eq!((counts.prompts, counts.responses), (1, 3));

    // DeleteSession takes the conversation with it.
    chat.app.delete(ME, id).await.unwrap();
    let counts = chat.app.counts().await;
    assert_eq!((counts.prompts, counts.responses), (0, 0));
}

async fn each_model_sees_the_agent_examples_and_its_own_history(backend: Backend) {
    let Some(chat) = chat(backend, &[("m-a", "echo"), ("m-b", "echo")]).await else {
        return;
    };
    let app = &chat.app;
    let e1 = app.example(ME, "first", true).await;
    let e2 = app.example(ME, "second", true).await;
    app.agent(5, ME, Some(1), &[e2.example_id, e1.example_id])
        .await;
    let mut create = common::in_class(1);
    create.agent_id = Some(5);
    let session = app.create(ME, create).await.unwrap();
    let id = session.session_id;
    let first = session.models[0].session_model_id;

    chat.wait(ME, prompt(id, "one"), None).await.unwrap();
    // The second prompt goes to the first model only.
    let mut second = prompt(id, "two");
    second.session_model_ids = vec![first];
    let answered = chat.wait(ME, second, None).await.unwrap();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].session_model_id, first);

    let sent = chat.provider.seen.requests_for("echo");
    assert_eq!(sent.len(), 3);
    let last = &sent[2];
    let messages: Vec<(String, String)> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect: Vec<(String, String)> = [
        ("system", "You are a patient tutor."),
        ("user", "input of second"),
        ("assistant", "output of second"),
        ("user", "input of first"),
        ("assistant", "output of first"),
        ("user", "one"),
        ("assistant", "Answer to one."),
        ("user", "two"),
    ]
    .iter()
    .map(|(r, c)| (r.to_string(), c.to_string()))
    .collect();
    assert_eq!(messages, expect);
    // The agent's generation parameters pass through; the stream asks for
    // usage.
    assert_eq!(last["temperature"], json!(0.2));
    assert_eq!(last["max_tokens"], json!(512));
    assert_eq!(last["stream"], json!(true));
    assert_eq!(last["stream_options"], json!({"include_usage": true}));

    // Without an agent: the preset's system prompt and temperature.
    let plain = app.create(ME, common::in_class(1)).await.unwrap();
    chat.wait(ME, prompt(plain.session_id, "three"), None)
        .await
        .unwrap();
    let sent = chat.provider.seen.requests_for("echo");
    let last = sent.last().unwrap();
    assert_eq!(last["temperature"], json!(0.2), "the accurate preset");
    assert_eq!(last["messages"][0]["role"], "system");
    assert_eq!(last["messages"].as_array().unwrap().len(), 2);
}

async fn one_failing_model_does_not_fail_the_others(backend: Backend) {
    let models = [
        ("ok", "echo"),
        ("broken", "fail500"),
        ("flaky", "flaky429"),
        ("cut", "drop"),
        ("quiet", "nousage"),
    ];
    let Some(chat) = chat(backend, &models).await else {
        return;
    };
    let id = chat.session.session_id;
    let responses = chat
        .wait(ME, prompt(id, "hello world"), None)
        .await
        .unwrap();
    let by_name = |n: &str| responses.iter().find(|r| r.model_name == n).unwrap();

    assert_eq!(by_name("ok").status, "completed");
    let broken = by_name("broken");
    assert_eq!(broken.status, "failed");
    assert!(
        broken.error.as_deref().unwrap().contains("HTTP 500"),
        "{broken:?}"
    );
    // A 500 is retried once, then given up.
    assert_eq!(chat.provider.seen.requests_for("fail500").len(), 2);
    // A 429 is retried once and then answered.
    assert_eq!(by_name("flaky").status, "completed");
    assert_eq!(chat.provider.seen.requests_for("flaky429").len(), 2);
    // Broken off mid-stream: failed, and the text that arrived is kept.
    let cut = by_name("cut");
    assert_eq!(cut.status, "failed");
    assert_eq!(cut.response_text, "Answer to ");
    assert!(cut.error.is_some());
    // No usage from the provider: counted.
    let quiet = common::struct_json(by_name("quiet").token_usage.clone());
    assert!(quiet["prompt_tokens"].as_i64().unwrap() > 0);
    assert!(quiet["completion_tokens"].as_i64().unwrap() > 0);
    assert_eq!(
        quiet["total_tokens"].as_i64(),
        Some(
            quiet["prompt_tokens"].as_i64().unwrap() + quiet["completion_tokens"].as_i64().unwrap()
        )
    );
    // Stored as answered.
    let stored = chat.app.get(ME, id).await.unwrap().responses;
    assert_eq!(stored, responses);
}

async fn a_replay_returns_the_stored_answers_without_calling_a_model(backend: Backend) {
    let Some(chat) = chat(backend, &[("m-a", "echo"), ("m-b", "echo")]).await else {
        return;
    };
    let id = chat.session.session_id;
    let first = chat.wait(ME, prompt(id, "hi"), Some("k-1")).await.unwrap();
    let calls = chat.provider.seen.count();
    let counts = chat.app.counts().await;
    let again = chat.wait(ME, prompt(id, "hi"), Some("k-1")).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(chat.provider.seen.count(), calls, "a replay called a model");
    assert_eq!(chat.app.counts().await, counts);

    // The streaming form replays the same stored responses.
    let mut request = authed(prompt(id, "hi"), &token(ME));
    request
        .metadata_mut()
        .insert("idempotency-key", "k-1".parse().unwrap());
    let mut stream = chat.stream(request).await;
    let mut finished = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        if let Some(Event::Finished(r)) = event.event {
            finished.push(r);
        }
    }
    assert_eq!(finished, first);
    assert_eq!(chat.provider.seen.count(), calls);

    // The same key with another prompt is a conflict; another user's key
    // space is their own.
    let status = chat
        .wait(ME, prompt(id, "other"), Some("k-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("k-1"));
    let theirs = chat.app.create(OTHER, common::in_class(1)).await.unwrap();
    chat.wait(OTHER, prompt(theirs.session_id, "hi"), Some("k-1"))
        .await
        .unwrap();
}

async fn prompts_to_what_the_caller_cannot_see_write_nothing(backend: Backend) {
    let Some(chat) = chat(backend, &[("m-a", "echo")]).await else {
        return;
    };
    let mine = chat.session.session_id;
    let theirs = chat.app.create(OTHER, common::in_class(1)).await.unwrap();
    // Another user's session reads as a missing one.
    chat.refused(ME, prompt(theirs.session_id, "hi"), Code::NotFound)
        .await;
    chat.refused(ME, prompt(999_999, "hi"), Code::NotFound)
        .await;
    // A session model of another session (theirs) is not one of mine.
    let mut foreign = prompt(mine, "hi");
    foreign.session_model_ids = vec![theirs.models[0].session_model_id];
    chat.refused(ME, foreign, Code::NotFound).await;
    // Bad input.
    chat.refused(ME, prompt(mine, "   "), Code::InvalidArgument)
        .await;
    chat.refused(ME, prompt(mine, &"x".repeat(32_001)), Code::InvalidArgument)
        .await;
    chat.refused(ME, prompt(0, "hi"), Code::InvalidArgument)
        .await;
    let mut twice = prompt(mine, "hi");
    let m = chat.session.models[0].session_model_id;
    twice.session_model_ids = vec![m, m];
    chat.refused(ME, twice, Code::InvalidArgument).await;
    // Without a token.
    let status = chat
        .app
        .client()
        .await
        .send_prompt_and_wait(prompt(mine, "hi"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Over JSON, the same refusal.
    let reply = chat
        .app
        .http(
            "POST",
            &format!("/user/practice/sessions/{}/prompts", theirs.session_id),
            Some(&token(ME)),
            Some(r#"{"prompt_text":"hi"}"#),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(chat.provider.seen.count(), 0);
}

async fn a_client_that_goes_away_cancels_the_models(backend: Backend) {
    let Some(chat) = chat(backend, &[("m-a", "hang"), ("m-b", "hang")]).await else {
        return;
    };
    let id = chat.session.session_id;
    let mut stream = chat
        .stream(authed(prompt(id, "wait for it"), &token(ME)))
        .await;
    // Both models have sent their first word.
    let mut deltas = 0;
    while deltas < 2 {
        if let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event {
            deltas += 1;
        }
    }
    drop(stream);
    chat.provider
        .wait_for("both upstream connections closed", |s| {
            s.closed_early.load(std::sync::atomic::Ordering::SeqCst) == 2
        })
        .await;
    let stored = wait_until_settled(&chat.app, id).await;
    assert_eq!(stored.len(), 2);
    for r in stored {
        assert_eq!(r.status, "cancelled", "{r:?}");
        assert_eq!(r.response_text, "Answer ");
    }
}

/// The session's responses once none is in progress (bounded wait).
pub async fn wait_until_settled(app: &TestApp, session_id: i64) -> Vec<PracticeResponse> {
    for _ in 0..200 {
        let responses = app.get(ME, session_id).await.unwrap().responses;
        if responses.iter().all(|r| r.status != "in_progress") {
            return responses;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("responses stayed in progress");
}

#[tokio::test]
async fn an_invalid_models_file_stops_the_start_with_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    std::fs::write(
        &path,
        "[models.a]\nbase_url = \"http://h/v1\"\ntimeout = 5\n",
    )
    .unwrap();
    let err = common::start_error(&[
        ("PRACTICE_JWT_SECRET", common::SECRET.to_owned()),
        ("PRACTICE_MODELS_FILE", path.display().to_string()),
    ])
    .await;
    assert!(err.contains("line 3") && err.contains("timeout"), "{err}");
}

/// The JSON form of a stored response has every contract field.
pub fn assert_response_shape(r: &Value) {
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "response_id",
        "session_model_id",
        "session_id",
        "model_name",
        "prompt_text",
        "response_text",
        "created_at",
        "token_usage",
        "latency_ms",
        "status",
        "error",
    ] {
        assert!(keys.contains(&k), "{k} missing from {r}");
    }
}

on_both_backends!(
    every_model_answers_at_once_and_is_stored,
    each_model_sees_the_agent_examples_and_its_own_history,
    one_failing_model_does_not_fail_the_others,
    a_replay_returns_the_stored_answers_without_calling_a_model,
    prompts_to_what_the_caller_cannot_see_write_nothing,
    a_client_that_goes_away_cancels_the_models,
);
