//! The write-transaction verbs over either database: shared SQL from
//! `sql.rs`, the dialect's own for the rest; how the transaction reaches
//! the write connection is `write_state`'s.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use sqlx::QueryBuilder;

use super::dialect::Dialect;
use super::json_param::JsonParam;
use super::rows;
use super::write_state::SqlWriteTx;
use super::{
    Asked, KeyClaim, PromptRows, References, ResponseOutcome, SessionIds, SessionRows, StoreError,
    WriteTx, sql,
};
use crate::domain::conversation::turn_chars;
use crate::domain::{Agent, NewExample, SettingsPatch, UserId};

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
        let (refs, agent) = self.reference_rows(user, asked).await?;
        Ok(References {
            refs: rows::visible_refs(refs),
            agent: agent.record(),
        })
    }

    async fn insert_session(&mut self, rows: &SessionRows<'_>) -> Result<SessionIds, StoreError> {
        self.insert(rows).await
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
        self.end().await
    }
}
