//! The naive baseline on SQLite as a careful embedded program writes it:
//! one rusqlite connection, each create run whole on the thread that holds
//! it (statements back to back, prepared once and cached, no hop between
//! them), in one `BEGIN IMMEDIATE` transaction, with the service's journal
//! mode and durability and none of its other tuning. This, not statements
//! through sqlx (a hop to sqlx's connection thread per statement), is what
//! SQLite itself can do for this create.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::load::Call;

#[derive(Clone)]
pub struct Careful(Arc<Mutex<Connection>>);

impl Careful {
    /// `url`: `sqlite:PATH`.
    pub fn open(url: &str, sync_every_commit: bool) -> anyhow::Result<Self> {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = if sync_every_commit { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// One create, on a blocking thread: one hop for the whole create.
    pub async fn create(&self, c: &Call) -> anyhow::Result<i64> {
        let (conn, user, title, knowledge) = (
            self.0.clone(),
            c.user,
            c.title.clone(),
            c.knowledge_ids.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().expect("no create panics holding it");
            create(&mut conn, user, &title, &knowledge)
        })
        .await?
    }
}

fn create(conn: &mut Connection, user: i64, title: &str, knowledge: &[i64]) -> anyhow::Result<i64> {
    let (class_id, agent_id) = (1i64, 1i64);
    let now = chrono::Utc::now().to_rfc3339();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let member: Option<i64> = tx
        .prepare_cached(
            "SELECT m.user_id FROM class_members m JOIN classes c ON c.class_id = m.class_id \
             WHERE m.class_id = ?1 AND m.user_id = ?2 AND c.deleted_at IS NULL",
        )?
        .query_row(params![class_id, user], |r| r.get(0))
        .optional()?;
    anyhow::ensure!(member.is_some(), "not a member");
    let models: Vec<String> = tx
        .prepare_cached(
            "SELECT model_name FROM class_models WHERE class_id = ?1 AND enabled ORDER BY position",
        )?
        .query_map(params![class_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in knowledge {
        let seen: Option<i64> = tx
            .prepare_cached(
                "SELECT knowledge_id FROM knowledge_items WHERE knowledge_id = ?1 \
                 AND deleted_at IS NULL AND (owner_user_id = ?2 OR class_id = ?3)",
            )?
            .query_row(params![id, user, class_id], |r| r.get(0))
            .optional()?;
        anyhow::ensure!(seen.is_some(), "knowledge {id} not visible");
    }
    let (name, system_prompt, style_preset, style_params, generation_params): (
        String,
        Option<String>,
        String,
        String,
        String,
    ) = tx
        .prepare_cached(
            "SELECT name, system_prompt, style_preset, style_params, generation_params \
             FROM agents WHERE agent_id = ?1 AND deleted_at IS NULL",
        )?
        .query_row(params![agent_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
    let examples: Vec<i64> = tx
        .prepare_cached(
            "SELECT e.example_id FROM agent_examples a JOIN examples e \
             ON e.example_id = a.example_id \
             WHERE a.agent_id = ?1 AND e.deleted_at IS NULL AND e.is_active ORDER BY a.position",
        )?
        .query_map(params![agent_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;

    let session_id: i64 = tx
        .prepare_cached(
            "INSERT INTO practice_sessions (user_id, class_id, agent_id, title, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING session_id",
        )?
        .query_row(params![user, class_id, agent_id, title, now], |r| r.get(0))?;
    for (position, id) in knowledge.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO session_knowledge (session_id, position, knowledge_id) \
             VALUES (?1, ?2, ?3)",
        )?
        .execute(params![session_id, position as i64, id])?;
    }
    let snapshot = serde_json::json!({
        "agent_id": agent_id, "name": name, "system_prompt": system_prompt,
        "style_preset": style_preset,
        "style_params": serde_json::from_str::<serde_json::Value>(&style_params)?,
        "generation_params": serde_json::from_str::<serde_json::Value>(&generation_params)?,
        "example_ids": examples,
    });
    let setting_id: i64 = tx
        .prepare_cached(
            "INSERT INTO session_settings (session_id, style_preset, style_params, \
             generation_params, agent_snapshot, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING setting_id",
        )?
        .query_row(
            params![
                session_id,
                style_preset,
                style_params,
                generation_params,
                snapshot.to_string(),
                now
            ],
            |r| r.get(0),
        )?;
    for (order, id) in examples.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO few_shot_links (setting_id, example_id, sort_order, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![setting_id, id, order as i64, now])?;
    }
    for (order, model) in models.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO session_models (session_id, model_name, sort_order, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![session_id, model, order as i64, now])?;
    }
    tx.commit()?;
    Ok(session_id)
}
