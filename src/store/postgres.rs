//! PostgreSQL, for production. Write transactions run at the default READ
//! COMMITTED level; the use case runs a transaction again when it loses a
//! serialization race or a deadlock (`StoreError::Conflict`). Lists are
//! bound as arrays.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult};
use sqlx::{Pool, Postgres, Row, Transaction};

use super::dialect::Dialect;
use super::group_commit::{GroupCommit, MemberUndo};
use super::json_param::JsonParam;
use super::rows::{self, AgentRows, RefRow, SessionCore, response_ids_in_order};
use super::sql::{self, params_shifted};
use super::sql_store::SqlStore;
use super::{Asked, PromptRows, SessionIds, SessionRows, StoreOptions};
use crate::error::Error;

pub type PgStore = SqlStore<Postgres>;

/// `Dialect::finish_answer` as one statement of data-modifying CTEs.
/// Members of a group take no savepoint here (`MemberUndo::FailGroup`).
static FINISH_ANSWER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH finished AS ({} RETURNING 1),\ncharged AS ({})\nSELECT count(*) FROM finished",
        sql::FINISH_RESPONSE,
        params_shifted(sql::CHARGE_USAGE, 9)
    )
});

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub async fn connect(url: &str, options: &StoreOptions) -> Result<PgStore, Error> {
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
    let group = (options.group_commit && options.pg_write_lanes > 0).then(|| {
        GroupCommit::new(
            pool.clone(),
            options.pg_write_lanes,
            GROUP_BEGIN,
            MemberUndo::FailGroup,
            None,
            options.acquire_timeout,
        )
    });
    Ok(SqlStore::new(pool.clone(), pool, None, None, group))
}

/// A write group's transaction. A member waiting for a row lock holds up
/// its whole lane, and the lock may be held by another lane's group that
/// can't commit until a member of this lane's moves on (lanes of other
/// replicas too): so a wait inside a group gives up soon (SQLSTATE 55P03,
/// a `StoreError::Conflict`), and the use case runs the transaction again
/// outside any group, where it waits as long as it must.
const GROUP_BEGIN: &str = "BEGIN; SET LOCAL lock_timeout = '100ms'";

/// The visible references (`sql::visible_refs`), `$5` an array of ids.
static VISIBLE_REFS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sql::visible_refs("k.knowledge_id = ANY($5)"));

/// The visible references and the agent in one statement: each round trip
/// holds up the write lane it runs in. A full join on `false` keeps every
/// row of both sides, each with the other side's columns NULL, so a row
/// with a `part` is a reference and one without is the agent's.
static REFERENCES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH refs AS (\n{}\n), agent AS (\n{}\n)\n\
         SELECT * FROM refs FULL JOIN agent ON false ORDER BY part, pos, example_position",
        *VISIBLE_REFS,
        sql::AGENT_WITH_EXAMPLES
    )
});

const EXAMPLE_OWNERS: &str = "\
SELECT example_id, user_id FROM examples WHERE example_id = ANY($1) AND deleted_at IS NULL";

/// All of a new session's rows in one statement (data-modifying CTEs): one
/// round trip instead of six. The foreign keys of the new rows to the
/// session are checked at the end of the statement, when it is written.
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

/// A prompt of the session `$1` if the caller (`$2`) owns it, its
/// responses in progress (the models `$5`, named `$6`; the replica `$7`;
/// the prompt is `$8` characters) and the link of an idempotency key
/// (`$9`, or NULL) to it, in one statement; no row if the session is not
/// the caller's. The ids come as `(session_model_id, response_id)` pairs,
/// so the order of the responses' ids needs no assumption.
const INSERT_PROMPT: &str = "\
WITH p AS (
    INSERT INTO prompts (session_id, prompt_text, created_at)
    SELECT session_id, $3, $4 FROM practice_sessions WHERE session_id = $1 AND user_id = $2
    RETURNING prompt_id
), r AS (
    INSERT INTO responses
        (prompt_id, session_model_id, session_id, model_name, prompt_text, response_text,
         created_at, status, replica_id, text_chars)
    SELECT p.prompt_id, m.id, $1, m.name, $3, '', $4, 'in_progress', $7, $8
    FROM p, unnest($5::int8[], $6::text[]) AS m(id, name)
    RETURNING session_model_id, response_id
), ik AS (
    UPDATE idempotency_keys SET prompt_id = p.prompt_id FROM p
    WHERE idempotency_keys.user_id = $2 AND idempotency_keys.idem_key = $9
)
SELECT p.prompt_id,
       COALESCE((SELECT array_agg(r.session_model_id) FROM r), '{}') AS model_ids,
       COALESCE((SELECT array_agg(r.response_id) FROM r), '{}') AS response_ids
FROM p";

#[derive(sqlx::FromRow)]
struct IdsRow {
    session_id: i64,
    setting_id: i64,
    link_ids: Vec<i64>,
    model_ids: Vec<i64>,
}

#[async_trait]
impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";

    async fn migrate(pool: &Pool<Self>) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(pool).await
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// One statement; a member of a group never takes a savepoint here
    /// (`MemberUndo::FailGroup`).
    fn finish_answer(savepoint: bool) -> &'static str {
        debug_assert!(!savepoint, "no savepoints on PostgreSQL");
        FINISH_ANSWER.as_str()
    }

    async fn begin_read(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
    }

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    /// Statement by statement: the extended protocol sends one at a time.
    async fn session_core(
        conn: &mut PgConnection,
        session_id: i64,
        user: i64,
    ) -> Result<Option<SessionCore>, sqlx::Error> {
        let Some(session) = sqlx::query_as(sql::SESSION)
            .bind(session_id)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let knowledge_ids = sqlx::query_scalar(sql::SESSION_KNOWLEDGE)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        let settings = sqlx::query_as(sql::SESSION_SETTINGS)
            .bind(session_id)
            .fetch_one(&mut *conn)
            .await?;
        let links = sqlx::query_as(sql::FEW_SHOT_LINKS)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        let models = sqlx::query_as(sql::SESSION_MODELS)
            .bind(session_id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some(SessionCore {
            session,
            knowledge_ids,
            settings,
            links,
            models,
        }))
    }

    /// Both parts in one statement (see `REFERENCES`); a part not asked
    /// for finds no rows.
    async fn references(
        conn: &mut PgConnection,
        user: i64,
        asked: &Asked<'_>,
    ) -> Result<(Vec<RefRow>, AgentRows), sqlx::Error> {
        let rows = sqlx::query(REFERENCES.as_str())
            .bind(asked.agent_id)
            .bind(user)
            .bind(asked.class_id)
            .bind(asked.project_id)
            .bind(asked.knowledge_ids)
            .fetch_all(conn)
            .await?;
        rows::split_references(&rows, |row| {
            Ok(row.try_get::<Option<i64>, _>("part")?.is_some())
        })
    }

    async fn example_owners(
        conn: &mut PgConnection,
        ids: &[i64],
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(EXAMPLE_OWNERS)
            .bind(ids)
            .fetch_all(conn)
            .await
    }

    /// One statement (see `INSERT_PROMPT`; no savepoint is asked for
    /// here, see `insert_session`).
    async fn insert_prompt(
        conn: &mut PgConnection,
        r: &PromptRows<'_>,
        savepoint: bool,
    ) -> Result<Option<(i64, Vec<i64>)>, sqlx::Error> {
        if savepoint {
            sqlx::raw_sql("SAVEPOINT member")
                .execute(&mut *conn)
                .await?;
        }
        let (model_ids, names): (Vec<i64>, Vec<&str>) = r
            .models
            .iter()
            .map(|(id, name)| (*id, name.as_str()))
            .unzip();
        let written: Option<(i64, Vec<i64>, Vec<i64>)> = sqlx::query_as(INSERT_PROMPT)
            .bind(r.session_id)
            .bind(r.user.get())
            .bind(r.prompt_text)
            .bind(r.now)
            .bind(&model_ids)
            .bind(&names)
            .bind(r.replica_id)
            .bind(r.prompt_text.chars().count() as i64)
            .bind(r.idempotency_key)
            .fetch_optional(conn)
            .await?;
        let Some((prompt_id, models, responses)) = written else {
            return Ok(None);
        };
        let pairs: Vec<(i64, i64)> = models.into_iter().zip(responses).collect();
        Ok(Some((prompt_id, response_ids_in_order(r, &pairs)?)))
    }

    /// Group members here take no savepoint (`MemberUndo::FailGroup`), so
    /// none is asked for; one asked for would be a statement of its own.
    async fn insert_session(
        conn: &mut PgConnection,
        r: &SessionRows<'_>,
        savepoint: bool,
    ) -> Result<SessionIds, sqlx::Error> {
        if savepoint {
            sqlx::raw_sql("SAVEPOINT member")
                .execute(&mut *conn)
                .await?;
        }
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
            .bind(JsonParam(r.style_params))
            .bind(JsonParam(r.generation_params))
            .bind(JsonParam(r.agent_snapshot))
            .bind(r.example_ids)
            .bind(r.model_names)
            .bind(r.idempotency_key)
            .fetch_one(conn)
            .await?;
        Ok(SessionIds {
            session_id: ids.session_id,
            setting_id: ids.setting_id,
            link_ids: ids.link_ids,
            model_ids: ids.model_ids,
        })
    }
}
