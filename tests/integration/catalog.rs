//! The catalog sync API over gRPC and JSON, on SQLite and PostgreSQL:
//! upserts replace, deletes are soft, and only `practice:admin` may call it.

use crate::common;

use common::{Backend, admin_token, authed, token};
use practice_service::proto::practice::v1::{Agent, DeleteAgentRequest, DeleteClassRequest};
use serde_json::{Value, json};
use tonic::Code;

const ME: i64 = 42;

async fn upserts_are_idempotent_and_replace(backend: Backend) {
    let app = app!(backend);
    let mut catalog = app.catalog().await;
    let c = common::class_message(3, &[ME], &[("a", true), ("b", true)]);
    let first = catalog
        .upsert_class(authed(c.clone(), &admin_token()))
        .await
        .unwrap()
        .into_inner();
    let second = catalog
        .upsert_class(authed(c.clone(), &admin_token()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, c);
    assert_eq!(second, c);
    let s = app.create(ME, common::in_class(3)).await.unwrap();
    assert_eq!(common::model_names(&s), ["a", "b"]);

    // Disabling a model changes what new sessions get; old ones keep theirs.
    catalog
        .upsert_class(authed(
            common::class_message(3, &[ME], &[("a", false), ("b", true), ("c", true)]),
            &admin_token(),
        ))
        .await
        .unwrap();
    let s2 = app.create(ME, common::in_class(3)).await.unwrap();
    assert_eq!(common::model_names(&s2), ["b", "c"]);
    let old = app.get(ME, s.session_id).await.unwrap();
    assert_eq!(old.models, s.models);

    // Replacing the members takes access away from new sessions.
    catalog
        .upsert_class(authed(
            common::class_message(3, &[43], &[("b", true)]),
            &admin_token(),
        ))
        .await
        .unwrap();
    let status = app.create(ME, common::in_class(3)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    app.create(43, common::in_class(3)).await.unwrap();
}

async fn deleted_agent_keeps_old_sessions(backend: Backend) {
    let app = app!(backend);
    let e1 = app.example(ME, "one", true).await;
    let mut catalog = app.catalog().await;
    let agent = Agent {
        agent_id: 8,
        owner_user_id: ME,
        name: "Tutor".into(),
        style_preset: "creative".into(),
        example_ids: vec![e1.example_id],
        ..Default::default()
    };
    let stored = catalog
        .upsert_agent(authed(agent.clone(), &admin_token()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.style_params, Some(Default::default()));
    let s = app.create(ME, common::with_agent(8)).await.unwrap();
    catalog
        .delete_agent(authed(DeleteAgentRequest { agent_id: 8 }, &admin_token()))
        .await
        .unwrap();
    let before = app.counts().await;
    let status = app.create(ME, common::with_agent(8)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(app.counts().await, before);
    let old = app.get(ME, s.session_id).await.unwrap();
    assert_eq!(old, s, "the old session keeps its agent id and snapshot");
    // Deleting again, or something that never existed, is NOT_FOUND.
    let again = catalog
        .delete_agent(authed(DeleteAgentRequest { agent_id: 8 }, &admin_token()))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    // An upsert brings it back.
    catalog
        .upsert_agent(authed(agent, &admin_token()))
        .await
        .unwrap();
    app.create(ME, common::with_agent(8)).await.unwrap();
}

async fn only_admins_may_call(backend: Backend) {
    let app = app!(backend);
    let mut catalog = app.catalog().await;
    let denied = catalog
        .upsert_class(authed(
            common::class_message(3, &[ME], &[("a", true)]),
            &token(ME),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = catalog
        .delete_class(authed(DeleteClassRequest { class_id: 3 }, &token(ME)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = catalog
        .upsert_class(tonic::Request::new(common::class_message(
            3,
            &[ME],
            &[("a", true)],
        )))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // Nothing was written: the class doesn't exist.
    let status = app.create(ME, common::in_class(3)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // Over JSON: 403 and 401.
    let body = r#"{"name": "x", "members": [{"user_id": 42, "role": "student"}], "models": [{"model_name": "a", "enabled": true}]}"#;
    let r = app
        .http(
            "PUT",
            "/internal/practice/classes/3",
            Some(&token(ME)),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["code"], 7);
    let r = app
        .http("PUT", "/internal/practice/classes/3", None, Some(body))
        .await;
    assert_eq!(r.status, 401);
    let status = app.create(ME, common::in_class(3)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

async fn agents_use_only_their_owners_examples(backend: Backend) {
    let app = app!(backend);
    let mine = app.example(7, "the owner's", true).await;
    let theirs = app.example(ME, "someone else's", true).await;
    let before = app.counts().await;
    let mut catalog = app.catalog().await;
    let agent = Agent {
        agent_id: 8,
        owner_user_id: 7,
        name: "Tutor".into(),
        style_preset: "accurate".into(),
        example_ids: vec![mine.example_id, theirs.example_id],
        ..Default::default()
    };
    let status = catalog
        .upsert_agent(authed(agent.clone(), &admin_token()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(&format!(
            "example_ids[1]: example {} is not one of owner 7's examples",
            theirs.example_id
        )),
        "{status:?}"
    );
    assert_eq!(app.counts().await, before);
    let status = app.create(ME, common::with_agent(8)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "the agent was not written");
    let own_only = Agent {
        example_ids: vec![mine.example_id],
        ..agent
    };
    catalog
        .upsert_agent(authed(own_only, &admin_token()))
        .await
        .unwrap();
}

async fn bad_catalog_objects_are_refused(backend: Backend) {
    let app = app!(backend);
    let admin = admin_token();
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "/internal/practice/agents/8",
            r#"{"owner_user_id": 1, "name": "a", "style_preset": "wild"}"#,
            "style_preset",
            "400",
        ),
        (
            "/internal/practice/agents/8",
            r#"{"owner_user_id": 0, "name": "a", "style_preset": "accurate"}"#,
            "owner_user_id",
            "400",
        ),
        (
            "/internal/practice/agents/8",
            r#"{"owner_user_id": 1, "name": "", "style_preset": "accurate"}"#,
            "name",
            "400",
        ),
        (
            "/internal/practice/agents/8",
            r#"{"owner_user_id": 1, "name": "a", "style_preset": "accurate", "example_ids": [5, 5]}"#,
            "example_ids[1]",
            "400",
        ),
        (
            "/internal/practice/classes/3",
            r#"{"class_id": 4, "name": "c"}"#,
            "class_id",
            "400",
        ),
        (
            "/internal/practice/classes/0",
            r#"{"name": "c"}"#,
            "class_id",
            "400",
        ),
        (
            "/internal/practice/projects/3",
            r#"{"owner_user_id": 1, "name": "p", "bogus": 1}"#,
            "bogus",
            "400",
        ),
    ];
    for (path, body, field, status) in cases {
        let r = app.http("PUT", path, Some(&admin), Some(body)).await;
        assert_eq!(r.status.to_string(), status, "{path} {body}: {}", r.text);
        let e = r.json();
        let fields: Vec<&str> = e["details"][0]["field_violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{path} {body}: {e}");
    }
    // A member or model listed twice counts once: the first listing.
    let r = app
        .http(
            "PUT",
            "/internal/practice/classes/3",
            Some(&admin),
            Some(r#"{"name": "c", "members": [{"user_id": 1, "role": "s"}, {"user_id": 1, "role": "t"}], "models": [{"model_name": "a", "enabled": true}, {"model_name": "a"}]}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let class = r.json();
    assert_eq!(class["members"], json!([{"user_id": 1, "role": "s"}]));
    assert_eq!(
        class["models"],
        json!([{"model_name": "a", "enabled": true}])
    );
    // An agent's examples must exist.
    let r = app.http("PUT", "/internal/practice/agents/8", Some(&admin), Some(r#"{"owner_user_id": 1, "name": "a", "style_preset": "accurate", "example_ids": [999]}"#)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Deleting what isn't there.
    let r = app
        .http(
            "DELETE",
            "/internal/practice/classes/77",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // The same id in path and body is fine.
    let r = app
        .http(
            "PUT",
            "/internal/practice/projects/3",
            Some(&admin),
            Some(r#"{"project_id": "3", "owner_user_id": 1, "name": "p"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"project_id": 3, "owner_user_id": 1, "class_id": null, "name": "p"})
    );
}

/// The README's walk-through, over JSON, as a new user would paste it.
async fn readme_walkthrough(backend: Backend) {
    let app = app!(backend);
    let admin = admin_token();
    let teacher = token(7);
    let student = token(42);
    let r = app
        .http("PUT", "/internal/practice/classes/3", Some(&admin), Some(r#"{"name": "Essay writing", "members": [{"user_id": 42, "role": "student"}], "models": [{"model_name": "gpt-4o-mini", "enabled": true}, {"model_name": "claude-3-haiku", "enabled": true}]}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut ids = Vec::new();
    for (input, output) in [
        ("Fix: their going home", "They're going home."),
        ("Fix: its raining", "It's raining."),
    ] {
        let body = json!({"title": input, "input_text": input, "output_text": output}).to_string();
        let r = app
            .http(
                "POST",
                "/user/practice/examples",
                Some(&teacher),
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let e = r.json();
        assert_eq!(e["is_active"], true);
        assert_eq!(e["meta"], json!({}));
        ids.push(e["example_id"].as_i64().unwrap());
    }
    let body = json!({"owner_user_id": 7, "class_id": 3, "name": "Grammar coach", "style_preset": "balanced", "generation_params": {"temperature": 0.3, "max_tokens": 400}, "example_ids": ids}).to_string();
    let r = app
        .http(
            "PUT",
            "/internal/practice/agents/8",
            Some(&admin),
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .http(
            "POST",
            "/user/practice/sessions",
            Some(&student),
            Some(r#"{"class_id": 3, "agent_id": 8, "title": "Essay feedback"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let s = r.json();
    assert_eq!(
        common::json_model_names(&s),
        ["gpt-4o-mini", "claude-3-haiku"]
    );
    let links: Vec<Value> = s["settings"]["few_shot_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["example_id"].clone())
        .collect();
    assert_eq!(links, [json!(ids[0]), json!(ids[1])]);
    assert_eq!(
        s["settings"]["generation_params"],
        json!({"max_tokens": 400, "temperature": 0.3})
    );

    // The last step: a prompt, answered by both models (the development
    // model, offline).
    let path = format!("/user/practice/sessions/{}/prompts", s["session_id"]);
    let r = app
        .http_with(
            "POST",
            &path,
            Some(&student),
            Some(r#"{"prompt_text": "Fix: their going to the park"}"#),
            &[("accept", "text/event-stream")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let finished = r.text.matches("event: finished\n").count();
    assert_eq!(finished, 2, "{}", r.text);
    assert!(r.text.starts_with("event: started\ndata: {"), "{}", r.text);
    let r = app
        .http(
            "POST",
            &path,
            Some(&student),
            Some(r#"{"prompt_text": "And: its raining"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let responses = r.json()["responses"].as_array().unwrap().clone();
    assert_eq!(responses.len(), 2);
    assert!(responses.iter().all(|r| r["status"] == "completed"));
}

on_both_backends!(
    agents_use_only_their_owners_examples,
    upserts_are_idempotent_and_replace,
    deleted_agent_keeps_old_sessions,
    only_admins_may_call,
    bad_catalog_objects_are_refused,
    readme_walkthrough,
);
