//! The `Store` over either database: one implementation of every query in
//! `sql.rs`, generic over the sqlx driver, with what differs supplied by
//! the `Dialect`. Reads go to the read pool; writes to the write pool (on
//! SQLite a pool of one connection, so writers queue in the pool rather than
//! in SQLite's busy handler; on PostgreSQL the same pool).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use super::conversation::{ConversationStore, SizeRow, newest_responses};
use super::dialect::Dialect;
use super::group_commit::GroupCommit;
use super::json_param::JsonParam;
use super::rows::{
    CountsRow, ExampleRow, LinkRow, ModelRow, PageRow, ResponseRow, SessionParts, SessionRow,
    SettingsRow,
};
use super::stats::StatsStore;
use super::turns::TurnStore;
use super::wal_sync::WalSync;
use super::write_state::SqlWriteTx;
use super::{PagedSession, Responses, SessionQuery, Store, StoreError, TableCounts, WriteTx, sql};
use crate::domain::{Example, ExamplePatch, NewExample, Session, SessionPatch, UserId};
use crate::error::Error;

pub struct SqlStore<DB: Dialect> {
    read: Pool<DB>,
    write: Pool<DB>,
    /// Work the backend runs beside the pools (SQLite's WAL checkpoints);
    /// stopped with the store.
    background: Option<tokio::task::JoinHandle<()>>,
    /// SQLite with every commit synced: the sync each write waits for
    /// before it returns (see `wal_sync`).
    sync: Option<Arc<WalSync>>,
    /// Write transactions commit in groups (see `group_commit`).
    group: Option<Arc<GroupCommit<DB>>>,
    /// A group member's references are read on the read pool before it
    /// joins its group (see `write_state::ReadAhead`): where the read pool is
    /// not the write connection, and the check in the insert's own call
    /// costs less than a call on its own.
    read_ahead: bool,
}

/// The lane of an answer's own writes (see `Store::begin_answer_write`).
const ANSWER_LANE: usize = 0;

impl<DB: Dialect> SqlStore<DB> {
    pub(super) fn new(
        read: Pool<DB>,
        write: Pool<DB>,
        background: Option<tokio::task::JoinHandle<()>>,
        sync: Option<Arc<WalSync>>,
        group: Option<Arc<GroupCommit<DB>>>,
    ) -> Self {
        Self {
            read,
            write,
            background,
            sync,
            group,
            read_ahead: false,
        }
    }

    /// Reads a group member's references ahead (see the field).
    pub(super) fn reading_ahead(mut self) -> Self {
        self.read_ahead = true;
        self
    }

    /// Waits until what this store committed is durable (a no-op where
    /// each commit is durable by itself).
    pub(super) async fn synced(&self) -> Result<(), StoreError> {
        durable(&self.sync).await
    }

    pub(super) fn read_pool(&self) -> &Pool<DB> {
        &self.read
    }

    pub(super) fn write_pool(&self) -> &Pool<DB> {
        &self.write
    }
}

pub(super) async fn durable(sync: &Option<Arc<WalSync>>) -> Result<(), StoreError> {
    match sync {
        Some(sync) => sync
            .durable()
            .await
            .map_err(|e| StoreError::Db(sqlx::Error::Io(e))),
        None => Ok(()),
    }
}

impl<DB: Dialect> Drop for SqlStore<DB> {
    fn drop(&mut self) {
        if let Some(task) = &self.background {
            task.abort();
        }
    }
}

/// Every query runs through sqlx's generic API; the where-clause lists the
/// types each database must bind and decode for them.
#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<i64>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    bool: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    Option<bool>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> &'a str: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    for<'a> Option<&'a str>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> JsonParam<'a>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    for<'a> Option<JsonParam<'a>>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    SqlWriteTx<DB>: WriteTx,
    SqlStore<DB>: ConversationStore + TurnStore + StatsStore,
    for<'r> SizeRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> ExampleRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> SessionRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> SettingsRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> LinkRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> ModelRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> ResponseRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> CountsRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> PageRow: sqlx::FromRow<'r, DB::Row>,
{
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn migrate(&self) -> Result<(), Error> {
        DB::migrate(&self.write)
            .await
            .map_err(|e| Error::internal(anyhow::anyhow!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn begin_write(&self, attempt: u32) -> Result<Box<dyn WriteTx>, StoreError> {
        if let Some(group) = self.group.as_ref().filter(|_| attempt <= 1) {
            if self.read_ahead {
                let (group, read) = (group.clone(), self.read.clone());
                return Ok(Box::new(SqlWriteTx::Joining(group, read, None)));
            }
            return Ok(Box::new(SqlWriteTx::Grouped(
                group.begin(None).await?,
                None,
            )));
        }
        let tx = DB::begin_write(&self.write)
            .await
            .map_err(StoreError::begin)?;
        Ok(Box::new(SqlWriteTx::Own(tx, self.sync.clone())))
    }

    async fn begin_answer_write(&self, attempt: u32) -> Result<Box<dyn WriteTx>, StoreError> {
        match self
            .group
            .as_ref()
            .filter(|_| attempt <= 1 && !self.read_ahead)
        {
            Some(group) => Ok(Box::new(SqlWriteTx::Grouped(
                group.begin(Some(ANSWER_LANE)).await?,
                None,
            ))),
            None => self.begin_write(attempt).await,
        }
    }

    async fn session(
        &self,
        user: UserId,
        session_id: i64,
        with: Responses,
    ) -> Result<Option<Session>, StoreError> {
        // One snapshot for all the reads: a session deleted or edited
        // meanwhile is read wholly before or wholly after.
        let mut conn = DB::begin_read(&self.read).await?;
        let Some(core) = DB::session_core(&mut conn, session_id, user.get()).await? else {
            return Ok(None);
        };
        let (responses, more_responses) = match with {
            Responses::Newest(budget) => newest_responses(&mut conn, session_id, budget).await?,
            Responses::Skip => (Vec::new(), false),
        };
        Ok(Some(Session::from(SessionParts {
            core,
            responses,
            more_responses,
        })))
    }

    async fn session_page(
        &self,
        user: UserId,
        q: &SessionQuery,
    ) -> Result<Vec<PagedSession>, StoreError> {
        let rows: Vec<PageRow> = sqlx::query_as(sql::SESSION_PAGE)
            .bind(user.get())
            .bind(q.as_of)
            .bind(q.filter.class_id)
            .bind(q.filter.project_id)
            .bind(q.after.0)
            .bind(q.after.1)
            .bind(q.limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(PagedSession::from).collect())
    }

    async fn update_session(
        &self,
        user: UserId,
        session_id: i64,
        patch: &SessionPatch,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let updated: Option<i64> = sqlx::query_scalar(sql::UPDATE_SESSION)
            .bind(session_id)
            .bind(user.get())
            .bind(patch.title.is_some())
            .bind(patch.title.as_ref().and_then(|t| t.as_deref()))
            .bind(patch.notes.is_some())
            .bind(patch.notes.as_ref().and_then(|t| t.as_deref()))
            .bind(now)
            .fetch_optional(&self.write)
            .await?;
        self.synced().await?;
        Ok(updated.is_some())
    }

    async fn delete_session(&self, user: UserId, session_id: i64) -> Result<bool, StoreError> {
        let deleted: Option<i64> = sqlx::query_scalar(sql::DELETE_SESSION)
            .bind(session_id)
            .bind(user.get())
            .fetch_optional(&self.write)
            .await?;
        self.synced().await?;
        Ok(deleted.is_some())
    }

    async fn create_example(
        &self,
        user: UserId,
        e: &NewExample,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(sql::CREATE_EXAMPLE)
            .bind(user.get())
            .bind(e.title.as_deref())
            .bind(&e.input_text)
            .bind(&e.output_text)
            .bind(e.is_active)
            .bind(JsonParam(&e.meta))
            .bind(now)
            .fetch_one(&self.write)
            .await?;
        self.synced().await?;
        Ok(id)
    }

    async fn example(&self, user: UserId, example_id: i64) -> Result<Option<Example>, StoreError> {
        let row: Option<ExampleRow> = sqlx::query_as(sql::EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(Example::from))
    }

    async fn examples(
        &self,
        user: UserId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Example>, StoreError> {
        let rows: Vec<ExampleRow> = sqlx::query_as(sql::EXAMPLES_AFTER)
            .bind(user.get())
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(Example::from).collect())
    }

    async fn update_example(
        &self,
        user: UserId,
        example_id: i64,
        patch: &ExamplePatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Example>, StoreError> {
        let row: Option<ExampleRow> = sqlx::query_as(sql::UPDATE_EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .bind(patch.title.is_some())
            .bind(patch.title.as_ref().and_then(|t| t.as_deref()))
            .bind(patch.input_text.as_deref())
            .bind(patch.output_text.as_deref())
            .bind(patch.is_active)
            .bind(patch.meta.as_ref().map(JsonParam))
            .bind(now)
            .fetch_optional(&self.write)
            .await?;
        self.synced().await?;
        Ok(row.map(Example::from))
    }

    async fn delete_example(
        &self,
        user: UserId,
        example_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .bind(now)
            .execute(&self.write)
            .await?;
        self.synced().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn delete_expired_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::DELETE_EXPIRED_KEYS)
            .bind(before.timestamp_micros())
            .execute(&self.write)
            .await?;
        self.synced().await?;
        Ok(DB::rows_affected(&done))
    }

    async fn table_counts(&self) -> Result<TableCounts, StoreError> {
        let row: CountsRow = sqlx::query_as(sql::TABLE_COUNTS)
            .fetch_one(&self.read)
            .await?;
        Ok(row.into())
    }
}
