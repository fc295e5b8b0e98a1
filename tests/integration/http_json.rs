//! The HTTP/JSON routes as an existing JSON client sees them: the original
//! API's bodies, the contract's JSON shape, every error row, path
//! confusion, CORS, OpenAPI and health; on SQLite and PostgreSQL.

use crate::common;

use common::{Backend, authed, token};
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

const SESSION_KEYS: [&str; 14] = [
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
    // Beyond the original API (additive): whether older responses exist.
    "has_more_responses",
];
const SETTINGS_KEYS: [&str; 11] = [
    "setting_id",
    "session_id",
    "created_at",
    "updated_at",
    "style_preset",
    "style_params",
    "generation_params",
    "agent_snapshot",
    "few_shot_links",
    // Beyond the original API (additive): a blind comparison, and what
    // models continue from.
    "blind",
    "continue_from",
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

pub(super) fn keys(v: &Value) -> Vec<&str> {
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
    assert!(s["has_more_responses"].is_boolean());
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

on_both_backends!(
    seed_body_round_trips,
    minimal_bodies,
    same_data_over_every_protocol,
);
