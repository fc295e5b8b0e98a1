//! Group commit. Committing is much of what a small write costs: on
//! SQLite the WAL frames of every page the write touched, then the sync; on
//! PostgreSQL the commit record, the WAL flush and the backend's
//! transaction start and end. So write transactions waiting for a write
//! connection run back to back inside one database transaction, and the
//! group commits once: when no writer is left waiting, or when it is full.
//! One member that fails or gives up never takes the others' writes with
//! it (see `MemberUndo`).
//! Creates back to back touch the same pages, so a group also writes far
//! fewer of them than its members would one by one.
//!
//! Groups form one after another in a lane, on one connection. SQLite has
//! one lane (one writer at a time anyway); PostgreSQL has a few side by
//! side (`StoreOptions::pg_write_lanes`), each new writer joining the least
//! busy.
//!
//! A member is acknowledged only after its group's commit (and the WAL
//! sync, when every commit is synced), so nothing a member wrote is
//! reported before it is durable; a group whose commit fails fails every
//! member, and a group rolled back tells its members to run again
//! (`StoreError::Conflict`: nothing of theirs was committed). Savepoints
//! are never released one by one: they nest, and the commit keeps them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::{Database, Pool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::StoreError;
use super::wal_sync::WalSync;

/// The most write transactions in one group: bounds how long the first of
/// them waits for the commit.
const MAX_GROUP: usize = 64;

/// How a group ended, for the members waiting on it (`None` while open).
type Outcome = Option<Ended>;

#[derive(Clone)]
enum Ended {
    Committed,
    /// Rolled back before its commit: nothing of any member's is kept, so
    /// each may run again.
    RolledBack(String),
    /// The commit (or the sync after it) failed: whether the writes are
    /// kept is unknown.
    Failed(String),
}

/// How one member's writes are undone, when it fails or gives up, without
/// undoing its group's other members'.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MemberUndo {
    /// A savepoint per member, begun with its first write and sent in the
    /// same call (SQLite: cheap, and a failed statement there leaves the
    /// transaction usable).
    Savepoint,
    /// None: a member that fails or gives up after writing rolls its whole
    /// group back, and the other members run again, outside any group (see
    /// `Store::begin_write`). For PostgreSQL, where a savepoint is a
    /// subtransaction (an XID of its own, carried in the commit record,
    /// and past 64 in one transaction every other backend's snapshots must
    /// look them up) and a round trip of its own before the first
    /// statement, since any failed statement, a read too, aborts the whole
    /// transaction. Creates fail in the database only on a lock wait given
    /// up or a fault, so the rollbacks are rare.
    FailGroup,
}

pub struct GroupCommit<DB: Database> {
    lanes: Vec<Lane<DB>>,
    pool: Pool<DB>,
    begin: &'static str,
    sync: Option<Arc<WalSync>>,
    acquire_timeout: Duration,
    undo: MemberUndo,
}

/// Groups form one after another in a lane, each on one connection; lanes
/// run side by side (SQLite has one: one writer at a time anyway).
struct Lane<DB: Database> {
    writer: Arc<Mutex<Writer<DB>>>,
    /// Writers holding or waiting for this lane: a new one joins the least
    /// busy lane.
    load: AtomicUsize,
    /// Creates waiting for whoever holds the lane next to run them, many
    /// in one call (see `batched_creates`).
    queued: std::sync::Mutex<Vec<super::batched_creates::Queued>>,
}

/// A writer's place in a lane's load, given up when dropped.
pub(super) struct Slot<DB: Database> {
    group: Arc<GroupCommit<DB>>,
    lane: usize,
}

impl<DB: Database> Drop for Slot<DB> {
    fn drop(&mut self) {
        self.group.lanes[self.lane]
            .load
            .fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) struct Writer<DB: Database> {
    /// Numbers the groups, so a closer knows whether its group is still open.
    opened: u64,
    open: Option<Group<DB>>,
}

struct Group<DB: Database> {
    id: u64,
    /// sqlx's own transaction, so a `BEGIN` cancelled half-way is rolled
    /// back by sqlx rather than left open on the pooled connection.
    tx: Transaction<'static, DB>,
    /// Members that finished; their savepoints wait for the commit.
    members: usize,
    outcome: watch::Sender<Outcome>,
}

/// One write transaction in a group: the write connection, held until the
/// member commits or is dropped (which undoes its writes, see
/// `MemberUndo`).
pub struct Member<DB: Database>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    writer: Option<OwnedMutexGuard<Writer<DB>>>,
    /// Its place in the lane, and the group commit it belongs to; held
    /// while `writer` is.
    slot: Option<Slot<DB>>,
    /// It may have written (and, with `MemberUndo::Savepoint`, its
    /// savepoint has begun).
    wrote: bool,
}

impl<DB: Database> GroupCommit<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    /// Groups in `lanes` lanes on `pool`'s connections (SQLite: one lane
    /// on a pool of one); `begin` opens a write transaction (`BEGIN
    /// IMMEDIATE` on SQLite, so a group takes the write lock before its
    /// first read).
    pub fn new(
        pool: Pool<DB>,
        lanes: usize,
        begin: &'static str,
        undo: MemberUndo,
        sync: Option<Arc<WalSync>>,
        acquire_timeout: Duration,
    ) -> Arc<Self> {
        let lane = || Lane {
            writer: Arc::new(Mutex::new(Writer {
                opened: 0,
                open: None,
            })),
            load: AtomicUsize::new(0),
            queued: std::sync::Mutex::new(Vec::new()),
        };
        Arc::new(Self {
            lanes: (0..lanes.max(1)).map(|_| lane()).collect(),
            pool,
            begin,
            sync,
            acquire_timeout,
            undo,
        })
    }

    /// Joins the open group of lane `lane` (of the least busy one if
    /// `None`), or opens one.
    pub async fn begin(self: &Arc<Self>, lane: Option<usize>) -> Result<Member<DB>, StoreError> {
        let slot = self.slot(lane);
        let mut writer = tokio::time::timeout(self.acquire_timeout, slot.lock())
            .await
            .map_err(|_| StoreError::begin(sqlx::Error::PoolTimedOut))?;
        self.open(&mut writer).await?;
        Ok(Member {
            writer: Some(writer),
            slot: Some(slot),
            wrote: false,
        })
    }

    /// A place in lane `lane` (in the least busy one if `None`).
    pub(super) fn slot(self: &Arc<Self>, lane: Option<usize>) -> Slot<DB> {
        let lane = match lane {
            Some(lane) => lane % self.lanes.len(),
            None => (0..self.lanes.len())
                .min_by_key(|&i| self.lanes[i].load.load(Ordering::Relaxed))
                .expect("at least one lane"),
        };
        self.lanes[lane].load.fetch_add(1, Ordering::Relaxed);
        Slot {
            group: self.clone(),
            lane,
        }
    }

    /// How long a writer waits for its lane at most.
    pub(super) fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// Opens a group on the lane held, unless one is open.
    pub(super) async fn open(&self, writer: &mut Writer<DB>) -> Result<(), StoreError> {
        if writer.open.is_none() {
            // Boxed: opening a transaction may open a connection, a future
            // of several KB that every member waiting for the lock above
            // would otherwise hold.
            let tx = Box::pin(self.pool.begin_with(self.begin))
                .await
                .map_err(StoreError::begin)?;
            writer.opened += 1;
            writer.open = Some(Group {
                id: writer.opened,
                tx,
                members: 0,
                outcome: watch::channel(None).0,
            });
        }
        Ok(())
    }

    /// Commits the open group, if it is still group `id`, then tells its
    /// members. The lock is let go before the WAL sync, so the next group
    /// runs while this one's sync does.
    async fn close(&self, mut writer: OwnedMutexGuard<Writer<DB>>, id: u64) {
        if writer.open.as_ref().is_none_or(|g| g.id != id) {
            return;
        }
        let group = writer.open.take().expect("checked above");
        let committed = group.tx.commit().await;
        drop(writer);
        if let Err(e) = committed {
            group
                .outcome
                .send_replace(Some(Ended::Failed(e.to_string())));
            return;
        }
        let ended = match super::sql_store::durable(&self.sync).await {
            Ok(()) => Ended::Committed,
            Err(e) => Ended::Failed(e.to_string()),
        };
        group.outcome.send_replace(Some(ended));
    }

    /// The open group can't go on: rolls it back, and its members run
    /// again.
    pub(super) async fn fail(&self, writer: &mut Writer<DB>, why: &str) {
        if let Some(group) = writer.open.take() {
            let _ = group.tx.rollback().await;
            group.outcome.send_replace(Some(Ended::RolledBack(format!(
                "the write group was rolled back: {why}"
            ))));
        }
    }

    /// A member went away without committing: its writes are undone, and
    /// the group goes on without it (or ends, if no one else is in it).
    async fn roll_back(self: Arc<Self>, mut writer: OwnedMutexGuard<Writer<DB>>, wrote: bool) {
        let group = writer.open.as_mut().expect("a member's group is open");
        let undone = match (self.undo, wrote) {
            (MemberUndo::Savepoint, false) => Ok(()),
            (MemberUndo::Savepoint, true) => sqlx::raw_sql("ROLLBACK TO member; RELEASE member")
                .execute(&mut *group.tx)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            (MemberUndo::FailGroup, true) => Err("a member gave up after writing".to_string()),
            // Only reads were sent, but one may have failed (or still be
            // running, if the member was cancelled), which would have
            // aborted the transaction: a statement after them tells.
            (MemberUndo::FailGroup, false) => sqlx::raw_sql("SELECT 1")
                .execute(&mut *group.tx)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        match undone {
            Err(why) => self.fail(&mut writer, &why).await,
            Ok(_) if group.members == 0 => {
                // Nothing to keep; end the transaction and free the
                // connection for writes outside groups.
                let id = group.id;
                self.close(writer, id).await;
            }
            Ok(_) => {}
        }
    }
}

impl<DB: Database> Member<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    pub fn conn(&mut self) -> &mut DB::Connection {
        let writer = self.writer.as_mut().expect("held until commit or drop");
        writer.conn().expect("a member's group is open")
    }

    /// The caller is about to write. True when its statement must begin
    /// with `SAVEPOINT member` (sent in the same call to the database,
    /// saving a round trip): the first write, with `MemberUndo::Savepoint`.
    pub fn begins_savepoint(&mut self) -> bool {
        let first = !std::mem::replace(&mut self.wrote, true);
        let slot = self.slot.as_ref().expect("held until commit or drop");
        first && slot.group.undo == MemberUndo::Savepoint
    }

    /// Before a write sent on its own: begins the savepoint if one is due.
    pub async fn before_write(&mut self) -> Result<(), sqlx::Error> {
        if self.begins_savepoint() {
            sqlx::raw_sql("SAVEPOINT member")
                .execute(&mut *self.conn())
                .await?;
        }
        Ok(())
    }

    /// Keeps this member's writes, and returns once its group has
    /// committed them (and synced, when every commit is synced).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let writer = self.writer.take().expect("held until commit or drop");
        let slot = self.slot.take().expect("held until commit or drop");
        let committing = slot.admit(writer, 1);
        drop(slot);
        committing.wait().await
    }
}

impl<DB: Database> Slot<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    /// The lane's lock.
    pub(super) fn lane(&self) -> Arc<Mutex<Writer<DB>>> {
        self.group.lanes[self.lane].writer.clone()
    }

    pub(super) async fn lock(&self) -> OwnedMutexGuard<Writer<DB>> {
        self.lane().lock_owned().await
    }

    /// `members` writes, already in the open group, join it: the group
    /// commits them with the others'. The lane is let go (or handed to the
    /// commit, when the group is full).
    pub(super) fn admit(
        &self,
        mut writer: OwnedMutexGuard<Writer<DB>>,
        members: usize,
    ) -> Committing {
        let group = writer.open.as_mut().expect("a member's group is open");
        let first = group.members == 0;
        group.members += members;
        let (id, members) = (group.id, group.members);
        let outcome = group.outcome.subscribe();
        let (this, lane) = (self.group.clone(), self.lane());
        // The commit runs in a task of its own, so no caller's
        // cancellation can stop it half-way.
        if members >= MAX_GROUP {
            tokio::spawn(async move { this.close(writer, id).await });
        } else {
            drop(writer);
            if first {
                // The group's closer queues behind the writers waiting now
                // (the lock is fair), so they all join before it commits.
                tokio::spawn(async move {
                    let writer = lane.lock_owned().await;
                    this.close(writer, id).await;
                });
            }
        }
        Committing(outcome)
    }

    /// Another place in the same lane.
    pub(super) fn again(&self) -> Slot<DB> {
        self.group.slot(Some(self.lane))
    }

    pub(super) fn group(&self) -> &Arc<GroupCommit<DB>> {
        &self.group
    }

    /// The creates queued on this lane (see `batched_creates`).
    pub(super) fn queued(&self) -> &std::sync::Mutex<Vec<super::batched_creates::Queued>> {
        &self.group.lanes[self.lane].queued
    }
}

impl<DB: Database> Writer<DB> {
    /// The open group's connection.
    pub(super) fn conn(&mut self) -> Option<&mut DB::Connection> {
        Some(&mut *self.open.as_mut()?.tx)
    }
}

/// Writes admitted to a group, waiting for its commit.
#[derive(Clone)]
pub struct Committing(watch::Receiver<Outcome>);

impl Committing {
    /// Returns once the group has committed (and synced, when every commit
    /// is synced).
    pub async fn wait(mut self) -> Result<(), StoreError> {
        let ended = self.0.wait_for(Option::is_some).await;
        let io = |e: &str| sqlx::Error::Io(std::io::Error::other(e.to_string()));
        match ended.as_deref() {
            Ok(Some(Ended::Committed)) => Ok(()),
            Ok(Some(Ended::RolledBack(e))) => Err(StoreError::Conflict(io(e))),
            Ok(Some(Ended::Failed(e))) => Err(StoreError::Db(io(e))),
            _ => Err(StoreError::Db(io(
                "the write group ended without an outcome",
            ))),
        }
    }
}

impl<DB: Database> Drop for Member<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    fn drop(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let slot = self.slot.as_ref().expect("held while the writer is");
                runtime.spawn(slot.group.clone().roll_back(writer, self.wrote));
            }
            // No runtime left to roll back on: dropping the group's
            // transaction rolls the whole group back, and its members
            // (their outcome never sent) fail.
            Err(_) => {
                let mut writer = writer;
                drop(writer.open.take());
            }
        }
    }
}
