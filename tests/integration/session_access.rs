//! Who may touch a session, and changes racing each other, on both
//! backends: another user's session reads like a missing one on every verb,
//! and concurrent renames and a delete leave no orphan rows.

use crate::common;

use common::Backend;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{
    CreateSessionRequest, DeleteSessionRequest, UpdateSessionSettingsRequest,
};
use tonic::Code;

use super::sessions::{ids, page, rename, titled_session};

const ME: i64 = 42;
const OTHER: i64 = 43;

async fn another_users_session_reads_as_missing_on_every_verb(backend: Backend) {
    let app = app!(backend);
    let mine = titled_session(&app, ME, "mine").await;
    let missing = mine.session_id + 1000;
    let before = app.counts().await;
    for id in [mine.session_id, missing] {
        let errors = [
            app.get(OTHER, id).await.unwrap_err(),
            app.update(OTHER, rename(id, "taken")).await.unwrap_err(),
            app.delete(OTHER, id).await.unwrap_err(),
            app.update_settings(
                OTHER,
                UpdateSessionSettingsRequest {
                    session_id: id,
                    style_preset: Some("creative".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err(),
        ];
        for status in errors {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert_eq!(status.message(), format!("session {id} not found"));
        }
    }
    assert!(
        app.list(OTHER, page(0, ""))
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    assert_eq!(app.counts().await, before, "nothing written");
    assert_eq!(app.get(ME, mine.session_id).await.unwrap(), mine);
}

/// A session with every kind of row that goes with it (knowledge, settings,
/// few-shot links, models), deleted while renames and settings updates that
/// replace its links race the delete: whichever wins, none of its rows stay.
async fn concurrent_update_and_delete_leave_no_orphans(backend: Backend) {
    let app = app!(backend);
    app.class(3, &[ME], &[("a", true), ("b", true)]).await;
    app.knowledge(7, ME, None, None).await;
    let (e1, e2) = (
        app.example(ME, "one", true).await.example_id,
        app.example(ME, "two", true).await.example_id,
    );
    app.agent(5, ME, Some(3), &[e1, e2]).await;
    let empty = app.counts().await;
    for round in 0..5 {
        let new = CreateSessionRequest {
            knowledge_ids: vec![7],
            agent_id: Some(5),
            ..common::in_class(3)
        };
        let s = app.create(ME, new).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (url, id) = (app.url(), s.session_id);
            tasks.push(tokio::spawn(async move {
                let mut client = PracticeServiceClient::connect(url).await.unwrap();
                let token = common::token(ME);
                match i {
                    3 => client
                        .delete_session(common::authed(
                            DeleteSessionRequest { session_id: id },
                            &token,
                        ))
                        .await
                        .map(drop),
                    _ if i % 2 == 0 => client
                        .update_session_settings(common::authed(
                            UpdateSessionSettingsRequest {
                                session_id: id,
                                few_shot_example_ids: ids(&[e2, e1]),
                                ..Default::default()
                            },
                            &token,
                        ))
                        .await
                        .map(drop),
                    _ => client
                        .update_session(common::authed(
                            rename(id, &format!("r{round} {i}")),
                            &token,
                        ))
                        .await
                        .map(drop),
                }
            }));
        }
        for t in tasks {
            if let Err(status) = t.await.unwrap() {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
            }
        }
        assert_eq!(app.counts().await, empty, "round {round}: no orphan rows");
    }
}

on_both_backends!(
    another_users_session_reads_as_missing_on_every_verb,
    concurrent_update_and_delete_leave_no_orphans,
);
