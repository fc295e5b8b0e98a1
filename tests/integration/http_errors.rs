//! Every error row of the contract over HTTP/JSON: status, `google.rpc.Status`
//! body, field violations, and nothing written.

use crate::common;

use common::{Backend, token};
use serde_json::Value;

use super::http_json::keys;

const ME: i64 = 42;

/// Sends a JSON request that must fail, and checks the status, the error
/// body's shape and that nothing was written.
pub(super) async fn refused(
    app: &common::TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    status: u16,
    code: i64,
) -> Value {
    let before = app.counts().await;
    let r = app.http(method, path, token, body).await;
    assert_eq!(r.status, status, "{method} {path} {body:?}: {}", r.text);
    let e = r.json();
    assert_eq!(keys(&e), ["code", "message", "details"], "{}", r.text);
    assert_eq!(e["code"], code, "{}", r.text);
    assert!(!e["message"].as_str().unwrap().is_empty());
    for bad in ["SELECT", "sqlx", "panicked", "constraint", common::SECRET] {
        assert!(!r.text.contains(bad), "leaks {bad}: {}", r.text);
    }
    if status == 401 {
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(
        app.counts().await,
        before,
        "{method} {path} {body:?} wrote rows"
    );
    e
}

pub(super) fn violation_fields(e: &Value) -> Vec<String> {
    let d = &e["details"][0];
    assert_eq!(
        d["@type"], "type.googleapis.com/google.rpc.BadRequest",
        "{e}"
    );
    d["field_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_error_row(backend: Backend) {
    let app = app!(backend);
    let t = token(ME);
    let p = "/user/practice/sessions";
    app.class(5, &[ME], &[("off", false)]).await;
    app.class(6, &[7], &[("m", true)]).await;

    // 400 INVALID_ARGUMENT with field violations.
    for (body, field) in [
        (r#"{"class_id": 0}"#, "class_id"),
        (r#"{"class_id": 1.5}"#, "class_id"),
        (r#"{"class_id": "abc"}"#, "class_id"),
        (r#"{"class_id": true}"#, "class_id"),
        (r#"{"class_id": 9223372036854775808}"#, "class_id"),
        (r#"{"class_id": [1]}"#, "class_id"),
        (r#"{"user_id": 1}"#, "user_id"),
        (r#"{"session_id": 1}"#, "session_id"),
        (r#"{"surprise": 1}"#, "surprise"),
        (r#"{"knowledge_ids": [1, 1]}"#, "knowledge_ids[1]"),
        (r#"{"knowledge_ids": [1, 2.5]}"#, "knowledge_ids"),
        (r#"{"knowledge_ids": 5}"#, "knowledge_ids"),
        (r#"{"title": 5}"#, "title"),
        (r#"{"title": "a\nb"}"#, "title"),
        (r#"{"notes": {"a": 1}}"#, "notes"),
    ] {
        let e = refused(&app, "POST", p, Some(&t), Some(body), 400, 3).await;
        assert_eq!(violation_fields(&e), [field], "{body}");
    }
    let long = format!(r#"{{"title": "{}"}}"#, "x".repeat(201));
    assert_eq!(
        violation_fields(&refused(&app, "POST", p, Some(&t), Some(&long), 400, 3).await),
        ["title"]
    );
    let many = format!(
        r#"{{"knowledge_ids": [{}]}}"#,
        (1..=51)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        violation_fields(&refused(&app, "POST", p, Some(&t), Some(&many), 400, 3).await),
        ["knowledge_ids"]
    );
    for body in ["null", "[]", "42", "\"x\"", "{", "{\"class_id\": 1,}"] {
        refused(&app, "POST", p, Some(&t), Some(body), 400, 3).await;
    }
    // 400 FAILED_PRECONDITION.
    refused(
        &app,
        "POST",
        p,
        Some(&t),
        Some(r#"{"class_id": 5}"#),
        400,
        9,
    )
    .await;
    // 401 UNAUTHENTICATED, before the body is read.
    refused(&app, "POST", p, None, Some("{}"), 401, 16).await;
    refused(&app, "POST", p, Some("garbage"), Some("{}"), 401, 16).await;
    refused(&app, "POST", p, None, Some("not even json"), 401, 16).await;
    refused(
        &app,
        "GET",
        "/user/practice/sessions/1",
        None,
        None,
        401,
        16,
    )
    .await;
    // 404 NOT_FOUND: invisible and missing alike.
    let a = refused(
        &app,
        "POST",
        p,
        Some(&t),
        Some(r#"{"class_id": 6}"#),
        404,
        5,
    )
    .await;
    let b = refused(
        &app,
        "POST",
        p,
        Some(&t),
        Some(r#"{"class_id": 66}"#),
        404,
        5,
    )
    .await;
    assert_eq!(
        a["message"].as_str().unwrap().replace('6', ""),
        b["message"].as_str().unwrap().replace('6', "")
    );
    refused(
        &app,
        "GET",
        "/user/practice/sessions/999",
        Some(&t),
        None,
        404,
        5,
    )
    .await;
    refused(
        &app,
        "GET",
        "/user/practice/sessions/abc",
        Some(&t),
        None,
        400,
        3,
    )
    .await;
    refused(&app, "GET", "/nowhere", Some(&t), None, 404, 5).await;
    // 405 with Allow.
    let r = app.http("DELETE", p, Some(&t), None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, GET"));
    refused(&app, "PUT", p, Some(&t), Some("{}"), 405, 12).await;
    // 409 ALREADY_EXISTS: a key reused for another request.
    let first = app
        .http_with(
            "POST",
            p,
            Some(&t),
            Some(r#"{"title": "a"}"#),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(first.status, 200);
    let before = app.counts().await;
    let again = app
        .http_with(
            "POST",
            p,
            Some(&t),
            Some(r#"{"title": "a"}"#),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(again.json(), first.json(), "a replay answers the original");
    let other = app
        .http_with(
            "POST",
            p,
            Some(&t),
            Some(r#"{"title": "b"}"#),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(other.status, 409);
    assert!(other.json()["message"].as_str().unwrap().contains("k-1"));
    assert_eq!(app.counts().await, before);
}

on_both_backends!(every_error_row);
