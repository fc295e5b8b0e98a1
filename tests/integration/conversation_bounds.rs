//! The conversation's bounds, against the OpenAI-wire test server, on both
//! backends: long sessions read and write in pages, a client that never
//! reads can't hold a model past the deadline, only allowed parameters
//! reach a provider, deleting a session stops its answers, and a rude
//! provider can't smuggle a second choice or absurd counts into a row.

use std::collections::HashSet;
use std::time::Duration;

use crate::common;
use crate::conversation::{ME, chat_with, prompt};

use common::{Backend, authed, grpc_frame, token};
use practice_service::proto::practice::v1::prompt_event::Event;
use serde_json::{Value, json};

on_both_backends!(
    a_long_session_reads_and_writes_in_pages,
    a_client_that_never_reads_frees_the_model_at_the_deadline,
    only_allowed_parameters_reach_the_provider,
    deleting_a_session_stops_its_answers,
    a_rude_provider_cannot_spoil_the_row,
);

async fn a_long_session_reads_and_writes_in_pages(backend: Backend) {
    let flood = [("PRACTICE_USER_PROMPTS_PER_MINUTE", "1000")];
    let Some(chat) = chat_with(backend, &[("m-big", "big")], "", &flood).await else {
        return;
    };
    let id = chat.session.session_id;
    // 200 answers of 64,000 bytes: 12.8 MB of text on one session.
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = chat.app.client().await;
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            for i in 0..25 {
                let request = authed(prompt(id, &format!("q{worker}-{i}")), &token(ME));
                let reply = client.send_prompt_and_wait(request).await.unwrap();
                assert_eq!(reply.into_inner().responses[0].status, "completed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // GetSession on JSON and gRPC: the newest that fit, and "more".
    let path = format!("/user/practice/sessions/{id}");
    let got = chat.app.http("GET", &path, Some(&token(ME)), None).await;
    assert_eq!(got.status, 200, "{}", &got.text[..got.text.len().min(300)]);
    let session = got.json();
    let newest = session["responses"].as_array().unwrap();
    assert!(!newest.is_empty() && newest.len() <= 20, "{}", newest.len());
    assert_eq!(session["has_more_responses"], true);
    assert_eq!(newest[0]["response_text"].as_str().unwrap().len(), 64_000);
    let ids: Vec<i64> = newest
        .iter()
        .map(|r| r["response_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    let grpc = chat.app.get(ME, id).await.unwrap();
    assert_eq!(grpc.responses.len(), newest.len());
    assert!(grpc.has_more_responses);

    // A rename answers with the session, and fits.
    let renamed = chat
        .app
        .http(
            "PATCH",
            &path,
            Some(&token(ME)),
            Some(r#"{"title": "long"}"#),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json()["title"], "long");

    // ListResponses pages through all 200, oldest first, each once; a
    // prompt sent after the first page is not in this listing.
    let mut seen = Vec::new();
    let mut token_ = String::new();
    let mut pages = 0;
    loop {
        let q = format!("{path}/responses?page_size=100&page_token={token_}");
        let page = chat.app.http("GET", &q, Some(&token(ME)), None).await;
        assert_eq!(
            page.status,
            200,
            "{}",
            &page.text[..page.text.len().min(300)]
        );
        assert!(
            page.text.len() < 4 * 1024 * 1024,
            "{} bytes",
            page.text.len()
        );
        let page = page.json();
        seen.extend(
            page["responses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["response_id"].as_i64().unwrap()),
        );
        if pages == 0 {
            chat.wait(ME, prompt(id, "one more"), None).await.unwrap();
        }
        pages += 1;
        token_ = page["next_page_token"].as_str().unwrap().to_owned();
        if token_.is_empty() {
            break;
        }
        assert!(pages < 50, "paging does not end");
    }
    assert_eq!(seen.len(), 200, "{pages} pages");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(pages > 2, "a page is cut by size too: {pages} pages");

    // Another user's session id is missing, and a forged token is refused.
    let other = chat
        .app
        .http(
            "GET",
            &format!("{path}/responses"),
            Some(&token(ME + 100)),
            None,
        )
        .await;
    assert_eq!(other.status, 404);
    let forged = chat
        .app
        .http(
            "GET",
            &format!("{path}/responses?page_token=nope"),
            Some(&token(ME)),
            None,
        )
        .await;
    assert_eq!(forged.status, 400);
}

/// A raw HTTP/2 client with a 16-byte stream window that sends a prompt and
/// never reads the reply; returns the connection to keep it open.
async fn open_without_reading(chat: &crate::conversation::Chat, text: &str) -> impl Drop {
    let tcp = tokio::net::TcpStream::connect(chat.app.addr).await.unwrap();
    let (mut h2, connection) = h2::client::Builder::new()
        .initial_window_size(16)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::post(format!(
        "http://{}/practice.v1.PracticeService/SendPrompt",
        chat.app.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {}", token(ME)))
    .body(())
    .unwrap();
    let (reply, mut body) = h2.send_request(request, false).unwrap();
    let frame = grpc_frame(&prompt(chat.session.session_id, text));
    body.send_data(frame.into(), true).unwrap();
    // The head arrives; the body is never read.
    let reply = reply.await.unwrap();
    assert_eq!(reply.status(), 200);
    struct Held {
        driver: tokio::task::JoinHandle<()>,
        _h2: h2::client::SendRequest<bytes::Bytes>,
        _body: h2::RecvStream,
    }
    impl Drop for Held {
        fn drop(&mut self) {
            self.driver.abort();
        }
    }
    Held {
        driver,
        _h2: h2,
        _body: reply.into_body(),
    }
}

async fn a_client_that_never_reads_frees_the_model_at_the_deadline(backend: Backend) {
    let Some(chat) = chat_with(
        backend,
        &[("m-t", "trickle")],
        "max_concurrency = 1",
        &[("PRACTICE_PROMPT_TIMEOUT_MS", "2000")],
    )
    .await
    else {
        return;
    };
    let held = open_without_reading(&chat, "talk forever").await;
    // Past the deadline the row is failed, the upstream request closed.
    let mut row = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = chat.app.get(ME, chat.session.session_id).await.unwrap();
        if let Some(r) = s.responses.first().filter(|r| r.status != "in_progress") {
            row = Some(r.clone());
            break;
        }
    }
    let row = row.expect("the answer ends although its client never reads");
    assert_eq!(row.status, "failed");
    assert!(row.error().contains("did not finish in time"), "{row:?}");
    chat.provider
        .wait_for("the upstream request closed", |s| {
            s.closed_early.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await;
    // The model's one slot is free: another user's prompt is answered
    // while the first client still holds its connection.
    let other = chat.app.create(ME + 1, common::in_class(1)).await.unwrap();
    let answered = chat
        .wait(ME + 1, prompt(other.session_id, "hello"), None)
        .await
        .unwrap();
    assert_eq!(answered[0].status, "completed", "{answered:?}");
    drop(held);
}

async fn only_allowed_parameters_reach_the_provider(backend: Backend) {
    let Some(chat) = chat_with(
        backend,
        &[("m-a", "echo")],
        "params = [\"temperature\", \"max_tokens\", \"reasoning_effort\"]\nmax_tokens = 4096",
        &[("PRACTICE_HISTORY_CHARS", "1000")],
    )
    .await
    else {
        return;
    };
    let id = chat.session.session_id;
    let path = format!("/user/practice/sessions/{id}/settings");
    for (params, field) in [
        (json!({"n": 128}), "generation_params.n"),
        (json!({"store": true}), "generation_params.store"),
        (
            json!({"service_tier": "priority"}),
            "generation_params.service_tier",
        ),
        (json!({"top_p": 0.5}), "generation_params.top_p"),
        (json!({"max_tokens": 5000}), "generation_params.max_tokens"),
        (json!({"temperature": 9}), "generation_params.temperature"),
    ] {
        let before = chat.app.counts().await;
        let was = chat.app.get(ME, id).await.unwrap().updated_at;
        let body = json!({"generation_params": params}).to_string();
        let refused = chat
            .app
            .http("PATCH", &path, Some(&token(ME)), Some(&body))
            .await;
        assert_eq!(refused.status, 400, "{params}: {}", refused.text);
        let detail = &refused.json()["details"][0];
        assert_eq!(
            detail["field_violations"][0]["field"], field,
            "{}",
            refused.text
        );
        assert_eq!(chat.app.counts().await, before);
        assert_eq!(
            chat.app.get(ME, id).await.unwrap().updated_at,
            was,
            "{params} wrote"
        );
    }
    let ok = json!({"generation_params": {"temperature": 0.5, "max_tokens": 4096, "reasoning_effort": "low"}});
    let set = chat
        .app
        .http("PATCH", &path, Some(&token(ME)), Some(&ok.to_string()))
        .await;
    assert_eq!(set.status, 200, "{}", set.text);

    // Few-shot examples share the history budget: of three 400-character
    // examples, the first two fit in 1,000 characters.
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({"input_text": format!("{i}{:a<199}", ""), "output_text": format!("{:b<200}", "")});
        let made = chat
            .app
            .http(
                "POST",
                "/user/practice/examples",
                Some(&token(ME)),
                Some(&body.to_string()),
            )
            .await;
        ids.push(made.json()["example_id"].as_i64().unwrap());
    }
    let body = json!({"few_shot_example_ids": ids}).to_string();
    assert_eq!(
        chat.app
            .http("PATCH", &path, Some(&token(ME)), Some(&body))
            .await
            .status,
        200
    );
    chat.wait(ME, prompt(id, "go"), None).await.unwrap();
    let sent = chat.provider.seen.requests_for("echo").pop().unwrap();
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["reasoning_effort"], "low");
    let messages: Vec<&Value> = sent["messages"].as_array().unwrap().iter().collect();
    // system, two example turns (4 messages), the prompt.
    assert_eq!(messages.len(), 6, "{messages:?}");
    assert!(messages[1]["content"].as_str().unwrap().starts_with('0'));
    assert!(messages[3]["content"].as_str().unwrap().starts_with('1'));

    // An agent whose parameters a model doesn't allow can't start a session.
    chat.app
        .agent_with_params(81, ME, Some(1), &[], json!({"n": 4}))
        .await;
    let before = chat.app.counts().await;
    let asked = practice_service::proto::practice::v1::CreateSessionRequest {
        agent_id: Some(81),
        ..common::in_class(1)
    };
    let refused = chat.app.create(ME, asked).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("generation_params.n"),
        "{refused:?}"
    );
    assert_eq!(chat.app.counts().await, before);
}

async fn deleting_a_session_stops_its_answers(backend: Backend) {
    let Some(chat) = chat_with(backend, &[("m-a", "long"), ("m-b", "long")], "", &[]).await else {
        return;
    };
    let id = chat.session.session_id;
    let mut events = chat.stream(authed(prompt(id, "go"), &token(ME))).await;
    let mut deltas = 0;
    while deltas < 2 {
        if let Some(Event::Delta(_)) = events.message().await.unwrap().unwrap().event {
            deltas += 1;
        }
    }
    chat.app.delete(ME, id).await.unwrap();
    let mut ends = Vec::new();
    while let Some(event) = events.message().await.unwrap() {
        match event.event.unwrap() {
            Event::Finished(r) => panic!("a deleted session's answer completed: {r:?}"),
            Event::Failed(r) => ends.push((r.status, r.error.unwrap_or_default())),
            _ => {}
        }
    }
    assert_eq!(ends.len(), 2, "{ends:?}");
    for (status, error) in &ends {
        assert_eq!(status, "cancelled");
        assert!(error.contains("deleted"), "{error}");
    }
    chat.provider
        .wait_for("both upstream requests closed", |s| {
            s.closed_early.load(std::sync::atomic::Ordering::SeqCst) == 2
        })
        .await;
    assert_eq!(chat.app.counts().await.responses, 0);
}

async fn a_rude_provider_cannot_spoil_the_row(backend: Backend) {
    let Some(chat) = chat_with(backend, &[("m-r", "rude")], "", &[]).await else {
        return;
    };
    let r = chat
        .wait(ME, prompt(chat.session.session_id, "hi"), None)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(r.status, "completed");
    assert_eq!(r.response_text, "Answer to hi.");
    let usage = common::struct_json(r.token_usage);
    // Struct numbers are doubles: i64::MAX reads as 2^63.
    assert!(
        usage["prompt_tokens"].as_f64().unwrap() >= 9.2e18,
        "{usage}"
    );
    assert_eq!(usage["completion_tokens"], 0);
    assert_eq!(usage["total_tokens"], usage["prompt_tokens"]);
    let unique: HashSet<_> = chat
        .provider
        .seen
        .requests_for("rude")
        .iter()
        .map(|r| r["messages"].to_string())
        .collect();
    assert_eq!(unique.len(), 1);
}
