//! SQLite, the embedded default: WAL, foreign keys on, a busy timeout, and
//! write transactions that begin with `BEGIN IMMEDIATE` (a deferred
//! read-then-write transaction fails with SQLITE_BUSY instead of waiting).
//!
//! SQLite runs one writer at a time anyway; writes go through a pool of one
//! connection, so writers queue fairly in the pool instead of sleeping in
//! SQLite's busy handler (whose backoff sleeps stretch the tail latency of
//! concurrent creates). Reads use their own pool and, with WAL, never wait
//! for the writer.
//!
//! WAL checkpoints run in the background on a reader connection. SQLite's
//! automatic checkpoint runs on the connection that commits, so every
//! thousandth page or so one write would pay for copying the WAL into the
//! database and syncing it. The writer still checkpoints by itself if the
//! WAL grows past `WAL_FALLBACK_PAGES`.

mod tx;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::rows::{
    CountsRow, ExampleRow, LinkRow, ModelRow, ResponseRow, SessionParts, SessionRow, SettingsRow,
};
use super::{CatalogKind, Store, StoreError, StoreOptions, TableCounts, WriteTx, sql};
use crate::domain::{
    Class, Example, ExamplePatch, Knowledge, NewExample, Project, Session, UserId,
};
use crate::error::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How often the background checkpointer runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// The writer's own automatic checkpoint, as a backstop: with the
/// background checkpointer keeping up, it has little left to copy.
const WAL_FALLBACK_PAGES: &str = "10000";

pub struct SqliteStore {
    pool: SqlitePool,
    write_pool: SqlitePool,
    checkpointer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = &self.checkpointer {
            task.abort();
        }
    }
}

impl SqliteStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, Error> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::internal(anyhow::anyhow!("bad SQLite DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", WAL_FALLBACK_PAGES)
            .busy_timeout(options.statement_timeout);
        // An in-memory database exists once per connection: pin it to one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // A connection to a local file can't drop like a network one: no
        // ping before each use (each one is a round trip to the
        // connection's worker thread).
        let pool_options = || {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .min_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .idle_timeout(None)
                .max_lifetime(None)
        };
        let write_pool = pool_options()
            .max_connections(1)
            .connect_with(connect.clone())
            .await?;
        let pool = if in_memory {
            write_pool.clone()
        } else {
            pool_options()
                .max_connections(options.max_connections)
                .connect_with(connect)
                .await?
        };
        let checkpointer =
            (!in_memory).then(|| tokio::spawn(checkpoint_in_background(pool.clone())));
        Ok(Self {
            pool,
            write_pool,
            checkpointer,
        })
    }

    async fn begin_immediate(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.write_pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::begin)
    }
}

/// Copies committed WAL pages into the database file, without waiting for
/// readers or the writer (PASSIVE), until the pool closes.
async fn checkpoint_in_background(pool: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            // Not fatal: the writer's own checkpoint is the backstop.
            tracing::debug!(error = %e, "background WAL checkpoint failed");
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), Error> {
        MIGRATOR
            .run(&self.write_pool)
            .await
            .map_err(|e| Error::internal(anyhow::anyhow!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        Ok(Box::new(tx::SqliteWriteTx(self.begin_immediate().await?)))
    }

    async fn session(&self, user: UserId, session_id: i64) -> Result<Option<Session>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let session: Option<SessionRow> = sqlx::query_as(sql::SESSION)
            .bind(session_id)
            .bind(user.get())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        let knowledge_ids = sqlx::query_scalar(sql::SESSION_KNOWLEDGE)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        let settings: SettingsRow = sqlx::query_as(sql::SESSION_SETTINGS)
            .bind(session_id)
            .fetch_one(&mut *conn)
            .await?;
        let links: Vec<LinkRow> = sqlx::query_as(sql::FEW_SHOT_LINKS)
            .bind(settings.setting_id)
            .fetch_all(&mut *conn)
            .await?;
        let models: Vec<ModelRow> = sqlx::query_as(sql::SESSION_MODELS)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        let responses: Vec<ResponseRow> = sqlx::query_as(sql::RESPONSES)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some(Session::from(SessionParts {
            session,
            knowledge_ids,
            settings,
            links,
            models,
            responses,
        })))
    }

    async fn upsert_class(&self, class: &Class, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query(sql::UPSERT_CLASS)
            .bind(class.class_id)
            .bind(&class.name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for delete in [sql::DELETE_CLASS_MEMBERS, sql::DELETE_CLASS_MODELS] {
            sqlx::query(delete)
                .bind(class.class_id)
                .execute(&mut *tx)
                .await?;
        }
        if !class.members.is_empty() {
            QueryBuilder::<Sqlite>::new(sql::INSERT_CLASS_MEMBERS)
                .push_values(&class.members, |mut b, m| {
                    b.push_bind(class.class_id)
                        .push_bind(m.user_id)
                        .push_bind(m.role.clone());
                })
                .build()
                .execute(&mut *tx)
                .await?;
        }
        if !class.models.is_empty() {
            QueryBuilder::<Sqlite>::new(sql::INSERT_CLASS_MODELS)
                .push_values(class.models.iter().enumerate(), |mut b, (i, m)| {
                    b.push_bind(class.class_id)
                        .push_bind(i as i64)
                        .push_bind(m.model_name.clone())
                        .push_bind(m.enabled);
                })
                .build()
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_project(&self, p: &Project, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(sql::UPSERT_PROJECT)
            .bind(p.project_id)
            .bind(p.owner_user_id)
            .bind(p.class_id)
            .bind(&p.name)
            .bind(now)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    async fn upsert_knowledge(&self, k: &Knowledge, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(sql::UPSERT_KNOWLEDGE)
            .bind(k.knowledge_id)
            .bind(k.owner_user_id)
            .bind(k.project_id)
            .bind(k.class_id)
            .bind(&k.title)
            .bind(now)
            .execute(&self.write_pool)
            .await?;
        Ok(())
    }

    async fn delete_catalog(
        &self,
        kind: CatalogKind,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::delete_catalog(kind))
            .bind(id)
            .bind(now)
            .execute(&self.write_pool)
            .await?;
        Ok(done.rows_affected() > 0)
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
            .bind(Json(&e.meta))
            .bind(now)
            .fetch_one(&self.write_pool)
            .await?;
        Ok(id)
    }

    async fn example(&self, user: UserId, example_id: i64) -> Result<Option<Example>, StoreError> {
        let row: Option<ExampleRow> = sqlx::query_as(sql::EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .fetch_optional(&self.pool)
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
            .fetch_all(&self.pool)
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
            .bind(patch.title.clone().flatten())
            .bind(patch.input_text.as_deref())
            .bind(patch.output_text.as_deref())
            .bind(patch.is_active)
            .bind(patch.meta.as_ref().map(Json))
            .bind(now)
            .fetch_optional(&self.write_pool)
            .await?;
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
            .execute(&self.write_pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn table_counts(&self) -> Result<TableCounts, StoreError> {
        let row: CountsRow = sqlx::query_as(sql::TABLE_COUNTS)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.into())
    }
}
