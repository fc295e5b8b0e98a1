//! The store's contract, the same on every configuration: one walk that
//! calls every store verb through the API (catalog upserts and deletes,
//! examples, sessions with their knowledge, settings, links and models,
//! idempotency keys, prompts, attempts, ratings, choices, usage, paging,
//! and delete with everything that belongs to it), run on {SQLite,
//! PostgreSQL} x {group commit, plain commit}.

use serde_json::{Value, json};

use crate::common;
use common::{Backend, HttpReply, TestApp, admin_token, token};

const TEACHER: i64 = 7;
const ME: i64 = 42;

async fn ok(app: &TestApp, method: &str, path: &str, who: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let r = app.http(method, path, Some(who), body.as_deref()).await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
    if r.text.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// A POST with an idempotency key; it must succeed.
async fn keyed(app: &TestApp, path: &str, who: &str, body: Value, key: &str) -> HttpReply {
    let body = body.to_string();
    let r = app
        .http_with(
            "POST",
            path,
            Some(who),
            Some(&body),
            &[("idempotency-key", key)],
        )
        .await;
    assert_eq!(r.status, 200, "POST {path}: {}", r.text);
    r
}

async fn the_store_keeps_its_contract(backend: Backend, group_commit: &str) {
    let app = app!(
        backend,
        &[
            ("PRACTICE_GROUP_COMMIT", group_commit),
            ("PRACTICE_DEV_MODEL_DELAY_MS", "0")
        ]
    );
    let (admin, me, teacher) = (admin_token(), token(ME), token(TEACHER));
    let before = app.counts().await;

    // The catalog: upsert_class, upsert_project, upsert_knowledge, put_agent.
    let class = json!({"class_id": 3, "name": "Writing",
        "members": [{"user_id": ME, "role": "student"}, {"user_id": TEACHER, "role": "teacher"}],
        "models": [{"model_name": "m-a", "enabled": true}, {"model_name": "m-b", "enabled": true}]});
    ok(
        &app,
        "PUT",
        "/internal/practice/classes/3",
        &admin,
        Some(class),
    )
    .await;
    let project = json!({"project_id": 5, "owner_user_id": ME, "class_id": 3, "name": "Essay"});
    ok(
        &app,
        "PUT",
        "/internal/practice/projects/5",
        &admin,
        Some(project),
    )
    .await;
    let knowledge =
        json!({"knowledge_id": 9, "owner_user_id": ME, "project_id": 5, "title": "Notes"});
    ok(
        &app,
        "PUT",
        "/internal/practice/knowledge/9",
        &admin,
        Some(knowledge),
    )
    .await;

    // Examples: insert_example (with a key, replayed), example, examples,
    // update_example, example_owners (through the agent and the links).
    let new_example = |title: &str| json!({"title": title, "input_text": "q", "output_text": "a"});
    let first = keyed(
        &app,
        "/user/practice/examples",
        &teacher,
        new_example("one"),
        "example-1",
    )
    .await;
    let replay = keyed(
        &app,
        "/user/practice/examples",
        &teacher,
        new_example("one"),
        "example-1",
    )
    .await;
    assert_eq!(replay.json()["example_id"], first.json()["example_id"]);
    let example_id = first.json()["example_id"].as_i64().unwrap();
    let mine = ok(
        &app,
        "POST",
        "/user/practice/examples",
        &me,
        Some(new_example("mine")),
    )
    .await;
    let mine_id = mine["example_id"].as_i64().unwrap();
    let path = format!("/user/practice/examples/{mine_id}");
    let got = ok(&app, "GET", &path, &me, None).await;
    assert_eq!(got["title"], "mine");
    let updated = ok(&app, "PATCH", &path, &me, Some(json!({"title": "renamed"}))).await;
    assert_eq!(updated["title"], "renamed");
    let page = ok(
        &app,
        "GET",
        "/user/practice/examples?page_size=1",
        &me,
        None,
    )
    .await;
    assert_eq!(page["examples"].as_array().unwrap().len(), 1);
    let agent = json!({"agent_id": 4, "owner_user_id": TEACHER, "class_id": 3, "name": "Tutor",
        "system_prompt": "Be kind.", "style_preset": "balanced", "style_params": {},
        "generation_params": {"temperature": 0.5}, "example_ids": [example_id]});
    ok(
        &app,
        "PUT",
        "/internal/practice/agents/4",
        &admin,
        Some(agent),
    )
    .await;

    // Sessions: claim_key, references, insert_session, session.
    let create = json!({"class_id": 3, "project_id": 5, "knowledge_ids": [9], "agent_id": 4,
        "title": "Essay", "notes": "first"});
    let created = keyed(
        &app,
        "/user/practice/sessions",
        &me,
        create.clone(),
        "session-1",
    )
    .await;
    let session = created.json();
    let id = session["session_id"].as_i64().unwrap();
    let again = keyed(&app, "/user/practice/sessions", &me, create, "session-1").await;
    assert_eq!(again.json()["session_id"], id);
    assert_eq!(session["models"].as_array().unwrap().len(), 2);
    assert_eq!(
        session["settings"]["few_shot_links"][0]["example_id"],
        example_id
    );
    let path = format!("/user/practice/sessions/{id}");
    assert_eq!(ok(&app, "GET", &path, &me, None).await["title"], "Essay");

    // update_session, touch_session_settings, update_settings,
    // linked_example_ids, replace_links, session_page.
    let renamed = ok(
        &app,
        "PATCH",
        &path,
        &me,
        Some(json!({"title": "Essay 2", "notes": null})),
    )
    .await;
    assert_eq!(
        (&renamed["title"], &renamed["notes"]),
        (&json!("Essay 2"), &Value::Null)
    );
    let settings =
        json!({"style_preset": "creative", "few_shot_example_ids": [mine_id, example_id]});
    let settings = ok(
        &app,
        "PATCH",
        &format!("{path}/settings"),
        &me,
        Some(settings),
    )
    .await;
    assert_eq!(settings["style_preset"], "creative");
    let links: Vec<i64> = settings["few_shot_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["example_id"].as_i64().unwrap())
        .collect();
    assert_eq!(links, [mine_id, example_id]);
    let list = ok(
        &app,
        "GET",
        "/user/practice/sessions?page_size=10",
        &me,
        None,
    )
    .await;
    assert_eq!(list["sessions"][0]["session_id"], id);

    // The conversation: insert_prompt, the answers' saves, insert_attempt,
    // ratings, choices, usage.
    let prompt = ok(
        &app,
        "POST",
        &format!("{path}/prompts"),
        &me,
        Some(json!({"prompt_text": "hi"})),
    )
    .await;
    let responses = prompt["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 2);
    assert!(
        responses.iter().all(|r| r["status"] == "completed"),
        "{prompt}"
    );
    let response_id = responses[0]["response_id"].as_i64().unwrap();
    let answer = format!("{path}/responses/{response_id}");
    let again = ok(
        &app,
        "POST",
        &format!("{answer}:regenerate"),
        &me,
        Some(json!({})),
    )
    .await;
    assert_eq!(again["response"]["status"], "completed", "{again}");
    let rated = ok(
        &app,
        "PUT",
        &format!("{answer}/rating"),
        &me,
        Some(json!({"rating": "up"})),
    )
    .await;
    assert_eq!(rated["rating"], "up");
    ok(
        &app,
        "POST",
        &format!("{answer}:choose"),
        &me,
        Some(json!({})),
    )
    .await;
    let page = ok(
        &app,
        "GET",
        &format!("{path}/responses?page_size=2"),
        &me,
        None,
    )
    .await;
    assert_eq!(page["responses"].as_array().unwrap().len(), 2);
    assert!(!page["next_page_token"].as_str().unwrap().is_empty());
    let usage = ok(&app, "GET", "/user/practice/usage", &me, None).await;
    assert!(usage["total_tokens"].as_i64().unwrap() > 0, "{usage}");
    let stats = ok(
        &app,
        "GET",
        "/internal/practice/classes/3/model-stats",
        &admin,
        None,
    )
    .await;
    assert_eq!(stats["models"].as_array().unwrap().len(), 2, "{stats}");

    // delete_example, delete_catalog, delete_session: a session goes with
    // everything that belongs to it.
    ok(
        &app,
        "DELETE",
        &format!("/user/practice/examples/{mine_id}"),
        &me,
        None,
    )
    .await;
    ok(
        &app,
        "DELETE",
        "/internal/practice/knowledge/9",
        &admin,
        None,
    )
    .await;
    ok(&app, "DELETE", &path, &me, None).await;
    assert_eq!(app.http("GET", &path, Some(&me), None).await.status, 404);
    let after = app.counts().await;
    assert_eq!(
        (
            after.sessions,
            after.session_knowledge,
            after.settings,
            after.few_shot_links,
            after.session_models,
            after.responses
        ),
        (
            before.sessions,
            before.session_knowledge,
            before.settings,
            before.few_shot_links,
            before.session_models,
            before.responses
        )
    );
}

async fn grouped(backend: Backend) {
    the_store_keeps_its_contract(backend, "on").await;
}

async fn plain(backend: Backend) {
    the_store_keeps_its_contract(backend, "off").await;
}

on_both_backends!(grouped, plain);
