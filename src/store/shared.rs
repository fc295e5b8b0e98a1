//! The SQL both backends run, written once.
//!
//! `impl_store!` expands inside each backend module with that module's
//! concrete database type, so every query is type-checked against both
//! drivers without a wall of generic bounds. The module supplies:
//! `begin_write(&self)` and `writer(&self)` (where writes go),
//! `insert_session(&mut Tx, &SessionRows)` (a new session's rows, in one
//! call to the database), `id_list(&[i64])` and `name_list(&[String])`
//! (how a list of ids or of names is bound),
//! `is_retryable(&sqlx::Error)`, and the `ids_in` SQL fragment that tests
//! membership in the list bound as `$1`.

/// The caller's (`$2`) classes that still exist.
macro_rules! my_classes {
    () => {
        "SELECT m.class_id FROM class_members m JOIN classes c ON c.class_id = m.class_id \
         WHERE m.user_id = $2 AND c.deleted_at IS NULL"
    };
}
pub(super) use my_classes;

/// The columns of an example row, in the order of `ExampleRow`.
macro_rules! example_columns {
    () => {
        "e.example_id, e.user_id, e.input_text, e.output_text, e.is_active, \
         e.created_at, e.updated_at, e.title, e.meta"
    };
    // Unqualified, for RETURNING (SQLite refuses a table alias there).
    (bare) => {
        "example_id, user_id, input_text, output_text, is_active, \
         created_at, updated_at, title, meta"
    };
}
pub(super) use example_columns;

/// Every row a new session writes, decided before the first write.
pub(super) struct SessionRows<'a> {
    pub user: i64,
    pub new: &'a crate::domain::NewSession,
    pub now: chrono::DateTime<chrono::Utc>,
    pub style_preset: &'a str,
    pub style_params: &'a serde_json::Map<String, serde_json::Value>,
    pub generation_params: &'a serde_json::Map<String, serde_json::Value>,
    pub agent_snapshot: &'a serde_json::Map<String, serde_json::Value>,
    /// The few-shot links' examples, in link order.
    pub example_ids: &'a [i64],
    /// The session models, in order.
    pub model_names: &'a [String],
    /// Linked to the new session when the request carried one.
    pub idempotency_key: Option<&'a str>,
}

/// The ids the database gave the new rows, links and models in their order.
pub(super) struct SessionIds {
    pub session_id: i64,
    pub setting_id: i64,
    pub link_ids: Vec<i64>,
    pub model_ids: Vec<i64>,
}

macro_rules! impl_store {
    ($Store:ident, $DB:ty, ids_in = $ids_in:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use serde_json::{Map, Value};
        use sqlx::types::Json;
        use sqlx::{QueryBuilder, Row, Transaction};
        use tracing::Instrument;

        use crate::domain::{Agent, Class, Example, ExamplePatch, FewShotLink, Knowledge, NewExample, NewSession, Project, Session, SessionModel, Settings, UserId};
        use crate::domain::session::{Response, DEFAULT_STYLE_PRESET};
        use crate::error::Error;
        use crate::store::shared::{example_columns, my_classes, SessionIds, SessionRows};
        use crate::store::{CatalogKind, CreateContext, Store, TableCounts, TxError, MAX_TX_ATTEMPTS};

        type Tx = Transaction<'static, $DB>;
        type JsonObject = Json<Map<String, Value>>;
        type ExampleRow = (i64, i64, String, String, bool, DateTime<Utc>, DateTime<Utc>, Option<String>, JsonObject);

        fn example_from_row(r: ExampleRow) -> Example {
            Example {
                example_id: r.0,
                user_id: r.1,
                input_text: r.2,
                output_text: r.3,
                is_active: r.4,
                created_at: r.5,
                updated_at: r.6,
                title: r.7,
                meta: r.8.0,
            }
        }

        /// Binds a new session's rows as `$1`..`$15`, the numbering both
        /// backends' `insert_session` statements use.
        fn bind_session_rows<'q>(
            query: sqlx::query::Query<'q, $DB, <$DB as sqlx::Database>::Arguments>,
            rows: &SessionRows<'q>,
        ) -> sqlx::query::Query<'q, $DB, <$DB as sqlx::Database>::Arguments> {
            query
                .bind(rows.user)
                .bind(rows.new.class_id)
                .bind(rows.new.project_id)
                .bind(rows.new.agent_id)
                .bind(rows.new.title.as_deref())
                .bind(rows.new.notes.as_deref())
                .bind(rows.now)
                .bind(id_list(&rows.new.knowledge_ids))
                .bind(rows.style_preset)
                .bind(Json(rows.style_params))
                .bind(Json(rows.generation_params))
                .bind(Json(rows.agent_snapshot))
                .bind(id_list(rows.example_ids))
                .bind(name_list(rows.model_names))
                .bind(rows.idempotency_key)
        }

        /// What a create found when it claimed its idempotency key.
        enum Claim {
            Claimed,
            Replay(i64),
        }

        enum Created {
            New(Box<Session>),
            Replay(i64),
        }

        impl $Store {
            /// Runs `create_once` again when the database reports a
            /// serialization failure or deadlock, a bounded number of times.
            async fn create_with_retry(&self, ctx: CreateContext<'_>, new: &NewSession) -> Result<Created, Error> {
                let mut attempt = 1;
                loop {
                    match self.create_once(ctx, new).await {
                        Err(TxError::Db(e)) if is_retryable(&e) && attempt < MAX_TX_ATTEMPTS => {
                            tracing::debug!(attempt, error = %e, "retrying create transaction");
                            attempt += 1;
                        }
                        Err(TxError::Begin(e)) if attempt < 2 => {
                            tracing::debug!(error = %e, "retrying on a fresh connection");
                            attempt += 1;
                        }
                        other => return other.map_err(Error::from),
                    }
                }
            }

            async fn claim_key(tx: &mut Tx, ctx: CreateContext<'_>, fingerprint: &str) -> Result<Claim, TxError> {
                let Some(key) = ctx.idempotency_key else {
                    return Ok(Claim::Claimed);
                };
                let now_us = ctx.now.timestamp_micros();
                let expired_before = now_us - chrono::Duration::hours(24).num_microseconds().unwrap_or(0);
                // Insert, or take over a key older than 24 hours. A live key
                // conflicts and returns no row; on PostgreSQL a concurrent
                // claim waits here until the first transaction ends.
                let claimed: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, session_id, created_at_us) \
                     VALUES ($1, $2, $3, NULL, $4) \
                     ON CONFLICT (user_id, idem_key) DO UPDATE \
                     SET request_hash = excluded.request_hash, session_id = NULL, created_at_us = excluded.created_at_us \
                     WHERE idempotency_keys.created_at_us < $5 \
                     RETURNING user_id",
                )
                .bind(ctx.user.get())
                .bind(key.as_str())
                .bind(fingerprint)
                .bind(now_us)
                .bind(expired_before)
                .fetch_optional(&mut **tx)
                .await?;
                if claimed.is_some() {
                    return Ok(Claim::Claimed);
                }
                let (hash, session_id): (String, Option<i64>) = sqlx::query_as(
                    "SELECT request_hash, session_id FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
                )
                .bind(ctx.user.get())
                .bind(key.as_str())
                .fetch_one(&mut **tx)
                .await?;
                if hash != fingerprint {
                    return Err(Error::AlreadyExists(format!(
                        "Idempotency-Key {:?} was already used with a different request; use a new key for a new request",
                        key.as_str()
                    ))
                    .into());
                }
                match session_id {
                    Some(id) => Ok(Claim::Replay(id)),
                    None => Err(Error::Aborted(
                        "a request with this Idempotency-Key is still in progress; retry shortly".into(),
                    )
                    .into()),
                }
            }

            async fn create_once(&self, ctx: CreateContext<'_>, new: &NewSession) -> Result<Created, TxError> {
                let user = ctx.user.get();
                let now = ctx.now;
                let mut tx = self.begin_write().await.map_err(TxError::Begin)?;

                let fingerprint = new.fingerprint();
                if let Claim::Replay(id) = Self::claim_key(&mut tx, ctx, &fingerprint).await? {
                    tx.rollback().await?;
                    return Ok(Created::Replay(id));
                }

                // References, checked inside the write transaction so that no
                // catalog change can slip in between check and write. A
                // reference the caller may not see reads as a missing one.
                // Class (with its enabled models), project and knowledge
                // items come back in one round trip, tagged by part: no
                // part-1 row means the class is not visible, a single NULL
                // model means it has no enabled model.
                let mut class_models: Option<Vec<String>> = None;
                if new.class_id.is_some() || new.project_id.is_some() || !new.knowledge_ids.is_empty() {
                    let rows: Vec<(i64, Option<i64>, Option<i64>, Option<String>)> = sqlx::query_as(concat!(
                        "SELECT CAST(1 AS BIGINT), cm.position, CAST(NULL AS BIGINT), cm.model_name \
                         FROM (", my_classes!(), ") mine \
                         LEFT JOIN class_models cm ON cm.class_id = mine.class_id AND cm.enabled \
                         WHERE mine.class_id = $3 \
                         UNION ALL \
                         SELECT 2, 0, p.class_id, NULL FROM projects p \
                         WHERE p.project_id = $4 AND p.deleted_at IS NULL \
                         AND (p.owner_user_id = $2 OR p.class_id IN (", my_classes!(), ")) \
                         UNION ALL \
                         SELECT 3, 0, k.knowledge_id, NULL FROM knowledge_items k WHERE k.knowledge_id", $ids_in,
                        " AND k.deleted_at IS NULL AND (k.owner_user_id = $2 \
                         OR k.class_id IN (", my_classes!(), ") \
                         OR k.project_id IN (SELECT p.project_id FROM projects p WHERE p.deleted_at IS NULL \
                             AND (p.owner_user_id = $2 OR p.class_id IN (", my_classes!(), ")))) \
                         ORDER BY 1, 2"
                    ))
                    .bind(id_list(&new.knowledge_ids))
                    .bind(user)
                    .bind(new.class_id)
                    .bind(new.project_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    let part = |n: i64| rows.iter().filter(move |r| r.0 == n);

                    if let Some(class_id) = new.class_id {
                        if part(1).next().is_none() {
                            return Err(Error::NotFound(format!("class {class_id} not found")).into());
                        }
                        class_models = Some(part(1).filter_map(|r| r.3.clone()).collect());
                    }
                    if let Some(project_id) = new.project_id {
                        let Some(project) = part(2).next() else {
                            return Err(Error::NotFound(format!("project {project_id} not found")).into());
                        };
                        if let (Some(asked), Some(actual)) = (new.class_id, project.2)
                            && asked != actual
                        {
                            return Err(Error::invalid_field(
                                "project_id",
                                format!("project {project_id} does not belong to class {asked}"),
                            )
                            .into());
                        }
                    }
                    if let Some(missing) = new
                        .knowledge_ids
                        .iter()
                        .find(|id| !part(3).any(|r| r.2 == Some(**id)))
                    {
                        return Err(Error::NotFound(format!("knowledge item {missing} not found")).into());
                    }
                }

                let agent = match new.agent_id {
                    Some(agent_id) => Some(Self::visible_agent(&mut tx, agent_id, user).await?),
                    None => None,
                };

                let model_names: Vec<String> = match (new.class_id, class_models) {
                    (Some(class_id), Some(names)) if names.is_empty() => {
                        return Err(Error::FailedPrecondition(format!(
                            "class {class_id} has no enabled model; ask the class owner to enable one"
                        ))
                        .into());
                    }
                    (_, Some(names)) => names,
                    (_, None) => ctx.default_models.to_vec(),
                };

                // The writes: one statement on PostgreSQL, one worker call on
                // SQLite (see each backend's `insert_session`).
                let (style_preset, style_params, generation_params, snapshot, examples) = match agent {
                    Some((agent, updated_at, examples)) => {
                        let snapshot = agent.snapshot(&updated_at);
                        (agent.style_preset, agent.style_params, agent.generation_params, snapshot, examples)
                    }
                    None => (DEFAULT_STYLE_PRESET.to_string(), Map::new(), Map::new(), Map::new(), Vec::new()),
                };
                let example_ids: Vec<i64> = examples.iter().map(|e| e.example_id).collect();
                let ids = Self::insert_session(
                    &mut tx,
                    &SessionRows {
                        user,
                        new,
                        now,
                        style_preset: &style_preset,
                        style_params: &style_params,
                        generation_params: &generation_params,
                        agent_snapshot: &snapshot,
                        example_ids: &example_ids,
                        model_names: &model_names,
                        idempotency_key: ctx.idempotency_key.map(|k| k.as_str()),
                    },
                )
                .await?;
                if ids.link_ids.len() != examples.len() || ids.model_ids.len() != model_names.len() {
                    return Err(Error::internal(anyhow::anyhow!(
                        "insert_session returned {} link ids for {} examples and {} model ids for {} models",
                        ids.link_ids.len(),
                        examples.len(),
                        ids.model_ids.len(),
                        model_names.len()
                    ))
                    .into());
                }
                let SessionIds { session_id, setting_id, link_ids, model_ids } = ids;
                let few_shot_links = examples
                    .into_iter()
                    .zip(link_ids)
                    .enumerate()
                    .map(|(i, (example, id))| FewShotLink {
                        id,
                        setting_id,
                        example_id: example.example_id,
                        sort_order: i as i64,
                        created_at: now,
                        example,
                    })
                    .collect();
                let models = model_names
                    .into_iter()
                    .zip(model_ids)
                    .enumerate()
                    .map(|(i, (model_name, session_model_id))| SessionModel {
                        session_model_id,
                        session_id,
                        model_name,
                        sort_order: i as i64,
                        created_at: now,
                    })
                    .collect();

                tx.commit().await?;

                Ok(Created::New(Box::new(Session {
                    session_id,
                    user_id: user,
                    created_at: now,
                    updated_at: now,
                    class_id: new.class_id,
                    project_id: new.project_id,
                    knowledge_ids: new.knowledge_ids.clone(),
                    agent_id: new.agent_id,
                    title: new.title.clone(),
                    notes: new.notes.clone(),
                    settings: Settings {
                        setting_id,
                        session_id,
                        created_at: now,
                        updated_at: now,
                        style_preset,
                        style_params,
                        generation_params,
                        agent_snapshot: snapshot,
                        few_shot_links,
                    },
                    models,
                    responses: Vec::new(),
                })))
            }

            /// The agent if the caller (`user`) may use it, with its last
            /// update time and its active examples in the agent's order.
            async fn visible_agent(
                tx: &mut Tx,
                agent_id: i64,
                user: i64,
            ) -> Result<(Agent, DateTime<Utc>, Vec<Example>), TxError> {
                // The agent and all its examples, in order, in one round trip.
                let rows = sqlx::query(concat!(
                    "SELECT a.agent_id, a.owner_user_id, a.class_id, a.name, a.description, a.system_prompt, \
                     a.style_preset, a.style_params, a.generation_params, a.updated_at, \
                     e.deleted_at IS NULL, ", example_columns!(), " \
                     FROM agents a \
                     LEFT JOIN agent_examples ae ON ae.agent_id = a.agent_id \
                     LEFT JOIN examples e ON e.example_id = ae.example_id \
                     WHERE a.agent_id = $1 AND a.deleted_at IS NULL \
                     AND (a.owner_user_id = $2 OR a.class_id IN (", my_classes!(), ")) \
                     ORDER BY ae.position"
                ))
                .bind(agent_id)
                .bind(user)
                .fetch_all(&mut **tx)
                .await?;
                let Some(first) = rows.first() else {
                    return Err(Error::NotFound(format!("agent {agent_id} not found")).into());
                };
                let agent_updated_at: DateTime<Utc> = first.try_get(9)?;
                let mut agent = Agent {
                    agent_id: first.try_get(0)?,
                    owner_user_id: first.try_get(1)?,
                    class_id: first.try_get(2)?,
                    name: first.try_get(3)?,
                    description: first.try_get(4)?,
                    system_prompt: first.try_get(5)?,
                    style_preset: first.try_get(6)?,
                    style_params: first.try_get::<JsonObject, _>(7)?.0,
                    generation_params: first.try_get::<JsonObject, _>(8)?.0,
                    example_ids: Vec::new(),
                };
                // The snapshot lists every example id; the session links the
                // active ones that still exist.
                let mut examples = Vec::new();
                for row in &rows {
                    let Some(example_id) = row.try_get::<Option<i64>, _>(11)? else { continue };
                    agent.example_ids.push(example_id);
                    let exists: bool = row.try_get(10)?;
                    let active: bool = row.try_get(15)?;
                    if exists && active {
                        examples.push(Example {
                            example_id,
                            user_id: row.try_get(12)?,
                            input_text: row.try_get(13)?,
                            output_text: row.try_get(14)?,
                            is_active: active,
                            created_at: row.try_get(16)?,
                            updated_at: row.try_get(17)?,
                            title: row.try_get(18)?,
                            meta: row.try_get::<JsonObject, _>(19)?.0,
                        });
                    }
                }
                Ok((agent, agent_updated_at, examples))
            }

            async fn read_session(&self, user: UserId, session_id: i64) -> Result<Option<Session>, Error> {
                let mut conn = self.pool.acquire().await?;
                type SessionRow = (i64, i64, Option<i64>, Option<i64>, Option<i64>, Option<String>, Option<String>, DateTime<Utc>, DateTime<Utc>);
                let row: Option<SessionRow> = sqlx::query_as(
                    "SELECT session_id, user_id, class_id, project_id, agent_id, title, notes, created_at, updated_at \
                     FROM practice_sessions WHERE session_id = $1 AND user_id = $2",
                )
                .bind(session_id)
                .bind(user.get())
                .fetch_optional(&mut *conn)
                .await?;
                let Some(s) = row else { return Ok(None) };

                let knowledge_ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT knowledge_id FROM session_knowledge WHERE session_id = $1 ORDER BY position",
                )
                .bind(session_id)
                .fetch_all(&mut *conn)
                .await?;

                type SettingsRow = (i64, String, JsonObject, JsonObject, JsonObject, DateTime<Utc>, DateTime<Utc>);
                let st: SettingsRow = sqlx::query_as(
                    "SELECT setting_id, style_preset, style_params, generation_params, agent_snapshot, created_at, updated_at \
                     FROM session_settings WHERE session_id = $1",
                )
                .bind(session_id)
                .fetch_one(&mut *conn)
                .await?;

                type LinkRow = (i64, i64, DateTime<Utc>, i64, i64, String, String, bool, DateTime<Utc>, DateTime<Utc>, Option<String>, JsonObject);
                let links: Vec<LinkRow> = sqlx::query_as(concat!(
                    "SELECT l.id, l.sort_order, l.created_at, ", example_columns!(),
                    " FROM few_shot_links l JOIN examples e ON e.example_id = l.example_id \
                     WHERE l.setting_id = $1 ORDER BY l.sort_order"
                ))
                .bind(st.0)
                .fetch_all(&mut *conn)
                .await?;

                let models: Vec<(i64, String, i64, DateTime<Utc>)> = sqlx::query_as(
                    "SELECT session_model_id, model_name, sort_order, created_at FROM session_models \
                     WHERE session_id = $1 ORDER BY sort_order",
                )
                .bind(session_id)
                .fetch_all(&mut *conn)
                .await?;

                type ResponseRow = (i64, i64, String, String, String, DateTime<Utc>, JsonObject, Option<i64>);
                let responses: Vec<ResponseRow> = sqlx::query_as(
                    "SELECT response_id, session_model_id, model_name, prompt_text, response_text, created_at, \
                     token_usage, latency_ms FROM responses WHERE session_id = $1 ORDER BY response_id",
                )
                .bind(session_id)
                .fetch_all(&mut *conn)
                .await?;

                Ok(Some(Session {
                    session_id: s.0,
                    user_id: s.1,
                    class_id: s.2,
                    project_id: s.3,
                    agent_id: s.4,
                    title: s.5,
                    notes: s.6,
                    created_at: s.7,
                    updated_at: s.8,
                    knowledge_ids,
                    settings: Settings {
                        setting_id: st.0,
                        session_id,
                        style_preset: st.1,
                        style_params: st.2.0,
                        generation_params: st.3.0,
                        agent_snapshot: st.4.0,
                        created_at: st.5,
                        updated_at: st.6,
                        few_shot_links: links
                            .into_iter()
                            .map(|l| FewShotLink {
                                id: l.0,
                                setting_id: st.0,
                                example_id: l.3,
                                sort_order: l.1,
                                created_at: l.2,
                                example: example_from_row((l.3, l.4, l.5, l.6, l.7, l.8, l.9, l.10, l.11)),
                            })
                            .collect(),
                    },
                    models: models
                        .into_iter()
                        .map(|m| SessionModel {
                            session_model_id: m.0,
                            session_id,
                            model_name: m.1,
                            sort_order: m.2,
                            created_at: m.3,
                        })
                        .collect(),
                    responses: responses
                        .into_iter()
                        .map(|r| Response {
                            response_id: r.0,
                            session_model_id: r.1,
                            session_id,
                            model_name: r.2,
                            prompt_text: r.3,
                            response_text: r.4,
                            created_at: r.5,
                            token_usage: r.6.0,
                            latency_ms: r.7,
                        })
                        .collect(),
                }))
            }
        }

        #[async_trait]
        impl Store for $Store {
            fn backend(&self) -> &'static str {
                BACKEND
            }

            async fn migrate(&self) -> Result<(), Error> {
                MIGRATOR
                    .run(self.writer())
                    .await
                    .map_err(|e| Error::internal(anyhow::anyhow!("migration failed: {e}")))
            }

            async fn ping(&self) -> Result<(), Error> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_session(&self, ctx: CreateContext<'_>, new: &NewSession) -> Result<Session, Error> {
                let span = tracing::info_span!("db.transaction", db.system = BACKEND, db.operation = "create_session");
                match self.create_with_retry(ctx, new).instrument(span).await? {
                    Created::New(session) => Ok(*session),
                    Created::Replay(id) => self.get_session(ctx.user, id).await?.ok_or_else(|| {
                        Error::internal(anyhow::anyhow!("idempotency key names missing session {id}"))
                    }),
                }
            }

            async fn get_session(&self, user: UserId, session_id: i64) -> Result<Option<Session>, Error> {
                let span = tracing::info_span!("db.query", db.system = BACKEND, db.operation = "get_session");
                self.read_session(user, session_id).instrument(span).await
            }

            async fn upsert_class(&self, class: &Class, now: DateTime<Utc>) -> Result<(), Error> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO classes (class_id, name, updated_at, deleted_at) VALUES ($1, $2, $3, NULL) \
                     ON CONFLICT (class_id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at, deleted_at = NULL",
                )
                .bind(class.class_id)
                .bind(&class.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for table in ["DELETE FROM class_members WHERE class_id = $1", "DELETE FROM class_models WHERE class_id = $1"] {
                    sqlx::query(table).bind(class.class_id).execute(&mut *tx).await?;
                }
                if !class.members.is_empty() {
                    QueryBuilder::<$DB>::new("INSERT INTO class_members (class_id, user_id, role) ")
                        .push_values(&class.members, |mut b, m| {
                            b.push_bind(class.class_id).push_bind(m.user_id).push_bind(m.role.clone());
                        })
                        .build()
                        .execute(&mut *tx)
                        .await?;
                }
                if !class.models.is_empty() {
                    QueryBuilder::<$DB>::new("INSERT INTO class_models (class_id, position, model_name, enabled) ")
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

            async fn upsert_project(&self, p: &Project, now: DateTime<Utc>) -> Result<(), Error> {
                sqlx::query(
                    "INSERT INTO projects (project_id, owner_user_id, class_id, name, updated_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (project_id) DO UPDATE SET \
                     owner_user_id = excluded.owner_user_id, class_id = excluded.class_id, name = excluded.name, \
                     updated_at = excluded.updated_at, deleted_at = NULL",
                )
                .bind(p.project_id)
                .bind(p.owner_user_id)
                .bind(p.class_id)
                .bind(&p.name)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn upsert_knowledge(&self, k: &Knowledge, now: DateTime<Utc>) -> Result<(), Error> {
                sqlx::query(
                    "INSERT INTO knowledge_items (knowledge_id, owner_user_id, project_id, class_id, title, updated_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (knowledge_id) DO UPDATE SET \
                     owner_user_id = excluded.owner_user_id, project_id = excluded.project_id, class_id = excluded.class_id, \
                     title = excluded.title, updated_at = excluded.updated_at, deleted_at = NULL",
                )
                .bind(k.knowledge_id)
                .bind(k.owner_user_id)
                .bind(k.project_id)
                .bind(k.class_id)
                .bind(&k.title)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn upsert_agent(&self, a: &Agent, now: DateTime<Utc>) -> Result<(), Error> {
                let mut tx = self.begin_write().await?;
                if !a.example_ids.is_empty() {
                    let found: Vec<i64> = sqlx::query_scalar(concat!(
                        "SELECT e.example_id FROM examples e WHERE e.example_id", $ids_in, " AND e.deleted_at IS NULL"
                    ))
                    .bind(id_list(&a.example_ids))
                    .fetch_all(&mut *tx)
                    .await?;
                    if let Some(missing) = a.example_ids.iter().find(|id| !found.contains(id)) {
                        return Err(Error::NotFound(format!("example {missing} not found")));
                    }
                }
                sqlx::query(
                    "INSERT INTO agents (agent_id, owner_user_id, class_id, name, description, system_prompt, \
                     style_preset, style_params, generation_params, updated_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL) ON CONFLICT (agent_id) DO UPDATE SET \
                     owner_user_id = excluded.owner_user_id, class_id = excluded.class_id, name = excluded.name, \
                     description = excluded.description, system_prompt = excluded.system_prompt, \
                     style_preset = excluded.style_preset, style_params = excluded.style_params, \
                     generation_params = excluded.generation_params, updated_at = excluded.updated_at, deleted_at = NULL",
                )
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
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM agent_examples WHERE agent_id = $1")
                    .bind(a.agent_id)
                    .execute(&mut *tx)
                    .await?;
                if !a.example_ids.is_empty() {
                    QueryBuilder::<$DB>::new("INSERT INTO agent_examples (agent_id, position, example_id) ")
                        .push_values(a.example_ids.iter().enumerate(), |mut b, (i, id)| {
                            b.push_bind(a.agent_id).push_bind(i as i64).push_bind(*id);
                        })
                        .build()
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_catalog(&self, kind: CatalogKind, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
                let sql = match kind {
                    CatalogKind::Class => "UPDATE classes SET deleted_at = $2 WHERE class_id = $1 AND deleted_at IS NULL",
                    CatalogKind::Project => "UPDATE projects SET deleted_at = $2 WHERE project_id = $1 AND deleted_at IS NULL",
                    CatalogKind::Knowledge => "UPDATE knowledge_items SET deleted_at = $2 WHERE knowledge_id = $1 AND deleted_at IS NULL",
                    CatalogKind::Agent => "UPDATE agents SET deleted_at = $2 WHERE agent_id = $1 AND deleted_at IS NULL",
                };
                let done = sqlx::query(sql).bind(id).bind(now).execute(self.writer()).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_example(&self, user: UserId, e: &NewExample, now: DateTime<Utc>) -> Result<Example, Error> {
                let example_id: i64 = sqlx::query_scalar(
                    "INSERT INTO examples (user_id, title, input_text, output_text, is_active, meta, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING example_id",
                )
                .bind(user.get())
                .bind(e.title.as_deref())
                .bind(&e.input_text)
                .bind(&e.output_text)
                .bind(e.is_active)
                .bind(Json(&e.meta))
                .bind(now)
                .fetch_one(self.writer())
                .await?;
                Ok(Example {
                    example_id,
                    user_id: user.get(),
                    input_text: e.input_text.clone(),
                    output_text: e.output_text.clone(),
                    is_active: e.is_active,
                    created_at: now,
                    updated_at: now,
                    title: e.title.clone(),
                    meta: e.meta.clone(),
                })
            }

            async fn get_example(&self, user: UserId, example_id: i64) -> Result<Option<Example>, Error> {
                let row: Option<ExampleRow> = sqlx::query_as(concat!(
                    "SELECT ", example_columns!(), " FROM examples e \
                     WHERE e.example_id = $1 AND e.user_id = $2 AND e.deleted_at IS NULL"
                ))
                .bind(example_id)
                .bind(user.get())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(example_from_row))
            }

            async fn list_examples(&self, user: UserId, after_id: i64, limit: i64) -> Result<Vec<Example>, Error> {
                let rows: Vec<ExampleRow> = sqlx::query_as(concat!(
                    "SELECT ", example_columns!(), " FROM examples e \
                     WHERE e.user_id = $1 AND e.deleted_at IS NULL AND e.example_id > $2 \
                     ORDER BY e.example_id LIMIT $3"
                ))
                .bind(user.get())
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(example_from_row).collect())
            }

            async fn update_example(
                &self,
                user: UserId,
                example_id: i64,
                patch: &ExamplePatch,
                now: DateTime<Utc>,
            ) -> Result<Option<Example>, Error> {
                // One statement: each column keeps its value unless the patch
                // carries one, so concurrent updates of different fields
                // both land.
                let row: Option<ExampleRow> = sqlx::query_as(concat!(
                    "UPDATE examples SET \
                     title = CASE WHEN $3 THEN $4 ELSE title END, \
                     input_text = COALESCE($5, input_text), \
                     output_text = COALESCE($6, output_text), \
                     is_active = COALESCE($7, is_active), \
                     meta = COALESCE($8, meta), \
                     updated_at = $9 \
                     WHERE example_id = $1 AND user_id = $2 AND deleted_at IS NULL \
                     RETURNING ", example_columns!(bare)
                ))
                .bind(example_id)
                .bind(user.get())
                .bind(patch.title.is_some())
                .bind(patch.title.clone().flatten())
                .bind(patch.input_text.as_deref())
                .bind(patch.output_text.as_deref())
                .bind(patch.is_active)
                .bind(patch.meta.as_ref().map(Json))
                .bind(now)
                .fetch_optional(self.writer())
                .await?;
                Ok(row.map(example_from_row))
            }

            async fn delete_example(&self, user: UserId, example_id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
                let done = sqlx::query(
                    "UPDATE examples SET deleted_at = $3, updated_at = $3 \
                     WHERE example_id = $1 AND user_id = $2 AND deleted_at IS NULL",
                )
                .bind(example_id)
                .bind(user.get())
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn table_counts(&self) -> Result<TableCounts, Error> {
                let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM practice_sessions), (SELECT COUNT(*) FROM session_knowledge), \
                     (SELECT COUNT(*) FROM session_settings), (SELECT COUNT(*) FROM few_shot_links), \
                     (SELECT COUNT(*) FROM session_models), (SELECT COUNT(*) FROM responses), \
                     (SELECT COUNT(*) FROM idempotency_keys)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(TableCounts {
                    sessions: row.0,
                    session_knowledge: row.1,
                    settings: row.2,
                    few_shot_links: row.3,
                    session_models: row.4,
                    responses: row.5,
                    idempotency_keys: row.6,
                })
            }
        }
    };
}
pub(super) use impl_store;
