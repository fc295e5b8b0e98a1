//! Many creates in one call (SQLite). A create without an idempotency key
//! writes once: its session's rows, decided from references it read ahead
//! (`write_state::ReadAhead`). Instead of taking the lane in turn and sending
//! its insert alone, it queues the insert; whoever holds the lane next
//! sends every insert queued, each after its references read again and in
//! a savepoint of its own, in one call to the connection's thread, and
//! admits them to the open group together. So creates arriving together
//! cost one hop to that thread and one hand-over of the lane, not one each:
//! what a careful program on one connection does.
//!
//! An insert whose references changed since they were read is undone with
//! every insert after it in the call (savepoints nest), and each of those
//! creates runs again (`StoreError::Conflict`), as one sent alone would.
//! A call that fails rolls the group back, and its members run again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::{OwnedMutexGuard, oneshot};

use super::dialect::Dialect;
use super::group_commit::{Committing, GroupCommit, Slot, Writer};
use super::write_state::ReadAhead;
use super::{SessionIds, SessionRows, StoreError};
use crate::domain::UserId;
use crate::domain::session::NewSession;

/// The most inserts sent in one call.
pub const MAX_BATCH: usize = 8;

/// A create's insert, owned so another task can send it.
pub struct BatchedCreate {
    pub ahead: ReadAhead,
    user: UserId,
    new: NewSession,
    now: DateTime<Utc>,
    style_preset: String,
    style_params: Map<String, Value>,
    generation_params: Map<String, Value>,
    agent_snapshot: Map<String, Value>,
    example_ids: Vec<i64>,
    model_names: Vec<String>,
}

impl BatchedCreate {
    /// `rows` (without an idempotency key), decided from `ahead`.
    pub fn new(ahead: ReadAhead, rows: &SessionRows<'_>) -> Self {
        Self {
            ahead,
            user: rows.user,
            new: rows.new.clone(),
            now: rows.now,
            style_preset: rows.style_preset.to_owned(),
            style_params: rows.style_params.clone(),
            generation_params: rows.generation_params.clone(),
            agent_snapshot: rows.agent_snapshot.clone(),
            example_ids: rows.example_ids.to_vec(),
            model_names: rows.model_names.to_vec(),
        }
    }

    /// A link id for each example and a model id for each model.
    fn matches(&self, ids: &SessionIds) -> bool {
        ids.link_ids.len() == self.example_ids.len()
            && ids.model_ids.len() == self.model_names.len()
    }

    pub fn rows(&self) -> SessionRows<'_> {
        SessionRows {
            user: self.user,
            new: &self.new,
            now: self.now,
            style_preset: &self.style_preset,
            style_params: &self.style_params,
            generation_params: &self.generation_params,
            agent_snapshot: &self.agent_snapshot,
            example_ids: &self.example_ids,
            model_names: &self.model_names,
            idempotency_key: None,
        }
    }
}

type Reply = Result<(SessionIds, Committing), StoreError>;

/// A create waiting on a lane.
pub struct Queued {
    id: u64,
    create: BatchedCreate,
    reply: oneshot::Sender<Reply>,
}

/// Queues `create` on the least busy lane and returns once it is in a
/// group (its ids, and the group's commit to wait for): sent by whoever
/// held the lane first, this caller or another.
pub async fn insert<DB: Dialect>(
    group: &Arc<GroupCommit<DB>>,
    create: BatchedCreate,
) -> Result<(SessionIds, Committing), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let slot = group.slot(None);
    let (reply, mut answer) = oneshot::channel();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    slot.queued()
        .lock()
        .expect("never poisoned: no code panics holding it")
        .push(Queued { id, create, reply });
    let waiting = async {
        loop {
            tokio::select! {
                // Sent by another holder: its answer comes first.
                biased;
                sent = &mut answer => return sent.unwrap_or_else(|_| Err(dropped())),
                // In a task of its own: a caller that gives up mid-call
                // must not leave the others unanswered.
                writer = slot.lock() => drop(tokio::spawn(send_queued(slot.again(), writer))),
            }
        }
    };
    if let Ok(answered) = tokio::time::timeout(group.acquire_timeout(), waiting).await {
        return answered;
    }
    // Waited too long for the lane. Still queued: taken off, nothing was
    // sent, so the create may safely run again. Already taken by a holder:
    // its call is under way, and its answer will say what became of it.
    let taken_off = {
        let mut queued = slot.queued().lock().expect("never poisoned");
        let at = queued.iter().position(|q| q.id == id);
        at.map(|at| queued.remove(at)).is_some()
    };
    if taken_off {
        return Err(StoreError::begin(sqlx::Error::PoolTimedOut));
    }
    answer.await.unwrap_or_else(|_| Err(dropped()))
}

/// Names each queued create, so one that gives up can find itself.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn dropped() -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(
        "the queued create was dropped unsent".into(),
    ))
}

fn run_again(why: &str) -> StoreError {
    StoreError::Conflict(sqlx::Error::Protocol(why.into()))
}

/// Holding the lane: sends the creates queued on it (at most `MAX_BATCH`,
/// oldest first) in one call, and answers each.
async fn send_queued<DB: Dialect>(slot: Slot<DB>, mut writer: OwnedMutexGuard<Writer<DB>>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let batch: Vec<Queued> = {
        let mut queued = slot.queued().lock().expect("never poisoned");
        // Those whose callers gave up are not sent.
        queued.retain(|q| !q.reply.is_closed());
        let n = queued.len().min(MAX_BATCH);
        queued.drain(..n).collect()
    };
    if batch.is_empty() {
        return;
    }
    let group = slot.group();
    if let Err(e) = group.open(&mut writer).await {
        let why = e.to_string();
        return answer_all(batch, |_| {
            Err(StoreError::begin(sqlx::Error::Protocol(why.clone())))
        });
    }
    let conn = writer.conn().expect("opened above");
    let creates: Vec<&BatchedCreate> = batch.iter().map(|q| &q.create).collect();
    let sent = match DB::insert_sessions(conn, &creates).await {
        Ok(sent) if sent.len() == batch.len() => sent,
        // Which inserts ran is unknown: the whole group runs again.
        failed => {
            let why = match failed {
                Err(e) => e.to_string(),
                Ok(sent) => format!("{} of {} creates answered", sent.len(), batch.len()),
            };
            group.fail(&mut writer, &why).await;
            return answer_all(batch, |_| Err(run_again(&why)));
        }
    };
    // The first insert whose references changed is undone, with every
    // insert after it; so is one whose ids don't match its rows, which the
    // create would refuse after its insert (and this one is committed with
    // its group even if its caller drops it then).
    let kept = sent
        .iter()
        .zip(&batch)
        .position(|((ids, again), q)| *again != q.create.ahead.rows || !q.create.matches(ids))
        .unwrap_or(batch.len());
    if kept < batch.len() {
        // Only a number of ours is put in it.
        let undo = sqlx::AssertSqlSafe(format!("ROLLBACK TO batched_{kept}"));
        let conn = writer.conn().expect("opened above");
        if let Err(e) = sqlx::raw_sql(undo).execute(conn).await {
            group.fail(&mut writer, &e.to_string()).await;
            return answer_all(batch, |_| Err(run_again("the write group was rolled back")));
        }
    }
    let committing = slot.admit(writer, kept);
    let mut ids = sent.into_iter().map(|(ids, _)| ids);
    answer_all(batch, |i| match (i < kept, ids.next()) {
        (true, Some(ids)) => Ok((ids, committing.clone())),
        _ => Err(StoreError::references_changed()),
    });
}

fn answer_all(batch: Vec<Queued>, mut answer: impl FnMut(usize) -> Reply) {
    for (i, queued) in batch.into_iter().enumerate() {
        // A caller gone since is not told; its insert commits all the same,
        // as if it had gone just after the commit.
        let _ = queued.reply.send(answer(i));
    }
}
