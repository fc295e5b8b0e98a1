//! The write-transaction verbs on PostgreSQL. Lists are bound as arrays.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Transaction};

use crate::domain::{Agent, UserId};
use crate::store::rows::{self, AgentExampleRow, RefRow};
use crate::store::{
    AgentRecord, KeyClaim, SessionIds, SessionRows, StoreError, VisibleRefs, WriteTx, sql,
};

pub struct PgWriteTx(pub Transaction<'static, Postgres>);

/// The class (`$3`) with its enabled models, the project (`$4`) with its
/// class, and the knowledge items (`$1`) that the caller (`$2`) may see,
/// tagged by part (see `rows::RefRow`).
const VISIBLE_REFS: &str = "\
WITH mine AS (
    SELECT m.class_id FROM class_members m JOIN classes c ON c.class_id = m.class_id
    WHERE m.user_id = $2 AND c.deleted_at IS NULL
)
SELECT CAST(1 AS BIGINT) AS part, cm.position AS pos, CAST(NULL AS BIGINT) AS ref_id,
       cm.model_name
FROM mine LEFT JOIN class_models cm ON cm.class_id = mine.class_id AND cm.enabled
WHERE mine.class_id = $3
UNION ALL
SELECT 2, 0, p.class_id, NULL FROM projects p
WHERE p.project_id = $4 AND p.deleted_at IS NULL
  AND (p.owner_user_id = $2 OR p.class_id IN (SELECT class_id FROM mine))
UNION ALL
SELECT 3, 0, k.knowledge_id, NULL FROM knowledge_items k
WHERE k.knowledge_id = ANY($1) AND k.deleted_at IS NULL
  AND (k.owner_user_id = $2
       OR k.class_id IN (SELECT class_id FROM mine)
       OR k.project_id IN (SELECT p.project_id FROM projects p WHERE p.deleted_at IS NULL
                           AND (p.owner_user_id = $2 OR p.class_id IN (SELECT class_id FROM mine))))
ORDER BY 1, 2";

const EXAMPLE_OWNERS: &str = "\
SELECT example_id, user_id FROM examples WHERE example_id = ANY($1) AND deleted_at IS NULL";

/// All of a new session's rows in one statement (data-modifying CTEs): one
/// round trip instead of six. Foreign keys between the new rows are checked
/// at the end of the statement, when all of them exist.
const INSERT_SESSION: &str = "\
WITH s AS (
    INSERT INTO practice_sessions
        (user_id, class_id, project_id, agent_id, title, notes, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING session_id
), k AS (
    INSERT INTO session_knowledge (session_id, position, knowledge_id)
    SELECT s.session_id, t.ord - 1, t.id FROM s, unnest($8::int8[]) WITH ORDINALITY AS t(id, ord)
), st AS (
    INSERT INTO session_settings
        (session_id, style_preset, style_params, generation_params, agent_snapshot, created_at, updated_at)
    SELECT s.session_id, $9, $10, $11, $12, $7, $7 FROM s RETURNING setting_id
), l AS (
    INSERT INTO few_shot_links (setting_id, example_id, sort_order, created_at)
    SELECT st.setting_id, t.id, t.ord - 1, $7 FROM st, unnest($13::int8[]) WITH ORDINALITY AS t(id, ord)
    RETURNING id, sort_order
), m AS (
    INSERT INTO session_models (session_id, model_name, sort_order, created_at)
    SELECT s.session_id, t.name, t.ord - 1, $7 FROM s, unnest($14::text[]) WITH ORDINALITY AS t(name, ord)
    RETURNING session_model_id, sort_order
), ik AS (
    UPDATE idempotency_keys SET session_id = s.session_id FROM s
    WHERE idempotency_keys.user_id = $1 AND idempotency_keys.idem_key = $15
)
SELECT s.session_id, st.setting_id,
       COALESCE((SELECT array_agg(l.id ORDER BY l.sort_order) FROM l), '{}') AS link_ids,
       COALESCE((SELECT array_agg(m.session_model_id ORDER BY m.sort_order) FROM m), '{}') AS model_ids
FROM s, st";

#[derive(sqlx::FromRow)]
struct IdsRow {
    session_id: i64,
    setting_id: i64,
    link_ids: Vec<i64>,
    model_ids: Vec<i64>,
}

#[async_trait]
impl WriteTx for PgWriteTx {
    async fn claim_key(
        &mut self,
        user: UserId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<KeyClaim, StoreError> {
        let claimed: Option<i64> = sqlx::query_scalar(sql::CLAIM_KEY)
            .bind(user.get())
            .bind(key)
            .bind(fingerprint)
            .bind(now.timestamp_micros())
            .bind(expired_before.timestamp_micros())
            .fetch_optional(&mut *self.0)
            .await?;
        if claimed.is_some() {
            return Ok(KeyClaim::Claimed);
        }
        let (request_hash, session_id) = sqlx::query_as(sql::HELD_KEY)
            .bind(user.get())
            .bind(key)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(KeyClaim::Held {
            request_hash,
            session_id,
        })
    }

    async fn visible_refs(
        &mut self,
        user: UserId,
        class_id: Option<i64>,
        project_id: Option<i64>,
        knowledge_ids: &[i64],
    ) -> Result<VisibleRefs, StoreError> {
        let rows: Vec<RefRow> = sqlx::query_as(VISIBLE_REFS)
            .bind(knowledge_ids)
            .bind(user.get())
            .bind(class_id)
            .bind(project_id)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows::visible_refs(rows))
    }

    async fn agent_with_examples(
        &mut self,
        user: UserId,
        agent_id: i64,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let rows: Vec<AgentExampleRow> = sqlx::query_as(sql::AGENT_WITH_EXAMPLES)
            .bind(agent_id)
            .bind(user.get())
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows::agent_record(rows))
    }

    async fn insert_session(&mut self, r: &SessionRows<'_>) -> Result<SessionIds, StoreError> {
        let ids: IdsRow = sqlx::query_as(INSERT_SESSION)
            .bind(r.user.get())
            .bind(r.new.class_id)
            .bind(r.new.project_id)
            .bind(r.new.agent_id)
            .bind(r.new.title.as_deref())
            .bind(r.new.notes.as_deref())
            .bind(r.now)
            .bind(&r.new.knowledge_ids)
            .bind(r.style_preset)
            .bind(Json(r.style_params))
            .bind(Json(r.generation_params))
            .bind(Json(r.agent_snapshot))
            .bind(r.example_ids)
            .bind(r.model_names)
            .bind(r.idempotency_key)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(SessionIds {
            session_id: ids.session_id,
            setting_id: ids.setting_id,
            link_ids: ids.link_ids,
            model_ids: ids.model_ids,
        })
    }

    async fn example_owners(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(EXAMPLE_OWNERS)
            .bind(ids)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn put_agent(&mut self, a: &Agent, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(sql::UPSERT_AGENT)
            .bind(a.agent_id)
            .bind(a.owner_user_id)
            .bind(a.class_id)
            .bind(&a.name)
            .bind(a.description.as_deref())
            .bind(a.system_prompt.as_deref())
            .bind(&a.style_preset)
            .bind(Json(&a.style_params))
            .bind(Json(&a.generation_params))
            .bind(now)
            .execute(&mut *self.0)
            .await?;
        sqlx::query(sql::DELETE_AGENT_EXAMPLES)
            .bind(a.agent_id)
            .execute(&mut *self.0)
            .await?;
        if !a.example_ids.is_empty() {
            QueryBuilder::<Postgres>::new(sql::INSERT_AGENT_EXAMPLES)
                .push_values(a.example_ids.iter().enumerate(), |mut b, (i, id)| {
                    b.push_bind(a.agent_id).push_bind(i as i64).push_bind(*id);
                })
                .build()
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }
}
