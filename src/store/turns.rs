//! Compare and continue: one answer by id, ratings, and a turn's choice.

use async_trait::async_trait;
use sqlx::Pool;

use super::dialect::Dialect;
use super::rows::ResponseRow;
use super::sql_store::SqlStore;
use super::{StoreError, sql};
use crate::domain::UserId;
use crate::domain::session::Response;

/// A turn's outcome as the learner chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This answer is the turn's best.
    Chosen,
    Tie,
    NoneGood,
}

impl Choice {
    fn as_str(self) -> &'static str {
        match self {
            Choice::Chosen => "chosen",
            Choice::Tie => "tie",
            Choice::NoneGood => "none_good",
        }
    }
}

#[async_trait]
pub trait TurnStore: Send + Sync {
    /// The caller's response of the session, by id.
    async fn response(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
    ) -> Result<Option<Response>, StoreError>;

    /// Rates the caller's response (`None` takes the rating back); `false`
    /// if the caller has no such response.
    async fn rate(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        rating: Option<&str>,
        comment: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Sets the choice of the turn of the caller's response; the turn's
    /// prompt id, or `None` if the caller has no such response.
    async fn choose(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        choice: Choice,
    ) -> Result<Option<i64>, StoreError>;
}

#[async_trait]
impl<DB> TurnStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<i64>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> &'a str: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    for<'a> Option<&'a str>: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'r> ResponseRow: sqlx::FromRow<'r, DB::Row>,
{
    async fn response(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
    ) -> Result<Option<Response>, StoreError> {
        let row: Option<ResponseRow> = sqlx::query_as(sql::ONE_RESPONSE)
            .bind(response_id)
            .bind(session_id)
            .bind(user.get())
            .fetch_optional(self.read_pool())
            .await?;
        Ok(row.map(ResponseRow::into_response))
    }

    async fn rate(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        rating: Option<&str>,
        comment: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RATE_RESPONSE)
            .bind(response_id)
            .bind(session_id)
            .bind(rating)
            .bind(comment)
            .bind(user.get())
            .execute(self.write_pool())
            .await?;
        self.synced().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn choose(
        &self,
        user: UserId,
        session_id: i64,
        response_id: i64,
        choice: Choice,
    ) -> Result<Option<i64>, StoreError> {
        let chosen = (choice == Choice::Chosen).then_some(response_id);
        let prompt_id = sqlx::query_scalar(sql::CHOOSE)
            .bind(response_id)
            .bind(session_id)
            .bind(choice.as_str())
            .bind(chosen)
            .bind(user.get())
            .fetch_optional(self.write_pool())
            .await?;
        self.synced().await?;
        Ok(prompt_id)
    }
}
