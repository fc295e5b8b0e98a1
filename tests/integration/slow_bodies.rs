//! Slow or stalled bodies cost a connection, never capacity: a request
//! waiting for its body holds no load-shedding slot and no database
//! connection, and a body must arrive within the request timeout.

use crate::common;

use std::time::Duration;

use common::{Backend, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_do_not_starve_other_clients() {
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_MAX_IN_FLIGHT", "8"),
            ("PRACTICE_REQUEST_TIMEOUT_MS", "3000"),
            ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "1000"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "1000"),
        ]
    );
    let auth = format!("Bearer {}", token(42));
    // Five times as many connections as there are slots send their headers
    // and the first byte of a 100-byte body, then stall.
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /user/practice/sessions HTTP/1.1\r\nhost: localhost\r\nauthorization: {auth}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    // A gRPC client's stalled request too (HTTP/2, a frame that never ends).
    let mut grpc_stalled = TcpStream::connect(app.addr).await.unwrap();
    grpc_stalled
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // Let the server take in the stalled requests' heads (no observable
    // event says it has; this only orders the setup).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every other client is served meanwhile, over gRPC and JSON.
    for i in 0..20 {
        app.create(42, common::titled(&format!("while stalled {i}")))
            .await
            .unwrap_or_else(|s| panic!("create {i} refused: {s:?}"));
        let r = app
            .http(
                "POST",
                "/user/practice/sessions",
                Some(&token(42)),
                Some("{}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // The stalled ones are told their body took too long (bounded wait).
    for s in stalled.iter_mut().take(3) {
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("an answer to a stalled body")
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    }
    assert_eq!(app.counts().await.sessions, 40);
}
