//! The catalog the sessions refer to (classes with their members and
//! models, projects, knowledge items), written by the catalog service:
//! replaced whole, or soft-deleted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Pool, QueryBuilder};

use super::dialect::Dialect;
use super::sql_store::SqlStore;
use super::{CatalogKind, StoreError, sql};
use crate::domain::{Class, Knowledge, Project};

#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Replaces the class with its members and models.
    async fn upsert_class(&self, class: &Class, now: DateTime<Utc>) -> Result<(), StoreError>;
    async fn upsert_project(&self, project: &Project, now: DateTime<Utc>)
    -> Result<(), StoreError>;
    async fn upsert_knowledge(
        &self,
        knowledge: &Knowledge,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Soft-deletes: the object can't be used for new sessions, while existing
    /// sessions keep their ids and snapshots. `false` if there was none.
    async fn delete_catalog(
        &self,
        kind: CatalogKind,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
impl<DB> CatalogStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    Option<i64>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    bool: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'a> &'a String: sqlx::Type<DB> + sqlx::Encode<'a, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
{
    async fn upsert_class(&self, class: &Class, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = DB::begin_write(self.write_pool())
            .await
            .map_err(StoreError::begin)?;
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
            QueryBuilder::<DB>::new(sql::INSERT_CLASS_MEMBERS)
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
            QueryBuilder::<DB>::new(sql::INSERT_CLASS_MODELS)
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
        self.synced().await?;
        Ok(())
    }

    async fn upsert_project(&self, p: &Project, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(sql::UPSERT_PROJECT)
            .bind(p.project_id)
            .bind(p.owner_user_id)
            .bind(p.class_id)
            .bind(&p.name)
            .bind(now)
            .execute(self.write_pool())
            .await?;
        self.synced().await?;
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
            .execute(self.write_pool())
            .await?;
        self.synced().await?;
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
            .execute(self.write_pool())
            .await?;
        self.synced().await?;
        Ok(DB::rows_affected(&done) > 0)
    }
}
