//! What a long session costs one replica: with 600 answers of 64 KB stored,
//! 16 prompts at once on that session (each reading its history), and reads
//! of the session and of its pages, keep the server's peak RSS within 64
//! MiB of what it used before (read from `/proc`). "Before" is a server
//! that has already served 16 requests at once on a short session, so the
//! database connections and threads that any such burst opens are counted
//! there (about 2.5 MiB per SQLite connection), and what is measured is
//! what the long history adds.

use std::time::Duration;

use crate::common;

use common::llm::FakeProvider;
use common::process::spawn_server;
use common::{authed, class_message, token};
use practice_service::domain::UserId;
use practice_service::domain::conversation::ResponseStatus;
use practice_service::proto::practice::v1::catalog_service_client::CatalogServiceClient;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{
    CreateSessionRequest, GetSessionRequest, ListResponsesRequest, SendPromptRequest,
};
use practice_service::store::{Charge, PromptRows, ResponseOutcome};

const ME: i64 = 3;
const STORED: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_session_costs_bounded_memory() {
    let provider = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let models = provider.models_file(&[("m-echo", "echo")], dir.path());
    let server = spawn_server(dir.path(), &[("PRACTICE_MODELS_FILE", &models)]).await;
    let mut catalog = CatalogServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    catalog
        .upsert_class(authed(
            class_message(1, &[ME], &[("m-echo", true)]),
            &common::admin_token(),
        ))
        .await
        .unwrap();
    let mut client = PracticeServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let request = CreateSessionRequest {
        class_id: Some(1),
        ..Default::default()
    };
    let session = client
        .create_session(authed(request, &token(ME)))
        .await
        .unwrap()
        .into_inner();
    let model = (session.models[0].session_model_id, "m-echo".to_string());

    // 600 answers of 64,000 bytes, written beside the server.
    let store = server.store().await;
    let answer = "x".repeat(64_000);
    for i in 0..STORED {
        let mut tx = store.begin_write(1).await.unwrap();
        let ids = tx
            .insert_prompt(&PromptRows {
                user: UserId::new(ME).unwrap(),
                replica_id: "filler",
                session_id: session.session_id,
                prompt_text: &format!("question {i}"),
                now: practice_service::domain::now_micros(),
                models: std::slice::from_ref(&model),
                idempotency_key: None,
            })
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        let outcome = ResponseOutcome {
            status: ResponseStatus::Completed,
            prompt_text: format!("question {i}"),
            response_text: answer.clone(),
            error: None,
            token_usage: Default::default(),
            latency_ms: 1,
            first_byte_ms: Some(1),
            charge: Charge {
                subjects: [None, None],
                day: String::new(),
                model_name: String::new(),
                prompt_tokens: 0,
                completion_tokens: 0,
                cost_micros: None,
            },
        };
        let mut tx = store.begin_write(1).await.unwrap();
        assert!(tx.finish_response(ids.1[0], &outcome).await.unwrap());
        tx.commit().await.unwrap();
    }
    drop(store);
    let short = client
        .create_session(authed(CreateSessionRequest::default(), &token(ME)))
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let warm: Vec<_> = (0..16)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let request = GetSessionRequest { session_id: short };
                client
                    .get_session(authed(request, &token(ME)))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for w in warm {
        w.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = server.memory_mib("VmRSS");

    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut client = client.clone();
        let session_id = session.session_id;
        tasks.push(tokio::spawn(async move {
            let request = SendPromptRequest {
                session_id,
                prompt_text: format!("prompt {i}"),
                session_model_ids: vec![],
            };
            let reply = client
                .send_prompt_and_wait(authed(request, &token(ME)))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(reply.responses[0].status, "completed");
            let read = client
                .get_session(authed(GetSessionRequest { session_id }, &token(ME)))
                .await
                .unwrap()
                .into_inner();
            assert!(read.has_more_responses);
            let page = ListResponsesRequest {
                session_id,
                page_size: 100,
                page_token: String::new(),
            };
            let page = client
                .list_responses(authed(page, &token(ME)))
                .await
                .unwrap()
                .into_inner();
            assert!(!page.next_page_token.is_empty());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Each model was sent a bounded history, not 38 MB of it.
    for request in provider.seen.requests_for("echo") {
        assert!(
            request.to_string().len() < 64 * 1024,
            "a request of {} bytes",
            request.to_string().len()
        );
    }
    server.assert_peak_within(before, 64);
}
