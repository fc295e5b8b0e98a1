//! SQLite, the embedded default: WAL, foreign keys on, a busy timeout, and
//! write transactions that begin with `BEGIN IMMEDIATE` (a deferred
//! read-then-write transaction fails with SQLITE_BUSY instead of waiting).
//!
//! SQLite runs one writer at a time anyway; writes go through a pool of one
//! connection, so writers queue fairly in the pool instead of sleeping in
//! SQLite's busy handler (whose backoff sleeps made the tail latency under
//! concurrent creates hundreds of milliseconds). Reads use their own pool
//! and, with WAL, never wait for the writer.

use std::str::FromStr;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreOptions;

const BACKEND: &str = "sqlite";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    write_pool: SqlitePool,
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
            .busy_timeout(options.statement_timeout);
        // An in-memory database exists once per connection: pin it to one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool_options = || {
            SqlitePoolOptions::new()
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
        Ok(Self { pool, write_pool })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.write_pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn writer(&self) -> &SqlitePool {
        &self.write_pool
    }
}

/// SQLite has no array type: a list of ids is bound as a JSON array and read
/// back with `json_each`.
fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("a list of integers serializes")
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
