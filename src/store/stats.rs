//! What a class's model statistics are computed from: its sessions'
//! answers and chosen turns in a time window, and its token counts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Pool;

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::{ModelUsage, StoreError};

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
        Ok(sqlx::query_scalar(CLASS_ROLE)
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
        Ok(sqlx::query_as(ANSWER_COUNTS)
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
            Timing::Latency => (LATENCY_COUNT, LATENCY_AT),
            Timing::FirstByte => (FIRST_BYTE_COUNT, FIRST_BYTE_AT),
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
        Ok(sqlx::query_as(CHOSEN_TURNS)
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
        Ok(sqlx::query_as(USAGE_BETWEEN)
            .bind(subject)
            .bind(first)
            .bind(last)
            .fetch_all(self.read_pool())
            .await?)
    }
}

// --- the queries, written out for both databases ---

/// The role of user `$2` in class `$1`, unless the class is deleted.
const CLASS_ROLE: &str = "\
SELECT m.role FROM class_members m JOIN classes c ON c.class_id = m.class_id
WHERE m.class_id = $1 AND m.user_id = $2 AND c.deleted_at IS NULL";

/// Per model, the answers in class `$1`'s sessions created in [`$2`, `$3`).
const ANSWER_COUNTS: &str = "\
SELECT r.model_name,
       COUNT(*) AS answers,
       SUM(CASE WHEN r.status = 'completed' THEN 1 ELSE 0 END) AS completed,
       SUM(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN r.rating = 'up' THEN 1 ELSE 0 END) AS thumbs_up,
       SUM(CASE WHEN r.rating = 'down' THEN 1 ELSE 0 END) AS thumbs_down
FROM practice_sessions s JOIN responses r ON r.session_id = s.session_id
WHERE s.class_id = $1 AND r.created_at >= $2 AND r.created_at < $3
GROUP BY r.model_name ORDER BY r.model_name";

/// How many of model `$2`'s completed answers in class `$1` in [`$3`,
/// `$4`) have a latency.
const LATENCY_COUNT: &str = "\
SELECT COUNT(r.latency_ms)
FROM practice_sessions s JOIN responses r ON r.session_id = s.session_id
WHERE s.class_id = $1 AND r.model_name = $2 AND r.status = 'completed'
  AND r.created_at >= $3 AND r.created_at < $4";

/// The `$5`th smallest of those latencies.
const LATENCY_AT: &str = "\
SELECT r.latency_ms
FROM practice_sessions s JOIN responses r ON r.session_id = s.session_id
WHERE s.class_id = $1 AND r.model_name = $2 AND r.status = 'completed'
  AND r.created_at >= $3 AND r.created_at < $4 AND r.latency_ms IS NOT NULL
ORDER BY r.latency_ms LIMIT 1 OFFSET $5";

/// The same for the time to the first text.
const FIRST_BYTE_COUNT: &str = "\
SELECT COUNT(r.first_byte_ms)
FROM practice_sessions s JOIN responses r ON r.session_id = s.session_id
WHERE s.class_id = $1 AND r.model_name = $2 AND r.status = 'completed'
  AND r.created_at >= $3 AND r.created_at < $4";

const FIRST_BYTE_AT: &str = "\
SELECT r.first_byte_ms
FROM practice_sessions s JOIN responses r ON r.session_id = s.session_id
WHERE s.class_id = $1 AND r.model_name = $2 AND r.status = 'completed'
  AND r.created_at >= $3 AND r.created_at < $4 AND r.first_byte_ms IS NOT NULL
ORDER BY r.first_byte_ms LIMIT 1 OFFSET $5";

/// The models of each chosen turn of class `$1`'s sessions asked in
/// [`$2`, `$3`), with the turn's outcome and chosen model.
const CHOSEN_TURNS: &str = "\
SELECT DISTINCT p.prompt_id, p.outcome, ch.model_name AS chosen_model, r.model_name
FROM practice_sessions s
JOIN prompts p ON p.session_id = s.session_id
JOIN responses r ON r.prompt_id = p.prompt_id
LEFT JOIN responses ch ON ch.response_id = p.chosen_response_id
WHERE s.class_id = $1 AND p.outcome IS NOT NULL AND p.created_at >= $2 AND p.created_at < $3
ORDER BY p.prompt_id, r.model_name";

/// A subject's (`$1`) usage per model over the days `$2` to `$3`.
const USAGE_BETWEEN: &str = "\
SELECT model_name, CAST(SUM(answers) AS BIGINT) AS answers,
       CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
       CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens,
       CAST(SUM(cost_micros) AS BIGINT) AS cost_micros
FROM usage_daily WHERE subject = $1 AND day >= $2 AND day <= $3
GROUP BY model_name ORDER BY model_name";
