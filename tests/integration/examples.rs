//! The user's few-shot example library over gRPC and JSON, on SQLite and
//! PostgreSQL: CRUD, partial updates, another user's examples looking
//! missing, and cursor pagination that stays stable under inserts.

use crate::common;

use std::collections::HashSet;

use common::{Backend, authed, token};
use practice_service::proto::practice::v1::{
    CreateExampleRequest, DeleteExampleRequest, GetExampleRequest, ListExamplesRequest,
    UpdateExampleRequest,
};
use serde_json::json;
use tonic::Code;

const A: i64 = 42;
const B: i64 = 43;

async fn crud_over_grpc_and_json(backend: Backend) {
    let app = app!(backend);
    let mut client = app.client().await;
    let created = client
        .create_example(authed(
            CreateExampleRequest {
                input_text: "in".into(),
                output_text: "out".into(),
                ..Default::default()
            },
            &token(A),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.user_id, A);
    assert!(created.is_active, "active by default");
    assert_eq!(created.title, None);
    assert_eq!(created.meta, Some(Default::default()));

    // Over JSON: the same example, every field present.
    let path = format!("/user/practice/examples/{}", created.example_id);
    let r = app.http("GET", &path, Some(&token(A)), None).await;
    assert_eq!(r.status, 200);
    let j = r.json();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, common::EXAMPLE_KEYS);
    assert_eq!(j["title"], serde_json::Value::Null);

    // PATCH changes only what it names, and moves updated_at.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = app
        .http(
            "PATCH",
            &path,
            Some(&token(A)),
            Some(r#"{"title": "Greeting", "meta": {"level": 2}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = r.json();
    assert_eq!(
        (u["title"].clone(), u["meta"].clone()),
        (json!("Greeting"), json!({"level": 2}))
    );
    assert_eq!(
        (
            u["input_text"].clone(),
            u["output_text"].clone(),
            u["is_active"].clone()
        ),
        (json!("in"), json!("out"), json!(true))
    );
    assert_eq!(u["created_at"], j["created_at"]);
    assert!(u["updated_at"].as_str().unwrap() > j["updated_at"].as_str().unwrap());
    let u2 = client
        .update_example(authed(
            UpdateExampleRequest {
                example_id: created.example_id,
                is_active: Some(false),
                ..Default::default()
            },
            &token(A),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!u2.is_active);
    assert_eq!(u2.title.as_deref(), Some("Greeting"));
    // An empty title clears it.
    let r = app
        .http("PATCH", &path, Some(&token(A)), Some(r#"{"title": ""}"#))
        .await;
    assert_eq!(r.json()["title"], serde_json::Value::Null);

    // Delete, then it is gone everywhere.
    let r = app.http("DELETE", &path, Some(&token(A)), None).await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    let gone = client
        .get_example(authed(
            GetExampleRequest {
                example_id: created.example_id,
            },
            &token(A),
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let r = app.http("DELETE", &path, Some(&token(A)), None).await;
    assert_eq!(r.status, 404);
    let list = app
        .http("GET", "/user/practice/examples", Some(&token(A)), None)
        .await
        .json();
    assert_eq!(list, json!({"examples": [], "next_page_token": ""}));
}

async fn bad_examples_are_refused(backend: Backend) {
    let app = app!(backend);
    let t = token(A);
    let cases = [
        (r#"{"output_text": "o"}"#, "input_text"),
        (r#"{"input_text": "  ", "output_text": "o"}"#, "input_text"),
        (r#"{"input_text": "i"}"#, "output_text"),
        (
            r#"{"input_text": "i", "output_text": "o", "title": "a\nb"}"#,
            "title",
        ),
        (
            r#"{"input_text": "i", "output_text": "o", "meta": [1]}"#,
            "meta",
        ),
        (
            r#"{"input_text": "i", "output_text": "o", "meta": "x"}"#,
            "meta",
        ),
        (
            r#"{"input_text": "i", "output_text": "o", "is_active": "yes"}"#,
            "is_active",
        ),
        (
            r#"{"input_text": "i", "output_text": "o", "user_id": 43}"#,
            "user_id",
        ),
    ];
    for (body, field) in cases {
        let r = app
            .http("POST", "/user/practice/examples", Some(&t), Some(body))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        let e = r.json();
        assert_eq!(
            e["details"][0]["field_violations"][0]["field"], field,
            "{body}: {e}"
        );
    }
    let long = json!({"input_text": "i".repeat(20_001), "output_text": "o"}).to_string();
    assert_eq!(
        app.http("POST", "/user/practice/examples", Some(&t), Some(&long))
            .await
            .status,
        400
    );
    let list = app
        .http("GET", "/user/practice/examples", Some(&t), None)
        .await
        .json();
    assert_eq!(list["examples"], json!([]), "nothing was written");
    for q in [
        "?page_size=-1",
        "?page_token=forged",
        "?bogus=1",
        "?page_size=abc",
    ] {
        let r = app
            .http(
                "GET",
                &format!("/user/practice/examples{q}"),
                Some(&t),
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
}

async fn another_users_examples_look_missing(backend: Backend) {
    let app = app!(backend);
    let mine = app.example(A, "mine", true).await;
    let path = format!("/user/practice/examples/{}", mine.example_id);
    let missing = format!("/user/practice/examples/{}", mine.example_id + 1000);
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(r#"{"title": "stolen"}"#)),
        ("DELETE", None),
    ] {
        let theirs = app.http(method, &path, Some(&token(B)), body).await;
        let absent = app.http(method, &missing, Some(&token(B)), body).await;
        assert_eq!((theirs.status, absent.status), (404, 404), "{method}");
        assert_eq!(
            theirs.json()["message"]
                .as_str()
                .unwrap()
                .replace(&mine.example_id.to_string(), "N"),
            absent.json()["message"]
                .as_str()
                .unwrap()
                .replace(&(mine.example_id + 1000).to_string(), "N"),
        );
    }
    let list = app
        .http("GET", "/user/practice/examples", Some(&token(B)), None)
        .await
        .json();
    assert_eq!(list["examples"], json!([]));
    // A's example is untouched.
    let still = app
        .client()
        .await
        .get_example(authed(
            GetExampleRequest {
                example_id: mine.example_id,
            },
            &token(A),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.title.as_deref(), Some("mine"));
    let del = app
        .client()
        .await
        .delete_example(authed(
            DeleteExampleRequest {
                example_id: mine.example_id,
            },
            &token(B),
        ))
        .await
        .unwrap_err();
    assert_eq!(del.code(), Code::NotFound);
}

async fn pagination_is_stable_under_inserts(backend: Backend) {
    let app = app!(backend);
    let mut before = HashSet::new();
    for i in 0..450 {
        before.insert(
            app.example(A, &format!("e{i}"), i % 3 != 0)
                .await
                .example_id,
        );
    }
    // Someone keeps adding examples while we page.
    let url = app.url();
    let inserter = tokio::spawn(async move {
        let mut client = practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient::connect(url).await.unwrap();
        for i in 0..60 {
            client
                .create_example(authed(
                    CreateExampleRequest {
                        input_text: format!("late {i}"),
                        output_text: "o".into(),
                        ..Default::default()
                    },
                    &token(A),
                ))
                .await
                .unwrap();
        }
    });
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .client()
            .await
            .list_examples(authed(
                ListExamplesRequest {
                    page_size: 200,
                    page_token: page_token.clone(),
                },
                &token(A),
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.examples.len() <= 200);
        seen.extend(page.examples.iter().map(|e| e.example_id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        tokio::task::yield_now().await;
    }
    inserter.await.unwrap();
    assert!(pages >= 3);
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no example appears twice");
    assert!(
        before.is_subset(&unique),
        "every pre-existing example appears"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "oldest first");
    // Sizes above the maximum are treated as the maximum.
    let big = app
        .http(
            "GET",
            "/user/practice/examples?page_size=1000",
            Some(&token(A)),
            None,
        )
        .await
        .json();
    assert_eq!(big["examples"].as_array().unwrap().len(), 200);
    let small = app
        .http(
            "GET",
            "/user/practice/examples?page_size=2",
            Some(&token(A)),
            None,
        )
        .await
        .json();
    assert_eq!(small["examples"].as_array().unwrap().len(), 2);
    let next = small["next_page_token"].as_str().unwrap();
    let second = app
        .http(
            "GET",
            &format!("/user/practice/examples?page_size=2&page_token={next}"),
            Some(&token(A)),
            None,
        )
        .await
        .json();
    assert!(
        second["examples"][0]["example_id"].as_i64() > small["examples"][1]["example_id"].as_i64()
    );
}

on_both_backends!(
    crud_over_grpc_and_json,
    bad_examples_are_refused,
    another_users_examples_look_missing,
    pagination_is_stable_under_inserts,
);
