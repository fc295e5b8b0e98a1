//! PostgreSQL goes away under load and comes back: requests fail fast with
//! UNAVAILABLE (or DEADLINE_EXCEEDED), readiness flips, the service
//! recovers by itself, and no create is half-written.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{authed, pg, token};
use practice_service::proto::practice::v1::CreateSessionRequest;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn grpc_health(app: &common::TestApp) -> i32 {
    let channel = tonic::transport::Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: "practice.v1.PracticeService".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_and_recovery() {
    let cluster = match pg::Cluster::start() {
        Ok(c) => c,
        Err(e) => return common::skip("the PostgreSQL outage test", &e),
    };
    let url = pg::create_database(&cluster.url("postgres")).await;
    let app = common::spawn_app_at(
        url,
        tempfile::tempdir().unwrap(),
        &[
            ("PRACTICE_REQUEST_TIMEOUT_MS", "3000"),
            ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "1000"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    app.class(1, &[1, 2, 3, 4], &[("a", true), ("b", true), ("c", true)])
        .await;
    app.knowledge(1, 1, None, Some(1)).await;
    app.knowledge(2, 1, None, Some(1)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..4i64 {
        let (stop, acked, failures) = (stop.clone(), acked.clone(), failures.clone());
        let mut client = app.client().await;
        workers.push(tokio::spawn(async move {
            let user = 1 + w;
            while !stop.load(Ordering::Relaxed) {
                let req = CreateSessionRequest {
                    class_id: Some(1),
                    knowledge_ids: vec![1, 2],
                    ..Default::default()
                };
                match client.create_session(authed(req, &token(user))).await {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push((user, r.into_inner().session_id)),
                    Err(status) => {
                        failures
                            .lock()
                            .unwrap()
                            .push((status.code(), status.message().to_string()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_outage = acked.lock().unwrap().len();
    assert!(before_outage > 0, "creates succeed before the outage");
    cluster.stop_fast().unwrap();

    wait_for(
        "readiness flips to 503",
        Duration::from_secs(8),
        async || app.http("GET", "/readyz", None, None).await.status == 503,
    )
    .await;
    wait_for(
        "gRPC health goes NOT_SERVING",
        Duration::from_secs(8),
        async || grpc_health(&app).await == ServingStatus::NotServing as i32,
    )
    .await;
    assert_eq!(
        app.http("GET", "/healthz", None, None).await.status,
        200,
        "the process itself is alive"
    );
    let failing_fast = Instant::now();
    let status = app
        .client()
        .await
        .create_session(authed(CreateSessionRequest::default(), &token(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    assert!(
        failing_fast.elapsed() < Duration::from_secs(4),
        "fails fast, within the request timeout"
    );

    cluster.start_again().unwrap();
    wait_for(
        "readiness comes back",
        Duration::from_secs(15),
        async || app.http("GET", "/readyz", None, None).await.status == 200,
    )
    .await;
    wait_for(
        "gRPC health comes back",
        Duration::from_secs(15),
        async || grpc_health(&app).await == ServingStatus::Serving as i32,
    )
    .await;
    let during = acked.lock().unwrap().len();
    wait_for(
        "creates succeed again without a restart",
        Duration::from_secs(15),
        async || acked.lock().unwrap().len() > during + 5,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(!failures.is_empty(), "the outage was seen");
    for (code, message) in &failures {
        assert!(
            matches!(code, Code::Unavailable | Code::DeadlineExceeded),
            "{code:?}: {message}"
        );
        assert!(
            !message.contains("sqlx") && !message.contains("error communicating"),
            "{message}"
        );
    }
    // Every acknowledged create exists, and nothing is half-written.
    let acked = acked.lock().unwrap().clone();
    for (user, id) in &acked {
        let s = app
            .client()
            .await
            .get_session(authed(
                practice_service::proto::practice::v1::GetSessionRequest { session_id: *id },
                &token(*user),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.models.len(), 3);
    }
    let counts = app.counts().await;
    assert!(counts.sessions >= acked.len() as i64);
    assert_eq!(
        counts.settings, counts.sessions,
        "one settings row per session"
    );
    assert_eq!(
        counts.session_models,
        3 * counts.sessions,
        "three models per session"
    );
    assert_eq!(
        counts.session_knowledge,
        2 * counts.sessions,
        "two knowledge rows per session"
    );
}
