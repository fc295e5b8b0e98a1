//! Answers that outlive their server: the real binary killed with SIGKILL
//! or stopped with SIGTERM mid-answer, two replicas on one PostgreSQL where
//! one dies, and the memory one replica needs for a long session. The
//! models are the OpenAI-wire test server's (`common::llm`), which runs in
//! the test process and so outlives every server.

use std::time::Duration;

use crate::common;

use common::llm::FakeProvider;
use common::process::{ServerProcess, spawn_server};
use common::{authed, class_message, token};
use practice_service::proto::practice::v1::catalog_service_client::CatalogServiceClient;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{
    CreateSessionRequest, GetSessionRequest, PracticeResponse, SendPromptRequest,
    prompt_event::Event,
};
use tonic::transport::Channel;

const ME: i64 = 5;

async fn client(server: &ServerProcess) -> PracticeServiceClient<Channel> {
    PracticeServiceClient::connect(server.url.clone())
        .await
        .unwrap()
}

/// A class of `ME` with these models, and a session in it; its id.
async fn session(server: &ServerProcess, models: &[&str]) -> i64 {
    let mut catalog = CatalogServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let models: Vec<(&str, bool)> = models.iter().map(|m| (*m, true)).collect();
    catalog
        .upsert_class(authed(
            class_message(1, &[ME], &models),
            &common::admin_token(),
        ))
        .await
        .unwrap();
    let request = CreateSessionRequest {
        class_id: Some(1),
        ..Default::default()
    };
    client(server)
        .await
        .create_session(authed(request, &token(ME)))
        .await
        .unwrap()
        .into_inner()
        .session_id
}

fn prompt(session_id: i64, text: &str, key: Option<&str>) -> tonic::Request<SendPromptRequest> {
    let mut request = authed(
        SendPromptRequest {
            session_id,
            prompt_text: text.into(),
            session_model_ids: vec![],
        },
        &token(ME),
    );
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("idempotency-key", key.parse().unwrap());
    }
    request
}

/// Reads the stream until `n` text deltas arrived.
async fn deltas(
    stream: &mut tonic::Streaming<practice_service::proto::practice::v1::PromptEvent>,
    n: usize,
) {
    let mut seen = 0;
    while seen < n {
        let event = stream.message().await.unwrap().expect("the stream goes on");
        if let Some(Event::Delta(_)) = event.event {
            seen += 1;
        }
    }
}

/// The session's responses once none is in progress (a bounded wait).
async fn settled(server: &ServerProcess, session_id: i64) -> Vec<PracticeResponse> {
    let mut client = client(server).await;
    for _ in 0..200 {
        let session = client
            .get_session(authed(GetSessionRequest { session_id }, &token(ME)))
            .await
            .unwrap()
            .into_inner();
        if !session.responses.is_empty()
            && session.responses.iter().all(|r| r.status != "in_progress")
        {
            return session.responses;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("answers stayed in progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_interrupted_answers_with_their_text() {
    let provider = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let models = provider.models_file(&[("m-long", "long")], dir.path());
    let env = [
        ("PRACTICE_MODELS_FILE", models.as_str()),
        ("PRACTICE_LEASE_MS", "1000"),
    ];
    let server = spawn_server(dir.path(), &env).await;
    let id = session(&server, &["m-long"]).await;
    let mut events = client(&server)
        .await
        .send_prompt(prompt(id, "go", Some("crash-1")))
        .await
        .unwrap()
        .into_inner();
    // 100 ms a word: the text is offered after 1 s and the replica's
    // writer saves offers each second, so past 3 s one save happened.
    deltas(&mut events, 32).await;
    server.signal("-KILL");
    drop(server);

    let server = spawn_server(dir.path(), &env).await;
    let rows = settled(&server, id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "failed");
    assert_eq!(rows[0].error(), "interrupted");
    assert!(
        rows[0]
            .response_text
            .starts_with("w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 "),
        "the text that arrived is kept: {:?}",
        rows[0].response_text
    );

    // The key replays the stored outcome, without calling the model.
    let calls = provider.seen.count();
    let mut replay = client(&server)
        .await
        .send_prompt(prompt(id, "go", Some("crash-1")))
        .await
        .unwrap()
        .into_inner();
    let mut ends = Vec::new();
    while let Some(event) = replay.message().await.unwrap() {
        if let Some(Event::Failed(r)) = event.event {
            ends.push(r);
        }
    }
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].error(), "interrupted");
    assert_eq!(provider.seen.count(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_short_answers_finish_and_interrupts_the_rest() {
    let provider = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let models = provider.models_file(&[("m-slow", "slow"), ("m-long", "long")], dir.path());
    let mut server = spawn_server(
        dir.path(),
        &[
            ("PRACTICE_MODELS_FILE", &models),
            ("PRACTICE_SHUTDOWN_GRACE_MS", "1500"),
        ],
    )
    .await;
    let id = session(&server, &["m-slow", "m-long"]).await;
    let mut events = client(&server)
        .await
        .send_prompt(prompt(id, "one two", None))
        .await
        .unwrap()
        .into_inner();
    deltas(&mut events, 2).await;
    server.signal("-TERM");
    // The stream ends with both outcomes: the slow model's answer (4 words,
    // 150 ms apart) finishes within the grace, the long one is interrupted.
    let (mut finished, mut failed) = (Vec::new(), Vec::new());
    while let Ok(Some(event)) = events.message().await {
        match event.event {
            Some(Event::Finished(r)) => finished.push(r),
            Some(Event::Failed(r)) => failed.push(r),
            _ => {}
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("exits after the grace")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(finished.len(), 1, "{finished:?} {failed:?}");
    assert_eq!(finished[0].model_name, "m-slow");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].error(), "interrupted");

    // As stored: the same, with the long answer's text so far.
    let server = spawn_server(dir.path(), &[("PRACTICE_MODELS_FILE", &models)]).await;
    let rows = settled(&server, id).await;
    let long = rows.iter().find(|r| r.model_name == "m-long").unwrap();
    assert_eq!(
        (long.status.as_str(), long.error()),
        ("failed", "interrupted")
    );
    assert!(long.response_text.starts_with("w0 "), "{long:?}");
    let slow = rows.iter().find(|r| r.model_name == "m-slow").unwrap();
    assert_eq!(slow.status, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_dying_leaves_the_others_answers_live() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(common::Backend::Postgres, &dir).await else {
        return;
    };
    let provider = FakeProvider::start().await;
    let models = provider.models_file(&[("m-long", "long")], dir.path());
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("PRACTICE_MODELS_FILE", models.as_str()),
        ("PRACTICE_LEASE_MS", "1000"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = spawn_server(dir_a.path(), &env).await;
    let b = spawn_server(dir_b.path(), &env).await;
    let id = session(&a, &["m-long"]).await;
    let mut on_b = client(&b)
        .await
        .send_prompt(prompt(id, "on b", None))
        .await
        .unwrap()
        .into_inner();
    let mut on_a = client(&a)
        .await
        .send_prompt(prompt(id, "on a", None))
        .await
        .unwrap()
        .into_inner();
    deltas(&mut on_a, 3).await;
    a.signal("-KILL");
    drop(a);
    // B sweeps A's answer once A's lease runs out (three lease periods
    // pass while B's answer streams), and B's own answer completes.
    let mut ends = Vec::new();
    while let Some(event) = on_b.message().await.unwrap() {
        match event.event {
            Some(Event::Finished(r)) => ends.push(("finished", r)),
            Some(Event::Failed(r)) => ends.push(("failed", r)),
            _ => {}
        }
    }
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].0, "finished", "{ends:?}");
    let rows = settled(&b, id).await;
    let from_a = rows.iter().find(|r| r.prompt_text == "on a").unwrap();
    assert_eq!(
        (from_a.status.as_str(), from_a.error()),
        ("failed", "interrupted")
    );
    let from_b = rows.iter().find(|r| r.prompt_text == "on b").unwrap();
    assert_eq!(from_b.status, "completed");
    assert_eq!(from_b.response_text.split(' ').count(), 101);
}
