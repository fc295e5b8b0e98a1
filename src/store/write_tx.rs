//! The write-transaction port: the verbs a use case runs inside one write
//! transaction (`Store::begin_write`), whatever the backend and whether
//! the transaction commits alone or in a group.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Asked, KeyClaim, PromptRows, References, ResponseOutcome, SessionIds, SessionRows, StoreError,
};
use crate::domain::{Agent, NewExample, SettingsPatch, UserId};

/// The verbs of one write transaction. Reads inside it see what the
/// transaction wrote, and (PostgreSQL: row locks; SQLite: the write lock)
/// nothing another writer changes until it ends.
#[async_trait]
pub trait WriteTx: Send {
    /// Claims `(user, key)` for a request with this fingerprint: inserts it,
    /// or takes over a claim made before `expired_before`. A live claim is
    /// left alone and reported; on PostgreSQL a concurrent claim waits here
    /// until the first transaction ends.
    async fn claim_key(
        &mut self,
        user: UserId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<KeyClaim, StoreError>;

    /// What a create refers to, as the caller may see it: the class (with
    /// its enabled models), the project and the knowledge items, and the
    /// agent with its examples. One round trip on SQLite, where each is a
    /// hop to the connection's thread; one query per part asked elsewhere.
    async fn references(
        &mut self,
        user: UserId,
        asked: &Asked<'_>,
    ) -> Result<References, StoreError>;

    /// Writes a new session's rows in one call to the database. Where
    /// the references were read ahead and nothing was written before (no
    /// key), SQLite sends it with other creates' (`batched_creates`): it
    /// is then in its group, committed with it whether or not this
    /// transaction is dropped, and the transaction writes nothing more.
    async fn insert_session(&mut self, rows: &SessionRows<'_>) -> Result<SessionIds, StoreError>;

    /// The owners of those of `ids` that name examples not deleted, as
    /// `(example_id, user_id)`.
    async fn example_owners(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError>;

    /// Replaces the agent and its example list.
    async fn put_agent(&mut self, agent: &Agent, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Moves the `updated_at` of the caller's session and of its settings
    /// (on PostgreSQL this locks both rows until the transaction ends);
    /// the settings' id, or `None` if the caller has no such session.
    async fn touch_session_settings(
        &mut self,
        user: UserId,
        session_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError>;

    /// The example ids linked to the settings, in link order.
    async fn linked_example_ids(&mut self, setting_id: i64) -> Result<Vec<i64>, StoreError>;

    /// Sets the style fields the patch carries.
    async fn update_settings(
        &mut self,
        setting_id: i64,
        patch: &SettingsPatch,
    ) -> Result<(), StoreError>;

    /// Replaces the few-shot links with these examples, in order. Only
    /// after `touch_session_settings` in the same transaction: that lock
    /// makes a concurrent delete of the session wait, and then its cascade
    /// removes these links.
    async fn replace_links(
        &mut self,
        setting_id: i64,
        example_ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Writes a prompt of the caller's session with one response in
    /// progress per model; the prompt's id and the responses' ids in the
    /// models' order, or `None` if the caller has no such session.
    async fn insert_prompt(
        &mut self,
        rows: &PromptRows<'_>,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError>;

    /// Writes a new attempt, in progress, at the turn of the caller's
    /// response `response_id` of session `session_id`, by the same model,
    /// answered by `replica_id`, linked to the idempotency key the request
    /// carried; the new response's id and attempt number, or `None` if the
    /// caller has no such response.
    async fn insert_attempt(
        &mut self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        now: DateTime<Utc>,
        replica_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Option<(i64, i64)>, StoreError>;

    /// Writes the user's new example, linked to the idempotency key the
    /// request carried; its id.
    async fn insert_example(
        &mut self,
        user: UserId,
        example: &NewExample,
        now: DateTime<Utc>,
        idempotency_key: Option<&str>,
    ) -> Result<i64, StoreError>;

    /// Saves the text of an answer in progress (its prompt has
    /// `prompt_chars` characters); `false` if it is no longer in progress
    /// (swept as interrupted) or gone (its session deleted). A write of
    /// its own, so that many answers' saves share a group's commit.
    async fn save_partial(
        &mut self,
        response_id: i64,
        prompt_chars: i64,
        text: &str,
    ) -> Result<bool, StoreError>;

    /// Stores how a response's answer ended and charges its usage; `false`
    /// as for `save_partial`.
    async fn finish_response(
        &mut self,
        response_id: i64,
        outcome: &ResponseOutcome,
    ) -> Result<bool, StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
