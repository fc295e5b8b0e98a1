//! `idempotency-key` on CreateSession: replays, mismatches, per-user keys
//! and concurrent duplicates, on SQLite and PostgreSQL.

use crate::common;

use common::{Backend, authed, token};
use practice_service::proto::practice::v1::{CreateSessionRequest, Session};
use tonic::Code;

const ME: i64 = 42;

fn with_key(
    req: CreateSessionRequest,
    user: i64,
    key: &str,
) -> tonic::Request<CreateSessionRequest> {
    let mut r = authed(req, &token(user));
    r.metadata_mut()
        .insert("idempotency-key", key.parse().unwrap());
    r
}

async fn create_with_key(
    app: &common::TestApp,
    user: i64,
    req: CreateSessionRequest,
    key: &str,
) -> Result<Session, tonic::Status> {
    app.client()
        .await
        .create_session(with_key(req, user, key))
        .await
        .map(|r| r.into_inner())
}

async fn replay_returns_the_original(backend: Backend) {
    let app = app!(backend);
    let first = create_with_key(&app, ME, common::titled("a"), "key-1")
        .await
        .unwrap();
    let after_first = app.counts().await;
    let second = create_with_key(&app, ME, common::titled("a"), "key-1")
        .await
        .unwrap();
    assert_eq!(second, first);
    assert_eq!(app.counts().await, after_first, "a replay wrote nothing");
    assert_eq!(after_first.sessions, 1);
}

async fn same_key_different_request_conflicts(backend: Backend) {
    let app = app!(backend);
    create_with_key(&app, ME, common::titled("a"), "key-1")
        .await
        .unwrap();
    let before = app.counts().await;
    let status = create_with_key(&app, ME, common::titled("b"), "key-1")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains("key-1"),
        "names the key: {}",
        status.message()
    );
    assert_eq!(app.counts().await, before);
}

async fn keys_are_per_user(backend: Backend) {
    let app = app!(backend);
    let mine = create_with_key(&app, ME, common::titled("a"), "shared")
        .await
        .unwrap();
    let theirs = create_with_key(&app, 43, common::titled("a"), "shared")
        .await
        .unwrap();
    assert_ne!(mine.session_id, theirs.session_id);
    assert_eq!(theirs.user_id, 43);
}

async fn failed_request_does_not_burn_the_key(backend: Backend) {
    let app = app!(backend);
    let before = app.counts().await;
    let status = create_with_key(&app, ME, common::in_class(99), "k")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        app.counts().await,
        before,
        "the key is not kept when the create fails"
    );
    // Once the class exists, the same key and request go through.
    app.class(99, &[ME], &[("m", true)]).await;
    create_with_key(&app, ME, common::in_class(99), "k")
        .await
        .unwrap();
}

async fn bad_keys_are_invalid(backend: Backend) {
    let app = app!(backend);
    let before = app.counts().await;
    for key in ["x".repeat(256), "tab\tkey".to_string()] {
        let mut req = authed(common::titled("a"), &token(ME));
        req.metadata_mut()
            .insert("idempotency-key", key.parse().unwrap());
        let status = app.client().await.create_session(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{key:?}");
    }
    assert_eq!(app.counts().await, before);
    create_with_key(&app, ME, common::titled("a"), &"k".repeat(255))
        .await
        .unwrap();
}

async fn concurrent_duplicates_create_one_session(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("m1", true), ("m2", true), ("m3", true)])
        .await;
    let req = CreateSessionRequest {
        class_id: Some(3),
        title: Some("race".into()),
        ..Default::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client().await;
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            client
                .create_session(with_key(req, ME, "race-key"))
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(
            t.await
                .unwrap()
                .expect("every duplicate succeeds with the one session"),
        );
    }
    assert!(
        sessions.windows(2).all(|w| w[0] == w[1]),
        "all replies are the same session"
    );
    let counts = app.counts().await;
    assert_eq!(counts.sessions, 1);
    assert_eq!(counts.session_models, 3);
    assert_eq!(counts.idempotency_keys, 1);
}

/// CreateExample over JSON with a key; the status and the body.
async fn example_with_key(
    app: &common::TestApp,
    user: i64,
    key: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let r = app
        .http_with(
            "POST",
            "/user/practice/examples",
            Some(&token(user)),
            Some(body),
            &[("idempotency-key", key)],
        )
        .await;
    let status = r.status;
    (status, serde_json::from_str(&r.text).unwrap())
}

async fn example_count(app: &common::TestApp, user: i64) -> usize {
    let r = app
        .http("GET", "/user/practice/examples", Some(&token(user)), None)
        .await;
    r.json()["examples"].as_array().unwrap().len()
}

async fn create_example_honours_the_key(backend: Backend) {
    let app = app!(backend);
    let body = r#"{"input_text": "Fix: its raining", "output_text": "It is raining."}"#;
    let (status, first) = example_with_key(&app, 42, "ex-1", body).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = example_with_key(&app, 42, "ex-1", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first);
    assert_eq!(example_count(&app, 42).await, 1);
    // Another request with the same key is a conflict naming the key.
    let other = r#"{"input_text": "Fix: their here", "output_text": "They are here."}"#;
    let (status, err) = example_with_key(&app, 42, "ex-1", other).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["message"].as_str().unwrap().contains("ex-1"));
    assert_eq!(example_count(&app, 42).await, 1);
    // Keys are per user.
    let (status, theirs) = example_with_key(&app, 43, "ex-1", body).await;
    assert_eq!(status, 200);
    assert_ne!(theirs["example_id"], first["example_id"]);

    // Concurrent duplicates make one example.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let url = format!("{}/user/practice/examples", app.url());
            tokio::spawn(async move {
                common::http_client()
                    .post(url)
                    .bearer_auth(token(44))
                    .header("content-type", "application/json")
                    .header("idempotency-key", "ex-race")
                    .body(r#"{"input_text": "a", "output_text": "b"}"#)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for call in calls {
        let status = call.await.unwrap();
        assert!(status == 200 || status == 409, "{status}");
    }
    assert_eq!(example_count(&app, 44).await, 1);

    // Expired keys are deleted (the background task runs this sweep).
    let keys = app.counts().await.idempotency_keys;
    assert!(keys >= 3);
    let later = practice_service::domain::now_micros() + chrono::TimeDelta::seconds(1);
    assert_eq!(
        app.store.delete_expired_keys(later).await.unwrap() as i64,
        keys
    );
    assert_eq!(app.counts().await.idempotency_keys, 0);
}

on_both_backends!(
    create_example_honours_the_key,
    replay_returns_the_original,
    same_key_different_request_conflicts,
    keys_are_per_user,
    failed_request_does_not_burn_the_key,
    bad_keys_are_invalid,
    concurrent_duplicates_create_one_session,
);
