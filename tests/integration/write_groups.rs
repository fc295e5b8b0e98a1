//! Write transactions side by side. They commit in groups: on SQLite one
//! group at a time on the one write connection, each member in a savepoint
//! of its own; on PostgreSQL in lanes side by side, where a member that
//! fails rolls its group back and the others run again. Either way one
//! that fails or gives up keeps none of its own writes, and each that
//! commits is there afterwards.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common::Backend;
use practice_service::domain::session::CreateSessionInput;
use practice_service::domain::{NewExample, NewSession, UserId, now_micros};
use practice_service::store::{
    Asked, KeyClaim, PromptRows, SessionRows, Store, StoreError, WriteTx,
};

const ME: i64 = 42;

fn example(title: String) -> NewExample {
    NewExample {
        title: Some(title),
        input_text: "in".into(),
        output_text: "out".into(),
        is_active: true,
        meta: Default::default(),
    }
}

/// Writer `i`'s transaction, run as a use case runs it (`attempt` from 1):
/// two kinds of write, a session's rows in one statement (on SQLite a
/// group member's savepoint begins in the same call) or an example (a
/// statement of its own). Every third gives up: dropped without a commit.
async fn write(store: &Arc<dyn Store>, i: i64, attempt: u32) -> Result<(), StoreError> {
    let user = UserId::new(ME).unwrap();
    let mut tx = store.begin_write(attempt).await?;
    if i % 2 == 0 {
        // Some titles hold a NUL, which PostgreSQL refuses: a failed
        // statement, which there aborts the whole transaction, so the
        // group is rolled back and its other members run again. SQLite
        // stores it.
        let title = match i % 5 {
            2 => format!("w{i}\0"),
            _ => format!("w{i}"),
        };
        let new = NewSession::new(CreateSessionInput {
            title: Some(title),
            ..Default::default()
        });
        tx.insert_session(&SessionRows {
            user,
            new: &new,
            now: now_micros(),
            style_preset: "balanced",
            style_params: &Default::default(),
            generation_params: &Default::default(),
            agent_snapshot: &Default::default(),
            example_ids: &[],
            model_names: &["m".to_string()],
            idempotency_key: None,
        })
        .await?;
    } else {
        tx.insert_example(user, &example(format!("w{i}")), now_micros(), None)
            .await?;
    }
    if i % 3 != 0 {
        tx.commit().await?;
    }
    Ok(())
}

/// A write transaction (run `attempt`) that has written one example.
async fn example_written(store: &Arc<dyn Store>, title: &str, attempt: u32) -> Box<dyn WriteTx> {
    let user = UserId::new(ME).unwrap();
    let mut tx = store.begin_write(attempt).await.unwrap();
    tx.insert_example(user, &example(title.into()), now_micros(), None)
        .await
        .unwrap();
    tx
}

/// The titles of the examples `ME` has.
async fn example_titles(store: &Arc<dyn Store>) -> BTreeSet<String> {
    let user = UserId::new(ME).unwrap();
    let examples = store.examples(user, 0, 100).await.unwrap();
    examples.into_iter().filter_map(|e| e.title).collect()
}

async fn dropped_transactions_undo_only_themselves(backend: Backend) {
    // PostgreSQL groups only when lanes are set.
    let app = app!(backend, &[("PRACTICE_PG_WRITE_LANES", "2")]);
    let user = UserId::new(ME).unwrap();
    // One transaction holds the write connection (on SQLite) while the
    // others queue behind it, so they share its group.
    let first = example_written(&app.store, "first", 1).await;
    let writers: Vec<_> = (0..30)
        .map(|i| {
            let store = app.store.clone();
            tokio::spawn(async move {
                // A conflict (its group rolled back by another member) runs
                // the transaction again, as the use cases do.
                for attempt in 1..=5 {
                    match write(&store, i, attempt).await {
                        Ok(()) => return true,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(_) => return false,
                    }
                }
                panic!("writer {i} kept conflicting");
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    match first.commit().await {
        Ok(()) => {}
        // PostgreSQL: a member that failed rolled the group back.
        Err(StoreError::Conflict(_)) if backend == Backend::Postgres => {
            let again = example_written(&app.store, "first", 2).await;
            again.commit().await.unwrap();
        }
        Err(e) => panic!("{e}"),
    }
    let mut refused = BTreeSet::new();
    for (i, writer) in writers.into_iter().enumerate() {
        if !writer.await.unwrap() {
            refused.insert(i as i64);
        }
    }
    let nul = BTreeSet::from([2, 12, 22]);
    match backend {
        Backend::Postgres => assert_eq!(refused, nul),
        Backend::Sqlite => assert!(refused.is_empty()),
    }

    let titles = example_titles(&app.store).await;
    let refused = &refused;
    let kept =
        |kind: i64| (0..30).filter(move |i| i % 2 == kind && i % 3 != 0 && !refused.contains(i));
    let mut expected: BTreeSet<String> = kept(1).map(|i| format!("w{i}")).collect();
    expected.insert("first".into());
    assert_eq!(titles, expected);
    let counts = app.counts().await;
    let sessions = kept(0).count() as i64;
    assert_eq!(
        (counts.sessions, counts.session_models),
        (sessions, sessions)
    );

    // The write connection is free again for writes outside transactions.
    app.class(7, &[ME], &[("m", true)]).await;
    let created = app
        .store
        .create_example(user, &example("after".into()), now_micros())
        .await
        .unwrap();
    assert!(app.store.example(user, created).await.unwrap().is_some());
}

/// A prompt and its responses are one write (on SQLite one call): the
/// response ids come back in the order the models were asked, whatever
/// order their ids have, an idempotency key is linked to the prompt, and a
/// session that is not the caller's writes nothing.
async fn a_prompt_is_written_whole_or_not_at_all(backend: Backend) {
    let app = app!(backend);
    let user = UserId::new(ME).unwrap();
    let session = app.create(ME, Default::default()).await.unwrap();
    let theirs = app.create(ME + 1, Default::default()).await.unwrap();
    let mut models: Vec<(i64, String)> = session
        .models
        .iter()
        .map(|m| (m.session_model_id, m.model_name.clone()))
        .collect();
    assert!(models.len() > 1, "the order is tested on several models");
    models.reverse();
    let rows = |session_id, key| PromptRows {
        user,
        replica_id: "r1",
        session_id,
        prompt_text: "héllo",
        now: now_micros(),
        models: &models,
        idempotency_key: key,
    };
    let expired_before = now_micros() - chrono::Duration::days(1);

    let mut tx = app.store.begin_write(1).await.unwrap();
    let claim = tx.claim_key(user, "p-1", "fp", now_micros(), expired_before);
    assert!(matches!(claim.await.unwrap(), KeyClaim::Claimed));
    let (prompt_id, ids) = tx
        .insert_prompt(&rows(session.session_id, Some("p-1")))
        .await
        .unwrap()
        .expect("my session");
    tx.commit().await.unwrap();
    let stored = app.get(ME, session.session_id).await.unwrap().responses;
    let by_id = |id: i64| stored.iter().find(|r| r.response_id == id).unwrap();
    for ((session_model_id, model_name), id) in models.iter().zip(&ids) {
        let r = by_id(*id);
        assert_eq!(
            (r.session_model_id, &r.model_name),
            (*session_model_id, model_name)
        );
        assert_eq!((r.prompt_id, r.status.as_str()), (prompt_id, "in_progress"));
    }
    let mut tx = app.store.begin_write(1).await.unwrap();
    let claim = tx.claim_key(user, "p-1", "fp", now_micros(), expired_before);
    match claim.await.unwrap() {
        KeyClaim::Held { prompt_id: p, .. } => assert_eq!(p, Some(prompt_id)),
        KeyClaim::Claimed => panic!("the key was not linked to the prompt"),
    }
    drop(tx);

    let counts = app.store.table_counts().await.unwrap();
    let mut tx = app.store.begin_write(1).await.unwrap();
    let written = tx.insert_prompt(&rows(theirs.session_id, None)).await;
    assert_eq!(written.unwrap(), None, "another user's session");
    tx.commit().await.unwrap();
    assert_eq!(app.store.table_counts().await.unwrap(), counts);
}

on_both_backends!(
    dropped_transactions_undo_only_themselves,
    a_prompt_is_written_whole_or_not_at_all
);

/// A write transaction given up while its `BEGIN` still waits for the
/// write lock (a request's deadline) leaves no transaction open behind it:
/// the `BEGIN` finishes after the caller has gone, and the next writer
/// must still be able to begin. (On SQLite the `BEGIN` comes with the
/// transaction's first write, when it joins its group.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_given_up_half_way_leaves_nothing_open() {
    let app = app!(Backend::Sqlite);
    let user = UserId::new(ME).unwrap();
    let lock = crate::limits::WriteLock::take(&app.database_url).await;
    let waited = tokio::time::timeout(std::time::Duration::from_millis(300), async {
        let mut tx = app.store.begin_write(1).await?;
        tx.insert_example(user, &example("given up".into()), now_micros(), None)
            .await
    })
    .await;
    assert!(waited.is_err(), "the BEGIN waits for the lock");
    lock.release().await;
    // Let the abandoned BEGIN get the lock and finish.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut tx = app.store.begin_write(1).await.unwrap();
    let id = tx
        .insert_example(user, &example("after".into()), now_micros(), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(app.store.example(user, id).await.unwrap().is_some());
}

/// PostgreSQL: a group member waiting for a row lock held outside its lane
/// holds up the whole lane, so it gives up soon, as a conflict; the use
/// case's next run of the transaction joins no group, so it waits for the
/// lock as long as it must, beside lanes that are busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_in_a_group_gives_up_and_the_retry_waits_alone() {
    let app = app!(Backend::Postgres, &[("PRACTICE_PG_WRITE_LANES", "2")]);
    let user = UserId::new(ME).unwrap();
    let now = now_micros();
    let expired_before = now - chrono::Duration::days(1);
    let claim = async move |tx: &mut Box<dyn WriteTx>| {
        tx.claim_key(user, "shared", "same request", now, expired_before)
            .await
    };

    // A transaction outside groups claims the key and keeps it uncommitted.
    let mut holder = app.store.begin_write(2).await.unwrap();
    assert_eq!(claim(&mut holder).await.unwrap(), KeyClaim::Claimed);

    let mut member = app.store.begin_write(1).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(30), claim(&mut member))
        .await
        .expect("a member gives up the wait instead of holding its lane");
    assert!(matches!(waited, Err(StoreError::Conflict(_))), "{waited:?}");
    drop(member);

    // Both lanes busy: a retry still begins, and waits for the key alone.
    let lanes = [
        app.store.begin_write(1).await.unwrap(),
        app.store.begin_write(1).await.unwrap(),
    ];
    let mut retry = app.store.begin_write(2).await.unwrap();
    let waiting = tokio::spawn(async move { (claim(&mut retry).await, retry) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the retry waits for the holder");
    holder.commit().await.unwrap();
    let (claimed, retry) = waiting.await.unwrap();
    assert!(
        matches!(claimed.unwrap(), KeyClaim::Held { .. }),
        "the retry sees the holder's claim once it is committed"
    );
    retry.commit().await.unwrap();
    drop(lanes);
    assert_eq!(app.counts().await.idempotency_keys, 1);
}

/// PostgreSQL: a member that only read and then gave up (a create whose
/// class the caller can't see, say) leaves its group's transaction usable,
/// so the group goes on and commits the others' writes on their first run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_only_read_leaves_its_group_going() {
    let app = app!(Backend::Postgres, &[("PRACTICE_PG_WRITE_LANES", "1")]);
    let user = UserId::new(ME).unwrap();
    let first = example_written(&app.store, "first", 1).await;
    let store = app.store.clone();
    let reader = tokio::spawn(async move {
        let mut tx = store.begin_write(1).await.unwrap();
        assert!(tx.example_owners(&[1, 2, 3]).await.unwrap().len() <= 1);
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let store = app.store.clone();
    let writer = tokio::spawn(async move {
        let mut tx = store.begin_write(1).await.unwrap();
        tx.insert_example(user, &example("second".into()), now_micros(), None)
            .await
            .unwrap();
        tx.commit().await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.commit().await.expect("the group was not rolled back");
    reader.await.unwrap();
    writer
        .await
        .unwrap()
        .expect("the group was not rolled back");
    let titles = example_titles(&app.store).await;
    assert_eq!(titles, BTreeSet::from(["first".into(), "second".into()]));
}

static NO_PARAMS: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
    std::sync::LazyLock::new(Default::default);

/// A session's rows, as a create decides them, for the test below.
fn rows<'a>(new: &'a NewSession, models: &'a [String]) -> SessionRows<'a> {
    SessionRows {
        user: UserId::new(ME).unwrap(),
        new,
        now: now_micros(),
        style_preset: "balanced",
        style_params: &NO_PARAMS,
        generation_params: &NO_PARAMS,
        agent_snapshot: &NO_PARAMS,
        example_ids: &[],
        model_names: models,
        idempotency_key: None,
    }
}

/// On SQLite a create reads its references before its transaction joins
/// its group, and reads them again in the same call as its insert. An
/// agent changed in between makes the transaction run again, with nothing
/// of its first run kept; unchanged, the insert goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_changed_after_a_read_ahead_run_the_create_again() {
    let app = app!(Backend::Sqlite);
    let user = UserId::new(ME).unwrap();
    app.agent(7, ME, None, &[]).await;
    let asked = Asked {
        class_id: None,
        project_id: None,
        knowledge_ids: &[],
        agent_id: Some(7),
    };
    let new = NewSession::new(CreateSessionInput {
        agent_id: Some(7),
        ..Default::default()
    });
    let models = ["m".to_string()];

    let mut tx = app.store.begin_write(1).await.unwrap();
    let found = tx.references(user, &asked).await.unwrap();
    assert_eq!(found.agent.unwrap().agent.name, "Agent 7");
    // Renamed meanwhile, in a write transaction that commits first.
    let mut renamed = app.agent(7, ME, None, &[]).await;
    renamed.name = "Agent 7, renamed".into();
    let mut other = app.store.begin_write(1).await.unwrap();
    other.put_agent(&renamed, now_micros()).await.unwrap();
    other.commit().await.unwrap();
    match tx.insert_session(&rows(&new, &models)).await {
        Err(StoreError::Conflict(e)) => assert!(e.to_string().contains("references changed")),
        other => panic!("expected a conflict, got {other:?}"),
    }
    drop(tx);

    // The run again (as the use case runs it) sees the new name and writes.
    let mut tx = app.store.begin_write(2).await.unwrap();
    let found = tx.references(user, &asked).await.unwrap();
    assert_eq!(found.agent.unwrap().agent.name, "Agent 7, renamed");
    tx.insert_session(&rows(&new, &models)).await.unwrap();
    tx.commit().await.unwrap();
    // Read ahead with nothing changed: the first run writes.
    let mut tx = app.store.begin_write(1).await.unwrap();
    tx.references(user, &asked).await.unwrap();
    tx.insert_session(&rows(&new, &models)).await.unwrap();
    tx.commit().await.unwrap();
    let counts = app.store.table_counts().await.unwrap();
    assert_eq!((counts.sessions, counts.session_models), (2, 2));
}

/// PostgreSQL: an answer's own writes (its text, its end, its usage) all
/// take the same lane, so groups in two lanes never wait for each other's
/// locks on those rows; other writes take the least busy lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_writes_share_one_lane() {
    let app = app!(Backend::Postgres, &[("PRACTICE_PG_WRITE_LANES", "2")]);
    let user = UserId::new(ME).unwrap();
    let mut first = app.store.begin_answer_write(1).await.unwrap();
    first
        .insert_example(user, &example("holds its lane".into()), now_micros(), None)
        .await
        .unwrap();
    // The lane is held until `first` commits: another answer write waits
    // for it, while any other write begins in the other lane at once.
    let waited = tokio::time::timeout(Duration::from_millis(300), app.store.begin_answer_write(1));
    assert!(waited.await.is_err(), "an answer write took another lane");
    let other = tokio::time::timeout(Duration::from_millis(300), app.store.begin_write(1));
    drop(
        other
            .await
            .expect("a write waited for the answers' lane")
            .unwrap(),
    );
    first.commit().await.unwrap();
    let mut next = app.store.begin_answer_write(1).await.unwrap();
    next.insert_example(user, &example("after".into()), now_micros(), None)
        .await
        .unwrap();
    next.commit().await.unwrap();
}
