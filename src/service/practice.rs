//! The learner's use cases on practice sessions. Every rule of a create
//! lives here: who may see which reference, which models a session gets,
//! what the agent snapshot holds, which examples are linked and in what
//! order, and what an idempotency key replays.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Map;
use tracing::Instrument;

use super::answers::Answers;
use super::keys;
use super::responses::{NEWEST_RESPONSES, REPLY_TEXT_BYTES};
use super::tx::{self, TxError};
use crate::domain::generation;
use crate::domain::session::{CreateSessionInput, DEFAULT_CONTINUE_FROM, DEFAULT_STYLE_PRESET};
use crate::domain::{
    FewShotLink, IdempotencyKey, NewSession, Session, SessionModel, Settings, UserId, now_micros,
};
use crate::error::Error;
use crate::llm::Models;
use crate::store::{AgentRecord, Asked, References, SessionRows, Store, VisibleRefs};

#[derive(Clone)]
pub struct PracticeService {
    pub(super) store: Arc<dyn Store>,
    default_models: Arc<[String]>,
    /// The largest reply the server sends: a session that wouldn't fit is
    /// refused before it is committed.
    max_response_bytes: usize,
    /// The answers in flight here, which a deleted session cancels.
    pub(super) answers: Arc<Answers>,
    /// Which generation parameters each model accepts.
    models: Models,
}

/// What one run of the create transaction produced.
enum Created {
    New(Box<Session>),
    /// The session an earlier request with the same key created.
    Replay(i64),
}

impl PracticeService {
    pub fn new(
        store: Arc<dyn Store>,
        default_models: Vec<String>,
        max_response_bytes: usize,
        answers: Arc<Answers>,
        models: Models,
    ) -> Self {
        Self {
            store,
            default_models: default_models.into(),
            max_response_bytes,
            answers,
            models,
        }
    }

    /// Checks generation parameters against the rules of each model that
    /// will be sent them; the first problem as `(key, why)`.
    pub(super) fn check_params(
        &self,
        params: &Map<String, serde_json::Value>,
        model_names: &[String],
    ) -> Result<(), (String, String)> {
        generation::check(
            params,
            model_names
                .iter()
                .map(|m| (m.as_str(), self.models.params(m))),
        )
    }

    pub async fn create_session(
        &self,
        user: UserId,
        input: CreateSessionInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Session, Error> {
        let new = NewSession::new(input);
        let key = idempotency_key.as_ref().map(IdempotencyKey::as_str);
        let now = now_micros();
        let span = tracing::info_span!(
            "db.transaction",
            db.system = self.store.backend(),
            db.operation = "create_session"
        );
        let created = tx::run(|attempt| self.create_once(user, &new, key, now, attempt))
            .instrument(span)
            .await?;
        let session = match created {
            Created::New(session) => *session,
            Created::Replay(id) => self
                .store
                .session(user, id, NEWEST_RESPONSES)
                .await?
                .ok_or_else(|| {
                    Error::internal(anyhow::anyhow!(
                        "idempotency key names missing session {id}"
                    ))
                })?,
        };
        tracing::Span::current().record("session_id", session.session_id);
        Ok(session)
    }

    pub async fn get_session(&self, user: UserId, session_id: i64) -> Result<Session, Error> {
        let span = tracing::info_span!(
            "db.query",
            db.system = self.store.backend(),
            db.operation = "get_session"
        );
        self.store
            .session(user, session_id, NEWEST_RESPONSES)
            .instrument(span)
            .await?
            .map(Session::shown)
            .ok_or_else(|| Error::NotFound(format!("session {session_id} not found")))
    }

    /// One run of the create transaction: claim the key, check every
    /// reference inside the transaction (so no catalog change slips in
    /// between check and write), decide every row, write them in one call.
    async fn create_once(
        &self,
        user: UserId,
        new: &NewSession,
        key: Option<&str>,
        now: DateTime<Utc>,
        attempt: u32,
    ) -> Result<Created, TxError> {
        let mut tx = self.store.begin_write(attempt).await?;
        if let Some(key) = key
            && let Some(earlier) = keys::claim(&mut *tx, user, key, &new.fingerprint(), now).await?
        {
            let id = earlier.session_id.ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "an idempotency key's request made no session"
                ))
            })?;
            tx.commit().await?;
            return Ok(Created::Replay(id));
        }

        let asked = Asked {
            class_id: new.class_id,
            project_id: new.project_id,
            knowledge_ids: &new.knowledge_ids,
            agent_id: new.agent_id,
        };
        let found = if asked.refs() || asked.agent_id.is_some() {
            tx.references(user, &asked).await?
        } else {
            References::default()
        };
        let model_names = self.session_models(new, found.refs)?;
        let agent = match new.agent_id {
            Some(agent_id) => Some(
                found
                    .agent
                    .ok_or_else(|| Error::NotFound(format!("agent {agent_id} not found")))?,
            ),
            None => None,
        };
        let settings = SettingsPlan::from_agent(agent);
        if let Some(agent_id) = new.agent_id {
            self.check_params(&settings.generation_params, &model_names)
                .map_err(|(key, why)| {
                    Error::FailedPrecondition(format!(
                        "agent {agent_id}'s generation_params.{key} {why}"
                    ))
                })?;
        }
        // Nothing is committed that the server would then refuse to send.
        // Its replies also carry its newest responses: leave room for them.
        let size = settings.estimated_size(new, &model_names);
        let room = self.max_response_bytes.saturating_sub(REPLY_TEXT_BYTES);
        if size > room {
            return Err(Error::FailedPrecondition(format!(
                "the session would be about {size} bytes, more than the {room} a reply may carry \
                 beside its newest responses: its agent's few-shot examples are too large; \
                 link fewer or shorter examples"
            ))
            .into());
        }
        let example_ids: Vec<i64> = settings.examples.iter().map(|e| e.example_id).collect();
        let ids = tx
            .insert_session(&SessionRows {
                user,
                new,
                now,
                style_preset: &settings.style_preset,
                style_params: &settings.style_params,
                generation_params: &settings.generation_params,
                agent_snapshot: &settings.agent_snapshot,
                example_ids: &example_ids,
                model_names: &model_names,
                idempotency_key: key,
            })
            .await?;
        if ids.link_ids.len() != example_ids.len() || ids.model_ids.len() != model_names.len() {
            return Err(Error::internal(anyhow::anyhow!(
                "insert_session returned {} link ids for {} examples and {} model ids for {} models",
                ids.link_ids.len(),
                example_ids.len(),
                ids.model_ids.len(),
                model_names.len()
            ))
            .into());
        }
        tx.commit().await?;

        let session_id = ids.session_id;
        let setting_id = ids.setting_id;
        let few_shot_links = settings
            .examples
            .into_iter()
            .zip(ids.link_ids)
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
            .zip(ids.model_ids)
            .enumerate()
            .map(|(i, (model_name, session_model_id))| SessionModel {
                session_model_id,
                session_id,
                model_name,
                sort_order: i as i64,
                created_at: now,
            })
            .collect();
        Ok(Created::New(Box::new(Session {
            session_id,
            user_id: user.get(),
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
                style_preset: settings.style_preset,
                style_params: settings.style_params,
                generation_params: settings.generation_params,
                agent_snapshot: settings.agent_snapshot,
                few_shot_links,
                blind: false,
                continue_from: DEFAULT_CONTINUE_FROM.into(),
            },
            models,
            responses: Vec::new(),
            has_more_responses: false,
        })))
    }

    /// Checks the class, project and knowledge references (a reference the
    /// caller may not see reads as a missing one) and returns the session's
    /// models: the class's enabled ones in its order, or the defaults for a
    /// session without a class.
    fn session_models(&self, new: &NewSession, refs: VisibleRefs) -> Result<Vec<String>, Error> {
        if let Some(class_id) = new.class_id
            && refs.class_models.is_none()
        {
            return Err(Error::NotFound(format!("class {class_id} not found")));
        }
        if let Some(project_id) = new.project_id {
            let Some(project_class) = refs.project_class else {
                return Err(Error::NotFound(format!("project {project_id} not found")));
            };
            if let (Some(asked), Some(actual)) = (new.class_id, project_class)
                && asked != actual
            {
                return Err(Error::invalid_field(
                    "project_id",
                    format!("project {project_id} does not belong to class {asked}"),
                ));
            }
        }
        if let Some(missing) = new
            .knowledge_ids
            .iter()
            .find(|id| !refs.knowledge_ids.contains(id))
        {
            return Err(Error::NotFound(format!(
                "knowledge item {missing} not found"
            )));
        }
        match (new.class_id, refs.class_models) {
            (Some(class_id), Some(names)) if names.is_empty() => Err(Error::FailedPrecondition(
                format!("class {class_id} has no enabled model; ask the class owner to enable one"),
            )),
            (_, Some(names)) => Ok(names),
            (_, None) => Ok(self.default_models.to_vec()),
        }
    }
}

/// A new session's settings: copied from the agent, or the defaults.
struct SettingsPlan {
    style_preset: String,
    style_params: Map<String, serde_json::Value>,
    generation_params: Map<String, serde_json::Value>,
    agent_snapshot: Map<String, serde_json::Value>,
    /// The few-shot examples, in link order.
    examples: Vec<crate::domain::Example>,
}

impl SettingsPlan {
    /// An upper estimate of the new session's encoded size: its texts and
    /// free-form objects as JSON, plus a quarter for protobuf's framing of
    /// `Struct`s and a fixed allowance per row.
    fn estimated_size(&self, new: &NewSession, model_names: &[String]) -> usize {
        let json =
            |m: &Map<String, serde_json::Value>| serde_json::to_vec(m).map_or(0, |v| v.len());
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        let examples: usize = self
            .examples
            .iter()
            .map(|e| {
                e.input_text.len() + e.output_text.len() + text(&e.title) + json(&e.meta) + 128
            })
            .sum();
        let objects =
            json(&self.style_params) + json(&self.generation_params) + json(&self.agent_snapshot);
        let models: usize = model_names.iter().map(|m| m.len() + 64).sum();
        let size = examples + objects + models + text(&new.title) + text(&new.notes) + 1024;
        size + size / 4
    }

    fn from_agent(agent: Option<AgentRecord>) -> Self {
        let Some(AgentRecord {
            agent,
            updated_at,
            examples,
        }) = agent
        else {
            return Self {
                style_preset: DEFAULT_STYLE_PRESET.to_string(),
                style_params: Map::new(),
                generation_params: Map::new(),
                agent_snapshot: Map::new(),
                examples: Vec::new(),
            };
        };
        // The snapshot lists every example id the agent has; the session
        // links those that still exist and are active, in the agent's order.
        let agent_snapshot = agent.snapshot(&updated_at);
        Self {
            style_preset: agent.style_preset,
            style_params: agent.style_params,
            generation_params: agent.generation_params,
            agent_snapshot,
            examples: examples
                .into_iter()
                .filter(|e| e.live && e.example.is_active)
                .map(|e| e.example)
                .collect(),
        }
    }
}
