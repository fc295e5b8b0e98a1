//! A practice session: the validated create request and the stored session.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const DEFAULT_STYLE_PRESET: &str = "accurate";
/// Each model continues from its own answers by default: a side-by-side
/// comparison is fair only while every model is judged on its own
/// conversation; "chosen" is for carrying on from the best answer.
pub const DEFAULT_CONTINUE_FROM: &str = "own";

/// The create request as it arrives, before any rule is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateSessionInput {
    pub class_id: Option<i64>,
    pub project_id: Option<i64>,
    pub knowledge_ids: Vec<i64>,
    pub agent_id: Option<i64>,
    pub title: Option<String>,
    pub notes: Option<String>,
}

/// A create request. Its fields' rules are declared on
/// `CreateSessionRequest` in the proto and checked before any use case runs;
/// what is left needs the database (`service::practice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession(CreateSessionInput);

impl std::ops::Deref for NewSession {
    type Target = CreateSessionInput;

    fn deref(&self) -> &CreateSessionInput {
        &self.0
    }
}

impl NewSession {
    pub fn new(input: CreateSessionInput) -> Self {
        NewSession(input)
    }

    /// A digest of the request, to tell a replay from a different request
    /// that reuses an idempotency key.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.class_id,
            self.project_id,
            self.knowledge_ids,
            self.agent_id,
            self.title,
            self.notes,
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: i64,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub class_id: Option<i64>,
    pub project_id: Option<i64>,
    pub knowledge_ids: Vec<i64>,
    pub agent_id: Option<i64>,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub settings: Settings,
    pub models: Vec<SessionModel>,
    /// The newest responses only, oldest first (see `store::Responses`).
    pub responses: Vec<Response>,
    /// Whether older responses exist than those in `responses`.
    pub has_more_responses: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub setting_id: i64,
    pub session_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub style_preset: String,
    pub style_params: Map<String, Value>,
    pub generation_params: Map<String, Value>,
    pub agent_snapshot: Map<String, Value>,
    pub few_shot_links: Vec<FewShotLink>,
    /// Model names are hidden from the learner until a turn is chosen.
    pub blind: bool,
    /// What each model is shown of earlier turns: "own" (its own answers)
    /// or "chosen" (a turn's chosen answer where it has one).
    pub continue_from: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FewShotLink {
    pub id: i64,
    pub setting_id: i64,
    pub example_id: i64,
    pub sort_order: i64,
    pub created_at: DateTime<Utc>,
    pub example: super::Example,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionModel {
    pub session_model_id: i64,
    pub session_id: i64,
    pub model_name: String,
    pub sort_order: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub response_id: i64,
    pub session_model_id: i64,
    pub session_id: i64,
    pub model_name: String,
    pub prompt_text: String,
    pub response_text: String,
    pub created_at: DateTime<Utc>,
    pub token_usage: Map<String, Value>,
    pub latency_ms: Option<i64>,
    pub status: super::conversation::ResponseStatus,
    pub error: Option<String>,
    pub first_byte_ms: Option<i64>,
    /// The turn (prompt) it answers, and which attempt at it this is.
    pub prompt_id: i64,
    pub attempt: i64,
    /// "up" or "down", once the learner rated it.
    pub rating: Option<String>,
    pub rating_comment: Option<String>,
    /// The turn's choice as it stands for this response: "" (none yet),
    /// "chosen", "not_chosen", "tie" or "none_good".
    pub choice: String,
    /// Whether its session is blind (see `shown`).
    pub blind: bool,
    /// What it cost, in millionths of a US dollar, where its model has
    /// prices.
    pub cost_micros: Option<i64>,
}

impl Response {
    /// The response as the learner may see it: in a blind session, without
    /// its model's name until its turn is chosen.
    pub fn shown(mut self) -> Self {
        self.model_name =
            super::conversation::shown_model(self.blind, &self.choice, self.model_name);
        self
    }
}

impl Session {
    /// The session as the learner may see it: in a blind session, its
    /// models without their names, and its responses `shown`.
    pub fn shown(mut self) -> Self {
        if self.settings.blind {
            for m in &mut self.models {
                m.model_name.clear();
            }
        }
        self.responses = self.responses.into_iter().map(Response::shown).collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tells_requests_apart() {
        let a = NewSession::new(CreateSessionInput {
            title: Some("a".into()),
            ..Default::default()
        });
        let b = NewSession::new(CreateSessionInput {
            notes: Some("a".into()),
            ..Default::default()
        });
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
