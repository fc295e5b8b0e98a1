//! The HTTP surface around the routes: media types and sizes, paths that
//! only look like a route, health endpoints, CORS, and the OpenAPI
//! document against what the routes send.

use crate::common;

use common::{Backend, raw_http, token};
use serde_json::{Value, json};

use super::http_json::keys;

const ME: i64 = 42;

async fn media_type_and_size(backend: Backend) {
    let app = app!(backend, &[("PRACTICE_MAX_BODY_BYTES", "4096")]);
    let t = token(ME);
    let before = app.counts().await;
    let r = app
        .http_with(
            "POST",
            "/user/practice/sessions",
            Some(&t),
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text);
    let r = reqwest_post(&app, &t, "text/plain", "{}").await;
    assert_eq!(r, 415);
    let r = reqwest_post(&app, &t, "application/json; charset=utf-8", "{}").await;
    assert_eq!(r, 200);
    let big = format!(r#"{{"notes": "{}"}}"#, "n".repeat(5000));
    assert_eq!(reqwest_post(&app, &t, "application/json", &big).await, 413);
    let after = app.counts().await;
    assert_eq!(after.sessions, before.sessions + 1);
}

async fn reqwest_post(app: &common::TestApp, token: &str, content_type: &str, body: &str) -> u16 {
    common::http_client()
        .post(format!("{}/user/practice/sessions", app.url()))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn path_confusion(backend: Backend) {
    let app = app!(backend);
    let t = token(ME);
    let id = app
        .http("POST", "/user/practice/sessions", Some(&t), Some("{}"))
        .await
        .json()["session_id"]
        .as_i64()
        .unwrap();
    let auth = format!("Bearer {t}");
    let (ok, _) = raw_http(
        app.addr,
        &format!("GET /user/practice/sessions/{id}"),
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(ok, 200);
    for path in [
        format!("/user/practice/sessions/{id}/"),
        format!("/user//practice/sessions/{id}"),
        format!("/user/practice/./sessions/{id}"),
        format!("/user/practice/x/../sessions/{id}"),
        format!("/user/practice/sessions%2F{id}"),
        format!("/user%2Fpractice/sessions/{id}"),
        format!("/USER/practice/sessions/{id}"),
        format!("/user/practice/sessions/{id}%00"),
    ] {
        let (status, body) = raw_http(
            app.addr,
            &format!("GET {path}"),
            &[("authorization", &auth)],
            b"",
        )
        .await;
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
    }
    // X-HTTP-Method-Override changes nothing.
    let before = app.counts().await;
    let (status, _) = raw_http(
        app.addr,
        "GET /user/practice/sessions",
        &[("authorization", &auth), ("x-http-method-override", "POST")],
        b"",
    )
    .await;
    assert_eq!(status, 200, "still the list, not a create");
    assert_eq!(app.counts().await, before);
}

on_both_backends!(media_type_and_size, path_confusion);

#[tokio::test]
async fn health_endpoints_need_no_token() {
    let app = app!(Backend::Sqlite);
    let r = app.http("GET", "/healthz", None, None).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("SERVING"))
    );
    let r = app.http("GET", "/readyz", None, None).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("SERVING"))
    );
}

#[tokio::test]
async fn cors_star_allows_any_origin_without_credentials() {
    let app = app!(Backend::Sqlite, &[("PRACTICE_CORS_ORIGINS", "*")]);
    let r = common::http_client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/user/practice/sessions", app.url()),
        )
        .header("origin", "https://anywhere.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = app!(
        Backend::Sqlite,
        &[(
            "PRACTICE_CORS_ORIGINS",
            "https://app.example, https://other.example"
        )]
    );
    let preflight = |origin: &'static str| {
        let url = format!("{}/user/practice/sessions", app.url());
        async move {
            common::http_client()
                .request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,idempotency-key",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://app.example").await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("idempotency-key"),
        "{allowed}"
    );
    let evil = preflight("https://evil.example").await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A real call from the allowed origin can read the gRPC status headers.
    let r = app
        .http_with(
            "POST",
            "/user/practice/sessions",
            Some(&token(ME)),
            Some("{}"),
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(h), "{exposed}");
    }
}

#[tokio::test]
async fn openapi_matches_what_the_routes_send() {
    let app = app!(Backend::Sqlite);
    let doc = app.http("GET", "/openapi.json", None, None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let schemas = &doc["components"]["schemas"];
    let s = app
        .http(
            "POST",
            "/user/practice/sessions",
            Some(&token(ME)),
            Some("{}"),
        )
        .await
        .json();
    // Every key the route sends is in the schema, and every required key is sent.
    let check = |name: &str, value: &Value| {
        let schema = &schemas[name];
        let props: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys(value), props, "{name}");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, props, "{name}");
        for (k, v) in value.as_object().unwrap() {
            let ty = &schema["properties"][k]["type"];
            let allowed: Vec<&str> = match ty {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                _ => continue, // $ref / anyOf
            };
            let actual = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            assert!(
                allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number")),
                "{name}.{k}: {actual} not in {allowed:?}"
            );
        }
    };
    check("practice.v1.Session", &s);
    check("practice.v1.SessionSettings", &s["settings"]);
    check("practice.v1.SessionModel", &s["models"][0]);
    let err = app
        .http("GET", "/user/practice/sessions/999", Some(&token(ME)), None)
        .await
        .json();
    let required: Vec<&str> = schemas["google.rpc.Status"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(keys(&err), required);
}
