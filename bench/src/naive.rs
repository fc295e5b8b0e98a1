//! The naive-SQL baseline on PostgreSQL: the same create as the obvious
//! sequence of single statements through sqlx, on the same database, as a
//! straightforward implementation would write it: read the class
//! membership, the class's models, each knowledge item, the agent and its
//! examples; then insert one row at a time; one transaction. No
//! idempotency key. On a pool like the service's. (SQLite's baseline is
//! `careful.rs`: through sqlx each statement would be a hop to its
//! connection thread, which measures sqlx rather than SQLite.)

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Database, Pool};

use super::load::Call;

type JsonValue = serde_json::Value;

/// The create, in one transaction; returns the new session's id.
pub async fn create<DB>(pool: &Pool<DB>, c: &Call) -> anyhow::Result<i64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<String>: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    Json<JsonValue>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
{
    let (class_id, agent_id, now) = (1i64, 1i64, Utc::now());
    let mut tx = pool.begin().await?;
    let member: Option<i64> = sqlx::query_scalar(
        "SELECT m.user_id FROM class_members m JOIN classes c ON c.class_id = m.class_id \
         WHERE m.class_id = $1 AND m.user_id = $2 AND c.deleted_at IS NULL",
    )
    .bind(class_id)
    .bind(c.user)
    .fetch_optional(&mut *tx)
    .await?;
    anyhow::ensure!(member.is_some(), "not a member");
    let models: Vec<String> = sqlx::query_scalar(
        "SELECT model_name FROM class_models WHERE class_id = $1 AND enabled ORDER BY position",
    )
    .bind(class_id)
    .fetch_all(&mut *tx)
    .await?;
    for id in &c.knowledge_ids {
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT knowledge_id FROM knowledge_items WHERE knowledge_id = $1 \
             AND deleted_at IS NULL AND (owner_user_id = $2 OR class_id = $3)",
        )
        .bind(*id)
        .bind(c.user)
        .bind(class_id)
        .fetch_optional(&mut *tx)
        .await?;
        anyhow::ensure!(seen.is_some(), "knowledge {id} not visible");
    }
    let (name, system_prompt, style_preset, style_params, generation_params): (
        String,
        Option<String>,
        String,
        Json<JsonValue>,
        Json<JsonValue>,
    ) = sqlx::query_as(
        "SELECT name, system_prompt, style_preset, style_params, generation_params \
         FROM agents WHERE agent_id = $1 AND deleted_at IS NULL",
    )
    .bind(agent_id)
    .fetch_one(&mut *tx)
    .await?;
    let examples: Vec<i64> = sqlx::query_scalar(
        "SELECT e.example_id FROM agent_examples a JOIN examples e ON e.example_id = a.example_id \
         WHERE a.agent_id = $1 AND e.deleted_at IS NULL AND e.is_active ORDER BY a.position",
    )
    .bind(agent_id)
    .fetch_all(&mut *tx)
    .await?;

    let session_id: i64 = sqlx::query_scalar(
        "INSERT INTO practice_sessions (user_id, class_id, agent_id, title, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING session_id",
    )
    .bind(c.user)
    .bind(class_id)
    .bind(agent_id)
    .bind(c.title.clone())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for (position, id) in c.knowledge_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO session_knowledge (session_id, position, knowledge_id) VALUES ($1, $2, $3)",
        )
        .bind(session_id)
        .bind(position as i64)
        .bind(*id)
        .execute(&mut *tx)
        .await?;
    }
    let snapshot = serde_json::json!({
        "agent_id": agent_id, "name": name, "system_prompt": system_prompt,
        "style_preset": style_preset, "style_params": style_params.0,
        "generation_params": generation_params.0, "example_ids": examples,
    });
    let setting_id: i64 = sqlx::query_scalar(
        "INSERT INTO session_settings (session_id, style_preset, style_params, generation_params, \
         agent_snapshot, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         RETURNING setting_id",
    )
    .bind(session_id)
    .bind(style_preset)
    .bind(style_params)
    .bind(generation_params)
    .bind(Json(snapshot))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for (order, id) in examples.iter().enumerate() {
        sqlx::query(
            "INSERT INTO few_shot_links (setting_id, example_id, sort_order, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(setting_id)
        .bind(*id)
        .bind(order as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    for (order, model) in models.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO session_models (session_id, model_name, sort_order, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_id)
        .bind(model)
        .bind(order as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(session_id)
}
