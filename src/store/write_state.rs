//! How a write transaction reaches the write connection: a database
//! transaction of its own, a member of a group commit that joins at its
//! first write, or a create sent with others in one call. The verbs
//! (`sql_tx`) ask it for the connection, and leave to it the references a
//! create reads ahead and where its insert goes.

use std::sync::Arc;

use sqlx::{Pool, Transaction};

use super::batched_creates;
use super::dialect::Dialect;
use super::group_commit::{Committing, GroupCommit, Member};
use super::rows::{AgentRows, RefRow};
use super::{Asked, SessionIds, SessionRows, StoreError};
use crate::domain::UserId;

/// A write transaction: a database transaction of its own, with the sync
/// its commit waits for (SQLite with every commit synced; see
/// `wal_sync`), or a member of a group commit (see `group_commit`).
pub enum SqlWriteTx<DB: Dialect>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    Own(
        Transaction<'static, DB>,
        Option<Arc<super::wal_sync::WalSync>>,
    ),
    /// A member of a group commit that has yet to need the write
    /// connection: it joins its group at its first statement there, so
    /// what it reads before (`references`, on the read pool) doesn't hold
    /// the group's other members up.
    Joining(Arc<GroupCommit<DB>>, Pool<DB>, Option<ReadAhead>),
    Grouped(Member<DB>, Option<ReadAhead>),
    /// A create sent with others in one call (see `batched_creates`): in
    /// its group, waiting for the commit.
    Batched(Committing),
}

/// References read on the read pool before the transaction joined its
/// group. The insert they decide reads them again in the same call, inside
/// the transaction, and a difference (a catalog change committed, or
/// written earlier in the group, in between) makes the transaction run
/// again (`StoreError::Conflict`), so a session is never written from
/// references its transaction doesn't see.
pub struct ReadAhead {
    pub user: i64,
    class_id: Option<i64>,
    project_id: Option<i64>,
    knowledge_ids: Vec<i64>,
    agent_id: Option<i64>,
    pub rows: (Vec<RefRow>, AgentRows),
}

impl ReadAhead {
    pub fn asked(&self) -> Asked<'_> {
        Asked {
            class_id: self.class_id,
            project_id: self.project_id,
            knowledge_ids: &self.knowledge_ids,
            agent_id: self.agent_id,
        }
    }
}

impl<DB: Dialect> SqlWriteTx<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    /// The write connection, joining the group first if it hasn't yet.
    pub(super) async fn conn(&mut self) -> Result<&mut DB::Connection, StoreError> {
        if let SqlWriteTx::Joining(group, _, ahead) = self {
            let (group, ahead) = (group.clone(), ahead.take());
            *self = SqlWriteTx::Grouped(group.begin(None).await?, ahead);
        }
        Ok(match self {
            SqlWriteTx::Own(tx, _) => tx,
            SqlWriteTx::Grouped(member, _) => member.conn(),
            SqlWriteTx::Joining(..) => unreachable!("joined above"),
            SqlWriteTx::Batched(_) => {
                return Err(StoreError::Db(sqlx::Error::Protocol(
                    "a batched create writes nothing after its insert".into(),
                )));
            }
        })
    }

    /// Before a write that begins the member's savepoint in its own call
    /// (saving a round trip): joins the group, and tells whether the
    /// savepoint is due.
    pub(super) async fn savepoint_due(&mut self) -> Result<bool, StoreError> {
        self.conn().await?;
        Ok(match self {
            SqlWriteTx::Grouped(member, _) => member.begins_savepoint(),
            _ => false,
        })
    }

    /// Every verb that writes calls this first: a member of a group begins
    /// the savepoint that undoes its writes alone, if it takes one.
    pub(super) async fn before_write(&mut self) -> Result<(), StoreError> {
        self.conn().await?;
        if let SqlWriteTx::Grouped(member, _) = self {
            member.before_write().await?;
        }
        Ok(())
    }

    /// What a create refers to: read on the read pool, and kept, before a
    /// group member has joined (`ReadAhead`); inside the transaction
    /// otherwise.
    pub(super) async fn reference_rows(
        &mut self,
        user: UserId,
        asked: &Asked<'_>,
    ) -> Result<(Vec<RefRow>, AgentRows), StoreError> {
        Ok(match self {
            SqlWriteTx::Joining(_, read, ahead) => {
                let mut conn = read.acquire().await?;
                let rows = DB::references(&mut conn, user.get(), asked).await?;
                *ahead = Some(ReadAhead {
                    user: user.get(),
                    class_id: asked.class_id,
                    project_id: asked.project_id,
                    knowledge_ids: asked.knowledge_ids.to_vec(),
                    agent_id: asked.agent_id,
                    rows: rows.clone(),
                });
                rows
            }
            _ => DB::references(self.conn().await?, user.get(), asked).await?,
        })
    }

    /// A new session's rows: sent with other creates where they were read
    /// ahead and nothing was written before, else on the write connection
    /// (checked against the references read ahead, if they were).
    pub(super) async fn insert(
        &mut self,
        rows: &SessionRows<'_>,
    ) -> Result<SessionIds, StoreError> {
        // Read ahead and not yet joined, so this insert is the
        // transaction's only write (a key's claim would have joined).
        if let SqlWriteTx::Joining(group, _, ahead @ Some(_)) = self
            && DB::BATCHES_CREATES
            && rows.idempotency_key.is_none()
        {
            let ahead = ahead.take().expect("matched Some");
            let create = batched_creates::BatchedCreate::new(ahead, rows);
            let (ids, committing) = batched_creates::insert(group, create).await?;
            *self = SqlWriteTx::Batched(committing);
            return Ok(ids);
        }
        // The savepoint, if due, goes with the insert: one call, not two.
        let savepoint = self.savepoint_due().await?;
        let ahead = match self {
            SqlWriteTx::Grouped(_, ahead) => ahead.take(),
            _ => None,
        };
        let conn = self.conn().await?;
        let Some(ahead) = ahead else {
            return Ok(DB::insert_session(conn, rows, savepoint).await?);
        };
        let (ids, again) =
            DB::insert_session_rechecked(conn, rows, savepoint, ahead.user, &ahead.asked()).await?;
        if again != ahead.rows {
            // Dropped, the transaction undoes the insert.
            return Err(StoreError::references_changed());
        }
        Ok(ids)
    }

    /// Commits, however the transaction reached the database.
    pub(super) async fn end(self) -> Result<(), StoreError> {
        match self {
            SqlWriteTx::Own(tx, sync) => {
                tx.commit().await?;
                super::sql_store::durable(&sync).await
            }
            SqlWriteTx::Grouped(member, _) => member.commit().await,
            SqlWriteTx::Batched(committing) => committing.wait().await,
            // It never needed the writer: nothing to commit.
            SqlWriteTx::Joining(..) => Ok(()),
        }
    }
}
