//! SIGTERM during a burst: the real binary drains — every request either
//! completed with OK or never started — and exits 0.

use crate::common;

use tokio::io::{AsyncBufReadExt, BufReader};

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use practice_service::proto::practice::v1::CreateSessionRequest;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::store::{self, StoreOptions};

/// A refusal of a request the server never started: the connection was
/// closing or the stream was refused. A stream the client opened after the
/// server's final GOAWAY (NO_ERROR) is one too, though tonic reports it as
/// INTERNAL; the table counts below still check that nothing of it was
/// written.
fn never_started(status: &tonic::Status) -> bool {
    if matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    ) {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return status.code() == tonic::Code::Internal
                && h2.is_go_away()
                && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = e.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("shutdown.db").display());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_practice-service"))
        .current_dir(dir.path())
        .env("DATABASE_URL", &db)
        .env("PRACTICE_ADDR", "127.0.0.1:0")
        .env("PRACTICE_JWT_SECRET", common::SECRET)
        .env("PRACTICE_SHUTDOWN_GRACE_MS", "5000")
        .env("RUST_LOG", "info")
        .env("PRACTICE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The port the server bound: from its own "serving" log line. The rest
    // of its log is kept for the checks at the end.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the server logs where it serves");
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "serving" {
                break format!("http://{}", event["addr"].as_str().unwrap());
            }
        }
    })
    .await
    .expect("the server starts within 30 s");
    let rest_of_log = tokio::spawn(async move {
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = PracticeServiceClient::connect(url.clone()).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.expect("the server starts");

    // A burst from several tasks; SIGTERM lands in the middle of it.
    let ok = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (mut client, ok) = (client.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..200 {
                let req = common::authed(
                    CreateSessionRequest {
                        title: Some(format!("w{w} r{i}")),
                        ..Default::default()
                    },
                    &common::token(1 + w),
                );
                match client.create_session(req).await {
                    Ok(_) => {
                        ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(status) => {
                        // Refused at the door: the request never started.
                        assert!(never_started(&status), "{status:?}");
                        refused += 1;
                        if refused > 3 {
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let mut stderr = rest_of_log.await.unwrap();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    assert_eq!(status.code(), Some(0), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // What was acknowledged is exactly what was written.
    let store = store::connect(&db, &StoreOptions::default()).await.unwrap();
    let counts = store.table_counts().await.unwrap();
    let ok = ok.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ok > 0, "some requests completed before the signal");
    assert_eq!(counts.sessions, ok, "every OK is stored, nothing else is");
    assert_eq!(counts.settings, counts.sessions);
}
