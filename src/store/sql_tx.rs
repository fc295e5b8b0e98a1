//! The write-transaction verbs over either database: shared SQL from
//! `sql.rs`, the dialect's own for the rest.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

use sqlx::{Pool, QueryBuilder, Transaction};

use super::batched_creates;
use super::dialect::Dialect;
use super::group_commit::{Committing, GroupCommit, Member};
use super::json_param::JsonParam;
use super::rows::{self, AgentRows, RefRow};
use super::{
    Asked, KeyClaim, PromptRows, References, ResponseOutcome, SessionIds, SessionRows, StoreError,
    WriteTx, sql,
};
use crate::domain::conversation::turn_chars;
use crate::domain::{Agent, NewExample, SettingsPatch, UserId};

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
    async fn conn(&mut self) -> Result<&mut DB::Connection, StoreError> {
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
    async fn savepoint_due(&mut self) -> Result<bool, StoreError> {
        self.conn().await?;
        Ok(match self {
            SqlWriteTx::Grouped(member, _) => member.begins_savepoint(),
            _ => false,
        })
    }

    /// Every verb that writes calls this first: a member of a group begins
    /// the savepoint that undoes its writes alone, if it takes one.
    async fn before_write(&mut self) -> Result<(), StoreError> {
        self.conn().await?;
        if let SqlWriteTx::Grouped(member, _) = self {
            member.before_write().await?;
        }
        Ok(())
    }
}

/// The verbs run the shared SQL through sqlx's generic API; these are the
/// types each database must bind and decode for them.
#[async_trait]
impl<DB> WriteTx for SqlWriteTx<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<i64>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    bool: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    Option<bool>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    for<'a> &'a str: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    for<'a> Option<&'a str>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> JsonParam<'a>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    for<'a> Option<JsonParam<'a>>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
{
    async fn claim_key(
        &mut self,
        user: UserId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<KeyClaim, StoreError> {
        self.before_write().await?;
        let claimed: Option<i64> = sqlx::query_scalar(sql::CLAIM_KEY)
            .bind(user.get())
            .bind(key)
            .bind(fingerprint)
            .bind(now.timestamp_micros())
            .bind(expired_before.timestamp_micros())
            .fetch_optional(self.conn().await?)
            .await?;
        if claimed.is_some() {
            return Ok(KeyClaim::Claimed);
        }
        let (request_hash, session_id, prompt_id, example_id, response_id): (
            String,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        ) = sqlx::query_as(sql::HELD_KEY)
            .bind(user.get())
            .bind(key)
            .fetch_one(self.conn().await?)
            .await?;
        Ok(KeyClaim::Held {
            request_hash,
            session_id,
            prompt_id,
            example_id,
            response_id,
        })
    }

    async fn references(
        &mut self,
        user: UserId,
        asked: &Asked<'_>,
    ) -> Result<References, StoreError> {
        let (refs, agent) = match self {
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
        };
        Ok(References {
            refs: rows::visible_refs(refs),
            agent: agent.record(),
        })
    }

    async fn insert_session(&mut self, rows: &SessionRows<'_>) -> Result<SessionIds, StoreError> {
        // Read ahead and not yet joined, so this insert is the
        // transaction's only write (a key's claim would have joined).
        if let SqlWriteTx::Joining(group, _, ahead @ Some(_)) = self
            && DB::BATCHES_CREATES
            && rows.idempotency_key.is_none()
        {
            let ahead = ahead.take().expect("matched Some");
            let create = batched_creates::BatchedCreate::new(ahead, rows);
            let (ids, committing) = batched_creates::insert(&group.clone(), create).await?;
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
            return Err(StoreError::Conflict(sqlx::Error::Protocol(
                "the references changed after they were read".into(),
            )));
        }
        Ok(ids)
    }

    async fn example_owners(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(DB::example_owners(self.conn().await?, ids).await?)
    }

    async fn put_agent(&mut self, a: &Agent, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.before_write().await?;
        sqlx::query(sql::UPSERT_AGENT)
            .bind(a.agent_id)
            .bind(a.owner_user_id)
            .bind(a.class_id)
            .bind(&a.name)
            .bind(a.description.as_deref())
            .bind(a.system_prompt.as_deref())
            .bind(&a.style_preset)
            .bind(JsonParam(&a.style_params))
            .bind(JsonParam(&a.generation_params))
            .bind(now)
            .execute(self.conn().await?)
            .await?;
        sqlx::query(sql::DELETE_AGENT_EXAMPLES)
            .bind(a.agent_id)
            .execute(self.conn().await?)
            .await?;
        if !a.example_ids.is_empty() {
            QueryBuilder::<DB>::new(sql::INSERT_AGENT_EXAMPLES)
                .push_values(a.example_ids.iter().enumerate(), |mut b, (i, id)| {
                    b.push_bind(a.agent_id).push_bind(i as i64).push_bind(*id);
                })
                .build()
                .execute(self.conn().await?)
                .await?;
        }
        Ok(())
    }

    async fn touch_session_settings(
        &mut self,
        user: UserId,
        session_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        self.before_write().await?;
        let touched: Option<i64> = sqlx::query_scalar(sql::TOUCH_SESSION)
            .bind(session_id)
            .bind(user.get())
            .bind(now)
            .fetch_optional(self.conn().await?)
            .await?;
        if touched.is_none() {
            return Ok(None);
        }
        Ok(sqlx::query_scalar(sql::TOUCH_SETTINGS)
            .bind(session_id)
            .bind(now)
            .fetch_optional(self.conn().await?)
            .await?)
    }

    async fn linked_example_ids(&mut self, setting_id: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::LINKED_EXAMPLE_IDS)
            .bind(setting_id)
            .fetch_all(self.conn().await?)
            .await?)
    }

    async fn update_settings(
        &mut self,
        setting_id: i64,
        patch: &SettingsPatch,
    ) -> Result<(), StoreError> {
        self.before_write().await?;
        sqlx::query(sql::UPDATE_SETTINGS)
            .bind(setting_id)
            .bind(patch.style_preset.as_deref())
            .bind(patch.style_params.as_ref().map(JsonParam))
            .bind(patch.generation_params.as_ref().map(JsonParam))
            .bind(patch.blind)
            .bind(patch.continue_from.as_deref())
            .execute(self.conn().await?)
            .await?;
        Ok(())
    }

    async fn replace_links(
        &mut self,
        setting_id: i64,
        example_ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.before_write().await?;
        sqlx::query(sql::DELETE_LINKS)
            .bind(setting_id)
            .execute(self.conn().await?)
            .await?;
        if !example_ids.is_empty() {
            QueryBuilder::<DB>::new(sql::INSERT_LINKS)
                .push_values(example_ids.iter().enumerate(), |mut b, (i, id)| {
                    b.push_bind(setting_id)
                        .push_bind(*id)
                        .push_bind(i as i64)
                        .push_bind(now);
                })
                .build()
                .execute(self.conn().await?)
                .await?;
        }
        Ok(())
    }

    async fn insert_prompt(
        &mut self,
        rows: &PromptRows<'_>,
    ) -> Result<Option<(i64, Vec<i64>)>, StoreError> {
        let savepoint = self.savepoint_due().await?;
        Ok(DB::insert_prompt(self.conn().await?, rows, savepoint).await?)
    }

    async fn insert_attempt(
        &mut self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        now: DateTime<Utc>,
        replica_id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        self.before_write().await?;
        let made: Option<(i64, i64)> = sqlx::query_as(sql::INSERT_ATTEMPT)
            .bind(response_id)
            .bind(session_id)
            .bind(user.get())
            .bind(now)
            .bind(replica_id)
            .fetch_optional(self.conn().await?)
            .await?;
        if let (Some((id, _)), Some(key)) = (made, idempotency_key) {
            sqlx::query(sql::LINK_KEY_TO_RESPONSE)
                .bind(user.get())
                .bind(key)
                .bind(id)
                .execute(self.conn().await?)
                .await?;
        }
        Ok(made)
    }

    async fn insert_example(
        &mut self,
        user: UserId,
        e: &NewExample,
        now: DateTime<Utc>,
        idempotency_key: Option<&str>,
    ) -> Result<i64, StoreError> {
        self.before_write().await?;
        let id: i64 = sqlx::query_scalar(sql::CREATE_EXAMPLE)
            .bind(user.get())
            .bind(e.title.as_deref())
            .bind(e.input_text.as_str())
            .bind(e.output_text.as_str())
            .bind(e.is_active)
            .bind(JsonParam(&e.meta))
            .bind(now)
            .fetch_one(self.conn().await?)
            .await?;
        if let Some(key) = idempotency_key {
            sqlx::query(sql::LINK_KEY_TO_EXAMPLE)
                .bind(user.get())
                .bind(key)
                .bind(id)
                .execute(self.conn().await?)
                .await?;
        }
        Ok(id)
    }

    async fn save_partial(
        &mut self,
        response_id: i64,
        prompt_chars: i64,
        text: &str,
    ) -> Result<bool, StoreError> {
        self.before_write().await?;
        let done = sqlx::query(sql::SAVE_PARTIAL)
            .bind(response_id)
            .bind(text)
            .bind(prompt_chars + text.chars().count() as i64)
            .execute(self.conn().await?)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn finish_response(
        &mut self,
        response_id: i64,
        outcome: &ResponseOutcome,
    ) -> Result<bool, StoreError> {
        // The savepoint, if due, the end and the charge go as one call
        // where the backend can send them together.
        let savepoint = self.savepoint_due().await?;
        let chars = turn_chars(&outcome.prompt_text, &outcome.response_text);
        let charge = &outcome.charge;
        let [subject, class_subject] = &charge.subjects;
        let finished: Vec<i64> = sqlx::query_scalar(DB::finish_answer(savepoint))
            .bind(response_id)
            .bind(outcome.response_text.as_str())
            .bind(outcome.status.as_str())
            .bind(outcome.error.as_deref())
            .bind(JsonParam(&outcome.token_usage))
            .bind(outcome.latency_ms)
            .bind(outcome.first_byte_ms)
            .bind(chars)
            .bind(outcome.charge.cost_micros)
            .bind(subject.as_deref())
            .bind(charge.day.as_str())
            .bind(charge.model_name.as_str())
            .bind(charge.prompt_tokens)
            .bind(charge.completion_tokens)
            .bind(charge.cost_micros.unwrap_or(0))
            .bind(class_subject.as_deref())
            .fetch_all(self.conn().await?)
            .await?;
        Ok(finished.first().is_some_and(|&n| n > 0))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match *self {
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
