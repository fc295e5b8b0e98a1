//! Persistence: one object-safe `Store` trait, an SQLite implementation (the
//! embedded default) and a PostgreSQL one (production), chosen by URL.
//!
//! Both backends run the same SQL, written once in `shared.rs`; only what
//! really differs per dialect (how a write transaction begins, how a list of
//! ids is bound, which errors are worth a retry, and how a new session's
//! rows are written in one call: data-modifying CTEs on PostgreSQL, a view
//! with an INSTEAD OF trigger on SQLite) lives in each backend file.

mod postgres;
mod shared;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    Agent, Class, Example, ExamplePatch, IdempotencyKey, Knowledge, NewExample, NewSession,
    Project, Session, UserId,
};
use crate::error::Error;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Pool and timeout settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long to wait for a free connection before answering UNAVAILABLE.
    pub acquire_timeout: std::time::Duration,
    /// The longest one statement may run (or, on SQLite, wait for a lock).
    pub statement_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(2),
            statement_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// What `create_session` needs besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct CreateContext<'a> {
    pub user: UserId,
    pub idempotency_key: Option<&'a IdempotencyKey>,
    /// Models for a session without a class (`PRACTICE_DEFAULT_MODELS`).
    pub default_models: &'a [String],
    pub now: DateTime<Utc>,
}

/// Catalog object kinds, for deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Class,
    Project,
    Knowledge,
    Agent,
}

/// Row counts of the practice tables: for readiness reports and for tests
/// that check a failed request wrote nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    pub sessions: i64,
    pub session_knowledge: i64,
    pub settings: i64,
    pub few_shot_links: i64,
    pub session_models: i64,
    pub responses: i64,
    pub idempotency_keys: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    async fn migrate(&self) -> Result<(), Error>;

    /// Is the database reachable?
    async fn ping(&self) -> Result<(), Error>;

    /// Creates the session, its settings, few-shot links and session models in
    /// one transaction, checking every reference inside it. With an
    /// idempotency key, a replay returns the session first created for it.
    async fn create_session(
        &self,
        ctx: CreateContext<'_>,
        new: &NewSession,
    ) -> Result<Session, Error>;

    /// The caller's session; another user's is `None`, like a missing one.
    async fn get_session(&self, user: UserId, session_id: i64) -> Result<Option<Session>, Error>;

    /// Replaces the class with its members and models.
    async fn upsert_class(&self, class: &Class, now: DateTime<Utc>) -> Result<(), Error>;
    async fn upsert_project(&self, project: &Project, now: DateTime<Utc>) -> Result<(), Error>;
    async fn upsert_knowledge(
        &self,
        knowledge: &Knowledge,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;
    /// Replaces the agent; every example id must name an existing example.
    async fn upsert_agent(&self, agent: &Agent, now: DateTime<Utc>) -> Result<(), Error>;
    /// Soft-deletes: the object can't be used for new sessions, while existing
    /// sessions keep their ids and snapshots. `false` if there was none.
    async fn delete_catalog(
        &self,
        kind: CatalogKind,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    async fn create_example(
        &self,
        user: UserId,
        example: &NewExample,
        now: DateTime<Utc>,
    ) -> Result<Example, Error>;

    /// The user's example, if it exists and isn't deleted.
    async fn get_example(&self, user: UserId, example_id: i64) -> Result<Option<Example>, Error>;

    /// The user's examples with ids above `after_id`, oldest first.
    async fn list_examples(
        &self,
        user: UserId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Example>, Error>;

    /// Applies the patch to the user's example; `None` if there is none.
    async fn update_example(
        &self,
        user: UserId,
        example_id: i64,
        patch: &ExamplePatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Example>, Error>;

    /// Soft-deletes the user's example; `false` if there was none.
    async fn delete_example(
        &self,
        user: UserId,
        example_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    async fn table_counts(&self) -> Result<TableCounts, Error>;
}

/// Opens the database named by `url`: `sqlite:...` or `postgres://...`.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, options).await?))
    } else {
        Err(Error::internal(anyhow::anyhow!(
            "DATABASE_URL must start with sqlite: or postgres://"
        )))
    }
}

/// A failure inside a transaction: a domain answer to give the client, or
/// a database error that may be worth retrying the transaction for.
enum TxError {
    Domain(Error),
    /// Starting the transaction failed: nothing was sent, so it is always
    /// safe to try again (a pooled connection the server has dropped shows
    /// up here, and the pool then opens a fresh one).
    Begin(sqlx::Error),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Domain(e)
    }
}

impl From<TxError> for Error {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Begin(e) | TxError::Db(e) => e.into(),
        }
    }
}

/// How many times a transaction that lost a serialization race or a
/// deadlock is run again before the error is returned.
const MAX_TX_ATTEMPTS: u32 = 5;
