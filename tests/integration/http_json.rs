//! The HTTP/JSON routes as an existing JSON client sees them: the original
//! API's bodies, the contract's JSON shape, every error row, path
//! confusion, CORS, OpenAPI and health; on SQLite and PostgreSQL.

use crate::common;

use common::{Backend, authed, raw_http, token};
use practice_service::proto::practice::v1::{CreateSessionRequest, GetSessionRequest};
use serde_json::{Value, json};

const ME: i64 = 42;

/// The request body of the original API page, verbatim.
const SEED_BODY: &str = r#"
{
  "class_id": 123,
  "project_id": 123,
  "knowledge_ids": [
    123
  ],
  "agent_id": 123,
  "title": "<string>",
  "notes": "<string>"
}
"#;

const SESSION_KEYS: [&str; 13] = [
    "session_id",
    "user_id",
    "created_at",
    "updated_at",
    "class_id",
    "project_id",
    "knowledge_ids",
    "agent_id",
    "title",
    "notes",
    "settings",
    "models",
    "responses",
];
const SETTINGS_KEYS: [&str; 9] = [
    "setting_id",
    "session_id",
    "created_at",
    "updated_at",
    "style_preset",
    "style_params",
    "generation_params",
    "agent_snapshot",
    "few_shot_links",
];
const LINK_KEYS: [&str; 6] = [
    "id",
    "setting_id",
    "example_id",
    "sort_order",
    "created_at",
    "example",
];
const MODEL_KEYS: [&str; 5] = [
    "session_model_id",
    "session_id",
    "model_name",
    "sort_order",
    "created_at",
];

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("object expected: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// Checks the whole session shape: every key, in order, with its type.
fn assert_session_shape(s: &Value) {
    assert_eq!(keys(s), SESSION_KEYS);
    assert!(s["session_id"].is_i64() && s["user_id"].is_i64());
    assert!(is_time(&s["created_at"]) && is_time(&s["updated_at"]));
    for k in ["class_id", "project_id", "agent_id"] {
        assert!(s[k].is_null() || s[k].is_i64(), "{k}: {}", s[k]);
    }
    assert!(
        s["knowledge_ids"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_i64)
    );
    for k in ["title", "notes"] {
        assert!(s[k].is_null() || s[k].is_string(), "{k}");
    }
    let st = &s["settings"];
    assert_eq!(keys(st), SETTINGS_KEYS);
    assert!(st["setting_id"].is_i64() && st["session_id"] == s["session_id"]);
    assert!(is_time(&st["created_at"]) && is_time(&st["updated_at"]));
    assert!(st["style_preset"].is_string());
    for k in ["style_params", "generation_params", "agent_snapshot"] {
        assert!(st[k].is_object(), "{k}");
    }
    for link in st["few_shot_links"].as_array().unwrap() {
        assert_eq!(keys(link), LINK_KEYS);
        assert!(link["id"].is_i64() && link["sort_order"].is_i64() && is_time(&link["created_at"]));
        assert_eq!(link["setting_id"], st["setting_id"]);
        let ex = &link["example"];
        assert_eq!(keys(ex), common::EXAMPLE_KEYS);
        assert_eq!(ex["example_id"], link["example_id"]);
        assert!(ex["is_active"].is_boolean() && ex["meta"].is_object());
        assert!(ex["input_text"].is_string() && ex["output_text"].is_string());
        assert!(ex["title"].is_null() || ex["title"].is_string());
    }
    for m in s["models"].as_array().unwrap() {
        assert_eq!(keys(m), MODEL_KEYS);
        assert!(m["model_name"].is_string() && m["sort_order"].is_i64());
    }
    assert!(s["responses"].is_array());
}

/// Seeds what the original page's body refers to (id 123 everywhere).
async fn seed_123(app: &common::TestApp) -> (i64, i64) {
    app.class(
        123,
        &[ME],
        &[
            ("gpt-4o-mini", true),
            ("claude-3-haiku", true),
            ("off", false),
        ],
    )
    .await;
    app.project(123, ME, Some(123)).await;
    app.knowledge(123, ME, Some(123), None).await;
    let a = app.example(ME, "greeting", true).await;
    let b = app.example(ME, "farewell", true).await;
    app.agent(123, ME, Some(123), &[a.example_id, b.example_id])
        .await;
    (a.example_id, b.example_id)
}

async fn seed_body_round_trips(backend: Backend) {
    let app = app!(backend);
    let (a, b) = seed_123(&app).await;
    let t = token(ME);
    let r = app
        .http("POST", "/user/practice/sessions", Some(&t), Some(SEED_BODY))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let s = r.json();
    assert_session_shape(&s);
    assert_eq!(s["user_id"], ME);
    assert_eq!(s["class_id"], 123);
    assert_eq!(s["knowledge_ids"], json!([123]));
    assert_eq!(s["title"], "<string>");
    assert_eq!(s["created_at"], s["updated_at"]);
    assert_eq!(s["responses"], json!([]));
    let st = &s["settings"];
    assert_eq!(st["style_preset"], "balanced");
    // Integral numbers stay integral, fractions stay fractions.
    assert_eq!(
        st["generation_params"],
        json!({"max_tokens": 512, "temperature": 0.2})
    );
    assert!(r.text.contains(r#""max_tokens":512"#), "{}", r.text);
    let snap = &st["agent_snapshot"];
    assert_eq!(snap["agent_id"], 123);
    assert_eq!(snap["example_ids"], json!([a, b]));
    assert_eq!(keys(snap).len(), 9);
    let links: Vec<_> = st["few_shot_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["example_id"].clone(), l["sort_order"].clone()))
        .collect();
    assert_eq!(links, [(json!(a), json!(0)), (json!(b), json!(1))]);
    assert_eq!(
        st["few_shot_links"][0]["example"]["meta"],
        json!({"rank": 3, "source": "test"})
    );
    assert_eq!(
        common::json_model_names(&s),
        ["gpt-4o-mini", "claude-3-haiku"]
    );

    // GET returns the same bytes' worth of data.
    let id = s["session_id"].as_i64().unwrap();
    let g = app
        .http(
            "GET",
            &format!("/user/practice/sessions/{id}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.json(), s);
}

async fn minimal_bodies(backend: Backend) {
    let app = app!(backend);
    let t = token(ME);
    for body in [
        None,
        Some(""),
        Some("{}"),
        Some(r#"{"class_id": null, "knowledge_ids": null, "title": null}"#),
    ] {
        let r = app
            .http("POST", "/user/practice/sessions", Some(&t), body)
            .await;
        assert_eq!(r.status, 200, "{body:?}: {}", r.text);
        let s = r.json();
        assert_session_shape(&s);
        assert_eq!(s["class_id"], Value::Null);
        assert_eq!(s["title"], Value::Null);
        assert_eq!(s["knowledge_ids"], json!([]));
        assert_eq!(s["settings"]["style_preset"], "accurate");
        assert_eq!(s["settings"]["agent_snapshot"], json!({}));
        assert_eq!(s["settings"]["few_shot_links"], json!([]));
        assert_eq!(s["models"].as_array().unwrap().len(), 2);
    }
    // Integers as decimal strings, and the lowerCamelCase spelling.
    app.class(3, &[ME], &[("m", true)]).await;
    let r = app
        .http(
            "POST",
            "/user/practice/sessions",
            Some(&t),
            Some(r#"{"classId": "3", "knowledgeIds": []}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["class_id"], 3);
}

async fn same_data_over_every_protocol(backend: Backend) {
    let app = app!(backend);
    seed_123(&app).await;
    let t = token(ME);
    // JSON create, gRPC read.
    let s = app
        .http("POST", "/user/practice/sessions", Some(&t), Some(SEED_BODY))
        .await
        .json();
    let id = s["session_id"].as_i64().unwrap();
    let via_grpc = app
        .client()
        .await
        .get_session(authed(GetSessionRequest { session_id: id }, &t))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(via_grpc.session_id, id);
    assert_eq!(via_grpc.knowledge_ids, [123]);
    assert_eq!(via_grpc.models.len(), 2);
    assert_eq!(via_grpc.settings.as_ref().unwrap().few_shot_links.len(), 2);
    // gRPC create, JSON read: the same JSON as a JSON create gives.
    let g = app
        .client()
        .await
        .create_session(authed(
            CreateSessionRequest {
                class_id: Some(123),
                project_id: Some(123),
                knowledge_ids: vec![123],
                agent_id: Some(123),
                title: Some("<string>".into()),
                notes: Some("<string>".into()),
            },
            &t,
        ))
        .await
        .unwrap()
        .into_inner();
    let r = app
        .http(
            "GET",
            &format!("/user/practice/sessions/{}", g.session_id),
            Some(&t),
            None,
        )
        .await
        .json();
    assert_session_shape(&r);
    let strip = |mut v: Value| {
        // Ids and times differ between two sessions; everything else matches.
        fn walk(v: &mut Value) {
            match v {
                Value::Object(o) => {
                    for (k, x) in o.iter_mut() {
                        if k.ends_with("_id")
                            && k != "agent_id"
                            && k != "class_id"
                            && k != "project_id"
                            && k != "example_id"
                            && k != "user_id"
                            || k == "id"
                            || k.ends_with("_at")
                        {
                            *x = Value::Null;
                        } else {
                            walk(x);
                        }
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut v);
        v
    };
    assert_eq!(strip(r), strip(s));
}

/// Sends a JSON request that must fail, and checks the status, the error
/// body's shape and that nothing was written.
async fn refused(
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

fn violation_fields(e: &Value) -> Vec<String> {
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

on_both_backends!(
    seed_body_round_trips,
    minimal_bodies,
    same_data_over_every_protocol,
    every_error_row,
    media_type_and_size,
    path_confusion,
);

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
