//! The conversation's storage: bounded reads of a session's responses, a
//! model's history, answers saved as they stream, and the replica leases
//! that tell a live answer from one whose replica died.
//!
//! Every read of responses first reads their sizes (no text), decides how
//! many fit, then reads only those: memory to serve a session doesn't grow
//! with its history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use super::dialect::Dialect;
use super::json_param::JsonParam;
use super::rows::ResponseRow;
use super::sql_store::SqlStore;
use super::{StoreError, sql};
use crate::domain::UserId;
use crate::domain::conversation::ResponseStatus;
use crate::domain::conversation::{Turn, fitting};
use crate::domain::session::Response;
use serde_json::{Map, Value};

/// Tokens an answer spent, counted against each subject (`user:42`,
/// `class:3`) for a UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Whose days it is charged to: the user's, and the class's when the
    /// session has one.
    pub subjects: [Option<String>; 2],
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub model_name: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Millionths of a US dollar, where the model has prices.
    pub cost_micros: Option<i64>,
}

/// One model's usage of a subject's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ModelUsage {
    pub model_name: String,
    pub answers: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Millionths of a US dollar (0 where the model has no prices).
    pub cost_micros: i64,
}

/// How a model's answer ended, as its response row stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseOutcome {
    pub status: ResponseStatus,
    /// The prompt the answer is for (its size is stored with the answer's).
    pub prompt_text: String,
    pub response_text: String,
    pub error: Option<String>,
    pub token_usage: Map<String, Value>,
    pub latency_ms: i64,
    pub first_byte_ms: Option<i64>,
    /// What the answer spent, counted even when the row is gone.
    pub charge: Charge,
}

/// How many responses a read returns at most, and how many characters of
/// prompt and answer text they may hold together. A read returns at least
/// one response when there is one, whatever its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseBudget {
    pub count: usize,
    pub chars: i64,
}

/// Responses of a session, oldest first, and whether more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSlice {
    pub responses: Vec<Response>,
    pub more: bool,
    /// The highest response id the listing covers (its snapshot).
    pub upto: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct SizeRow {
    pub response_id: i64,
    pub chars: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct HistorySizeRow {
    response_id: i64,
    chars: i64,
    prompt_id: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct TurnRow {
    response_id: i64,
    prompt_text: String,
    response_text: String,
}

/// The conversation's verbs; every `Store` has them.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The caller's session's responses with ids above `after` (oldest
    /// first), up to `upto` (`None`: the newest there is now); `None` if the
    /// caller has no such session.
    async fn response_page(
        &self,
        user: UserId,
        session_id: i64,
        after: i64,
        upto: Option<i64>,
        budget: ResponseBudget,
    ) -> Result<Option<ResponseSlice>, StoreError>;

    /// Each of `session_model_ids`' newest completed turns before the turn
    /// `before_prompt_id`, newest first, one answer a turn (its newest
    /// attempt; with `chosen_in`, the session's id, the turn's chosen
    /// answer where it has one), at most `max_turns` and together at most
    /// `chars` characters; in the order asked, all from one snapshot.
    async fn model_histories(
        &self,
        session_model_ids: &[i64],
        before_prompt_id: i64,
        chars: i64,
        max_turns: i64,
        chosen_in: Option<i64>,
    ) -> Result<Vec<Vec<Turn>>, StoreError>;

    /// A response's status and error (`None`: no such response).
    async fn response_status(
        &self,
        response_id: i64,
    ) -> Result<Option<(String, Option<String>)>, StoreError>;

    /// A subject's usage on a UTC day (`YYYY-MM-DD`), per model.
    async fn usage(&self, subject: &str, day: &str) -> Result<Vec<ModelUsage>, StoreError>;

    /// Deletes the usage of days before `day`; how many rows.
    async fn delete_usage_before(&self, day: &str) -> Result<u64, StoreError>;

    /// The responses of the caller's prompt, in the models' order.
    async fn prompt_responses(
        &self,
        user: UserId,
        prompt_id: i64,
    ) -> Result<Vec<Response>, StoreError>;

    /// Takes or extends this replica's lease until `expires_at`.
    async fn renew_lease(
        &self,
        replica_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stores every answer in progress whose replica's lease has run out
    /// by `now` as failed "interrupted"; how many.
    async fn fail_orphaned(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// A replica stopping: its answers still in progress become failed
    /// "interrupted" and its lease goes; how many answers.
    async fn release_lease(&self, replica_id: &str) -> Result<u64, StoreError>;
}

/// The newest responses of a session within the budget, oldest first, and
/// whether older ones exist; inside the caller's read transaction.
pub(super) async fn newest_responses<DB>(
    conn: &mut DB::Connection,
    session_id: i64,
    budget: ResponseBudget,
) -> Result<(Vec<ResponseRow>, bool), sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'r> SizeRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> ResponseRow: sqlx::FromRow<'r, DB::Row>,
{
    let sizes: Vec<SizeRow> = sqlx::query_as(sql::NEWEST_RESPONSE_SIZES)
        .bind(session_id)
        .bind(budget.count as i64 + 1)
        .fetch_all(&mut *conn)
        .await?;
    let n = fitting(sizes.iter().map(|s| s.chars), budget.chars, 1).min(budget.count);
    if n == 0 {
        return Ok((Vec::new(), false));
    }
    let rows = sqlx::query_as(sql::RESPONSES_BETWEEN)
        .bind(session_id)
        .bind(sizes[n - 1].response_id)
        .bind(sizes[0].response_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok((rows, sizes.len() > n))
}

#[async_trait]
impl<DB> ConversationStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<i64>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> &'a str: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    for<'a> Option<&'a str>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> JsonParam<'a>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> SizeRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> TurnRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> HistorySizeRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> ResponseRow: sqlx::FromRow<'r, DB::Row>,
    for<'r> ModelUsage: sqlx::FromRow<'r, DB::Row>,
    for<'r> (String, Option<String>): sqlx::FromRow<'r, DB::Row>,
{
    async fn response_page(
        &self,
        user: UserId,
        session_id: i64,
        after: i64,
        upto: Option<i64>,
        budget: ResponseBudget,
    ) -> Result<Option<ResponseSlice>, StoreError> {
        let mut conn = DB::begin_read(self.read_pool()).await?;
        let owned: Option<i64> = sqlx::query_scalar(sql::SESSION_OWNED)
            .bind(session_id)
            .bind(user.get())
            .fetch_optional(&mut *conn)
            .await?;
        if owned.is_none() {
            return Ok(None);
        }
        let upto = match upto {
            Some(upto) => upto,
            None => {
                sqlx::query_scalar(sql::LAST_RESPONSE_ID)
                    .bind(session_id)
                    .fetch_one(&mut *conn)
                    .await?
            }
        };
        let sizes: Vec<SizeRow> = sqlx::query_as(sql::PAGE_RESPONSE_SIZES)
            .bind(session_id)
            .bind(after)
            .bind(upto)
            .bind(budget.count as i64 + 1)
            .fetch_all(&mut *conn)
            .await?;
        let n = fitting(sizes.iter().map(|s| s.chars), budget.chars, 1).min(budget.count);
        let responses: Vec<ResponseRow> = if n == 0 {
            Vec::new()
        } else {
            sqlx::query_as(sql::RESPONSES_BETWEEN)
                .bind(session_id)
                .bind(sizes[0].response_id)
                .bind(sizes[n - 1].response_id)
                .fetch_all(&mut *conn)
                .await?
        };
        Ok(Some(ResponseSlice {
            responses: responses
                .into_iter()
                .map(ResponseRow::into_response)
                .collect(),
            more: sizes.len() > n,
            upto,
        }))
    }

    async fn model_histories(
        &self,
        session_model_ids: &[i64],
        before_prompt_id: i64,
        chars: i64,
        max_turns: i64,
        chosen_in: Option<i64>,
    ) -> Result<Vec<Vec<Turn>>, StoreError> {
        // One transaction for every model of the prompt, not one each:
        // each `BEGIN` and its end is a call of its own.
        let mut conn = DB::begin_read(self.read_pool()).await?;
        let mut histories = Vec::with_capacity(session_model_ids.len());
        for &session_model_id in session_model_ids {
            let history: Result<Vec<Turn>, StoreError> = async {
                let sizes: Vec<HistorySizeRow> = match chosen_in {
                    None => sqlx::query_as(sql::HISTORY_SIZES)
                        .bind(session_model_id)
                        .bind(max_turns)
                        .bind(before_prompt_id),
                    Some(session_id) => sqlx::query_as(sql::CHOSEN_HISTORY_SIZES)
                        .bind(session_id)
                        .bind(max_turns)
                        .bind(before_prompt_id)
                        .bind(session_model_id),
                }
                .fetch_all(&mut *conn)
                .await?;
                // Newest first, so the first answer seen of a turn is its newest.
                let mut turns = std::collections::HashSet::new();
                let newest: Vec<&HistorySizeRow> =
                    sizes.iter().filter(|r| turns.insert(r.prompt_id)).collect();
                let n = fitting(newest.iter().map(|s| s.chars), chars, 0);
                if n == 0 {
                    return Ok(Vec::new());
                }
                let wanted: std::collections::HashSet<i64> =
                    newest[..n].iter().map(|r| r.response_id).collect();
                let rows: Vec<TurnRow> = match chosen_in {
                    None => sqlx::query_as(sql::HISTORY)
                        .bind(session_model_id)
                        .bind(newest[n - 1].response_id)
                        .bind(before_prompt_id),
                    Some(session_id) => sqlx::query_as(sql::CHOSEN_HISTORY)
                        .bind(session_id)
                        .bind(newest[n - 1].prompt_id)
                        .bind(before_prompt_id)
                        .bind(session_model_id),
                }
                .fetch_all(&mut *conn)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter(|r| wanted.contains(&r.response_id))
                    .map(|r| Turn {
                        prompt_text: r.prompt_text,
                        response_text: r.response_text,
                    })
                    .collect())
            }
            .await;
            histories.push(history?);
        }
        Ok(histories)
    }

    async fn delete_usage_before(&self, day: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::DELETE_OLD_USAGE)
            .bind(day)
            .execute(self.write_pool())
            .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn response_status(
        &self,
        response_id: i64,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(sqlx::query_as(sql::RESPONSE_STATUS)
            .bind(response_id)
            .fetch_optional(self.read_pool())
            .await?)
    }

    async fn usage(&self, subject: &str, day: &str) -> Result<Vec<ModelUsage>, StoreError> {
        Ok(sqlx::query_as(sql::USAGE)
            .bind(subject)
            .bind(day)
            .fetch_all(self.read_pool())
            .await?)
    }

    async fn prompt_responses(
        &self,
        user: UserId,
        prompt_id: i64,
    ) -> Result<Vec<Response>, StoreError> {
        let rows: Vec<ResponseRow> = sqlx::query_as(sql::PROMPT_RESPONSES)
            .bind(prompt_id)
            .bind(user.get())
            .fetch_all(self.read_pool())
            .await?;
        Ok(rows.into_iter().map(ResponseRow::into_response).collect())
    }

    async fn renew_lease(
        &self,
        replica_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::RENEW_LEASE)
            .bind(replica_id)
            .bind(expires_at)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    async fn fail_orphaned(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::FAIL_ORPHANED)
            .bind(now)
            .execute(self.write_pool())
            .await?;
        sqlx::query(sql::DROP_EXPIRED_LEASES)
            .bind(now)
            .execute(self.write_pool())
            .await?;
        self.synced().await?;
        Ok(DB::rows_affected(&done))
    }

    async fn release_lease(&self, replica_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::FAIL_OWN)
            .bind(replica_id)
            .execute(self.write_pool())
            .await?;
        sqlx::query(sql::DROP_LEASE)
            .bind(replica_id)
            .execute(self.write_pool())
            .await?;
        self.synced().await?;
        Ok(DB::rows_affected(&done))
    }
}
