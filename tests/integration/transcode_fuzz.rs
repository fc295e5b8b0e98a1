//! Property test of the JSON-to-message path: arbitrary methods, paths,
//! query strings and bodies never crash the server and always get a
//! well-formed answer (a status from the contract's table and, for errors,
//! a google.rpc.Status JSON body).

use crate::common;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: common::TestApp,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime
            .block_on(common::spawn_app_with(
                common::Backend::Sqlite,
                &[("PRACTICE_MAX_BODY_BYTES", "2048")],
            ))
            .unwrap();
        Fixture {
            runtime,
            app,
            token: common::token(42),
        }
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        "-?[0-9]{1,25}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("class_id".to_string()),
        Just("project_id".to_string()),
        Just("knowledge_ids".to_string()),
        Just("knowledgeIds".to_string()),
        Just("agent_id".to_string()),
        Just("title".to_string()),
        Just("notes".to_string()),
        Just("session_id".to_string()),
        "[a-z_]{1,10}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::btree_map(field_name(), json_value(), 0..7)
            .prop_map(|m| serde_json::to_vec(&Value::Object(m.into_iter().collect())).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("user".to_string()),
        Just("practice".to_string()),
        Just("sessions".to_string()),
        Just("..".to_string()),
        Just("%2F".to_string()),
        Just("".to_string()),
        "[0-9]{1,20}",
        "-?[0-9]{1,3}",
        "[a-zA-Z%0-9._~-]{1,8}",
    ];
    prop::collection::vec(segment, 0..6).prop_map(|segs| format!("/{}", segs.join("/")))
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_.=&%0-9]{0,30}".prop_map(|q| format!("?{q}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_always_answers(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        path in path(),
        query in query(),
        body in body(),
        use_seed_path in any::<bool>(),
        content_type in prop::sample::select(vec!["application/json", "text/plain", ""]),
    ) {
        let f = fixture();
        let path = if use_seed_path { "/user/practice/sessions".to_string() } else { path };
        let target = format!("{path}{query}");
        let (status, text) = f.runtime.block_on(async {
            send(&f.app, method, &target, &f.token, content_type, &body).await
        });
        prop_assert!(
            [200u16, 400, 401, 404, 405, 409, 413, 415].contains(&status),
            "{method} {target}: status {status}: {text}"
        );
        if status != 200 {
            let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert!(v["code"].is_i64() && v["message"].is_string() && v["details"].is_array(), "{text}");
        } else {
            let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert!(v.is_object());
        }
    }
}

async fn send(
    app: &common::TestApp,
    method: &str,
    target: &str,
    token: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    if !content_type.is_empty() {
        headers.push(("content-type", content_type));
    }
    common::raw_http(app.addr, &format!("{method} {target}"), &headers, body).await
}
