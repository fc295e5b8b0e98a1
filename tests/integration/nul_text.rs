//! U+0000 (NUL) in what a client sends. PostgreSQL's text can't hold it, so
//! every text field refuses it, on both backends alike and before anything
//! is written; a free-form JSON object holds it (as `\u0000`) and gives it
//! back, on both backends alike.

use crate::common;

use common::{Backend, admin_token, token};
use serde_json::{Value, json};

use super::http_errors::{refused, violation_fields};

const ME: i64 = 42;

on_both_backends!(text_refuses_nul, objects_keep_nul);

async fn text_refuses_nul(backend: Backend) {
    let app = app!(backend);
    let t = token(ME);
    let session = app.create(ME, Default::default()).await.unwrap();
    let path = format!("/user/practice/sessions/{}", session.session_id);
    let prompts = format!("{path}/prompts");
    let example = format!(
        "/user/practice/examples/{}",
        app.example(ME, "e", true).await.example_id
    );
    let agent = r#""owner_user_id": 1, "name": "a", "style_preset": "accurate""#;
    let sessions = "/user/practice/sessions";
    let agents = "/internal/practice/agents/8";
    let (t, admin) = (t.as_str(), admin_token());
    for (method, path, who, body, field) in [
        (
            "POST",
            sessions,
            t,
            r#"{"notes": "a\u0000b"}"#.to_owned(),
            "notes",
        ),
        (
            "POST",
            sessions,
            t,
            r#"{"title": "\u0000"}"#.into(),
            "title",
        ),
        ("PATCH", &path, t, r#"{"notes": "\u0000"}"#.into(), "notes"),
        (
            "POST",
            "/user/practice/examples",
            t,
            r#"{"input_text": "a\u0000", "output_text": "b"}"#.into(),
            "input_text",
        ),
        (
            "PATCH",
            &example,
            t,
            r#"{"output_text": "\u0000x"}"#.into(),
            "output_text",
        ),
        (
            "POST",
            &prompts,
            t,
            r#"{"prompt_text": "hi\u0000"}"#.into(),
            "prompt_text",
        ),
        (
            "PUT",
            agents,
            &admin,
            format!(r#"{{{agent}, "description": "\u0000"}}"#),
            "description",
        ),
        (
            "PUT",
            agents,
            &admin,
            format!(r#"{{{agent}, "system_prompt": "x\u0000"}}"#),
            "system_prompt",
        ),
    ] {
        let e = refused(&app, method, path, Some(who), Some(&body), 400, 3).await;
        assert_eq!(violation_fields(&e), [field], "{method} {path} {body}");
        // A title refuses every control character, U+0000 among them.
        let words = if field == "title" {
            "control"
        } else {
            "U+0000"
        };
        assert!(e.to_string().contains(words), "{e}");
    }
}

async fn objects_keep_nul(backend: Backend) {
    let app = app!(backend);
    let t = Some(token(ME));
    let t = t.as_deref();
    let odd = json!({"k\u{0}": "v\u{0}", "list": ["\u{0}", {"\u{0}": null}]});
    // Sent, then read back: the same object.
    let body = json!({"input_text": "in", "output_text": "out", "meta": odd}).to_string();
    let made = app
        .http("POST", "/user/practice/examples", t, Some(&body))
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let path = format!("/user/practice/examples/{}", made.json()["example_id"]);
    let read = app.http("GET", &path, t, None).await;
    assert_eq!(
        (read.status, &read.json()["meta"]),
        (200, &odd),
        "{}",
        read.text
    );

    let session = app.create(ME, Default::default()).await.unwrap();
    let path = format!("/user/practice/sessions/{}", session.session_id);
    let stop = json!({"stop": ["\u{0}"]});
    let body = json!({"style_params": odd, "generation_params": stop}).to_string();
    let edit = app
        .http("PATCH", &format!("{path}/settings"), t, Some(&body))
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    let settings: Value = app.http("GET", &path, t, None).await.json()["settings"].clone();
    assert_eq!(settings["style_params"], odd);
    assert_eq!(settings["generation_params"], stop);
}
