//! The write-transaction verbs on SQLite. SQLite has no array type: a list
//! is bound as a JSON array and read back with `json_each`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::domain::{Agent, UserId};
use crate::store::rows::{self, AgentExampleRow, RefRow};
use crate::store::{
    AgentRecord, KeyClaim, SessionIds, SessionRows, StoreError, VisibleRefs, WriteTx, sql,
};

pub struct SqliteWriteTx(pub Transaction<'static, Sqlite>);

/// The class (`$3`) with its enabled models, the project (`$4`) with its
/// class, and the knowledge items (`$1`, a JSON array) that the caller
/// (`$2`) may see, tagged by part (see `rows::RefRow`).
const VISIBLE_REFS: &str = "\
WITH mine AS (
    SELECT m.class_id FROM class_members m JOIN classes c ON c.class_id = m.class_id
    WHERE m.user_id = $2 AND c.deleted_at IS NULL
)
SELECT 1 AS part, cm.position AS pos, NULL AS ref_id, cm.model_name
FROM mine LEFT JOIN class_models cm ON cm.class_id = mine.class_id AND cm.enabled
WHERE mine.class_id = $3
UNION ALL
SELECT 2, 0, p.class_id, NULL FROM projects p
WHERE p.project_id = $4 AND p.deleted_at IS NULL
  AND (p.owner_user_id = $2 OR p.class_id IN (SELECT class_id FROM mine))
UNION ALL
SELECT 3, 0, k.knowledge_id, NULL FROM knowledge_items k
WHERE k.knowledge_id IN (SELECT value FROM json_each($1)) AND k.deleted_at IS NULL
  AND (k.owner_user_id = $2
       OR k.class_id IN (SELECT class_id FROM mine)
       OR k.project_id IN (SELECT p.project_id FROM projects p WHERE p.deleted_at IS NULL
                           AND (p.owner_user_id = $2 OR p.class_id IN (SELECT class_id FROM mine))))
ORDER BY 1, 2";

const EXAMPLE_OWNERS: &str = "\
SELECT example_id, user_id FROM examples
WHERE example_id IN (SELECT value FROM json_each($1)) AND deleted_at IS NULL";

/// One INSERT into the `new_sessions` view writes every row of a new session
/// (its trigger is in migrations/sqlite/0002): one call to the connection's
/// worker thread instead of six.
const INSERT_SESSION: &str = "\
INSERT INTO new_sessions (user_id, class_id, project_id, agent_id, title, notes, created_at,
                          knowledge_ids, style_preset, style_params, generation_params,
                          agent_snapshot, example_ids, model_names, idem_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// The ids `new_sessions` just gave the rows: the largest in each table,
/// since the transaction still holds the write lock. Links and models come
/// as JSON arrays of `[sort_order, id]`.
const NEW_SESSION_IDS: &str = "\
SELECT s.session_id, st.setting_id,
       (SELECT json_group_array(json_array(l.sort_order, l.id)) FROM few_shot_links l
        WHERE l.setting_id = st.setting_id) AS link_ids,
       (SELECT json_group_array(json_array(m.sort_order, m.session_model_id)) FROM session_models m
        WHERE m.session_id = s.session_id) AS model_ids
FROM (SELECT max(session_id) AS session_id FROM practice_sessions) s,
     (SELECT max(setting_id) AS setting_id FROM session_settings) st";

type Ordered = Json<Vec<(i64, i64)>>;

#[derive(sqlx::FromRow)]
struct IdsRow {
    session_id: i64,
    setting_id: i64,
    link_ids: Ordered,
    model_ids: Ordered,
}

/// `[sort_order, id]` pairs to ids in sort order.
fn in_order(Json(mut pairs): Ordered) -> Vec<i64> {
    pairs.sort_unstable();
    pairs.into_iter().map(|(_, id)| id).collect()
}

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("a list of integers or strings serializes")
}

#[async_trait]
impl WriteTx for SqliteWriteTx {
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
            .bind(json_list(knowledge_ids))
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
        sqlx::query(INSERT_SESSION)
            .bind(r.user.get())
            .bind(r.new.class_id)
            .bind(r.new.project_id)
            .bind(r.new.agent_id)
            .bind(r.new.title.as_deref())
            .bind(r.new.notes.as_deref())
            .bind(r.now)
            .bind(json_list(&r.new.knowledge_ids))
            .bind(r.style_preset)
            .bind(Json(r.style_params))
            .bind(Json(r.generation_params))
            .bind(Json(r.agent_snapshot))
            .bind(json_list(r.example_ids))
            .bind(json_list(r.model_names))
            .bind(r.idempotency_key)
            .execute(&mut *self.0)
            .await?;
        let ids: IdsRow = sqlx::query_as(NEW_SESSION_IDS)
            .fetch_one(&mut *self.0)
            .await?;
        Ok(SessionIds {
            session_id: ids.session_id,
            setting_id: ids.setting_id,
            link_ids: in_order(ids.link_ids),
            model_ids: in_order(ids.model_ids),
        })
    }

    async fn example_owners(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(EXAMPLE_OWNERS)
            .bind(json_list(ids))
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
            QueryBuilder::<Sqlite>::new(sql::INSERT_AGENT_EXAMPLES)
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
