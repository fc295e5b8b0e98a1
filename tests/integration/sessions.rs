//! Session lifecycle on both backends: listing (paging as a snapshot,
//! filters), renaming, deleting with everything that hangs off a session,
//! and editing the settings. (Who may touch a session, and concurrent
//! changes: `session_access.rs`.)

use crate::common;

use std::collections::HashSet;

use common::{Backend, TestApp};
use practice_service::proto::practice::v1::{
    ListSessionsRequest, Session, UpdateSessionRequest, UpdateSessionSettingsRequest,
};
use prost_types::value::Kind;
use tonic::Code;

const ME: i64 = 42;
const OTHER: i64 = 43;

fn text(s: &str) -> Option<prost_types::Value> {
    Some(prost_types::Value {
        kind: Some(Kind::StringValue(s.into())),
    })
}

fn null() -> Option<prost_types::Value> {
    Some(prost_types::Value {
        kind: Some(Kind::NullValue(0)),
    })
}

pub(super) fn ids(ids: &[i64]) -> Option<prost_types::ListValue> {
    Some(prost_types::ListValue {
        values: ids
            .iter()
            .map(|id| prost_types::Value {
                kind: Some(Kind::NumberValue(*id as f64)),
            })
            .collect(),
    })
}

/// A timestamp as `(seconds, nanos)`, which orders as time does.
fn at(t: Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.expect("a timestamp");
    (t.seconds, t.nanos)
}

pub(super) fn page(size: i32, token: &str) -> ListSessionsRequest {
    ListSessionsRequest {
        page_size: size,
        page_token: token.into(),
        ..Default::default()
    }
}

pub(super) async fn titled_session(app: &TestApp, user: i64, title: &str) -> Session {
    app.create(user, common::titled(title)).await.unwrap()
}

pub(super) fn rename(session_id: i64, title: &str) -> UpdateSessionRequest {
    UpdateSessionRequest {
        session_id,
        title: text(title),
        notes: None,
    }
}

async fn paging_is_a_snapshot_while_sessions_change(backend: Backend) {
    let app = app!(backend);
    let mut existing = Vec::new();
    for i in 0..250 {
        existing.push(titled_session(&app, ME, &format!("s{i}")).await.session_id);
    }
    titled_session(&app, OTHER, "not mine").await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut round = 0;
    loop {
        let reply = app.list(ME, page(40, &token)).await.unwrap();
        for s in &reply.sessions {
            assert_eq!(s.user_id, ME);
            seen.push(s.session_id);
        }
        // Newest first within the page.
        let times: Vec<_> = reply.sessions.iter().map(|s| at(s.updated_at)).collect();
        if round == 0 {
            assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
        }
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
        // Between pages: 10 new sessions, and updates to one already served,
        // one not served yet, and one updated twice.
        for i in 0..10 {
            titled_session(&app, ME, &format!("new {round}-{i}")).await;
        }
        let served = seen[seen.len() / 2];
        let pending = existing[round * 7 % 100];
        for id in [served, pending, pending] {
            app.update(ME, rename(id, &format!("moved {round}")))
                .await
                .unwrap();
        }
        round += 1;
    }
    assert!(round >= 6, "250 sessions in pages of 40");
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no session twice");
    assert_eq!(
        unique,
        existing.iter().copied().collect::<HashSet<_>>(),
        "exactly the sessions of the first page's moment"
    );
    // A fresh listing starts from now: the new ones first.
    let fresh = app.list(ME, page(5, "")).await.unwrap();
    assert!(
        fresh.sessions[0].title().starts_with("moved")
            || fresh.sessions[0].title().starts_with("new")
    );
}

async fn lists_filter_by_class_and_project(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("m", true)]).await;
    app.project(10, ME, Some(3)).await;
    let in_class = app.create(ME, common::in_class(3)).await.unwrap();
    let in_project = app
        .create(
            ME,
            practice_service::proto::practice::v1::CreateSessionRequest {
                class_id: Some(3),
                project_id: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let plain = titled_session(&app, ME, "plain").await;
    let list = |class_id, project_id| {
        let app = &app;
        async move {
            let reply = app
                .list(
                    ME,
                    ListSessionsRequest {
                        class_id,
                        project_id,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            reply
                .sessions
                .iter()
                .map(|s| s.session_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(None, None).await,
        [plain.session_id, in_project.session_id, in_class.session_id]
    );
    assert_eq!(
        list(Some(3), None).await,
        [in_project.session_id, in_class.session_id]
    );
    assert_eq!(list(None, Some(10)).await, [in_project.session_id]);
    assert_eq!(list(Some(4), None).await, Vec::<i64>::new());
    // Items have the full shape; a page token only works with its filters.
    let reply = app.list(ME, page(1, "")).await.unwrap();
    assert_eq!(
        reply.sessions[0]
            .models
            .iter()
            .map(|m| m.model_name.as_str())
            .collect::<Vec<_>>(),
        common::DEFAULT_MODELS.split(',').collect::<Vec<_>>(),
        "a session without a class has the default models"
    );
    assert!(reply.sessions[0].settings.is_some());
    let status = app
        .list(
            ME,
            ListSessionsRequest {
                page_size: 1,
                page_token: reply.next_page_token,
                class_id: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    for bad in [page(-1, ""), page(10, "not-a-token")] {
        let status = app.list(ME, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}

async fn update_changes_present_fields_only(backend: Backend) {
    let app = app!(backend);
    let s = app
        .create(
            ME,
            practice_service::proto::practice::v1::CreateSessionRequest {
                title: Some("first".into()),
                notes: Some("some notes".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Present: changes; absent: stays.
    let renamed = app
        .update(ME, rename(s.session_id, "second"))
        .await
        .unwrap();
    assert_eq!(renamed.title(), "second");
    assert_eq!(renamed.notes(), "some notes");
    assert!(
        at(renamed.updated_at) > at(s.updated_at),
        "updated_at moves"
    );
    assert_eq!(renamed.created_at, s.created_at);
    // null: clears.
    let cleared = app
        .update(
            ME,
            UpdateSessionRequest {
                session_id: s.session_id,
                title: None,
                notes: null(),
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.title, Some("second".into()));
    assert_eq!(cleared.notes, None);
    assert_eq!(app.get(ME, s.session_id).await.unwrap(), cleared);
    // The create rules apply, and a refused update writes nothing.
    let before = app.counts().await;
    for bad in [
        rename(s.session_id, "two\nlines"),
        rename(s.session_id, &"x".repeat(201)),
        UpdateSessionRequest {
            session_id: s.session_id,
            title: Some(prost_types::Value {
                kind: Some(Kind::NumberValue(5.0)),
            }),
            notes: None,
        },
        rename(0, "zero"),
    ] {
        let status = app.update(ME, bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    assert_eq!(app.counts().await, before);
    assert_eq!(app.get(ME, s.session_id).await.unwrap(), cleared);
}

async fn delete_removes_everything_that_hangs_off_a_session(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("a", true), ("b", true)]).await;
    app.knowledge(5, ME, None, None).await;
    let e = app.example(ME, "one", true).await;
    app.agent(8, ME, None, &[e.example_id]).await;
    let empty = app.counts().await;
    let mut req = common::in_class(3);
    req.agent_id = Some(8);
    req.knowledge_ids = vec![5];
    let mut call = common::authed(req, &common::token(ME));
    call.metadata_mut()
        .insert("idempotency-key", "delete-me".parse().unwrap());
    let s = app
        .client()
        .await
        .create_session(call)
        .await
        .unwrap()
        .into_inner();
    app.update(ME, rename(s.session_id, "renamed"))
        .await
        .unwrap();
    let full = app.counts().await;
    assert_eq!(full.sessions, 1);
    assert_eq!(full.session_models, 2);
    assert_eq!(full.few_shot_links, 1);
    assert_eq!(full.session_knowledge, 1);
    assert_eq!(full.idempotency_keys, 1);
    assert_eq!(full.session_versions, 1);
    app.delete(ME, s.session_id).await.unwrap();
    assert_eq!(
        app.counts().await,
        empty,
        "every row of the session is gone"
    );
    assert_eq!(
        app.get(ME, s.session_id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        app.delete(ME, s.session_id).await.unwrap_err().code(),
        Code::NotFound,
        "deleting again"
    );
    // The example itself stays: it is the user's, not the session's.
    assert_eq!(
        app.example(ME, "two", true).await.example_id,
        e.example_id + 1
    );
}

async fn settings_replace_links_in_order(backend: Backend) {
    let app = app!(backend);
    let teachers = app.example(7, "teacher's", true).await;
    app.class(3, &[ME], &[("a", true)]).await;
    app.agent(8, 7, Some(3), &[teachers.example_id]).await;
    let mine_1 = app.example(ME, "mine 1", true).await;
    let mine_2 = app.example(ME, "mine 2", false).await;
    let others = app.example(OTHER, "someone else's", true).await;
    let mut req = common::in_class(3);
    req.agent_id = Some(8);
    let s = app.create(ME, req).await.unwrap();

    // My examples and the one already linked (the teacher's), in my order.
    let settings = app
        .update_settings(
            ME,
            UpdateSessionSettingsRequest {
                session_id: s.session_id,
                style_preset: Some("creative".into()),
                few_shot_example_ids: ids(&[
                    mine_2.example_id,
                    teachers.example_id,
                    mine_1.example_id,
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let linked: Vec<(i64, i64)> = settings
        .few_shot_links
        .iter()
        .map(|l| (l.example_id, l.sort_order))
        .collect();
    assert_eq!(
        linked,
        [
            (mine_2.example_id, 0),
            (teachers.example_id, 1),
            (mine_1.example_id, 2)
        ]
    );
    assert_eq!(settings.style_preset, "creative");
    let old = s.settings.unwrap();
    assert_eq!(
        settings.generation_params, old.generation_params,
        "absent stays"
    );
    assert_eq!(settings.agent_snapshot, old.agent_snapshot);
    assert!(at(settings.updated_at) > at(old.updated_at));
    let again = app.get(ME, s.session_id).await.unwrap();
    assert_eq!(again.settings.as_ref(), Some(&settings));
    assert!(
        at(again.updated_at) > at(s.updated_at),
        "the session's updated_at moves too"
    );

    // Someone else's example, a missing one, a bad preset: refused, nothing written.
    let before = app.counts().await;
    for (bad, field, code) in [
        (
            ids(&[mine_1.example_id, others.example_id]),
            "few_shot_example_ids[1]",
            Code::NotFound,
        ),
        (ids(&[999]), "few_shot_example_ids[0]", Code::NotFound),
        (
            ids(&[mine_1.example_id, mine_1.example_id]),
            "few_shot_example_ids[1]",
            Code::InvalidArgument,
        ),
    ] {
        let status = app
            .update_settings(
                ME,
                UpdateSessionSettingsRequest {
                    session_id: s.session_id,
                    few_shot_example_ids: bad,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }
    let status = app
        .update_settings(
            ME,
            UpdateSessionSettingsRequest {
                session_id: s.session_id,
                style_preset: Some("loud".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(app.counts().await, before);
    assert_eq!(app.get(ME, s.session_id).await.unwrap(), again);

    // An empty list removes the links.
    let cleared = app
        .update_settings(
            ME,
            UpdateSessionSettingsRequest {
                session_id: s.session_id,
                few_shot_example_ids: ids(&[]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(cleared.few_shot_links.is_empty());
}

on_both_backends!(
    paging_is_a_snapshot_while_sessions_change,
    lists_filter_by_class_and_project,
    update_changes_present_fields_only,
    delete_removes_everything_that_hangs_off_a_session,
    settings_replace_links_in_order,
);
