//! Usage limits and fairness, against the OpenAI-wire test server: one
//! user's flood doesn't fail another user's prompts, a spent daily budget is
//! a 429 with RetryInfo and QuotaFailure that writes nothing (on every
//! protocol, and across replicas on one PostgreSQL), the fan-out cap, and
//! streams holding their admission slot while they stream.

use std::time::Duration;

use crate::common;
use crate::conversation::{Chat, ME, chat_with, prompt};

use common::{Backend, authed, token};
use practice_service::proto::practice::v1::prompt_event::Event;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    a_spent_budget_is_refused_with_retry_info_and_writes_nothing,
    a_prompt_may_ask_only_so_many_models,
    answers_cost_what_the_prices_say_and_a_cost_budget_holds,
    a_session_without_a_class_charges_its_user_alone,
);

const OTHER: i64 = ME + 1;

/// `ME`'s usage today, as the user reads it.
async fn my_usage(chat: &Chat) -> Value {
    let usage = chat
        .app
        .http("GET", "/user/practice/usage", Some(&token(ME)), None)
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    usage.json()
}

/// Class 1's usage today, as an admin reads it.
async fn class_usage(chat: &Chat) -> Value {
    let path = "/internal/practice/classes/1/usage";
    let usage = chat
        .app
        .http("GET", path, Some(&common::admin_token()), None)
        .await;
    assert_eq!(usage.status, 200, "{}", usage.text);
    usage.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_flood_does_not_fail_another_users_prompts() {
    let Some(chat) = chat_with(
        Backend::Sqlite,
        &[("m-slow", "slow")],
        "max_concurrency = 2",
        // First come first served, the other user's prompt would wait
        // behind the flood's 16 in flight (about 5 s) and fail "busy".
        &[("PRACTICE_PROMPT_TIMEOUT_MS", "3000")],
    )
    .await
    else {
        return;
    };
    let flooded = chat.session.session_id;
    let mine = chat.app.create(OTHER, common::in_class(1)).await.unwrap();
    let mut flood = Vec::new();
    for i in 0..200 {
        let client = chat.app.client().await;
        flood.push(tokio::spawn(async move {
            let mut client = client;
            let request = authed(prompt(flooded, &format!("flood {i}")), &token(ME));
            client.send_prompt_and_wait(request).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The other user's prompts, one after another, while the flood waits.
    for i in 0..3 {
        let answered = chat
            .wait(OTHER, prompt(mine.session_id, &format!("mine {i}")), None)
            .await
            .unwrap();
        assert_eq!(answered[0].status, "completed", "{answered:?}");
    }
    let (mut completed, mut refused) = (0, 0);
    for f in flood {
        match f.await.unwrap() {
            Ok(reply) => {
                // The flood's own prompts may wait past their deadline.
                let r = &reply.get_ref().responses[0];
                let late = r.error().contains("busy") || r.error().contains("in time");
                assert!(r.status == "completed" || late, "{r:?}");
                completed += usize::from(r.status == "completed");
            }
            // The flood's own prompts may outlive their deadline waiting.
            Err(status) if status.code() == Code::DeadlineExceeded => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                let details = status.get_error_details();
                let quota = details.quota_failure().expect("says which limit");
                assert_eq!(quota.violations[0].subject, format!("user:{ME}"));
                assert!(details.retry_info().is_some());
                refused += 1;
            }
        }
    }
    assert!(completed > 0, "the flood's own share was answered");
    assert!(refused > 0, "the flood was limited");
}

async fn a_spent_budget_is_refused_with_retry_info_and_writes_nothing(backend: Backend) {
    let Some(chat) = chat_with(
        backend,
        &[("m-a", "echo")],
        "",
        &[("PRACTICE_USER_TOKENS_PER_DAY", "30")],
    )
    .await
    else {
        return;
    };
    let id = chat.session.session_id;
    // Each answer of "hi" costs 11 + 3 tokens: the third passes 30.
    for _ in 0..3 {
        chat.wait(ME, prompt(id, "hi"), None).await.unwrap();
    }
    let before = chat.app.counts().await;
    let calls = chat.provider.seen.count();
    let path = format!("/user/practice/sessions/{id}/prompts");
    let refused = chat
        .app
        .http(
            "POST",
            &path,
            Some(&token(ME)),
            Some(r#"{"prompt_text": "hi"}"#),
        )
        .await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let body = refused.json();
    assert_eq!(body["code"], 8);
    let details = body["details"].as_array().unwrap();
    let quota = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure")
        .unwrap();
    assert_eq!(quota["violations"][0]["subject"], format!("user:{ME}"));
    assert_eq!(quota["violations"][0]["description"], "tokens per day");
    assert!(
        details
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
    );
    // Connect and gRPC say the same.
    let connect = chat
        .app
        .http_with(
            "POST",
            "/practice.v1.PracticeService/SendPromptAndWait",
            Some(&token(ME)),
            Some(&json!({"sessionId": id.to_string(), "promptText": "hi"}).to_string()),
            &[("connect-protocol-version", "1")],
        )
        .await;
    assert_eq!(connect.status, 429, "{}", connect.text);
    assert_eq!(connect.json()["code"], "resource_exhausted");
    assert!(connect.header("retry-after").is_some());
    let grpc = chat.wait(ME, prompt(id, "hi"), None).await.unwrap_err();
    assert_eq!(grpc.code(), Code::ResourceExhausted);
    assert_eq!(
        chat.app.counts().await,
        before,
        "a refused prompt wrote rows"
    );
    assert_eq!(
        chat.provider.seen.count(),
        calls,
        "a refused prompt called a model"
    );

    // The caller's usage, and the class's for an admin.
    let usage = my_usage(&chat).await;
    assert_eq!(usage["subject"], format!("user:{ME}"));
    assert_eq!(usage["total_tokens"], 42);
    assert_eq!(usage["models"][0]["model_name"], "m-a");
    assert_eq!(usage["models"][0]["answers"], 3);
    assert_eq!(usage["limits"]["tokens_per_day"], 30);
    let class = class_usage(&chat).await;
    assert_eq!(class["total_tokens"], 42);
    let denied = chat
        .app
        .http(
            "GET",
            "/internal/practice/classes/1/usage",
            Some(&token(ME)),
            None,
        )
        .await;
    assert_eq!(denied.status, 403);
    // Another user is not held back by this one's budget.
    let theirs = chat.app.create(OTHER, common::in_class(1)).await.unwrap();
    chat.wait(OTHER, prompt(theirs.session_id, "hi"), None)
        .await
        .unwrap();
}

async fn a_prompt_may_ask_only_so_many_models(backend: Backend) {
    let Some(chat) = chat_with(
        backend,
        &[("m-a", "echo"), ("m-b", "echo"), ("m-c", "echo")],
        "",
        &[("PRACTICE_MODELS_PER_PROMPT", "2")],
    )
    .await
    else {
        return;
    };
    let id = chat.session.session_id;
    let before = chat.app.counts().await;
    let status = chat.wait(ME, prompt(id, "all"), None).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let details = status.get_error_details();
    assert_eq!(
        details.quota_failure().unwrap().violations[0].description,
        "models per prompt"
    );
    assert_eq!(chat.app.counts().await, before);
    let two: Vec<i64> = chat.session.models[..2]
        .iter()
        .map(|m| m.session_model_id)
        .collect();
    let mut asked = prompt(id, "two");
    asked.session_model_ids = two;
    assert_eq!(chat.wait(ME, asked, None).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_hold_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(Backend::Postgres, &dir).await else {
        return;
    };
    let provider = common::llm::FakeProvider::start().await;
    let models = provider.models_file(&[("m-a", "echo")], dir.path());
    let env = [
        ("PRACTICE_MODELS_FILE", models.as_str()),
        ("PRACTICE_USER_TOKENS_PER_DAY", "30"),
    ];
    let a = common::spawn_app_at(url.clone(), tempfile::tempdir().unwrap(), &env).await;
    let b = common::spawn_app_at(url, tempfile::tempdir().unwrap(), &env).await;
    a.class(1, &[ME], &[("m-a", true)]).await;
    let id = a.create(ME, common::in_class(1)).await.unwrap().session_id;
    // Three answers of 14 tokens, on alternating replicas, spend the budget
    // for both.
    for (i, app) in [&a, &b, &a].into_iter().enumerate() {
        let request = authed(prompt(id, "hi"), &token(ME));
        let reply = app.client().await.send_prompt_and_wait(request).await;
        assert!(reply.is_ok(), "prompt {i}: {reply:?}");
    }
    for app in [&a, &b] {
        let request = authed(prompt(id, "hi"), &token(ME));
        let status = app
            .client()
            .await
            .send_prompt_and_wait(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_holds_its_admission_slot_while_it_streams() {
    let Some(chat) = chat_with(
        Backend::Sqlite,
        &[("m-long", "long")],
        "",
        &[("PRACTICE_MAX_IN_FLIGHT", "2")],
    )
    .await
    else {
        return;
    };
    let id = chat.session.session_id;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut events = chat.stream(authed(prompt(id, "go"), &token(ME))).await;
        loop {
            if let Some(Event::Delta(_)) = events.message().await.unwrap().unwrap().event {
                break;
            }
        }
        streams.push(events);
    }
    // Both slots are taken by the streams: a third request is shed.
    let shed = chat.app.get(ME, id).await.unwrap_err();
    assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
    drop(streams);
    let mut back: Option<Value> = None;
    for _ in 0..100 {
        if chat.app.get(ME, id).await.is_ok() {
            back = Some(Value::Bool(true));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back.is_some(), "slots come back when the streams end");
}

async fn answers_cost_what_the_prices_say_and_a_cost_budget_holds(backend: Backend) {
    let Some(chat) = chat_with(
        backend,
        &[("m-a", "echo")],
        "input_price_per_million = 1.0\noutput_price_per_million = 2.0",
        &[("PRACTICE_USER_COST_PER_DAY_USD", "0.00003")],
    )
    .await
    else {
        return;
    };
    let id = chat.session.session_id;
    // 11 prompt tokens at $1/M and 3 completion tokens at $2/M: $0.000017.
    let first = chat.wait(ME, prompt(id, "hi"), None).await.unwrap();
    assert!(
        (first[0].cost_usd.unwrap() - 0.000017).abs() < 1e-12,
        "{first:?}"
    );
    chat.wait(ME, prompt(id, "hi"), None).await.unwrap();
    let before = chat.app.counts().await;
    let refused = chat.wait(ME, prompt(id, "hi"), None).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    let details = refused.get_error_details();
    assert_eq!(
        details.quota_failure().unwrap().violations[0].description,
        "cost per day"
    );
    assert_eq!(chat.app.counts().await, before);
    let usage = my_usage(&chat).await;
    assert!(
        (usage["total_cost_usd"].as_f64().unwrap() - 0.000034).abs() < 1e-12,
        "{usage}"
    );
    assert!((usage["limits"]["cost_per_day_usd"].as_f64().unwrap() - 0.00003).abs() < 1e-12);
}

/// An answer's end and its charge are one statement with the class's day
/// as a second, optional subject: without a class, only the user's counts.
async fn a_session_without_a_class_charges_its_user_alone(backend: Backend) {
    let Some(chat) = chat_with(
        backend,
        &[("m-a", "echo")],
        "",
        &[("PRACTICE_DEFAULT_MODELS", "m-a")],
    )
    .await
    else {
        return;
    };
    let classless = chat.app.create(ME, Default::default()).await.unwrap();
    assert_eq!(classless.class_id, None);
    let answered = chat
        .wait(ME, prompt(classless.session_id, "hi"), None)
        .await
        .unwrap();
    assert_eq!(answered[0].status, "completed", "{answered:?}");
    let mine = my_usage(&chat).await;
    assert_eq!(mine["total_tokens"], 14, "{mine}");
    assert_eq!(mine["models"][0]["answers"], 1, "{mine}");
    let class = class_usage(&chat).await;
    assert_eq!(class["total_tokens"], 0, "{class}");
}
