//! Limits as clients meet them: oversized messages, load shedding, and
//! deadlines shorter than a slow request. "Slow" is made real by holding
//! SQLite's write lock from another connection.

use crate::common;

use std::time::{Duration, Instant};

use common::{Backend, authed, token};
use practice_service::proto::practice::v1::CreateSessionRequest;
use sqlx::Connection;
use tonic::Code;

/// Holds the database's write lock until dropped (or `release`d).
pub struct WriteLock(sqlx::SqliteConnection);

impl WriteLock {
    pub async fn take(database_url: &str) -> Self {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        WriteLock(conn)
    }

    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut self.0)
            .await
            .unwrap();
    }
}

/// A native gRPC call over h2c with a `grpc-timeout` header and no client
/// deadline; returns the `grpc-status` it gets.
async fn grpc_status_with_timeout(app: &common::TestApp, timeout: &str) -> String {
    let body = common::grpc_frame(&common::titled("slow"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client
        .post(format!(
            "{}/practice.v1.PracticeService/CreateSession",
            app.url()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", timeout)
        .header("authorization", format!("Bearer {}", token(1)))
        .body(body)
        .send()
        .await
        .unwrap();
    resp.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_grpc_messages_are_refused() {
    let app = app!(Backend::Sqlite, &[("PRACTICE_MAX_BODY_BYTES", "4096")]);
    let before = app.counts().await;
    let req = CreateSessionRequest {
        notes: Some("n".repeat(5000)),
        ..Default::default()
    };
    let status = app
        .client()
        .await
        .create_session(authed(req, &token(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(app.counts().await, before);
    app.client()
        .await
        .create_session(authed(common::titled("small"), &token(1)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_shorter_than_the_request_win() {
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "4000"),
            ("PRACTICE_REQUEST_TIMEOUT_MS", "8000")
        ]
    );
    let lock = WriteLock::take(&app.database_url).await;

    // gRPC: a 300 ms deadline in `grpc-timeout`. Sent over plain HTTP/2
    // (no client-side timer), so what is seen is the server's answer.
    let started = Instant::now();
    let status = grpc_status_with_timeout(&app, "300m").await;
    assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered near the deadline"
    );

    // JSON: grpc-timeout is forwarded, and the answer is 504.
    let r = app
        .http_with(
            "POST",
            "/user/practice/sessions",
            Some(&token(1)),
            Some("{}"),
            &[("grpc-timeout", "300m")],
        )
        .await;
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json()["code"], 4);

    lock.release().await;
    let counts = app.counts().await;
    assert_eq!(
        counts.sessions, 0,
        "a request past its deadline leaves nothing behind"
    );
    app.client()
        .await
        .create_session(authed(common::titled("after"), &token(1)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_request_timeout_applies_without_a_client_deadline() {
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_REQUEST_TIMEOUT_MS", "600"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "500"),
            ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "500"),
        ]
    );
    let lock = WriteLock::take(&app.database_url).await;
    let started = Instant::now();
    let status = app
        .client()
        .await
        .create_session(authed(common::titled("slow"), &token(1)))
        .await
        .unwrap_err();
    // The database gives up first (busy past its wait: UNAVAILABLE), or
    // the request deadline does; either way fast, and never INTERNAL.
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    lock.release().await;
    assert_eq!(app.counts().await.sessions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_at_once() {
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_MAX_IN_FLIGHT", "2"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "5000")
        ]
    );
    let lock = WriteLock::take(&app.database_url).await;
    // Two slow creates take both places.
    let mut slow = Vec::new();
    for i in 0..2 {
        let mut client = app.client().await;
        slow.push(tokio::spawn(async move {
            client
                .create_session(authed(common::titled(&format!("slow {i}")), &token(1)))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A third is refused straight away, over gRPC and over JSON.
    let started = Instant::now();
    let status = app
        .client()
        .await
        .create_session(authed(common::titled("shed"), &token(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let r = app
        .http(
            "POST",
            "/user/practice/sessions",
            Some(&token(1)),
            Some("{}"),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json()["code"], 8);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shedding doesn't queue"
    );
    // Health checks are never shed: a busy server is not a dead one.
    assert_eq!(app.http("GET", "/healthz", None, None).await.status, 200);
    lock.release().await;
    for t in slow {
        t.await.unwrap().expect("the admitted requests finish");
    }
    assert_eq!(app.counts().await.sessions, 2);
    app.client()
        .await
        .create_session(authed(common::titled("later"), &token(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = app!(Backend::Sqlite);
    let r = app.http("GET", "/healthz", None, None).await;
    let generated = r
        .header("x-request-id")
        .expect("a generated id")
        .to_string();
    assert!(!generated.is_empty());
    let r = app
        .http_with(
            "GET",
            "/user/practice/sessions/1",
            Some(&token(1)),
            None,
            &[("x-request-id", "client-abc")],
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("client-abc"));
    let mut req = authed(common::titled("id"), &token(1));
    req.metadata_mut()
        .insert("x-request-id", "grpc-123".parse().unwrap());
    let resp = app.client().await.create_session(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "grpc-123");
}

/// Sessions embed their few-shot examples: a create whose session would
/// not fit in one reply is refused before anything is committed, and
/// free-form objects are bounded where they come in.
async fn nothing_is_committed_that_can_not_be_sent(backend: Backend) {
    let app = app!(backend);
    const ME: i64 = 42;
    app.class(1, &[ME], &[("m", true)]).await;
    // 30 examples of 2 × 20,000 four-byte characters: about 4.8 MB.
    let big = "😀".repeat(20_000);
    let examples = practice_service::service::ExampleService::new(app.store.clone());
    let mut ids = Vec::new();
    for i in 0..30 {
        let e = practice_service::domain::NewExample {
            title: Some(format!("big {i}")),
            input_text: big.clone(),
            output_text: big.clone(),
            is_active: true,
            meta: Default::default(),
        };
        let user = practice_service::domain::UserId::new(ME).unwrap();
        ids.push(examples.create(user, e, None).await.unwrap().example_id);
    }
    app.agent(1, ME, Some(1), &ids).await;
    app.agent(2, ME, Some(1), &ids[..3]).await;
    let mut create = common::in_class(1);
    create.agent_id = Some(1);
    let status = app.refused(ME, create, Code::FailedPrecondition).await;
    assert!(status.message().contains("too large"), "{status:?}");
    // A smaller agent's session is created, and reads back whole.
    let mut create = common::in_class(1);
    create.agent_id = Some(2);
    let session = app.create(ME, create).await.unwrap();
    assert_eq!(app.get(ME, session.session_id).await.unwrap(), session);

    // meta over 16 KiB is a field violation.
    let meta = serde_json::json!({"blob": "x".repeat(17 * 1024)});
    let body = serde_json::json!({"input_text": "a", "output_text": "b", "meta": meta});
    let r = app
        .http(
            "POST",
            "/user/practice/examples",
            Some(&token(ME)),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.json()["details"][0]["field_violations"][0]["field"],
        "meta"
    );
}

on_both_backends!(nothing_is_committed_that_can_not_be_sent);
