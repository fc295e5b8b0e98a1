//! Model statistics per class over the JSON routes, on both backends,
//! against the OpenAI-wire test server: the models a class's turns chose
//! (wins, a Bradley-Terry strength), rated, waited for and spent tokens on,
//! for its teachers and admins; a student is refused and an outsider sees
//! nothing.

use crate::common;
use crate::conversation::{ME, chat_with};

use common::{Backend, token};
use serde_json::json;

on_both_backends!(a_class_sees_which_model_serves_it_best);

const OTHER: i64 = ME + 1;

async fn a_class_sees_which_model_serves_it_best(backend: Backend) {
    let Some(chat) = chat_with(backend, &[("m-a", "echo"), ("m-b", "nousage")], "", &[]).await
    else {
        return;
    };
    const TEACHER: i64 = 90;
    let mut class = common::class_message(1, &[ME], &[("m-a", true), ("m-b", true)]);
    class
        .members
        .push(practice_service::proto::practice::v1::ClassMember {
            user_id: TEACHER,
            role: "teacher".into(),
        });
    chat.app
        .catalog()
        .await
        .upsert_class(common::authed(class, &common::admin_token()))
        .await
        .unwrap();
    let id = chat.session.session_id;
    // Three turns: m-a's answer chosen twice, m-b's once; one thumbs up.
    for (i, winner) in [0, 0, 1].into_iter().enumerate() {
        let turn = chat
            .app
            .http(
                "POST",
                &format!("/user/practice/sessions/{id}/prompts"),
                Some(&token(ME)),
                Some(&json!({"prompt_text": format!("turn {i}")}).to_string()),
            )
            .await
            .json();
        let rid = turn["responses"][winner]["response_id"].as_i64().unwrap();
        let chose = chat
            .app
            .http(
                "POST",
                &format!("/user/practice/sessions/{id}/responses/{rid}:choose"),
                Some(&token(ME)),
                Some("{}"),
            )
            .await;
        assert_eq!(chose.status, 200, "{}", chose.text);
        if i == 0 {
            let up = format!("/user/practice/sessions/{id}/responses/{rid}/rating");
            chat.app
                .http("PUT", &up, Some(&token(ME)), Some(r#"{"rating": "up"}"#))
                .await;
        }
    }
    let path = "/user/practice/classes/1/model-stats";
    let stats = chat
        .app
        .http("GET", path, Some(&token(TEACHER)), None)
        .await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    let stats = stats.json();
    let models = stats["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{stats}");
    let (a, b) = (&models[0], &models[1]);
    assert_eq!(a["model_name"], "m-a");
    assert_eq!(
        (a["answers"].as_i64(), a["completed"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (a["wins"].as_i64(), a["losses"].as_i64(), a["ties"].as_i64()),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(
        (b["wins"].as_i64(), b["losses"].as_i64()),
        (Some(1), Some(2))
    );
    // Bradley-Terry with one virtual tie: a has 2.5 of 4 points, 5:3.
    let expected = 1000.0 + 200.0 * (5.0f64 / 3.0).log10();
    assert!(
        (a["score"].as_f64().unwrap() - expected).abs() < 1e-6,
        "{a}"
    );
    assert!(
        (b["score"].as_f64().unwrap() - (2000.0 - expected)).abs() < 1e-6,
        "{b}"
    );
    assert_eq!(a["thumbs_up"], 1);
    assert!(a["median_latency_ms"].is_i64(), "{a}");
    // echo reports 11 prompt tokens an answer.
    assert_eq!(a["prompt_tokens"], 33);

    // The same for an admin; a student is refused, an outsider sees nothing.
    let admin = chat
        .app
        .http(
            "GET",
            "/internal/practice/classes/1/model-stats",
            Some(&common::admin_token()),
            None,
        )
        .await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    assert_eq!(admin.json()["models"], stats["models"]);
    assert_eq!(
        chat.app
            .http("GET", path, Some(&token(ME)), None)
            .await
            .status,
        403
    );
    assert_eq!(
        chat.app
            .http("GET", path, Some(&token(OTHER + 50)), None)
            .await
            .status,
        404
    );
    let bad = chat
        .app
        .http(
            "GET",
            &format!("{path}?since=yesterday"),
            Some(&token(TEACHER)),
            None,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    // A window before the turns holds nothing.
    let empty = chat
        .app
        .http(
            "GET",
            &format!("{path}?since=2020-01-01T00:00:00Z&until=2020-02-01T00:00:00Z"),
            Some(&token(TEACHER)),
            None,
        )
        .await
        .json();
    assert_eq!(empty["models"], json!([]));
}
