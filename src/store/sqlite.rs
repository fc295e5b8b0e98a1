//! SQLite, the embedded default: WAL, foreign keys on, a busy timeout, and
//! write transactions that begin with `BEGIN IMMEDIATE` (a deferred
//! read-then-write transaction fails with SQLITE_BUSY instead of waiting).
//!
//! SQLite runs one writer at a time anyway; writes go through a pool of one
//! connection, so writers queue fairly in the pool instead of sleeping in
//! SQLite's busy handler (whose backoff sleeps made the tail latency under
//! concurrent creates hundreds of milliseconds). Reads use their own pool
//! and, with WAL, never wait for the writer.
//!
//! WAL checkpoints run in the background on a reader connection. SQLite's
//! automatic checkpoint runs on the connection that commits, so every
//! thousandth page or so one create paid for copying the WAL into the
//! database and syncing it: that was the p99 of a single client's
//! creates (about 5 ms against a 0.9 ms median). The writer still
//! checkpoints by itself if the WAL grows past `WAL_FALLBACK_PAGES`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreOptions;

const BACKEND: &str = "sqlite";
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
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, crate::error::Error> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| {
                crate::error::Error::internal(anyhow::anyhow!("bad SQLite DATABASE_URL: {e}"))
            })?
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.write_pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn writer(&self) -> &SqlitePool {
        &self.write_pool
    }

    /// All of a new session's rows: one INSERT into the `new_sessions` view
    /// (its trigger writes every table, see migrations/sqlite/0002), then
    /// one read of the new ids, still under the write lock. Two calls to
    /// the connection's worker thread instead of six; each call is two
    /// thread switches, and they were most of a create's cost.
    async fn insert_session(
        tx: &mut sqlx::Transaction<'static, Sqlite>,
        rows: &SessionRows<'_>,
    ) -> Result<SessionIds, sqlx::Error> {
        bind_session_rows(
            sqlx::query(
                "INSERT INTO new_sessions (user_id, class_id, project_id, agent_id, title, notes, \
                 created_at, knowledge_ids, style_preset, style_params, generation_params, \
                 agent_snapshot, example_ids, model_names, idem_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            ),
            rows,
        )
        .execute(&mut **tx)
        .await?;
        type Ordered = Json<Vec<(i64, i64)>>;
        let (session_id, setting_id, links, models): (i64, i64, Ordered, Ordered) =
            sqlx::query_as(NEW_SESSION_IDS).fetch_one(&mut **tx).await?;
        Ok(SessionIds {
            session_id,
            setting_id,
            link_ids: in_order(links.0),
            model_ids: in_order(models.0),
        })
    }
}

/// `(sort_order, id)` pairs to ids in sort order.
fn in_order(mut pairs: Vec<(i64, i64)>) -> Vec<i64> {
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, id)| id).collect()
}

/// The ids `new_sessions` just gave the rows: the largest in each table.
const NEW_SESSION_IDS: &str = "\
SELECT s.session_id, st.setting_id, \
(SELECT json_group_array(json_array(l.sort_order, l.id)) FROM few_shot_links l WHERE l.setting_id = st.setting_id), \
(SELECT json_group_array(json_array(m.sort_order, m.session_model_id)) FROM session_models m \
 WHERE m.session_id = s.session_id) \
FROM (SELECT max(session_id) AS session_id FROM practice_sessions) s, \
(SELECT max(setting_id) AS setting_id FROM session_settings) st";

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

/// SQLite has no array type: a list of ids is bound as a JSON array and read
/// back with `json_each`.
fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("a list of integers serializes")
}

fn name_list(names: &[String]) -> String {
    serde_json::to_string(names).expect("a list of strings serializes")
}

/// With `BEGIN IMMEDIATE` and a busy timeout, a lost race shows up as
/// SQLITE_BUSY only after the timeout: worth one more try.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "5" || c == "517"))
}

super::shared::impl_store!(
    SqliteStore,
    Sqlite,
    ids_in = " IN (SELECT value FROM json_each($1))"
);
