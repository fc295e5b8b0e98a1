//! What differs between the two databases besides the shared SQL: how a
//! write transaction begins, and the few queries whose text or binding
//! differs (a list of ids is an array on PostgreSQL and a JSON array on
//! SQLite; a new session's rows are written by data-modifying CTEs on one
//! and a view's INSTEAD OF trigger on the other).

use async_trait::async_trait;
use sqlx::{Database, Pool, Transaction};

use super::batched_creates::BatchedCreate;
use super::rows::{AgentRows, RefRow, SessionCore};
use super::{Asked, PromptRows, SessionIds, SessionRows};

#[async_trait]
pub trait Dialect: Database {
    /// "sqlite" or "postgres".
    const BACKEND: &'static str;

    /// Whether creates read ahead are sent many in one call
    /// (`insert_sessions`, see `batched_creates`).
    const BATCHES_CREATES: bool = false;

    /// Brings the schema up to date with this backend's migrations.
    async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::migrate::MigrateError>;

    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Begins a read-only transaction that sees one snapshot, so that the
    /// several reads of one session agree even while it is being changed.
    async fn begin_read(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error>;

    /// The session `session_id` with its knowledge items, settings,
    /// few-shot links and models, if `user` owns it; on a connection in a
    /// read transaction (`begin_read`), so the parts agree. One call to the
    /// database where the backend can send the statements together.
    async fn session_core(
        conn: &mut Self::Connection,
        session_id: i64,
        user: i64,
    ) -> Result<Option<SessionCore>, sqlx::Error>;

    /// How an answer ended (`sql::FINISH_RESPONSE`, `$1` to `$9`) and its
    /// charge (`sql::CHARGE_USAGE`, `$10` on), first `SAVEPOINT member`
    /// when `savepoint`, as one call; its one row counts the responses
    /// ended (none: it had ended already, or is gone).
    fn finish_answer(savepoint: bool) -> &'static str;

    /// Begins a write transaction on the write pool.
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error>;

    /// The rows of the visible-references query (see `rows::RefRow`) and
    /// of the agent query (`sql::AGENT_WITH_EXAMPLES`), for what is asked.
    async fn references(
        conn: &mut Self::Connection,
        user: i64,
        asked: &Asked<'_>,
    ) -> Result<(Vec<RefRow>, AgentRows), sqlx::Error>;

    /// `(example_id, user_id)` of those of `ids` not deleted.
    async fn example_owners(
        conn: &mut Self::Connection,
        ids: &[i64],
    ) -> Result<Vec<(i64, i64)>, sqlx::Error>;

    /// A new session's rows, in one call to the database; first `SAVEPOINT
    /// member` when `savepoint` (see `group_commit`).
    async fn insert_session(
        conn: &mut Self::Connection,
        rows: &SessionRows<'_>,
        savepoint: bool,
    ) -> Result<SessionIds, sqlx::Error>;

    /// A prompt of the caller's session and its responses in progress (one
    /// per model asked), the idempotency key linked to it if there is one;
    /// first `SAVEPOINT member` when `savepoint`. The prompt's id and the
    /// responses' in the models' order; `None` if the session is not the
    /// caller's.
    async fn insert_prompt(
        conn: &mut Self::Connection,
        rows: &PromptRows<'_>,
        savepoint: bool,
    ) -> Result<Option<(i64, Vec<i64>)>, sqlx::Error>;

    /// For each of `creates`, in order and in one call: its references
    /// read again, `SAVEPOINT batched_{i}` (`i` its place), its insert.
    /// The new ids and the references as the transaction saw them, one
    /// pair each. Only where `BATCHES_CREATES`.
    async fn insert_sessions(
        _conn: &mut Self::Connection,
        _creates: &[&BatchedCreate],
    ) -> Result<Vec<(SessionIds, (Vec<RefRow>, AgentRows))>, sqlx::Error> {
        Err(sqlx::Error::Protocol(format!(
            "{} does not batch creates",
            Self::BACKEND
        )))
    }

    /// `references` read again, then `insert_session`, for references
    /// first read outside the write transaction (see `write_state::ReadAhead`):
    /// the new ids, and the references as the transaction sees them. One
    /// call to the database where the backend can send them together.
    async fn insert_session_rechecked(
        conn: &mut Self::Connection,
        rows: &SessionRows<'_>,
        savepoint: bool,
        user: i64,
        asked: &Asked<'_>,
    ) -> Result<(SessionIds, (Vec<RefRow>, AgentRows)), sqlx::Error> {
        let again = Self::references(conn, user, asked).await?;
        let ids = Self::insert_session(conn, rows, savepoint).await?;
        Ok((ids, again))
    }
}
