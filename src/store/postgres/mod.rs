//! PostgreSQL, for production. Write transactions run at the default READ
//! COMMITTED level; the use case runs a transaction again when it loses a
//! serialization race or a deadlock (`StoreError::Conflict`).

mod tx;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::rows::{
    CountsRow, ExampleRow, LinkRow, ModelRow, ResponseRow, SessionParts, SessionRow, SettingsRow,
};
use super::{CatalogKind, Store, StoreError, StoreOptions, TableCounts, WriteTx, sql};
use crate::domain::{
    Class, Example, ExamplePatch, Knowledge, NewExample, Project, Session, UserId,
};
use crate::error::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, Error> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::internal(anyhow::anyhow!("bad PostgreSQL DATABASE_URL: {e}")))?
            .application_name("practice-service")
            .options([(
                "statement_timeout",
                options.statement_timeout.as_millis().to_string(),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // No ping before every use (a round trip per transaction): a
            // connection the server dropped fails at BEGIN, which is retried
            // on a fresh connection, and the pool discards the broken one.
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), Error> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::internal(anyhow::anyhow!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = self.pool.begin().await.map_err(StoreError::begin)?;
        Ok(Box::new(tx::PgWriteTx(tx)))
    }

    async fn session(&self, user: UserId, session_id: i64) -> Result<Option<Session>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let session: Option<SessionRow> = sqlx::query_as(sql::SESSION)
            .bind(session_id)
            .bind(user.get())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        let knowledge_ids = sqlx::query_scalar(sql::SESSION_KNOWLEDGE)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        let settings: SettingsRow = sqlx::query_as(sql::SESSION_SETTINGS)
            .bind(session_id)
            .fetch_one(&mut *conn)
            .await?;
        let links: Vec<LinkRow> = sqlx::query_as(sql::FEW_SHOT_LINKS)
            .bind(settings.setting_id)
            .fetch_all(&mut *conn)
            .await?;
        let models: Vec<ModelRow> = sqlx::query_as(sql::SESSION_MODELS)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        let responses: Vec<ResponseRow> = sqlx::query_as(sql::RESPONSES)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some(Session::from(SessionParts {
            session,
            knowledge_ids,
            settings,
            links,
            models,
            responses,
        })))
    }

    async fn upsert_class(&self, class: &Class, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::begin)?;
        sqlx::query(sql::UPSERT_CLASS)
            .bind(class.class_id)
            .bind(&class.name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for delete in [sql::DELETE_CLASS_MEMBERS, sql::DELETE_CLASS_MODELS] {
            sqlx::query(delete)
                .bind(class.class_id)
                .execute(&mut *tx)
                .await?;
        }
        if !class.members.is_empty() {
            QueryBuilder::<Postgres>::new(sql::INSERT_CLASS_MEMBERS)
                .push_values(&class.members, |mut b, m| {
                    b.push_bind(class.class_id)
                        .push_bind(m.user_id)
                        .push_bind(m.role.clone());
                })
                .build()
                .execute(&mut *tx)
                .await?;
        }
        if !class.models.is_empty() {
            QueryBuilder::<Postgres>::new(sql::INSERT_CLASS_MODELS)
                .push_values(class.models.iter().enumerate(), |mut b, (i, m)| {
                    b.push_bind(class.class_id)
                        .push_bind(i as i64)
                        .push_bind(m.model_name.clone())
                        .push_bind(m.enabled);
                })
                .build()
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_project(&self, p: &Project, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(sql::UPSERT_PROJECT)
            .bind(p.project_id)
            .bind(p.owner_user_id)
            .bind(p.class_id)
            .bind(&p.name)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upsert_knowledge(&self, k: &Knowledge, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(sql::UPSERT_KNOWLEDGE)
            .bind(k.knowledge_id)
            .bind(k.owner_user_id)
            .bind(k.project_id)
            .bind(k.class_id)
            .bind(&k.title)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_catalog(
        &self,
        kind: CatalogKind,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::delete_catalog(kind))
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_example(
        &self,
        user: UserId,
        e: &NewExample,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(sql::CREATE_EXAMPLE)
            .bind(user.get())
            .bind(e.title.as_deref())
            .bind(&e.input_text)
            .bind(&e.output_text)
            .bind(e.is_active)
            .bind(Json(&e.meta))
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    async fn example(&self, user: UserId, example_id: i64) -> Result<Option<Example>, StoreError> {
        let row: Option<ExampleRow> = sqlx::query_as(sql::EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Example::from))
    }

    async fn examples(
        &self,
        user: UserId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Example>, StoreError> {
        let rows: Vec<ExampleRow> = sqlx::query_as(sql::EXAMPLES_AFTER)
            .bind(user.get())
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Example::from).collect())
    }

    async fn update_example(
        &self,
        user: UserId,
        example_id: i64,
        patch: &ExamplePatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Example>, StoreError> {
        let row: Option<ExampleRow> = sqlx::query_as(sql::UPDATE_EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .bind(patch.title.is_some())
            .bind(patch.title.clone().flatten())
            .bind(patch.input_text.as_deref())
            .bind(patch.output_text.as_deref())
            .bind(patch.is_active)
            .bind(patch.meta.as_ref().map(Json))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Example::from))
    }

    async fn delete_example(
        &self,
        user: UserId,
        example_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_EXAMPLE)
            .bind(example_id)
            .bind(user.get())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn table_counts(&self) -> Result<TableCounts, StoreError> {
        let row: CountsRow = sqlx::query_as(sql::TABLE_COUNTS)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.into())
    }
}
