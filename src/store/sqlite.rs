//! SQLite, the embedded default: WAL, every commit synced before it
//! returns, in groups (`wal_sync`), unless the operator trades that away
//! (`StoreOptions::sync_every_commit`), foreign keys on, a busy timeout, and
//! write transactions that begin with `BEGIN IMMEDIATE` (a deferred
//! read-then-write transaction fails with SQLITE_BUSY instead of waiting).
//!
//! SQLite runs one writer at a time anyway; writes go through a pool of one
//! connection, so writers queue fairly instead of sleeping in SQLite's busy
//! handler (whose backoff sleeps stretch the tail latency of concurrent
//! creates), and write transactions queued together commit together
//! (`group_commit`). Reads use their own pool and, with WAL, never wait for
//! the writer.
//!
//! WAL checkpoints run in the background on a reader connection. SQLite's
//! automatic checkpoint runs on the connection that commits, so every
//! thousandth page or so one write would pay for copying the WAL into the
//! database and syncing it. The writer still checkpoints by itself if the
//! WAL grows past `WAL_FALLBACK_PAGES`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteQueryResult};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Column, FromRow, Pool, Row, Sqlite, Transaction};

use super::batched_creates::BatchedCreate;
use super::dialect::Dialect;
use super::group_commit::{GroupCommit, MemberUndo};
use super::json_param::JsonParam;
use super::rows::{self, AgentRows, RefRow, SessionCore, response_ids_in_order};
use super::sql::sqlite::{
    self as sqlite_sql, EXAMPLE_OWNERS, FINISH_ANSWER, INSERT_PROMPT, INSERT_SESSION,
    RECHECK_SAVEPOINT_THEN_INSERT_SESSION, RECHECK_THEN_INSERT_SESSION, REFERENCES,
    SAVEPOINT_THEN_FINISH_ANSWER, SAVEPOINT_THEN_INSERT_PROMPT, SAVEPOINT_THEN_INSERT_SESSION,
    SESSION_CORE,
};
use super::sql_store::SqlStore;
use super::wal_sync::WalSync;
use super::{Asked, PromptRows, SessionIds, SessionRows, StoreOptions};
use crate::error::Error;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How often the background checkpointer runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// The writer's own automatic checkpoint, as a backstop: with the
/// background checkpointer keeping up, it has little left to copy.
const WAL_FALLBACK_PAGES: &str = "10000";

pub type SqliteStore = SqlStore<Sqlite>;

pub async fn connect(url: &str, options: &StoreOptions) -> Result<SqliteStore, Error> {
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::internal(anyhow::anyhow!("bad SQLite DATABASE_URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Commits don't sync by themselves; when every commit must be
        // durable, `WalSync` syncs them in groups before they return.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", WAL_FALLBACK_PAGES)
        // Statement journals (a multi-row write inside a transaction, such
        // as the session insert's trigger) and temporary B-trees in memory:
        // on disk, each is a file created, written and deleted per call.
        .pragma("temp_store", "memory")
        .busy_timeout(options.statement_timeout);
    let connect_path = connect.get_filename().to_path_buf();
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
    let checkpointer = (!in_memory).then(|| tokio::spawn(checkpoint_in_background(pool.clone())));
    let sync = (options.sync_every_commit && !in_memory)
        .then(|| Arc::new(WalSync::new(connect_path.as_path())));
    let group = options.group_commit.then(|| {
        GroupCommit::new(
            write_pool.clone(),
            1,
            "BEGIN IMMEDIATE",
            MemberUndo::Savepoint,
            sync.clone(),
            options.acquire_timeout,
        )
    });
    let store = SqlStore::new(pool, write_pool, checkpointer, sync, group);
    // A database in memory reads on its one write connection.
    Ok(if in_memory {
        store
    } else {
        store.reading_ahead()
    })
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

#[derive(sqlx::FromRow)]
struct PromptIdsRow {
    written: i64,
    prompt_id: Option<i64>,
    response_ids: Ordered,
}

type Ordered = Json<Vec<(i64, i64)>>;

#[derive(sqlx::FromRow)]
struct IdsRow {
    session_id: i64,
    setting_id: i64,
    link_ids: Ordered,
    model_ids: Ordered,
}

impl From<IdsRow> for SessionIds {
    fn from(ids: IdsRow) -> Self {
        SessionIds {
            session_id: ids.session_id,
            setting_id: ids.setting_id,
            link_ids: in_order(ids.link_ids),
            model_ids: in_order(ids.model_ids),
        }
    }
}

/// `[sort_order, id]` pairs to ids in sort order.
fn in_order(Json(mut pairs): Ordered) -> Vec<i64> {
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, id)| id).collect()
}

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("a list of integers or strings serializes")
}

#[async_trait]
impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const BATCHES_CREATES: bool = true;

    async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(pool).await
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn finish_answer(savepoint: bool) -> &'static str {
        match savepoint {
            true => SAVEPOINT_THEN_FINISH_ANSWER.as_str(),
            false => FINISH_ANSWER.as_str(),
        }
    }

    /// A deferred transaction's snapshot starts at its first read (WAL).
    async fn begin_read(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Both queries in one call (see `REFERENCES`); the rows of each are
    /// told apart by their columns.
    async fn references(
        conn: &mut SqliteConnection,
        user: i64,
        asked: &Asked<'_>,
    ) -> Result<(Vec<RefRow>, AgentRows), sqlx::Error> {
        let rows = bind_asked(sqlx::query(REFERENCES.as_str()), user, asked)
            .fetch_all(conn)
            .await?;
        rows::split_references(&rows, |row| Ok(row.try_column("part").is_ok()))
    }

    async fn example_owners(
        conn: &mut SqliteConnection,
        ids: &[i64],
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(EXAMPLE_OWNERS)
            .bind(json_list(ids))
            .fetch_all(conn)
            .await
    }

    /// The INSERT into the view and the read of the new ids, in one call.
    async fn insert_session(
        conn: &mut SqliteConnection,
        r: &SessionRows<'_>,
        savepoint: bool,
    ) -> Result<SessionIds, sqlx::Error> {
        let sql = match savepoint {
            true => SAVEPOINT_THEN_INSERT_SESSION.as_str(),
            false => INSERT_SESSION,
        };
        let row = bind_session(sqlx::query(sql), r).fetch_one(conn).await?;
        Ok(IdsRow::from_row(&row)?.into())
    }

    /// The prompt, its responses and the key's link in one call.
    async fn insert_prompt(
        conn: &mut SqliteConnection,
        r: &PromptRows<'_>,
        savepoint: bool,
    ) -> Result<Option<(i64, Vec<i64>)>, sqlx::Error> {
        let sql = match savepoint {
            true => SAVEPOINT_THEN_INSERT_PROMPT.as_str(),
            false => INSERT_PROMPT,
        };
        let models: Vec<(i64, &str)> = r.models.iter().map(|(id, m)| (*id, m.as_str())).collect();
        let rows = sqlx::query(sql)
            .bind(r.session_id)
            .bind(r.user.get())
            .bind(r.prompt_text)
            .bind(r.now)
            .bind(json_list(&models))
            .bind(r.replica_id)
            .bind(r.prompt_text.chars().count() as i64)
            .bind(r.idempotency_key)
            // All of it: the key's link comes after the row.
            .fetch_all(conn)
            .await?;
        let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        let ids = PromptIdsRow::from_row(row)?;
        let (Some(prompt_id), true) = (ids.prompt_id, ids.written > 0) else {
            return Ok(None);
        };
        let Json(pairs) = ids.response_ids;
        Ok(Some((prompt_id, response_ids_in_order(r, &pairs)?)))
    }

    /// One call (`SESSION_CORE`); the other statements' rows are dropped
    /// when the session is not the caller's.
    async fn session_core(
        conn: &mut SqliteConnection,
        session_id: i64,
        user: i64,
    ) -> Result<Option<SessionCore>, sqlx::Error> {
        let rows = sqlx::query(SESSION_CORE.as_str())
            .bind(session_id)
            .bind(user)
            .fetch_all(conn)
            .await?;
        let (mut session, mut settings) = (None, None);
        let (mut knowledge_ids, mut links, mut models) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            match row.columns().first().map(|c| c.name()) {
                Some("session_id") => session = Some(FromRow::from_row(row)?),
                Some("knowledge_id") => knowledge_ids.push(row.try_get(0)?),
                Some("setting_id") => settings = Some(FromRow::from_row(row)?),
                Some("link_id") => links.push(FromRow::from_row(row)?),
                Some("session_model_id") => models.push(FromRow::from_row(row)?),
                other => return Err(sqlx::Error::ColumnNotFound(format!("{other:?}"))),
            }
        }
        let Some(session) = session else {
            return Ok(None);
        };
        Ok(Some(SessionCore {
            session,
            knowledge_ids,
            settings: settings.ok_or(sqlx::Error::RowNotFound)?,
            links,
            models,
        }))
    }

    /// Every create's statements in one call; each create's rows end with
    /// its new ids' row (the one with `link_ids`).
    async fn insert_sessions(
        conn: &mut SqliteConnection,
        creates: &[&BatchedCreate],
    ) -> Result<Vec<(SessionIds, (Vec<RefRow>, AgentRows))>, sqlx::Error> {
        let mut query = sqlx::query(sqlite_sql::insert_sessions(creates.len()));
        for create in creates {
            let a = &create.ahead;
            query = bind_session(bind_asked(query, a.user, &a.asked()), &create.rows());
        }
        let rows = query.fetch_all(conn).await?;
        let mut sent = Vec::with_capacity(creates.len());
        let mut start = 0;
        for (i, row) in rows.iter().enumerate() {
            if row.try_column("link_ids").is_ok() {
                let again =
                    rows::split_references(&rows[start..i], |r| Ok(r.try_column("part").is_ok()))?;
                sent.push((IdsRow::from_row(row)?.into(), again));
                start = i + 1;
            }
        }
        Ok(sent)
    }

    /// The references read again, then the insert, all in one call; the
    /// new ids' row is the one with `link_ids`.
    async fn insert_session_rechecked(
        conn: &mut SqliteConnection,
        r: &SessionRows<'_>,
        savepoint: bool,
        user: i64,
        asked: &Asked<'_>,
    ) -> Result<(SessionIds, (Vec<RefRow>, AgentRows)), sqlx::Error> {
        let sql = match savepoint {
            true => RECHECK_SAVEPOINT_THEN_INSERT_SESSION.as_str(),
            false => RECHECK_THEN_INSERT_SESSION.as_str(),
        };
        let query = bind_session(bind_asked(sqlx::query(sql), user, asked), r);
        let mut rows = query.fetch_all(conn).await?;
        let ids = match rows.pop() {
            Some(row) if row.try_column("link_ids").is_ok() => IdsRow::from_row(&row)?,
            _ => return Err(sqlx::Error::RowNotFound),
        };
        let again = rows::split_references(&rows, |row| Ok(row.try_column("part").is_ok()))?;
        Ok((ids.into(), again))
    }
}

/// Binds `REFERENCES`' parameters, `$1` to `$5`.
fn bind_asked<'q>(
    q: sqlx::query::Query<'q, Sqlite, SqliteArguments>,
    user: i64,
    asked: &Asked<'_>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    q.bind(asked.agent_id)
        .bind(user)
        .bind(asked.class_id)
        .bind(asked.project_id)
        .bind(json_list(asked.knowledge_ids))
}

/// Binds `INSERT_SESSION`'s parameters after any bound before them.
fn bind_session<'q>(
    q: sqlx::query::Query<'q, Sqlite, SqliteArguments>,
    r: &SessionRows<'q>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments> {
    q.bind(r.user.get())
        .bind(r.new.class_id)
        .bind(r.new.project_id)
        .bind(r.new.agent_id)
        .bind(r.new.title.as_deref())
        .bind(r.new.notes.as_deref())
        .bind(r.now)
        .bind(json_list(&r.new.knowledge_ids))
        .bind(r.style_preset)
        .bind(JsonParam(r.style_params))
        .bind(JsonParam(r.generation_params))
        .bind(JsonParam(r.agent_snapshot))
        .bind(json_list(r.example_ids))
        .bind(json_list(r.model_names))
        .bind(r.idempotency_key)
}
