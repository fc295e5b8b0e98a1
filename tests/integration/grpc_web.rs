//! gRPC-Web (binary and text) as a browser library speaks it, over HTTP/1.1,
//! reaching the same RPCs as gRPC and JSON.

use crate::common;

use base64::Engine;
use common::{Backend, authed, token};
use practice_service::proto::practice::v1::{CreateSessionRequest, GetSessionRequest, Session};
use prost::Message;

const ME: i64 = 42;

/// Splits a gRPC-Web response body into its message and its trailers.
fn unframe(mut bytes: &[u8]) -> (Option<Vec<u8>>, Vec<(String, String)>) {
    let mut message = None;
    let mut trailers = Vec::new();
    while bytes.len() >= 5 {
        let flag = bytes[0];
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let payload = &bytes[5..5 + len];
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(payload)
                .split("\r\n")
                .filter(|l| !l.is_empty())
            {
                let (k, v) = line.split_once(':').unwrap();
                trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        } else {
            message = Some(payload.to_vec());
        }
        bytes = &bytes[5 + len..];
    }
    (message, trailers)
}

struct WebReply {
    http_status: u16,
    grpc_status: String,
    grpc_message: String,
    message: Option<Vec<u8>>,
}

async fn call(
    app: &common::TestApp,
    method: &str,
    body: Vec<u8>,
    token: Option<&str>,
    text: bool,
) -> WebReply {
    let (content_type, body) = if text {
        (
            "application/grpc-web-text",
            base64::engine::general_purpose::STANDARD
                .encode(body)
                .into_bytes(),
        )
    } else {
        ("application/grpc-web+proto", body)
    };
    let mut req = common::http_client()
        .post(format!(
            "{}/practice.v1.PracticeService/{method}",
            app.url()
        ))
        .header("content-type", content_type)
        // tonic-web answers in the encoding the client accepts, as grpc-web
        // clients ask for it.
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let http_status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = resp.bytes().await.unwrap().to_vec();
    if text {
        // A text reply may be several base64 chunks, each padded on its own;
        // every 4-character group still decodes by itself.
        bytes = bytes
            .chunks(4)
            .flat_map(|group| {
                base64::engine::general_purpose::STANDARD
                    .decode(group)
                    .expect("base64")
            })
            .collect();
    }
    let (message, trailers) = unframe(&bytes);
    let find = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .or_else(|| {
                trailers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default()
    };
    WebReply {
        http_status,
        grpc_status: find("grpc-status"),
        grpc_message: find("grpc-message"),
        message,
    }
}

async fn create_and_read_over_grpc_web(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("m1", true), ("m2", true)]).await;
    let t = token(ME);
    for text in [false, true] {
        let req = CreateSessionRequest {
            class_id: Some(3),
            title: Some(format!("web text={text}")),
            ..Default::default()
        };
        let reply = call(
            &app,
            "CreateSession",
            common::grpc_frame(&req),
            Some(&t),
            text,
        )
        .await;
        assert_eq!(
            (reply.http_status, reply.grpc_status.as_str()),
            (200, "0"),
            "{}",
            reply.grpc_message
        );
        let created = Session::decode(reply.message.unwrap().as_slice()).unwrap();
        assert_eq!(created.user_id, ME);
        assert_eq!(created.models.len(), 2);
        // The same session over native gRPC and over JSON.
        let via_grpc = app
            .client()
            .await
            .get_session(authed(
                GetSessionRequest {
                    session_id: created.session_id,
                },
                &t,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(via_grpc, created);
        let json = app
            .http(
                "GET",
                &format!("/user/practice/sessions/{}", created.session_id),
                Some(&t),
                None,
            )
            .await
            .json();
        assert_eq!(json["title"], format!("web text={text}"));
        // And a gRPC-Web read of it.
        let reply = call(
            &app,
            "GetSession",
            common::grpc_frame(&GetSessionRequest {
                session_id: created.session_id,
            }),
            Some(&t),
            text,
        )
        .await;
        assert_eq!(reply.grpc_status, "0");
        assert_eq!(
            Session::decode(reply.message.unwrap().as_slice()).unwrap(),
            created
        );
    }
}

async fn errors_over_grpc_web(backend: Backend) {
    let app = app!(backend);
    let before = app.counts().await;
    let bad_token = call(
        &app,
        "CreateSession",
        common::grpc_frame(&CreateSessionRequest::default()),
        Some("nope"),
        false,
    )
    .await;
    assert_eq!(bad_token.grpc_status, "16");
    let invalid = call(
        &app,
        "CreateSession",
        common::grpc_frame(&common::in_class(0)),
        Some(&token(ME)),
        true,
    )
    .await;
    assert_eq!(invalid.grpc_status, "3");
    let missing = call(
        &app,
        "GetSession",
        common::grpc_frame(&GetSessionRequest { session_id: 99 }),
        Some(&token(ME)),
        false,
    )
    .await;
    assert_eq!(missing.grpc_status, "5");
    assert_eq!(app.counts().await, before);
}

on_both_backends!(create_and_read_over_grpc_web, errors_over_grpc_web);
