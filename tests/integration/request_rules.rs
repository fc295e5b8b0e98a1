//! The proto's request rules, as clients of each protocol meet them: the
//! same field violation over JSON, gRPC and gRPC-Web, and nothing written.
//! Also the JSON routes' shape rules (both spellings of a field, nesting)
//! and what a huge bad request costs the server.

use crate::common;

use common::process::spawn_server;
use common::{Backend, TestApp, authed, grpc_frame, http_client, token};
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{
    CreateExampleRequest, CreateSessionRequest, SendPromptRequest,
};
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;

const ME: i64 = 42;

/// The field violations of a gRPC(-Web) status's `grpc-status-details-bin`.
fn violation_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Sends a CreateSession over gRPC-Web (binary) and reads its status.
async fn grpc_web_create(app: &TestApp, request: &CreateSessionRequest) -> tonic::Status {
    let r = http_client()
        .post(format!(
            "{}/practice.v1.PracticeService/CreateSession",
            app.url()
        ))
        .bearer_auth(token(ME))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_frame(request))
        .send()
        .await
        .unwrap();
    let mut headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    // A Trailers-Only answer carries the status in the headers; otherwise
    // it is in the trailer frame.
    if tonic::Status::from_header_map(&headers).is_none() && body.len() > 5 {
        let trailers = String::from_utf8_lossy(&body[5..]).to_string();
        for line in trailers.split("\r\n").filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.trim().parse().unwrap(),
            );
        }
    }
    tonic::Status::from_header_map(&headers).expect("a status")
}

async fn each_rule_holds_on_every_protocol(backend: Backend) {
    let app = app!(backend);
    let cases: Vec<(CreateSessionRequest, Value, &str)> = vec![
        (
            CreateSessionRequest {
                class_id: Some(0),
                ..Default::default()
            },
            json!({"class_id": 0}),
            "class_id",
        ),
        (
            CreateSessionRequest {
                knowledge_ids: vec![3, 3],
                ..Default::default()
            },
            json!({"knowledge_ids": [3, 3]}),
            "knowledge_ids[1]",
        ),
        (
            CreateSessionRequest {
                title: Some("two\nlines".into()),
                ..Default::default()
            },
            json!({"title": "two\nlines"}),
            "title",
        ),
        (
            CreateSessionRequest {
                notes: Some("é".repeat(20_001)),
                ..Default::default()
            },
            json!({"notes": "é".repeat(20_001)}),
            "notes",
        ),
    ];
    for (message, body, field) in cases {
        let before = app.counts().await;
        // gRPC.
        let status = app.create(ME, message.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violation_fields(&status), [field]);
        // gRPC-Web.
        let status = grpc_web_create(&app, &message).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert_eq!(violation_fields(&status), [field]);
        // JSON.
        let r = app
            .http(
                "POST",
                "/user/practice/sessions",
                Some(&token(ME)),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert_eq!(
            r.json()["details"][0]["field_violations"][0]["field"],
            field
        );
        assert_eq!(app.counts().await, before, "{field} wrote rows");
    }
    // Required texts, on another RPC.
    let status = app
        .client()
        .await
        .create_example(authed(
            CreateExampleRequest {
                input_text: " \t".into(),
                output_text: "fine".into(),
                ..Default::default()
            },
            &token(ME),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["input_text"]);
    let status = app
        .client()
        .await
        .send_prompt_and_wait(authed(
            SendPromptRequest {
                session_id: 1,
                prompt_text: String::new(),
                session_model_ids: vec![],
            },
            &token(ME),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["prompt_text"]);
}

/// Every rule of CreateSessionRequest, alone and together, over gRPC.
async fn bad_fields_are_invalid_argument(backend: Backend) {
    let app = app!(backend);
    let cases: Vec<(CreateSessionRequest, Vec<&str>)> = vec![
        (common::in_class(0), vec!["class_id"]),
        (
            CreateSessionRequest {
                project_id: Some(-1),
                ..Default::default()
            },
            vec!["project_id"],
        ),
        (common::with_agent(0), vec!["agent_id"]),
        (
            CreateSessionRequest {
                knowledge_ids: vec![1, 0],
                ..Default::default()
            },
            vec!["knowledge_ids[1]"],
        ),
        (
            CreateSessionRequest {
                knowledge_ids: vec![2, 3, 2],
                ..Default::default()
            },
            vec!["knowledge_ids[2]"],
        ),
        (
            CreateSessionRequest {
                knowledge_ids: (1..=51).collect(),
                ..Default::default()
            },
            vec!["knowledge_ids"],
        ),
        (
            CreateSessionRequest {
                title: Some("x".repeat(201)),
                ..Default::default()
            },
            vec!["title"],
        ),
        (
            CreateSessionRequest {
                title: Some("tab\there".into()),
                ..Default::default()
            },
            vec!["title"],
        ),
        (
            CreateSessionRequest {
                title: Some("bell\u{7}".into()),
                ..Default::default()
            },
            vec!["title"],
        ),
        (
            CreateSessionRequest {
                notes: Some("n".repeat(20_001)),
                ..Default::default()
            },
            vec!["notes"],
        ),
        (
            CreateSessionRequest {
                class_id: Some(0),
                title: Some("\n".into()),
                ..Default::default()
            },
            vec!["class_id", "title"],
        ),
    ];
    for (req, fields) in cases {
        let status = app.refused(ME, req, Code::InvalidArgument).await;
        assert_eq!(violation_fields(&status), fields);
    }
    // The bounds themselves are allowed.
    app.create(
        ME,
        CreateSessionRequest {
            title: Some("é".repeat(200)),
            notes: Some("n".repeat(20_000)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn a_field_can_not_be_given_twice_or_retarget_the_path(backend: Backend) {
    let app = app!(backend);
    let t = token(ME);
    let mine = app.example(ME, "mine", true).await;
    let other = app.example(ME, "other", true).await;
    let before = app.counts().await;
    // Both spellings: refused, whichever comes first. Under one spelling, a
    // different id can't re-target the path's.
    for body in [
        json!({"example_id": mine.example_id, "exampleId": other.example_id, "title": "x"}),
        json!({"exampleId": other.example_id, "example_id": mine.example_id, "title": "x"}),
        json!({"input_text": "a", "inputText": "b"}),
        json!({"exampleId": other.example_id, "title": "x"}),
        json!({"example_id": other.example_id, "title": "x"}),
    ] {
        let r = app
            .http(
                "PATCH",
                &format!("/user/practice/examples/{}", mine.example_id),
                Some(&t),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    let admin = common::admin_token();
    let r = app
        .http(
            "PUT",
            "/internal/practice/classes/11",
            Some(&admin),
            Some(r#"{"name": "c", "class_id": 11, "classId": 12}"#),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app
        .http(
            "GET",
            &format!("/user/practice/examples/{}", other.example_id),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(r.json()["title"], "other", "the other example was changed");
    assert_eq!(app.counts().await, before);
    // A body must be an object.
    for body in ["null", "[]", "7", "\"x\""] {
        let r = app
            .http("POST", "/user/practice/sessions", Some(&t), Some(body))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    assert_eq!(app.counts().await, before);
}

/// `meta` nested `levels` deep.
fn nested(levels: usize) -> Value {
    let mut v = json!({"leaf": 1});
    for _ in 1..levels {
        v = json!({ "k": v });
    }
    v
}

async fn deep_nesting_is_a_plain_400_on_every_protocol(backend: Backend) {
    let app = app!(backend);
    let t = token(ME);
    let before = app.counts().await;
    // 32 levels are fine.
    let ok = json!({"input_text": "a", "output_text": "b", "meta": nested(32)});
    let r = app
        .http(
            "POST",
            "/user/practice/examples",
            Some(&t),
            Some(&ok.to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let created = app.counts().await;
    for levels in [33, 40, 100, 1000] {
        let body = json!({"input_text": "a", "output_text": "b", "meta": nested(levels)});
        let r = app
            .http(
                "POST",
                "/user/practice/examples",
                Some(&t),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(r.status, 400, "{levels}: {}", r.text);
        assert!(r.text.contains("at most 32 levels"), "{levels}: {}", r.text);
        // gRPC: the same Struct in a binary message.
        let meta = practice_service::api::convert::json_to_struct(
            nested(levels.min(45)).as_object().unwrap().clone(),
        );
        let status = app
            .client()
            .await
            .create_example(authed(
                CreateExampleRequest {
                    input_text: "a".into(),
                    output_text: "b".into(),
                    meta: Some(meta),
                    ..Default::default()
                },
                &token(ME),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{levels}: {status:?}");
        assert!(!status.message().contains("decode"), "{status:?}");
    }
    // Only the 32-level example was written.
    let list = app
        .http("GET", "/user/practice/examples", Some(&t), None)
        .await
        .json();
    assert_eq!(list["examples"].as_array().unwrap().len(), 1);
    assert_eq!(app.counts().await, created);
    assert_eq!(created, before);
}

/// Huge bad lists and free-form values, on the JSON routes, Connect and
/// gRPC, are refused with small errors, write nothing, and cost the server
/// little memory: the size rules are read on the wire (the JSON text, the
/// protobuf encoding) before any value is built, so its peak resident size
/// (the server runs as a process of its own here) stays within a few
/// bodies' bytes, eight at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_bad_list_costs_little() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path(), &[]).await;
    let list = |n: usize, id: &dyn Fn(usize) -> String| {
        let ids: Vec<String> = (1..=n).map(id).collect();
        format!("[{}]", ids.join(","))
    };
    // Just under 1 MiB: 170,000 values (past the JSON value budget); 90 KB
    // of 45,000 ids, and 45,000 distinct ones (within it, past the list's
    // size); a `meta` holding a 45,000-item list.
    let zeros = format!(r#"{{"other": {}}}"#, list(170_000, &|_| "0".into()));
    let small = format!(r#"{{"knowledge_ids": {}}}"#, list(45_000, &|_| "0".into()));
    let distinct = format!(
        r#"{{"knowledge_ids": {}}}"#,
        list(45_000, &|i| i.to_string())
    );
    let meta = format!(
        r#"{{"input_text": "q", "output_text": "a", "meta": {{"x": {}}}}}"#,
        list(45_000, &|_| "0".into())
    );
    assert!(zeros.len() < 1024 * 1024 && small.len() < 100_000);
    let calls: [(&str, &str, &str, &str); 4] = [
        (
            "/user/practice/sessions",
            "json",
            &zeros,
            "at most 50000 values",
        ),
        (
            "/user/practice/sessions",
            "json",
            &small,
            "knowledge_ids: at most 50 items, got 45000",
        ),
        (
            "/practice.v1.PracticeService/CreateSession",
            "connect",
            &distinct,
            "knowledge_ids: at most 50 items, got 45000",
        ),
        (
            "/user/practice/examples",
            "json",
            &meta,
            "meta: at most 16384 bytes of JSON, got 90007",
        ),
    ];
    let rss_before = server.memory_mib("VmRSS");
    let mut running = Vec::new();
    for i in 0..8 {
        let (path, _, body, said) = calls[i % 4];
        let (url, body, said) = (
            format!("{}{path}", server.url),
            body.to_owned(),
            said.to_owned(),
        );
        running.push(tokio::spawn(async move {
            let r = http_client()
                .post(url)
                .bearer_auth(token(ME))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, text) = (r.status().as_u16(), r.text().await.unwrap());
            assert_eq!(status, 400, "{text}");
            assert!(text.len() < 4096, "an error of {} bytes", text.len());
            assert!(text.contains(&said), "{text}");
        }));
    }
    for call in running {
        call.await.unwrap();
    }
    // gRPC: a list past its size, a 1 MiB `ListValue` in `meta`.
    let mut client = PracticeServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let status = client
        .create_session(authed(
            CreateSessionRequest {
                knowledge_ids: vec![0; 100_000],
                ..Default::default()
            },
            &token(ME),
        ))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["knowledge_ids"]);
    assert!(status.message().len() < 4096);
    let nulls = prost_types::Value {
        kind: Some(prost_types::value::Kind::ListValue(
            prost_types::ListValue {
                values: vec![
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NullValue(0)),
                    };
                    200_000
                ],
            },
        )),
    };
    let example = CreateExampleRequest {
        input_text: "q".into(),
        output_text: "a".into(),
        meta: Some(prost_types::Struct {
            fields: [("x".to_owned(), nulls)].into(),
        }),
        ..Default::default()
    };
    assert!(example.encoded_len() > 800_000 && example.encoded_len() < 1024 * 1024);
    let status = client
        .create_example(authed(example, &token(ME)))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&status), ["meta"], "{status:?}");
    // A few MiB here (a debug build); parsing each body into values before
    // its size was known cost 60 MiB and more.
    server.assert_peak_within(rss_before, 32);
    assert_eq!(server.counts().await.sessions, 0);
}

on_both_backends!(
    bad_fields_are_invalid_argument,
    each_rule_holds_on_every_protocol,
    a_field_can_not_be_given_twice_or_retarget_the_path,
    deep_nesting_is_a_plain_400_on_every_protocol,
);
