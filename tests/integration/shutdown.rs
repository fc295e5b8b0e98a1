//! SIGTERM during a burst: the real binary drains — every request either
//! completed with OK or never started — and exits 0.

use crate::common;
use common::process::spawn_server;

use std::sync::Arc;
use std::time::Duration;

use practice_service::proto::practice::v1::CreateSessionRequest;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;

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
    let mut server = spawn_server(dir.path(), &[("PRACTICE_SHUTDOWN_GRACE_MS", "5000")]).await;
    let url = server.url.clone();
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
    let pid = server.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    // What the exited server left in its database, then what it logged.
    let counts = server.counts().await;
    let stderr = server.output().await;
    assert_eq!(status.code(), Some(0), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // What was acknowledged is exactly what was written.
    let ok = ok.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ok > 0, "some requests completed before the signal");
    assert_eq!(counts.sessions, ok, "every OK is stored, nothing else is");
    assert_eq!(counts.settings, counts.sessions);
}
