//! Hostile neighbours: the attacks of the hardening work at once against
//! one server (stalled bodies, huge bad lists, a flood of unknown `kid`s
//! behind a stalling key server, a probe flood), while a normal client
//! creates and reads sessions. The normal client must be served every time
//! and the server's memory must stay bounded. Latency is printed, not
//! asserted (tests don't assert timings; the benchmark measures them).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use common::http_client;
use common::process::spawn_server;
use tokio::io::AsyncWriteExt;

use super::auth::rsa_bearer;
use super::jwks_server::{Later, key_server, rsa_only, unknown_kid};

/// How far above its idle size the server's memory may peak under the
/// attack: room for the allocator's caches and the open connections, and
/// well below the 110+ MiB it peaked at before JSON requests had a value
/// budget and lists were counted before decoding.
const BOUND_MIB: u64 = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_client_is_served_among_hostile_neighbours() {
    let url = key_server(rsa_only(), Later::Stall, Arc::new(AtomicUsize::new(0))).await;
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        dir.path(),
        &[
            ("PRACTICE_JWT_SECRET", ""),
            ("PRACTICE_JWKS", &url),
            ("PRACTICE_JWKS_MIN_REFRESH_MS", "1000"),
            ("PRACTICE_MAX_IN_FLIGHT", "32"),
            ("PRACTICE_REQUEST_TIMEOUT_MS", "5000"),
            ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "2000"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    let rss_before = server.memory_mib("VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();

    // Stalled bodies: 100 connections that never finish their body.
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /user/practice/sessions HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{",
            rsa_bearer()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    // Huge bad lists (past the JSON value budget, and past the list's
    // size), unknown kids and probes, in loops.
    let bad_list = |n: usize| format!(r#"{{"knowledge_ids": [{}]}}"#, vec!["0"; n].join(","));
    let big = Arc::new([bad_list(170_000), bad_list(45_000)]);
    for attack in 0..6 {
        let (stop, base, big) = (stop.clone(), server.url.clone(), big.clone());
        attackers.push(tokio::spawn(async move {
            let client = http_client();
            while !stop.load(Ordering::Relaxed) {
                let r = match attack {
                    0 | 1 => client
                        .post(format!("{base}/user/practice/sessions"))
                        .header("authorization", rsa_bearer())
                        .header("content-type", "application/json")
                        .body(big[attack].clone()),
                    2 | 3 => client
                        .post(format!("{base}/user/practice/sessions"))
                        .header("authorization", unknown_kid())
                        .header("content-type", "application/json")
                        .body("{}"),
                    _ => client.get(format!("{base}/readyz")),
                };
                let _ = r.send().await.map(|r| r.status());
            }
        }));
    }

    // The normal client.
    let mut latencies = Vec::new();
    for i in 0..20 {
        let start = Instant::now();
        let r = http_client()
            .post(format!("{}/user/practice/sessions", server.url))
            .header("authorization", rsa_bearer())
            .header("content-type", "application/json")
            .body(format!(r#"{{"title": "normal {i}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "create {i}: {}", r.text().await.unwrap());
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let id = body["session_id"].clone();
        let r = http_client()
            .get(format!("{}/user/practice/sessions/{id}", server.url))
            .header("authorization", rsa_bearer())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "read {i}");
        latencies.push(start.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.unwrap();
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "hostile neighbours: normal create+read p99 {p99:?} (max {:?})",
        latencies.last()
    );
    server.assert_peak_within(rss_before, BOUND_MIB);
    assert_eq!(server.counts().await.sessions, 20);
    drop(stalled);
}
