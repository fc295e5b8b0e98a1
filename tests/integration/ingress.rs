//! The way in, seen from outside: each request's token is verified once and
//! its body read once, whatever the protocol; and many connections holding
//! nearly complete bodies cost the server a bounded amount of memory.

use std::time::Duration;

use crate::common;

use common::process::spawn_server;
use common::{authed, grpc_frame, http_client, token};
use practice_service::proto::practice::v1::CreateSessionRequest;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use tokio::io::AsyncWriteExt;

const ME: i64 = 42;
const CREATE: &str = "/practice.v1.PracticeService/CreateSession";

/// One CreateSession on each protocol, then one refused caller: the server's
/// own log (its `ingress` events, one per verification, body read and
/// message built) shows one of each per request, and no body read for the
/// refused one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_authenticated_and_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path(), &[("RUST_LOG", "info,ingress=debug")]).await;
    let url = |path: &str| format!("{}{path}", server.url);
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        http_client()
            .post(url(path))
            .bearer_auth(token(ME))
            .header("content-type", content_type)
            .body(body)
    };
    let json_frame = {
        let mut frame = vec![0u8];
        frame.extend_from_slice(&2u32.to_be_bytes());
        frame.extend_from_slice(b"{}");
        frame
    };
    let calls = [
        (
            "HTTP/JSON",
            post(
                "/user/practice/sessions",
                "application/json",
                b"{}".to_vec(),
            ),
        ),
        (
            "Connect JSON",
            post(CREATE, "application/json", b"{}".to_vec())
                .header("connect-protocol-version", "1"),
        ),
        (
            "Connect proto",
            post(CREATE, "application/proto", vec![]).header("connect-protocol-version", "1"),
        ),
        (
            "gRPC-Web",
            post(
                CREATE,
                "application/grpc-web+proto",
                grpc_frame(&CreateSessionRequest::default()),
            ),
        ),
        (
            "gRPC-Web JSON",
            post(CREATE, "application/grpc-web+json", json_frame),
        ),
    ];
    let mut with_body = 0;
    for (protocol, call) in calls {
        let r = call.send().await.unwrap();
        let status = r.status();
        let grpc_status = r.headers().get("grpc-status").cloned();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{protocol}: {text}");
        assert!(
            grpc_status.as_ref().is_none_or(|s| s == "0"),
            "{protocol}: {grpc_status:?}"
        );
        with_body += usize::from(protocol != "Connect proto");
    }
    let mut client = PracticeServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    client
        .create_session(authed(CreateSessionRequest::default(), &token(ME)))
        .await
        .unwrap();
    with_body += 1;
    // A refused caller: verified once, its body never read.
    let r = http_client()
        .post(url("/user/practice/sessions"))
        .bearer_auth("not.a.token")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(server.counts().await.sessions, 6);

    server.signal("-TERM");
    let log = server.output().await;
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("bearer token verified"), 7, "{log}");
    assert_eq!(count("request body read"), with_body, "{log}");
    // One message built per admitted request: by its JSON codec, or by the
    // validation layer from the bytes (tonic's own decode is its typed one).
    assert_eq!(count("request message built"), 6, "{log}");
}

/// 400 connections each send all but the last bytes of a 1 MiB body and
/// hold it. The byte budget lets a bounded number of them be read into
/// memory; the rest wait, unread, in the kernel, and then get 503. The
/// server's peak stays within 256 MiB of idle (it grew by about 1 MiB a
/// connection before), and a normal client is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearly_complete_bodies_wait_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(
        dir.path(),
        &[
            ("PRACTICE_REQUEST_TIMEOUT_MS", "8000"),
            ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "2000"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    let rss_before = server.memory_mib("VmRSS");
    const BODY: usize = 1024 * 1024 - 1024;
    let almost = vec![b' '; BODY - 10];
    let mut held = Vec::new();
    for _ in 0..400 {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /user/practice/sessions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: {BODY}\r\n\r\n",
            token(ME)
        );
        s.write_all(head.as_bytes()).await.unwrap();
        held.push(s);
    }
    // Write the bodies concurrently: a socket the server doesn't read
    // blocks once the kernel's buffers are full, which is the point.
    let writers: Vec<_> = held
        .into_iter()
        .map(|mut s| {
            let almost = almost.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(3), s.write_all(&almost)).await;
                s
            })
        })
        .collect();
    let mut held = Vec::new();
    for w in writers {
        held.push(w.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A normal client meanwhile.
    let r = http_client()
        .post(format!("{}/user/practice/sessions", server.url))
        .bearer_auth(token(ME))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status == 200 || status == 503,
        "{status}: {}",
        r.text().await.unwrap()
    );
    server.assert_peak_within(rss_before, 256);
    drop(held);
}

/// A body past the limit is refused by the ingress before it is read, in
/// the shape of the client's own protocol, under one code (RESOURCE_EXHAUSTED)
/// and one message: Connect clients read Connect's error (an HTTP/JSON
/// shape with a numeric code would reach them as "unknown"), streams their
/// end-of-stream envelope, gRPC-Web a status in its head, the JSON routes
/// 413; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_speaks_the_clients_protocol() {
    let app = crate::app!(
        common::Backend::Sqlite,
        &[("PRACTICE_MAX_BODY_BYTES", "4096")]
    );
    let before = app.counts().await;
    // Past the ingress's room for framing, so the ingress itself refuses.
    let big = format!(r#"{{"title": "{}"}}"#, "x".repeat(200_000));
    let said = "the request body is larger than 4096 bytes";
    let post = |path: &str, content_type: &str| {
        http_client()
            .post(format!("{}{path}", app.url()))
            .bearer_auth(token(ME))
            .header("content-type", content_type)
            .header("connect-protocol-version", "1")
            .body(big.clone())
    };

    // Unary Connect and the JSON routes: HTTP 413 and a JSON error, in
    // Connect's shape (a code name) and `google.rpc.Status`'s (a number).
    for (path, code) in [
        (CREATE, serde_json::json!("resource_exhausted")),
        ("/user/practice/sessions", serde_json::json!(8)),
    ] {
        let r = post(path, "application/json").send().await.unwrap();
        let status = r.status();
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
        assert_eq!(body["message"], said, "{path}");
    }

    let r = post(CREATE, "application/connect+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/connect+json");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes[0], 2, "an end-of-stream envelope");
    let end: serde_json::Value = serde_json::from_slice(&bytes[5..]).unwrap();
    assert_eq!(end["error"]["code"], "resource_exhausted", "{end}");

    let r = post(CREATE, "application/grpc-web+proto")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/grpc-web+proto");
    assert_eq!(r.headers()["grpc-status"], "8");

    assert_eq!(app.counts().await, before);
}
