//! A key server that misbehaves costs logins nothing: tokens with known
//! `kid`s are verified while a slow refetch is under way, redirects are not
//! followed, and an oversized key set is refused.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Backend;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::auth::{assert_refused, call, rsa_bearer};

/// How the key server answers fetches after the first.
#[derive(Clone, Copy)]
pub(super) enum Later {
    /// The same set, after a long pause.
    Stall,
    /// A redirect to another server.
    Redirect,
}

/// Serves `first` to the first fetch, then behaves as `later`.
pub(super) async fn key_server(first: String, later: Later, fetches: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/jwks.json",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (first, fetches) = (first.clone(), fetches.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                let n = fetches.fetch_add(1, Ordering::SeqCst);
                let reply = match (n, later) {
                    (0, _) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
                        first.len()
                    ),
                    (_, Later::Stall) => {
                        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
                            first.len()
                        )
                    }
                    (_, Later::Redirect) => "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/evil.json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                };
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

pub(super) fn rsa_only() -> String {
    let full: Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("jwks.json")).unwrap())
            .unwrap();
    json!({"keys": [full["keys"][0].clone()]}).to_string()
}

pub(super) fn unknown_kid() -> String {
    super::auth::ec_bearer("made-up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_keys_verify_while_a_slow_refetch_runs() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = key_server(rsa_only(), Later::Stall, fetches.clone()).await;
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_JWT_SECRET", ""),
            ("PRACTICE_JWKS", &url),
            ("PRACTICE_JWKS_MIN_REFRESH_MS", "0")
        ]
    );
    // An unknown kid starts a refetch that stalls.
    let stalled = {
        let url = app.url();
        tokio::spawn(async move {
            let mut client = practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient::connect(url).await.unwrap();
            let mut req = tonic::Request::new(Default::default());
            req.metadata_mut()
                .insert("authorization", unknown_kid().parse().unwrap());
            client.create_session(req).await
        })
    };
    while fetches.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // Meanwhile, tokens with the known kid go through.
    for _ in 0..10 {
        call(&app, Some(rsa_bearer())).await.unwrap();
    }
    assert!(!stalled.is_finished(), "the refetch was not under way");
    let refused = stalled.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = key_server(rsa_only(), Later::Redirect, fetches.clone()).await;
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_JWT_SECRET", ""),
            ("PRACTICE_JWKS", &url),
            ("PRACTICE_JWKS_MIN_REFRESH_MS", "0")
        ]
    );
    assert_refused(&app, Some(unknown_kid()), "a redirected refetch").await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "the redirect was followed or not fetched"
    );
    // The keys it had stay trusted.
    call(&app, Some(rsa_bearer())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_key_set_is_refused() {
    let mut set: Value = serde_json::from_str(&rsa_only()).unwrap();
    set["padding"] = json!("x".repeat(practice_service::auth::MAX_JWKS_BYTES));
    let url = key_server(set.to_string(), Later::Stall, Arc::new(AtomicUsize::new(0))).await;
    let err = common::start_error(&[("PRACTICE_JWKS", url)]).await;
    assert!(err.contains("larger than"), "{err}");
}
