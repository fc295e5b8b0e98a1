//! Persistence behind a small port: one object-safe `Store` (reads and
//! single-statement writes) and a `WriteTx` (the verbs a use case runs inside
//! one write transaction). The rules live in `service/`; the store only says
//! what the database holds.
//!
//! Two implementations, chosen by URL: SQLite (the embedded default) and
//! PostgreSQL (production). SQL both dialects accept is written out once in
//! `sql.rs`; what differs (how a list of ids is bound, how a new session's
//! rows are written in one call) is written out in each backend's module.
//! Rows are read by column name into the structs of `rows.rs`.

mod batched_creates;
mod catalog;
mod conversation;
mod dialect;
pub mod failure;
mod group_commit;
mod json_param;
mod options;
mod postgres;
mod rows;
mod sql;
mod sql_store;
mod sql_tx;
mod sqlite;
mod stats;
mod turns;
mod wal_sync;
mod write_state;
mod write_tx;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::{
    Agent, Example, ExamplePatch, NewExample, NewSession, Session, SessionFilter, SessionPatch,
    UserId,
};
use crate::error::Error;

pub use catalog::CatalogStore;
pub use conversation::{
    Charge, ConversationStore, ModelUsage, ResponseBudget, ResponseOutcome, ResponseSlice,
};
pub use failure::StoreError;
pub use options::StoreOptions;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use stats::{AnswerCounts, StatsStore, Timing, TurnModel};
pub use turns::{Choice, TurnStore};
pub use write_tx::WriteTx;

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
    pub prompts: i64,
    pub responses: i64,
    pub idempotency_keys: i64,
    pub session_versions: i64,
}

/// What `claim_key` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is this transaction's now (new, or taken over once expired).
    Claimed,
    /// A live claim exists: its request's fingerprint, and what that
    /// request created once it committed (a session, or a prompt).
    Held {
        request_hash: String,
        session_id: Option<i64>,
        prompt_id: Option<i64>,
        example_id: Option<i64>,
        /// The attempt a RegenerateResponse made.
        response_id: Option<i64>,
    },
}

/// The references a create names (`WriteTx::references`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    pub class_id: Option<i64>,
    pub project_id: Option<i64>,
    pub knowledge_ids: &'a [i64],
    pub agent_id: Option<i64>,
}

impl Asked<'_> {
    /// Are any of the class, project or knowledge items asked for?
    pub fn refs(&self) -> bool {
        self.class_id.is_some() || self.project_id.is_some() || !self.knowledge_ids.is_empty()
    }
}

/// What `WriteTx::references` found.
#[derive(Debug, Clone, Default)]
pub struct References {
    pub refs: VisibleRefs,
    /// The agent, if one was asked for and the caller may use it.
    pub agent: Option<AgentRecord>,
}

/// The references of a create request as the caller may see them; what is
/// missing here either doesn't exist or isn't visible to the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisibleRefs {
    /// The class's enabled models in the class's order, when the class is
    /// visible.
    pub class_models: Option<Vec<String>>,
    /// The project's own class (`Some(None)`: a visible project without a
    /// class).
    pub project_class: Option<Option<i64>>,
    /// The asked knowledge ids that are visible, in no particular order.
    pub knowledge_ids: Vec<i64>,
}

/// An agent as stored, with every example it lists in the agent's order.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub agent: Agent,
    pub updated_at: DateTime<Utc>,
    pub examples: Vec<AgentExample>,
}

/// One of an agent's examples; `live` is false once it has been deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentExample {
    pub example: Example,
    pub live: bool,
}

/// Every row a new session writes, decided by the use case before the
/// first write.
#[derive(Debug, Clone, Copy)]
pub struct SessionRows<'a> {
    pub user: UserId,
    pub new: &'a NewSession,
    pub now: DateTime<Utc>,
    pub style_preset: &'a str,
    pub style_params: &'a Map<String, Value>,
    pub generation_params: &'a Map<String, Value>,
    pub agent_snapshot: &'a Map<String, Value>,
    /// The few-shot links' examples, in link order.
    pub example_ids: &'a [i64],
    /// The session models, in order.
    pub model_names: &'a [String],
    /// Linked to the new session when the request carried one.
    pub idempotency_key: Option<&'a str>,
}

/// The ids the database gave a new session's rows; links and models in
/// their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIds {
    pub session_id: i64,
    pub setting_id: i64,
    pub link_ids: Vec<i64>,
    pub model_ids: Vec<i64>,
}

/// A prompt's rows: the prompt, and one response in progress per model.
#[derive(Debug, Clone, Copy)]
pub struct PromptRows<'a> {
    pub user: UserId,
    /// The replica that answers the prompt (see `ConversationStore`).
    pub replica_id: &'a str,
    pub session_id: i64,
    pub prompt_text: &'a str,
    pub now: DateTime<Utc>,
    /// `(session_model_id, model_name)` of each model asked, in order.
    pub models: &'a [(i64, String)],
    /// Linked to the new prompt when the request carried one.
    pub idempotency_key: Option<&'a str>,
}

/// Whether a session read includes its newest responses (lists show
/// sessions without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responses {
    Newest(ResponseBudget),
    Skip,
}

/// One page of the caller's sessions, as they stood at `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionQuery {
    pub filter: SessionFilter,
    /// The moment of the first page: sessions are placed by the
    /// `updated_at` they had then, and those created later are left out.
    pub as_of: DateTime<Utc>,
    /// Only sessions placed strictly after this `(updated_at, session_id)`,
    /// newest first.
    pub after: (DateTime<Utc>, i64),
    pub limit: i64,
}

/// A session of a page and where it stands in the page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedSession {
    pub session_id: i64,
    pub placed_at: DateTime<Utc>,
}

#[async_trait]
pub trait Store:
    CatalogStore + ConversationStore + TurnStore + StatsStore + Send + Sync + 'static
{
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;

    async fn migrate(&self) -> Result<(), Error>;

    /// Is the database reachable?
    async fn ping(&self) -> Result<(), StoreError>;

    /// Begins a write transaction. Dropping it without `commit` rolls back.
    /// `attempt` counts the runs of one use case's transaction from 1; a
    /// run after the first never joins a write group, so a transaction that
    /// lost a lock wait inside one (see `StoreError::Conflict`) waits again
    /// without holding up a group.
    async fn begin_write(&self, attempt: u32) -> Result<Box<dyn WriteTx>, StoreError>;

    /// `begin_write` for an answer's own writes (its text so far, its end
    /// and usage). Where groups commit in several lanes (PostgreSQL) these
    /// all take the same lane: they write the same rows (an answer's, a
    /// day's usage of a user or class), and groups open in two lanes would
    /// wait for each other's row locks, and every writer in them with them.
    async fn begin_answer_write(&self, attempt: u32) -> Result<Box<dyn WriteTx>, StoreError>;

    /// The caller's session; another user's is `None`, like a missing one.
    /// Its newest responses are read only when asked for.
    async fn session(
        &self,
        user: UserId,
        session_id: i64,
        responses: Responses,
    ) -> Result<Option<Session>, StoreError>;

    /// The caller's sessions of one page, newest first (see `SessionQuery`).
    async fn session_page(
        &self,
        user: UserId,
        query: &SessionQuery,
    ) -> Result<Vec<PagedSession>, StoreError>;

    /// Applies the patch to the caller's session and moves its
    /// `updated_at`; `false` if the caller has no such session.
    async fn update_session(
        &self,
        user: UserId,
        session_id: i64,
        patch: &SessionPatch,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes the caller's session and everything that hangs off it (the
    /// foreign keys cascade); `false` if the caller has no such session.
    async fn delete_session(&self, user: UserId, session_id: i64) -> Result<bool, StoreError>;

    async fn create_example(
        &self,
        user: UserId,
        example: &NewExample,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// The user's example, if it exists and isn't deleted.
    async fn example(&self, user: UserId, example_id: i64) -> Result<Option<Example>, StoreError>;

    /// The user's examples with ids above `after_id`, oldest first.
    async fn examples(
        &self,
        user: UserId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Example>, StoreError>;

    /// Applies the patch to the user's example; `None` if there is none.
    async fn update_example(
        &self,
        user: UserId,
        example_id: i64,
        patch: &ExamplePatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Example>, StoreError>;

    /// Soft-deletes the user's example; `false` if there was none.
    async fn delete_example(
        &self,
        user: UserId,
        example_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes idempotency keys claimed before `before`; how many.
    async fn delete_expired_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    async fn table_counts(&self) -> Result<TableCounts, StoreError>;
}

/// Opens the database named by `url`: `sqlite:...` or `postgres://...`.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::connect(url, options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::connect(url, options).await?))
    } else {
        Err(Error::internal(anyhow::anyhow!(
            "DATABASE_URL must start with sqlite: or postgres://"
        )))
    }
}
