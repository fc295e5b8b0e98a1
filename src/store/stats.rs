//! What a class's model statistics are computed from: its sessions'
//! answers and chosen turns in a time window, and its token counts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::{ModelUsage, StoreError, sql};

/// One model's answers in a class over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AnswerCounts {
    pub model_name: String,
    pub answers: i64,
    pub completed: i64,
    pub failed: i64,
    pub thumbs_up: i64,
    pub thumbs_down: i64,
}

/// A model that answered a chosen turn, with the turn's outcome.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TurnModel {
    pub prompt_id: i64,
    pub outcome: String,
    pub chosen_model: Option<String>,
    pub model_name: String,
}

/// Which of a model's timings a median is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    Latency,
    FirstByte,
}

#[async_trait]
pub trait StatsStore: Send + Sync {
    /// The caller's role in a class that is not deleted; `None` if not a member.
    async fn class_role(&self, class_id: i64, user_id: i64) -> Result<Option<String>, StoreError>;

    /// Per model, the answers given in the class's sessions in `[since, until)`.
    async fn answer_counts(
        &self,
        class_id: i64,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<AnswerCounts>, StoreError>;

    /// The median of a model's completed answers' timing in the window.
    async fn median(
        &self,
        class_id: i64,
        model_name: &str,
        timing: Timing,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError>;

    /// The models of each chosen turn of the class's sessions asked in the
    /// window, with its outcome, ordered by turn.
    async fn chosen_turns(
        &self,
        class_id: i64,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<TurnModel>, StoreError>;

    /// A subject's usage per model over the UTC days `first` to `last`.
    async fn usage_between(
        &self,
        subject: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<ModelUsage>, StoreError>;
}

#[async_trait]
impl<DB> StatsStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    for<'a> &'a str: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    String: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> AnswerCounts: sqlx::FromRow<'r, DB::Row>,
    for<'r> TurnModel: sqlx::FromRow<'r, DB::Row>,
    for<'r> ModelUsage: sqlx::FromRow<'r, DB::Row>,
{
    async fn class_role(&self, class_id: i64, user_id: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(sql::CLASS_ROLE)
            .bind(class_id)
            .bind(user_id)
            .fetch_optional(self.read_pool())
            .await?)
    }

    async fn answer_counts(
        &self,
        class_id: i64,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<AnswerCounts>, StoreError> {
        Ok(sqlx::query_as(sql::ANSWER_COUNTS)
            .bind(class_id)
            .bind(since)
            .bind(until)
            .fetch_all(self.read_pool())
            .await?)
    }

    async fn median(
        &self,
        class_id: i64,
        model_name: &str,
        timing: Timing,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let (count, at) = match timing {
            Timing::Latency => (sql::LATENCY_COUNT, sql::LATENCY_AT),
            Timing::FirstByte => (sql::FIRST_BYTE_COUNT, sql::FIRST_BYTE_AT),
        };
        let n: i64 = sqlx::query_scalar(count)
            .bind(class_id)
            .bind(model_name)
            .bind(since)
            .bind(until)
            .fetch_one(self.read_pool())
            .await?;
        if n == 0 {
            return Ok(None);
        }
        Ok(sqlx::query_scalar(at)
            .bind(class_id)
            .bind(model_name)
            .bind(since)
            .bind(until)
            .bind(n / 2)
            .fetch_optional(self.read_pool())
            .await?)
    }

    async fn chosen_turns(
        &self,
        class_id: i64,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<TurnModel>, StoreError> {
        Ok(sqlx::query_as(sql::CHOSEN_TURNS)
            .bind(class_id)
            .bind(since)
            .bind(until)
            .fetch_all(self.read_pool())
            .await?)
    }

    async fn usage_between(
        &self,
        subject: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<ModelUsage>, StoreError> {
        Ok(sqlx::query_as(sql::USAGE_BETWEEN)
            .bind(subject)
            .bind(first)
            .bind(last)
            .fetch_all(self.read_pool())
            .await?)
    }
}
