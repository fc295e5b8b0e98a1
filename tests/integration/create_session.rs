//! CreateSession and GetSession over native gRPC, every rule of the create
//! path, on SQLite and on PostgreSQL.

use crate::common;

use common::{Backend, DEFAULT_MODELS};
use practice_service::proto::practice::v1::{CreateSessionRequest, Session};
use practice_service::store::CatalogKind;
use prost_types::value::Kind;
use tonic::Code;
use tonic_types::StatusExt;

const ME: i64 = 42;
const OTHER: i64 = 7;

fn number(s: &prost_types::Struct, key: &str) -> f64 {
    match s.fields.get(key).and_then(|v| v.kind.clone()) {
        Some(Kind::NumberValue(n)) => n,
        other => panic!("{key}: expected a number, got {other:?}"),
    }
}

fn string(s: &prost_types::Struct, key: &str) -> Option<String> {
    match s.fields.get(key).and_then(|v| v.kind.clone()) {
        Some(Kind::StringValue(v)) => Some(v),
        Some(Kind::NullValue(_)) => None,
        other => panic!("{key}: expected a string or null, got {other:?}"),
    }
}

fn violations(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .expect("a google.rpc.BadRequest detail");
    bad.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

async fn empty_request_gets_defaults(backend: Backend) {
    let app = app!(backend);
    let s = app
        .create(ME, CreateSessionRequest::default())
        .await
        .unwrap();
    assert!(s.session_id >= 1);
    assert_eq!(s.user_id, ME);
    assert_eq!(s.created_at, s.updated_at);
    assert!(s.created_at.is_some());
    assert_eq!((s.class_id, s.project_id, s.agent_id), (None, None, None));
    assert!(s.knowledge_ids.is_empty());
    assert_eq!((s.title.as_deref(), s.notes.as_deref()), (None, None));
    let st = s.settings.clone().unwrap();
    assert_eq!(st.session_id, s.session_id);
    assert_eq!(st.style_preset, "accurate");
    for obj in [&st.style_params, &st.generation_params, &st.agent_snapshot] {
        assert_eq!(obj.as_ref().unwrap().fields.len(), 0);
    }
    assert!(st.few_shot_links.is_empty());
    let names: Vec<_> = s.models.iter().map(|m| m.model_name.as_str()).collect();
    assert_eq!(names.join(","), DEFAULT_MODELS);
    assert_eq!(
        s.models.iter().map(|m| m.sort_order).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(s.models.iter().all(|m| m.session_id == s.session_id));
    assert!(s.responses.is_empty());
    assert_eq!(app.get(ME, s.session_id).await.unwrap(), s);
}

async fn full_create_copies_agent_and_class(backend: Backend) {
    let app = app!(backend);
    app.class(
        3,
        &[ME, OTHER],
        &[("m-one", true), ("m-off", false), ("m-three", true)],
    )
    .await;
    app.project(10, OTHER, Some(3)).await; // visible: I am in its class
    app.knowledge(5, ME, None, None).await; // mine
    app.knowledge(9, OTHER, None, Some(3)).await; // in my class
    app.knowledge(6, OTHER, Some(10), None).await; // in a visible project
    let e1 = app.example(OTHER, "first", true).await;
    let e2 = app.example(OTHER, "inactive", false).await;
    let e3 = app.example(OTHER, "third", true).await;
    let agent = app
        .agent(
            8,
            OTHER,
            Some(3),
            &[e3.example_id, e2.example_id, e1.example_id],
        )
        .await;

    let s = app
        .create(
            ME,
            CreateSessionRequest {
                class_id: Some(3),
                project_id: Some(10),
                knowledge_ids: vec![9, 5, 6],
                agent_id: Some(8),
                title: Some("Essay feedback".into()),
                notes: Some("line one\nline two".into()),
            },
        )
        .await
        .unwrap();

    assert_eq!(
        (s.class_id, s.project_id, s.agent_id),
        (Some(3), Some(10), Some(8))
    );
    assert_eq!(s.knowledge_ids, [9, 5, 6], "order kept");
    assert_eq!(s.title.as_deref(), Some("Essay feedback"));
    assert_eq!(s.notes.as_deref(), Some("line one\nline two"));

    let names: Vec<_> = s
        .models
        .iter()
        .map(|m| (m.model_name.as_str(), m.sort_order))
        .collect();
    assert_eq!(names, [("m-one", 0), ("m-three", 1)]);

    let st = s.settings.clone().unwrap();
    assert_eq!(st.style_preset, "balanced");
    assert_eq!(
        number(st.generation_params.as_ref().unwrap(), "max_tokens"),
        512.0
    );
    assert_eq!(
        string(st.style_params.as_ref().unwrap(), "tone").as_deref(),
        Some("warm")
    );

    let snap = st.agent_snapshot.clone().unwrap();
    assert_eq!(number(&snap, "agent_id"), 8.0);
    assert_eq!(string(&snap, "name"), Some(agent.name.clone()));
    assert_eq!(string(&snap, "description"), agent.description.clone());
    assert_eq!(string(&snap, "system_prompt"), agent.system_prompt.clone());
    assert_eq!(string(&snap, "style_preset").as_deref(), Some("balanced"));
    assert!(string(&snap, "updated_at").unwrap().ends_with('Z'));
    match snap.fields["example_ids"].kind.clone() {
        Some(Kind::ListValue(l)) => {
            let ids: Vec<f64> = l
                .values
                .iter()
                .map(|v| match v.kind {
                    Some(Kind::NumberValue(n)) => n,
                    _ => panic!("example id"),
                })
                .collect();
            assert_eq!(
                ids,
                [
                    e3.example_id as f64,
                    e2.example_id as f64,
                    e1.example_id as f64
                ]
            );
        }
        other => panic!("example_ids: {other:?}"),
    }
    for key in ["style_params", "generation_params"] {
        assert!(snap.fields.contains_key(key), "{key}");
    }

    // Active examples only, in the agent's order.
    let links: Vec<_> = st
        .few_shot_links
        .iter()
        .map(|l| (l.example_id, l.sort_order))
        .collect();
    assert_eq!(links, [(e3.example_id, 0), (e1.example_id, 1)]);
    let first = &st.few_shot_links[0];
    assert_eq!(first.setting_id, st.setting_id);
    let ex = first.example.clone().unwrap();
    assert_eq!(ex.input_text, e3.input_text);
    assert_eq!(ex.output_text, e3.output_text);
    assert_eq!(ex.user_id, OTHER);
    assert!(ex.is_active);
    assert_eq!(ex.title.as_deref(), Some("third"));
    assert_eq!(number(ex.meta.as_ref().unwrap(), "rank"), 3.0);

    // The session reads back exactly as it was answered.
    assert_eq!(app.get(ME, s.session_id).await.unwrap(), s);

    // A later change to the agent leaves the snapshot alone.
    app.agent(8, OTHER, Some(3), &[]).await;
    assert_eq!(
        app.get(ME, s.session_id).await.unwrap().settings,
        s.settings
    );
}

async fn invisible_references_look_missing(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("m", true)]).await;
    app.class(4, &[OTHER], &[("m", true)]).await; // not mine
    app.project(20, OTHER, None).await; // another user's, no class
    app.project(21, OTHER, Some(4)).await; // in a class I'm not in
    app.knowledge(30, OTHER, None, None).await;
    app.knowledge(31, OTHER, Some(20), Some(4)).await;
    app.knowledge(32, ME, None, None).await;
    app.agent(40, OTHER, None, &[]).await;
    app.agent(41, OTHER, Some(4), &[]).await;

    let cases: Vec<(CreateSessionRequest, &str, i64)> = vec![
        (common::in_class(4), "class", 4),
        (common::in_class(999), "class", 999),
        (
            CreateSessionRequest {
                project_id: Some(20),
                ..Default::default()
            },
            "project",
            20,
        ),
        (
            CreateSessionRequest {
                project_id: Some(21),
                ..Default::default()
            },
            "project",
            21,
        ),
        (
            CreateSessionRequest {
                project_id: Some(999),
                ..Default::default()
            },
            "project",
            999,
        ),
        (
            CreateSessionRequest {
                knowledge_ids: vec![32, 30],
                ..Default::default()
            },
            "knowledge item",
            30,
        ),
        (
            CreateSessionRequest {
                knowledge_ids: vec![31],
                ..Default::default()
            },
            "knowledge item",
            31,
        ),
        (
            CreateSessionRequest {
                knowledge_ids: vec![32, 999],
                ..Default::default()
            },
            "knowledge item",
            999,
        ),
        (common::with_agent(40), "agent", 40),
        (
            CreateSessionRequest {
                agent_id: Some(41),
                class_id: Some(3),
                ..Default::default()
            },
            "agent",
            41,
        ),
        (common::with_agent(999), "agent", 999),
    ];
    for (req, what, id) in cases {
        let status = app.refused(ME, req, Code::NotFound).await;
        // Missing and not-visible read the same: only the id differs.
        assert_eq!(status.message(), format!("{what} {id} not found"));
    }

    // Deleted objects can't be used for new sessions.
    app.knowledge(33, ME, None, None).await;
    app.store
        .delete_catalog(
            CatalogKind::Knowledge,
            33,
            practice_service::domain::now_micros(),
        )
        .await
        .unwrap();
    app.refused(
        ME,
        CreateSessionRequest {
            knowledge_ids: vec![33],
            ..Default::default()
        },
        Code::NotFound,
    )
    .await;
    app.store
        .delete_catalog(
            CatalogKind::Class,
            3,
            practice_service::domain::now_micros(),
        )
        .await
        .unwrap();
    app.refused(ME, common::in_class(3), Code::NotFound).await;
}

async fn class_without_enabled_models_fails(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("off", false)]).await;
    app.class(5, &[ME], &[]).await;
    for class_id in [3, 5] {
        let status = app
            .refused(
                ME,
                CreateSessionRequest {
                    class_id: Some(class_id),
                    ..Default::default()
                },
                Code::FailedPrecondition,
            )
            .await;
        assert!(status.message().contains("no enabled model"), "{status:?}");
    }
}

async fn project_must_be_in_the_given_class(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("m", true)]).await;
    app.class(4, &[ME], &[("m", true)]).await;
    app.project(10, ME, Some(4)).await;
    app.project(11, ME, None).await;
    let status = app
        .refused(
            ME,
            CreateSessionRequest {
                class_id: Some(3),
                project_id: Some(10),
                ..Default::default()
            },
            Code::InvalidArgument,
        )
        .await;
    assert_eq!(violations(&status), ["project_id"]);
    // A project without a class goes with any class; one in the class too.
    app.create(
        ME,
        CreateSessionRequest {
            class_id: Some(3),
            project_id: Some(11),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.create(
        ME,
        CreateSessionRequest {
            class_id: Some(4),
            project_id: Some(10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn other_users_session_is_not_found(backend: Backend) {
    let app = app!(backend);
    let mine = app
        .create(ME, CreateSessionRequest::default())
        .await
        .unwrap();
    let theirs = app.get(OTHER, mine.session_id).await.unwrap_err();
    let missing = app.get(OTHER, mine.session_id + 1000).await.unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound);
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        theirs.message().replace(&mine.session_id.to_string(), "N"),
        missing
            .message()
            .replace(&(mine.session_id + 1000).to_string(), "N")
    );
    assert_eq!(
        app.get(ME, 0).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

/// Many creates at once, each with its own class, agent and knowledge: every
/// session reads back exactly as it was answered, and no row id (setting,
/// link, model) is handed to two sessions. The writes of a create are one
/// statement on each backend; this is what shows they attribute every row
/// to the right session under concurrency.
async fn concurrent_creates_own_their_rows(backend: Backend) {
    let app = app!(backend);
    const N: i64 = 12;
    let mut requests = Vec::new();
    for i in 1..=N {
        let models: Vec<String> = (0..(i % 3 + 1)).map(|m| format!("model-{i}-{m}")).collect();
        let models: Vec<(&str, bool)> = models.iter().map(|m| (m.as_str(), true)).collect();
        app.class(100 + i, &[ME], &models).await;
        let mut examples = Vec::new();
        for e in 0..(i % 4) {
            examples.push(
                app.example(ME, &format!("ex {i}.{e}"), true)
                    .await
                    .example_id,
            );
        }
        app.agent(200 + i, ME, Some(100 + i), &examples).await;
        app.knowledge(300 + i, ME, None, None).await;
        app.knowledge(400 + i, ME, None, Some(100 + i)).await;
        requests.push(CreateSessionRequest {
            class_id: Some(100 + i),
            knowledge_ids: vec![400 + i, 300 + i],
            agent_id: Some(200 + i),
            title: Some(format!("session {i}")),
            ..Default::default()
        });
    }

    let created: Vec<Session> =
        futures::future::join_all(requests.iter().map(|req| app.create(ME, req.clone())))
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();

    let mut settings = std::collections::HashSet::new();
    let mut links = std::collections::HashSet::new();
    let mut models = std::collections::HashSet::new();
    for (req, s) in requests.iter().zip(&created) {
        let i = req.class_id.unwrap() - 100;
        assert_eq!(s.knowledge_ids, req.knowledge_ids);
        assert_eq!(s.models.len() as i64, i % 3 + 1);
        for (m, model) in s.models.iter().enumerate() {
            assert_eq!(model.model_name, format!("model-{i}-{m}"));
            assert_eq!(model.session_id, s.session_id);
            assert!(models.insert(model.session_model_id), "model id reused");
        }
        let st = s.settings.as_ref().unwrap();
        assert_eq!(st.session_id, s.session_id);
        assert!(settings.insert(st.setting_id), "setting id reused");
        assert_eq!(st.few_shot_links.len() as i64, i % 4);
        for (e, link) in st.few_shot_links.iter().enumerate() {
            assert_eq!(link.setting_id, st.setting_id);
            assert_eq!(link.sort_order, e as i64);
            let title = link.example.as_ref().unwrap().title.clone();
            assert_eq!(title, Some(format!("ex {i}.{e}")));
            assert!(links.insert(link.id), "link id reused");
        }
        assert_eq!(&app.get(ME, s.session_id).await.unwrap(), s);
    }
}

on_both_backends!(
    empty_request_gets_defaults,
    full_create_copies_agent_and_class,
    invisible_references_look_missing,
    class_without_enabled_models_fails,
    project_must_be_in_the_given_class,
    other_users_session_is_not_found,
    concurrent_creates_own_their_rows,
);
