//! The Connect protocol as its clients speak it on the gRPC paths: unary
//! POST with the proto and JSON codecs, GET for reads, gzip both ways, and
//! errors in Connect's JSON shape with its HTTP statuses. (The browser test
//! drives the same through connect-web.)

use crate::common;

use common::{Backend, TestApp, token};
use flate2::Compression as Level;
use practice_service::proto::practice::v1::{CreateSessionRequest, GetSessionRequest, Session};
use prost::Message;
use std::io::{Read, Write};

const ME: i64 = 42;

fn url(app: &TestApp, method: &str) -> String {
    format!("{}/practice.v1.PracticeService/{method}", app.url())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Level::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn proto_and_json_codecs_reach_the_same_rpcs(backend: Backend) {
    let app = app!(backend);
    let client = common::http_client();
    // Proto, with a gzipped request and a gzipped reply.
    let request = CreateSessionRequest {
        title: Some("over Connect".into()),
        notes: Some("n".repeat(3000)),
        ..Default::default()
    };
    let r = client
        .post(url(&app, "CreateSession"))
        .header("authorization", format!("Bearer {}", token(ME)))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .body(gzip(&request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/proto");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let created = Session::decode(gunzip(&r.bytes().await.unwrap()).as_slice()).unwrap();
    assert_eq!(created.title(), "over Connect");
    assert_eq!(created.user_id, ME);
    assert_eq!(app.get(ME, created.session_id).await.unwrap(), created);

    // GET for a read: the message as unpadded base64url proto.
    let message = GetSessionRequest {
        session_id: created.session_id,
    }
    .encode_to_vec();
    let encoded =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, message);
    let r = client
        .get(format!(
            "{}?connect=v1&encoding=proto&base64=1&message={encoded}",
            url(&app, "GetSession")
        ))
        .header("authorization", format!("Bearer {}", token(ME)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(Session::decode(r.bytes().await.unwrap()).unwrap(), created);

    // JSON: the canonical proto3 mapping (lowerCamelCase, 64-bit integers
    // as strings, defaults left out).
    let r = client
        .post(url(&app, "GetSession"))
        .header("authorization", format!("Bearer {}", token(ME)))
        .header("content-type", "application/json")
        .body(format!(r#"{{"sessionId": "{}"}}"#, created.session_id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(json["sessionId"], created.session_id.to_string());
    assert_eq!(json["userId"], "42");
    assert!(json.get("classId").is_none(), "{json}");
}

async fn errors_are_connect_errors(backend: Backend) {
    let app = app!(backend);
    let client = common::http_client();
    let before = app.counts().await;
    let post = |method: &'static str, auth: Option<String>, body: &'static str| {
        let mut request = client
            .post(url(&app, method))
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let auth = r
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, body, auth)
        }
    };
    let mine = Some(format!("Bearer {}", token(ME)));

    let (status, body, _) = post("GetSession", mine.clone(), r#"{"sessionId": "99"}"#).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(body["message"], "session 99 not found");

    let (status, body, _) = post("CreateSession", mine.clone(), r#"{"classId": "0"}"#).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument"))
    );
    assert_eq!(body["details"][0]["type"], "google.rpc.BadRequest");

    let (status, body, _) = post("CreateSession", mine.clone(), r#"{"title": 5"#).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument"))
    );

    let (status, body, auth) = post("CreateSession", None, "{}").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    assert_eq!(auth.as_deref(), Some("Bearer"));

    // An unknown compression is refused cleanly.
    let r = client
        .post(url(&app, "CreateSession"))
        .header("authorization", format!("Bearer {}", token(ME)))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "unimplemented");

    // GET only for reads.
    let r = client
        .get(format!(
            "{}?connect=v1&encoding=json&message=%7B%7D",
            url(&app, "CreateSession")
        ))
        .header("authorization", format!("Bearer {}", token(ME)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(app.counts().await, before, "no refused call wrote anything");
}

/// The first envelope of a Connect stream reply: its flags and message.
async fn first_envelope(r: &mut reqwest::Response) -> (u8, Vec<u8>) {
    let mut bytes = Vec::new();
    while bytes.len() < 5
        || bytes.len() < 5 + u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize
    {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk())
            .await
            .expect("an envelope within 10 s")
            .unwrap()
            .expect("more of the stream");
        bytes.extend_from_slice(&chunk);
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    (bytes[0], bytes[5..5 + len].to_vec())
}

fn envelope(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_in_json_with_gzip_and_end_of_stream_errors() {
    let app = app!(Backend::Sqlite);
    let client = common::http_client();
    let watch = format!("{}/grpc.health.v1.Health/Watch", app.url());
    let request = envelope(br#"{"service": "practice.v1.PracticeService"}"#);
    // JSON envelopes, compressed on request.
    let mut r = client
        .post(&watch)
        .header("content-type", "application/connect+json")
        .header("connect-accept-encoding", "gzip")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/connect+json");
    assert_eq!(r.headers()["connect-content-encoding"], "gzip");
    let (flags, message) = first_envelope(&mut r).await;
    assert_eq!(
        flags,
        0x01,
        "a compressed message, not: {}",
        String::from_utf8_lossy(&message)
    );
    let status: serde_json::Value = serde_json::from_slice(&gunzip(&message)).unwrap();
    assert_eq!(status, serde_json::json!({"status": "SERVING"}));
    // A refusal is the end-of-stream envelope of an HTTP 200 stream.
    let mut r = client
        .post(url(&app, "CreateSession"))
        .header("content-type", "application/connect+json")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (flags, message) = first_envelope(&mut r).await;
    assert_eq!(flags, 0x02, "end of stream");
    let end: serde_json::Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(end["error"]["code"], "unauthenticated", "{end}");
}

on_both_backends!(
    proto_and_json_codecs_reach_the_same_rpcs,
    errors_are_connect_errors,
);
