//! PostgreSQL, for production. A transaction that loses a serialization race
//! or a deadlock (40001, 40P01) is run again, a bounded number of times.

use std::str::FromStr;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreOptions;

const BACKEND: &str = "postgres";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, crate::error::Error> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| {
                crate::error::Error::internal(anyhow::anyhow!("bad PostgreSQL DATABASE_URL: {e}"))
            })?
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// All of a new session's rows in one statement (data-modifying CTEs):
    /// one round trip instead of six. Foreign keys between the new rows
    /// are checked at the end of the statement, when all of them exist.
    async fn insert_session(
        tx: &mut sqlx::Transaction<'static, Postgres>,
        rows: &SessionRows<'_>,
    ) -> Result<SessionIds, sqlx::Error> {
        let row = bind_session_rows(sqlx::query(INSERT_SESSION), rows)
            .fetch_one(&mut **tx)
            .await?;
        Ok(SessionIds {
            session_id: row.try_get(0)?,
            setting_id: row.try_get(1)?,
            link_ids: row.try_get(2)?,
            model_ids: row.try_get(3)?,
        })
    }
}

const INSERT_SESSION: &str = "\
WITH s AS ( \
    INSERT INTO practice_sessions \
    (user_id, class_id, project_id, agent_id, title, notes, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING session_id \
), k AS ( \
    INSERT INTO session_knowledge (session_id, position, knowledge_id) \
    SELECT s.session_id, t.ord - 1, t.id FROM s, unnest($8::int8[]) WITH ORDINALITY AS t(id, ord) \
), st AS ( \
    INSERT INTO session_settings \
    (session_id, style_preset, style_params, generation_params, agent_snapshot, created_at, updated_at) \
    SELECT s.session_id, $9, $10, $11, $12, $7, $7 FROM s RETURNING setting_id \
), l AS ( \
    INSERT INTO few_shot_links (setting_id, example_id, sort_order, created_at) \
    SELECT st.setting_id, t.id, t.ord - 1, $7 FROM st, unnest($13::int8[]) WITH ORDINALITY AS t(id, ord) \
    RETURNING id, sort_order \
), m AS ( \
    INSERT INTO session_models (session_id, model_name, sort_order, created_at) \
    SELECT s.session_id, t.name, t.ord - 1, $7 FROM s, unnest($14::text[]) WITH ORDINALITY AS t(name, ord) \
    RETURNING session_model_id, sort_order \
), ik AS ( \
    UPDATE idempotency_keys SET session_id = s.session_id FROM s \
    WHERE idempotency_keys.user_id = $1 AND idempotency_keys.idem_key = $15 \
) \
SELECT s.session_id, st.setting_id, \
    COALESCE((SELECT array_agg(l.id ORDER BY l.sort_order) FROM l), '{}'), \
    COALESCE((SELECT array_agg(m.session_model_id ORDER BY m.sort_order) FROM m), '{}') \
FROM s, st";

fn id_list(ids: &[i64]) -> Vec<i64> {
    ids.to_vec()
}

fn name_list(names: &[String]) -> Vec<String> {
    names.to_vec()
}

fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40001" || c == "40P01"))
}

super::shared::impl_store!(PgStore, Postgres, ids_in = " = ANY($1)");
