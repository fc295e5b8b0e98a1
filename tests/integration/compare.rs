//! Compare and continue over the JSON routes, on both backends, against
//! the OpenAI-wire test server: regenerate one answer (a new attempt of the
//! same turn, the earlier one kept, the history showing each turn once),
//! rate it, choose a turn's best answer or a tie; another user's ids are
//! missing ones, and nothing is written for them.

use crate::common;
use crate::conversation::{ME, chat_with};

use common::{Backend, token};
use serde_json::{Value, json};

on_both_backends!(
    a_turn_answered_again_keeps_the_earlier_attempt,
    answers_are_rated_and_turns_chosen,
    a_blind_session_hides_model_names_until_chosen,
    models_continue_from_the_chosen_answer_when_asked,
);

const OTHER: i64 = ME + 1;

async fn a_turn_answered_again_keeps_the_earlier_attempt(backend: Backend) {
    // Two upstream names, so m-a's requests can be told apart.
    let Some(chat) = chat_with(backend, &[("m-a", "echo"), ("m-b", "nousage")], "", &[]).await
    else {
        return;
    };
    let id = chat.session.session_id;
    let prompts = format!("/user/practice/sessions/{id}/prompts");
    let first = chat
        .app
        .http(
            "POST",
            &prompts,
            Some(&token(ME)),
            Some(r#"{"prompt_text": "one"}"#),
        )
        .await
        .json();
    let a = &first["responses"][0];
    let (a_id, turn) = (a["response_id"].as_i64().unwrap(), a["prompt_id"].clone());
    assert_eq!(a["attempt"], 1);
    let calls = chat.provider.seen.count();

    // Again, as Server-Sent Events.
    let again = format!("/user/practice/sessions/{id}/responses/{a_id}:regenerate");
    let sse = chat
        .app
        .http_with(
            "POST",
            &again,
            Some(&token(ME)),
            Some("{}"),
            &[
                ("accept", "text/event-stream"),
                ("idempotency-key", "again-1"),
            ],
        )
        .await;
    assert_eq!(sse.status, 200, "{}", sse.text);
    assert!(sse.text.contains("event: started"), "{}", sse.text);
    let finished: Value = sse
        .text
        .lines()
        .skip_while(|l| *l != "event: finished")
        .nth(1)
        .and_then(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .expect("a finished event");
    assert_eq!(finished["attempt"], 2);
    assert_eq!(finished["prompt_id"], turn);
    assert_eq!(finished["model_name"], "m-a");
    assert_eq!(
        chat.provider.seen.count(),
        calls + 1,
        "only that model answered"
    );

    // The key replays the attempt; the waiting form answers the same.
    let replay = chat
        .app
        .http_with(
            "POST",
            &again,
            Some(&token(ME)),
            Some("{}"),
            &[("idempotency-key", "again-1")],
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(
        replay.json()["response"]["response_id"],
        finished["response_id"]
    );
    assert_eq!(chat.provider.seen.count(), calls + 1);

    // Both attempts are stored.
    let listed = chat
        .app
        .http(
            "GET",
            &format!("/user/practice/sessions/{id}/responses"),
            Some(&token(ME)),
            None,
        )
        .await
        .json();
    let attempts: Vec<(i64, i64)> = listed["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model_name"] == "m-a")
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap(),
                r["prompt_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts.len(), 2, "{listed}");
    assert_eq!((attempts[0].0, attempts[1].0), (1, 2));

    // The next prompt's history shows the turn once.
    chat.app
        .http(
            "POST",
            &prompts,
            Some(&token(ME)),
            Some(r#"{"prompt_text": "two"}"#),
        )
        .await;
    let sent = chat.provider.seen.requests_for("echo").pop().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        4,
        "system, one earlier turn, the prompt: {messages:?}"
    );

    // Another user's answer is a missing one; nothing is written.
    let before = chat.app.counts().await;
    let theirs = chat
        .app
        .http("POST", &again, Some(&token(OTHER)), Some("{}"))
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.text);
    assert_eq!(chat.app.counts().await, before);
}

async fn answers_are_rated_and_turns_chosen(backend: Backend) {
    let Some(chat) = chat_with(backend, &[("m-a", "echo"), ("m-b", "echo")], "", &[]).await else {
        return;
    };
    let id = chat.session.session_id;
    let turn = chat
        .app
        .http(
            "POST",
            &format!("/user/practice/sessions/{id}/prompts"),
            Some(&token(ME)),
            Some(r#"{"prompt_text": "compare"}"#),
        )
        .await
        .json();
    let ids: Vec<i64> = turn["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["response_id"].as_i64().unwrap())
        .collect();
    let base = format!("/user/practice/sessions/{id}/responses");

    let rating = format!("{base}/{}/rating", ids[0]);
    let rated = chat
        .app
        .http(
            "PUT",
            &rating,
            Some(&token(ME)),
            Some(r#"{"rating": "up", "comment": "clear"}"#),
        )
        .await;
    assert_eq!(rated.status, 200, "{}", rated.text);
    assert_eq!(rated.json()["rating"], "up");
    assert_eq!(rated.json()["rating_comment"], "clear");
    let bad = chat
        .app
        .http(
            "PUT",
            &rating,
            Some(&token(ME)),
            Some(r#"{"rating": "meh"}"#),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let theirs = chat
        .app
        .http(
            "PUT",
            &rating,
            Some(&token(OTHER)),
            Some(r#"{"rating": "down"}"#),
        )
        .await;
    assert_eq!(theirs.status, 404);
    let cleared = chat
        .app
        .http(
            "PUT",
            &rating,
            Some(&token(ME)),
            Some(r#"{"rating": "none"}"#),
        )
        .await
        .json();
    assert_eq!(cleared["rating"], Value::Null);

    let choose = |rid: i64| format!("{base}/{rid}:choose");
    let chosen = chat
        .app
        .http("POST", &choose(ids[1]), Some(&token(ME)), Some("{}"))
        .await;
    assert_eq!(chosen.status, 200, "{}", chosen.text);
    let choices: Vec<Value> = chosen.json()["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["response_id"], r["choice"]]))
        .collect();
    assert_eq!(
        choices,
        [json!([ids[0], "not_chosen"]), json!([ids[1], "chosen"])]
    );
    let theirs = chat
        .app
        .http("POST", &choose(ids[0]), Some(&token(OTHER)), Some("{}"))
        .await;
    assert_eq!(theirs.status, 404);
    // A tie replaces the choice, and reads show it.
    let tie = chat
        .app
        .http(
            "POST",
            &choose(ids[0]),
            Some(&token(ME)),
            Some(r#"{"tie": true}"#),
        )
        .await;
    assert_eq!(tie.status, 200, "{}", tie.text);
    let read = chat.app.get(ME, id).await.unwrap();
    assert!(read.responses.iter().all(|r| r.choice == "tie"), "{read:?}");
}

async fn a_blind_session_hides_model_names_until_chosen(backend: Backend) {
    let Some(chat) = chat_with(backend, &[("m-a", "echo"), ("m-b", "echo")], "", &[]).await else {
        return;
    };
    let id = chat.session.session_id;
    let settings = format!("/user/practice/sessions/{id}/settings");
    let set = chat
        .app
        .http(
            "PATCH",
            &settings,
            Some(&token(ME)),
            Some(r#"{"blind": true}"#),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["blind"], true);

    // SSE: no name in any event.
    let sse = chat
        .app
        .http_with(
            "POST",
            &format!("/user/practice/sessions/{id}/prompts"),
            Some(&token(ME)),
            Some(r#"{"prompt_text": "who are you"}"#),
            &[("accept", "text/event-stream")],
        )
        .await;
    assert_eq!(sse.status, 200);
    assert!(
        !sse.text.contains("m-a") && !sse.text.contains("m-b"),
        "{}",
        sse.text
    );
    // gRPC: the same.
    let mut events = chat
        .stream(common::authed(
            crate::conversation::prompt(id, "again"),
            &token(ME),
        ))
        .await;
    while let Some(event) = events.message().await.unwrap() {
        let shown = format!("{event:?}");
        assert!(!shown.contains("m-a") && !shown.contains("m-b"), "{shown}");
    }
    // Reads: neither the session's models nor its answers are named.
    let read = chat
        .app
        .http(
            "GET",
            &format!("/user/practice/sessions/{id}"),
            Some(&token(ME)),
            None,
        )
        .await;
    assert!(
        !read.text.contains("m-a") && !read.text.contains("m-b"),
        "{}",
        read.text
    );
    let first = read.json()["responses"][0]["response_id"].as_i64().unwrap();

    // Choosing reveals that turn's names, and only that turn's.
    let chosen = chat
        .app
        .http(
            "POST",
            &format!("/user/practice/sessions/{id}/responses/{first}:choose"),
            Some(&token(ME)),
            Some("{}"),
        )
        .await
        .json();
    let names: Vec<&str> = chosen["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m-a", "m-b"]);
    let listed = chat
        .app
        .http(
            "GET",
            &format!("/user/practice/sessions/{id}/responses"),
            Some(&token(ME)),
            None,
        )
        .await
        .json();
    let named: Vec<bool> = listed["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model_name"] != "")
        .collect();
    assert_eq!(named, [true, true, false, false]);
}

async fn models_continue_from_the_chosen_answer_when_asked(backend: Backend) {
    let Some(chat) = chat_with(backend, &[("m-a", "echo"), ("m-b", "other")], "", &[]).await else {
        return;
    };
    let id = chat.session.session_id;
    let say = |text: &str| {
        let body = json!({"prompt_text": text}).to_string();
        let path = format!("/user/practice/sessions/{id}/prompts");
        let app = &chat.app;
        async move {
            app.http("POST", &path, Some(&token(ME)), Some(&body))
                .await
                .json()
        }
    };
    let first = say("one").await;
    let b_answer = first["responses"][1]["response_id"].as_i64().unwrap();
    chat.app
        .http(
            "POST",
            &format!("/user/practice/sessions/{id}/responses/{b_answer}:choose"),
            Some(&token(ME)),
            Some("{}"),
        )
        .await;
    // By default each model is shown its own answer.
    say("two").await;
    let own = chat.provider.seen.requests_for("echo").pop().unwrap();
    assert_eq!(own["messages"][2]["content"], "Answer to one.");
    let set = chat
        .app
        .http(
            "PATCH",
            &format!("/user/practice/sessions/{id}/settings"),
            Some(&token(ME)),
            Some(r#"{"continue_from": "chosen"}"#),
        )
        .await;
    assert_eq!(set.json()["continue_from"], "chosen");
    // Now m-a is shown m-b's chosen answer to turn one, and its own to
    // turn two, which has no choice.
    say("three").await;
    let chosen = chat.provider.seen.requests_for("echo").pop().unwrap();
    let assistant: Vec<&str> = chosen["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(assistant, ["Another answer to one.", "Answer to two."]);
}
