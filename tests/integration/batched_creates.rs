//! SQLite: creates that read their references ahead queue their inserts,
//! and whoever holds the write lane next sends every one queued in one
//! call. Each create gets its own ids; one whose references changed is
//! undone with every insert sent after it, and each of those runs again.

use std::sync::Arc;
use std::time::Duration;

use crate::common::Backend;
use practice_service::domain::session::CreateSessionInput;
use practice_service::domain::{NewExample, NewSession, UserId, now_micros};
use practice_service::store::{
    Asked, Responses, SessionIds, SessionRows, Store, StoreError, WriteTx,
};

const ME: i64 = 42;

/// What a create asks: the agent, or nothing.
fn asked(agent_id: Option<i64>) -> Asked<'static> {
    Asked {
        class_id: None,
        project_id: None,
        knowledge_ids: &[],
        agent_id,
    }
}

/// A create as the use case runs it, on its first attempt: references read
/// ahead, then the insert; committed when the insert went through.
async fn create(
    store: Arc<dyn Store>,
    title: String,
    agent_id: Option<i64>,
) -> Result<SessionIds, StoreError> {
    let user = UserId::new(ME).unwrap();
    let new = NewSession::new(CreateSessionInput {
        title: Some(title),
        agent_id,
        ..Default::default()
    });
    let models = ["m".to_string()];
    let none = Default::default();
    let mut tx = store.begin_write(1).await?;
    tx.references(user, &asked(agent_id)).await?;
    let ids = tx
        .insert_session(&SessionRows {
            user,
            new: &new,
            now: now_micros(),
            style_preset: "balanced",
            style_params: &none,
            generation_params: &none,
            agent_snapshot: &none,
            example_ids: &[],
            model_names: &models,
            idempotency_key: None,
        })
        .await?;
    tx.commit().await?;
    Ok(ids)
}

async fn title_of(store: &Arc<dyn Store>, session_id: i64) -> Option<String> {
    let user = UserId::new(ME).unwrap();
    let session = store.session(user, session_id, Responses::Skip).await;
    session.unwrap().expect("the session was committed").title
}

/// A write transaction that has written, so holds the write lane until it
/// commits.
async fn holding_the_lane(store: &Arc<dyn Store>) -> Box<dyn WriteTx> {
    let mut tx = store.begin_write(1).await.unwrap();
    let example = NewExample {
        title: Some("holds the lane".into()),
        input_text: "in".into(),
        output_text: "out".into(),
        is_active: true,
        meta: Default::default(),
    };
    let user = UserId::new(ME).unwrap();
    tx.insert_example(user, &example, now_micros(), None)
        .await
        .unwrap();
    tx
}

/// Creates queued while another write holds the lane, started `gap`
/// apart (so they queue in order), the last given as long to queue.
async fn queued_behind(
    store: &Arc<dyn Store>,
    creates: Vec<(String, Option<i64>)>,
    gap: Duration,
) -> Vec<tokio::task::JoinHandle<Result<SessionIds, StoreError>>> {
    let mut tasks = Vec::new();
    for (title, agent_id) in creates {
        tasks.push(tokio::spawn(create(store.clone(), title, agent_id)));
        tokio::time::sleep(gap).await;
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_sent_together_each_get_their_own_rows() {
    let app = app!(Backend::Sqlite);
    let user = UserId::new(ME).unwrap();
    app.agent(7, ME, None, &[]).await;
    let holder = holding_the_lane(&app.store).await;
    let creates = (0..40).map(|i| (format!("s{i}"), (i % 2 == 0).then_some(7)));
    let tasks = queued_behind(&app.store, creates.collect(), Duration::from_millis(5)).await;
    holder.commit().await.unwrap();
    for (i, task) in tasks.into_iter().enumerate() {
        let ids = task.await.unwrap().unwrap();
        assert_eq!(ids.model_ids.len(), 1);
        let title = title_of(&app.store, ids.session_id).await;
        assert_eq!(title.as_deref(), Some(format!("s{i}").as_str()));
        let session = app.store.session(user, ids.session_id, Responses::Skip);
        let session = session.await.unwrap().unwrap();
        assert_eq!(session.settings.setting_id, ids.setting_id);
        assert_eq!(session.models[0].session_model_id, ids.model_ids[0]);
    }
    let counts = app.store.table_counts().await.unwrap();
    assert_eq!((counts.sessions, counts.session_models), (40, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_references_changed_is_undone_with_those_sent_after_it() {
    let app = app!(Backend::Sqlite);
    app.agent(7, ME, None, &[]).await;
    let mut renamed = app.agent(7, ME, None, &[]).await;
    renamed.name = "Agent 7, renamed".into();
    // The lane's holder renames the agent the middle create read ahead.
    let mut holder = holding_the_lane(&app.store).await;
    let creates = vec![
        ("before".to_string(), None),
        ("read the old name".to_string(), Some(7)),
        ("after".to_string(), None),
    ];
    let tasks = queued_behind(&app.store, creates, Duration::from_millis(100)).await;
    holder.put_agent(&renamed, now_micros()).await.unwrap();
    holder.commit().await.unwrap();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let before = results[0].as_ref().expect("sent before the changed one");
    let title = title_of(&app.store, before.session_id).await;
    assert_eq!(title.as_deref(), Some("before"));
    for undone in &results[1..] {
        match undone {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("expected a conflict (run again), got {other:?}"),
        }
    }
    let counts = app.store.table_counts().await.unwrap();
    assert_eq!((counts.sessions, counts.session_models), (1, 1));
}

/// A create that waits for the lane past the acquire timeout gives up
/// with nothing sent: it is taken off the queue, so no later holder of the
/// lane writes it, and running it again makes one session, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_gives_up_waiting_is_never_sent() {
    let app = app!(
        Backend::Sqlite,
        &[("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "300")]
    );
    let holder = holding_the_lane(&app.store).await;
    let task = tokio::spawn(create(app.store.clone(), "gave up".into(), None));
    match task.await.unwrap() {
        Err(StoreError::Begin(_)) => {}
        other => panic!("expected to give up before beginning, got {other:?}"),
    }
    holder.commit().await.unwrap();
    // The next holder of the lane finds nothing of it queued.
    let ids = create(app.store.clone(), "ran again".into(), None)
        .await
        .unwrap();
    assert_eq!(
        title_of(&app.store, ids.session_id).await.as_deref(),
        Some("ran again")
    );
    let counts = app.store.table_counts().await.unwrap();
    assert_eq!(counts.sessions, 1);
}
