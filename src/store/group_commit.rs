//! Group commit on SQLite's one write connection. SQLite runs one writer at
//! a time, and committing is most of what a small write costs: the WAL
//! frames of every page the write touched, then the sync. So write
//! transactions queued for the connection run one after another inside one
//! database transaction, each in a savepoint of its own (one that fails
//! rolls back alone), and the group commits once: when no writer is left
//! waiting, or when it is full. Creates back to back touch the same pages,
//! so a group writes far fewer frames than its members would one by one.
//!
//! A member is acknowledged only after its group's commit (and the WAL
//! sync, when every commit is synced), so nothing a member wrote is
//! reported before it is durable; a group whose commit fails fails every
//! member. Savepoints are never released one by one: they nest, and the
//! commit keeps them all.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Database, Pool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::StoreError;
use super::wal_sync::WalSync;

/// The most write transactions in one group: bounds how long the first of
/// them waits for the commit.
const MAX_GROUP: usize = 64;

/// How a group ended, for the members waiting on it.
type Outcome = Option<Result<(), String>>;

pub struct GroupCommit<DB: Database> {
    writer: Arc<Mutex<Writer<DB>>>,
    pool: Pool<DB>,
    begin: &'static str,
    sync: Option<Arc<WalSync>>,
    acquire_timeout: Duration,
}

struct Writer<DB: Database> {
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
/// member commits or is dropped (which rolls back its savepoint).
pub struct Member<DB: Database>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    writer: Option<OwnedMutexGuard<Writer<DB>>>,
    group: Arc<GroupCommit<DB>>,
    /// Its savepoint has begun: it may have written.
    saved: bool,
}

impl<DB: Database> GroupCommit<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    /// Groups on `pool`'s connection (a pool of one); `begin` opens a
    /// write transaction (`BEGIN IMMEDIATE` on SQLite, so a group takes the
    /// write lock before its first read).
    pub fn new(
        pool: Pool<DB>,
        begin: &'static str,
        sync: Option<Arc<WalSync>>,
        acquire_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            writer: Arc::new(Mutex::new(Writer {
                opened: 0,
                open: None,
            })),
            pool,
            begin,
            sync,
            acquire_timeout,
        })
    }

    /// Joins the open group, or opens one. The member's savepoint begins
    /// with its first write (see `Member::begins_savepoint`).
    pub async fn begin(self: &Arc<Self>) -> Result<Member<DB>, StoreError> {
        let mut writer =
            tokio::time::timeout(self.acquire_timeout, self.writer.clone().lock_owned())
                .await
                .map_err(|_| StoreError::begin(sqlx::Error::PoolTimedOut))?;
        if writer.open.is_none() {
            let tx = self
                .pool
                .begin_with(self.begin)
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
        Ok(Member {
            writer: Some(writer),
            group: self.clone(),
            saved: false,
        })
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
            group.outcome.send_replace(Some(Err(e.to_string())));
            return;
        }
        let synced = super::sql_store::durable(&self.sync).await;
        group
            .outcome
            .send_replace(Some(synced.map_err(|e| e.to_string())));
    }

    /// The open group can't go on (its transaction is in an unknown state):
    /// rolls it back, closes its connection, and fails its members.
    async fn fail(&self, writer: &mut Writer<DB>, error: &sqlx::Error) {
        if let Some(group) = writer.open.take() {
            let _ = group.tx.rollback().await;
            group
                .outcome
                .send_replace(Some(Err(format!("the write group failed: {error}"))));
        }
    }

    /// A member went away without committing: its savepoint is undone, and
    /// the group goes on without it (or ends, if no one else is in it).
    async fn roll_back(self: Arc<Self>, mut writer: OwnedMutexGuard<Writer<DB>>, saved: bool) {
        let group = writer.open.as_mut().expect("a member's group is open");
        let undone = match saved {
            true => sqlx::raw_sql("ROLLBACK TO member; RELEASE member")
                .execute(&mut *group.tx)
                .await
                .map(drop),
            false => Ok(()),
        };
        match undone {
            Err(e) => self.fail(&mut writer, &e).await,
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
        &mut writer.open.as_mut().expect("a member's group is open").tx
    }

    /// True the first time it is asked: the caller is about to write, and
    /// its statement must begin with `SAVEPOINT member` (sent in the same
    /// call to the database, saving a round trip).
    pub fn begins_savepoint(&mut self) -> bool {
        !std::mem::replace(&mut self.saved, true)
    }

    /// Begins the savepoint before the first write, if not yet begun.
    pub async fn savepoint(&mut self) -> Result<(), sqlx::Error> {
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
        let mut writer = self.writer.take().expect("held until commit or drop");
        let group = writer.open.as_mut().expect("a member's group is open");
        group.members += 1;
        let (id, members) = (group.id, group.members);
        let mut outcome = group.outcome.subscribe();
        let this = self.group.clone();
        // The commit runs in a task of its own, so no caller's
        // cancellation can stop it half-way.
        if members >= MAX_GROUP {
            tokio::spawn(async move { this.close(writer, id).await });
        } else {
            drop(writer);
            if members == 1 {
                // The group's closer queues behind the writers waiting now
                // (the lock is fair), so they all join before it commits.
                tokio::spawn(async move {
                    let writer = this.writer.clone().lock_owned().await;
                    this.close(writer, id).await;
                });
            }
        }
        let ended = outcome.wait_for(Option::is_some).await;
        match ended.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(StoreError::Db(sqlx::Error::Io(std::io::Error::other(
                e.clone(),
            )))),
            _ => Err(StoreError::Db(sqlx::Error::Io(std::io::Error::other(
                "the write group ended without an outcome",
            )))),
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
                runtime.spawn(self.group.clone().roll_back(writer, self.saved));
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
