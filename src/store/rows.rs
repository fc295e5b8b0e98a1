//! Rows as both backends return them, read by column name, and their
//! conversion into domain types.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::FromRow;
use sqlx::types::Json;

use super::{AgentExample, AgentRecord, TableCounts};
use crate::domain::conversation::ResponseStatus;
use crate::domain::session::Response;
use crate::domain::{Agent, Example, FewShotLink, Session, SessionModel, Settings};

pub type JsonObject = Json<Map<String, Value>>;

#[derive(sqlx::FromRow)]
pub struct ExampleRow {
    pub example_id: i64,
    pub user_id: i64,
    pub input_text: String,
    pub output_text: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub title: Option<String>,
    pub meta: JsonObject,
}

impl From<ExampleRow> for Example {
    fn from(r: ExampleRow) -> Self {
        Example {
            example_id: r.example_id,
            user_id: r.user_id,
            input_text: r.input_text,
            output_text: r.output_text,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
            title: r.title,
            meta: r.meta.0,
        }
    }
}

/// The agent's columns of `sql::AGENT_WITH_EXAMPLES`, the same in each of
/// its rows.
#[derive(sqlx::FromRow, Clone, PartialEq)]
pub struct AgentRow {
    pub agent_id: i64,
    pub owner_user_id: i64,
    pub class_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub style_preset: String,
    pub style_params: JsonObject,
    pub generation_params: JsonObject,
    pub agent_updated_at: DateTime<Utc>,
}

/// The example in a row of `sql::AGENT_WITH_EXAMPLES` (all `None` when the
/// agent lists none).
#[derive(sqlx::FromRow, Clone, PartialEq)]
pub struct AgentExampleRow {
    pub example_live: bool,
    pub example_id: Option<i64>,
    pub user_id: Option<i64>,
    pub input_text: Option<String>,
    pub output_text: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub title: Option<String>,
    pub meta: Option<JsonObject>,
}

impl AgentExampleRow {
    fn example(self) -> Option<AgentExample> {
        Some(AgentExample {
            live: self.example_live,
            example: Example {
                example_id: self.example_id?,
                user_id: self.user_id?,
                input_text: self.input_text?,
                output_text: self.output_text?,
                is_active: self.is_active?,
                created_at: self.created_at?,
                updated_at: self.updated_at?,
                title: self.title,
                meta: self.meta?.0,
            },
        })
    }
}

/// The rows of `sql::AGENT_WITH_EXAMPLES` as they are read: the agent's
/// columns from the first (every row repeats them, and decoding its JSON
/// again for each example costs more than the example), and each row's
/// example.
#[derive(Default, Clone, PartialEq)]
pub struct AgentRows {
    agent: Option<AgentRow>,
    examples: Vec<AgentExampleRow>,
}

impl AgentRows {
    pub fn push<'r, R: sqlx::Row>(&mut self, row: &'r R) -> Result<(), sqlx::Error>
    where
        AgentRow: FromRow<'r, R>,
        AgentExampleRow: FromRow<'r, R>,
    {
        if self.agent.is_none() {
            self.agent = Some(AgentRow::from_row(row)?);
        }
        self.examples.push(AgentExampleRow::from_row(row)?);
        Ok(())
    }

    /// The agent as a record; no rows, no agent.
    pub fn record(self) -> Option<AgentRecord> {
        let a = self.agent?;
        let examples: Vec<AgentExample> = self
            .examples
            .into_iter()
            .filter_map(AgentExampleRow::example)
            .collect();
        Some(AgentRecord {
            agent: Agent {
                agent_id: a.agent_id,
                owner_user_id: a.owner_user_id,
                class_id: a.class_id,
                name: a.name,
                description: a.description,
                system_prompt: a.system_prompt,
                style_preset: a.style_preset,
                style_params: a.style_params.0,
                generation_params: a.generation_params.0,
                example_ids: examples.iter().map(|e| e.example.example_id).collect(),
            },
            updated_at: a.agent_updated_at,
            examples,
        })
    }
}

/// The rows of a dialect's `REFERENCES`, both queries' rows in one
/// result: `is_ref` tells a visible-references row (`RefRow`) from one of
/// the agent's.
pub fn split_references<'r, R: sqlx::Row>(
    rows: &'r [R],
    is_ref: impl Fn(&'r R) -> Result<bool, sqlx::Error>,
) -> Result<(Vec<RefRow>, AgentRows), sqlx::Error>
where
    RefRow: FromRow<'r, R>,
    AgentRow: FromRow<'r, R>,
    AgentExampleRow: FromRow<'r, R>,
{
    let (mut refs, mut agent) = (Vec::new(), AgentRows::default());
    for row in rows {
        if is_ref(row)? {
            refs.push(RefRow::from_row(row)?);
        } else {
            agent.push(row)?;
        }
    }
    Ok((refs, agent))
}

/// A row of `sql::VISIBLE_REFS` (per backend): `part` 1 is the class with
/// one of its enabled models (a single row with no model when it has none),
/// 2 the project with its class in `ref_id`, 3 a knowledge item's id.
#[derive(sqlx::FromRow, Clone, PartialEq)]
pub struct RefRow {
    pub part: i64,
    pub ref_id: Option<i64>,
    pub model_name: Option<String>,
}

pub fn visible_refs(rows: Vec<RefRow>) -> super::VisibleRefs {
    let mut refs = super::VisibleRefs::default();
    for row in rows {
        match row.part {
            1 => {
                let models = refs.class_models.get_or_insert_with(Vec::new);
                models.extend(row.model_name);
            }
            2 => refs.project_class = Some(row.ref_id),
            _ => refs.knowledge_ids.extend(row.ref_id),
        }
    }
    refs
}

#[derive(sqlx::FromRow)]
pub struct PageRow {
    pub session_id: i64,
    pub placed_at: DateTime<Utc>,
}

impl From<PageRow> for super::PagedSession {
    fn from(r: PageRow) -> Self {
        super::PagedSession {
            session_id: r.session_id,
            placed_at: r.placed_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct SessionRow {
    pub session_id: i64,
    pub user_id: i64,
    pub class_id: Option<i64>,
    pub project_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub struct SettingsRow {
    pub setting_id: i64,
    pub style_preset: String,
    pub style_params: JsonObject,
    pub generation_params: JsonObject,
    pub agent_snapshot: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub blind: bool,
    pub continue_from: String,
}

#[derive(sqlx::FromRow)]
pub struct LinkRow {
    pub link_id: i64,
    pub sort_order: i64,
    pub link_created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub example: ExampleRow,
}

#[derive(sqlx::FromRow)]
pub struct ModelRow {
    pub session_model_id: i64,
    pub model_name: String,
    pub sort_order: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub struct ResponseRow {
    pub response_id: i64,
    pub session_model_id: i64,
    pub session_id: i64,
    pub model_name: String,
    pub prompt_text: String,
    pub response_text: String,
    pub created_at: DateTime<Utc>,
    pub token_usage: JsonObject,
    pub latency_ms: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub first_byte_ms: Option<i64>,
    pub prompt_id: Option<i64>,
    pub attempt: i64,
    pub rating: Option<String>,
    pub rating_comment: Option<String>,
    pub choice: String,
    /// Whether its session is blind (see `conversation::shown_model`).
    pub blind: Option<bool>,
    pub cost_micros: Option<i64>,
}

impl ResponseRow {
    pub fn into_response(self) -> Response {
        Response {
            response_id: self.response_id,
            session_model_id: self.session_model_id,
            session_id: self.session_id,
            model_name: self.model_name,
            prompt_text: self.prompt_text,
            response_text: self.response_text,
            created_at: self.created_at,
            token_usage: self.token_usage.0,
            latency_ms: self.latency_ms,
            // The column's CHECK allows only the four statuses.
            status: ResponseStatus::parse(&self.status).unwrap_or(ResponseStatus::Failed),
            error: self.error,
            first_byte_ms: self.first_byte_ms,
            prompt_id: self.prompt_id.unwrap_or(0),
            attempt: self.attempt,
            rating: self.rating,
            rating_comment: self.rating_comment,
            choice: self.choice,
            blind: self.blind.unwrap_or(false),
            cost_micros: self.cost_micros,
        }
    }
}

/// A session's own rows (`Dialect::session_core`): all but its responses.
pub struct SessionCore {
    pub session: SessionRow,
    pub knowledge_ids: Vec<i64>,
    pub settings: SettingsRow,
    pub links: Vec<LinkRow>,
    pub models: Vec<ModelRow>,
}

/// Everything a session read returns, before assembly.
pub struct SessionParts {
    pub core: SessionCore,
    pub responses: Vec<ResponseRow>,
    pub more_responses: bool,
}

impl From<SessionParts> for Session {
    fn from(
        SessionParts {
            core: p,
            responses,
            more_responses,
        }: SessionParts,
    ) -> Self {
        let s = p.session;
        let st = p.settings;
        let session_id = s.session_id;
        Session {
            session_id,
            user_id: s.user_id,
            class_id: s.class_id,
            project_id: s.project_id,
            agent_id: s.agent_id,
            title: s.title,
            notes: s.notes,
            created_at: s.created_at,
            updated_at: s.updated_at,
            knowledge_ids: p.knowledge_ids,
            settings: Settings {
                setting_id: st.setting_id,
                session_id,
                style_preset: st.style_preset,
                style_params: st.style_params.0,
                generation_params: st.generation_params.0,
                agent_snapshot: st.agent_snapshot.0,
                created_at: st.created_at,
                updated_at: st.updated_at,
                blind: st.blind,
                continue_from: st.continue_from,
                few_shot_links: p
                    .links
                    .into_iter()
                    .map(|l| FewShotLink {
                        id: l.link_id,
                        setting_id: st.setting_id,
                        example_id: l.example.example_id,
                        sort_order: l.sort_order,
                        created_at: l.link_created_at,
                        example: l.example.into(),
                    })
                    .collect(),
            },
            models: p
                .models
                .into_iter()
                .map(|m| SessionModel {
                    session_model_id: m.session_model_id,
                    session_id,
                    model_name: m.model_name,
                    sort_order: m.sort_order,
                    created_at: m.created_at,
                })
                .collect(),
            responses: responses
                .into_iter()
                .map(ResponseRow::into_response)
                .collect(),
            has_more_responses: more_responses,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct CountsRow {
    pub sessions: i64,
    pub session_knowledge: i64,
    pub settings: i64,
    pub few_shot_links: i64,
    pub session_models: i64,
    pub prompts: i64,
    pub responses: i64,
    pub idempotency_keys: i64,
    pub session_versions: i64,
}

impl From<CountsRow> for TableCounts {
    fn from(r: CountsRow) -> Self {
        TableCounts {
            sessions: r.sessions,
            session_knowledge: r.session_knowledge,
            settings: r.settings,
            few_shot_links: r.few_shot_links,
            session_models: r.session_models,
            prompts: r.prompts,
            responses: r.responses,
            idempotency_keys: r.idempotency_keys,
            session_versions: r.session_versions,
        }
    }
}

/// A new prompt's response ids in the order its models were asked, from
/// the `(session_model_id, response_id)` pairs its insert returned.
pub fn response_ids_in_order(
    rows: &super::PromptRows<'_>,
    pairs: &[(i64, i64)],
) -> Result<Vec<i64>, sqlx::Error> {
    rows.models
        .iter()
        .map(|(model, _)| pairs.iter().find(|(m, _)| m == model).map(|(_, id)| *id))
        .collect::<Option<Vec<i64>>>()
        .ok_or(sqlx::Error::RowNotFound)
}
