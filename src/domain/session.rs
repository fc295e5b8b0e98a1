//! A practice session: the validated create request and the stored session.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::rules;
use crate::error::Error;

pub const MAX_KNOWLEDGE_IDS: usize = 50;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_NOTES_CHARS: usize = 20_000;
pub const DEFAULT_STYLE_PRESET: &str = "accurate";

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

/// A create request whose fields keep every rule that needs no database.
/// Only `parse` makes one, so holding it is proof the checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession(CreateSessionInput);

impl std::ops::Deref for NewSession {
    type Target = CreateSessionInput;

    fn deref(&self) -> &CreateSessionInput {
        &self.0
    }
}

impl NewSession {
    /// Checks every field and reports all violations at once.
    pub fn parse(input: CreateSessionInput) -> Result<Self, Error> {
        let mut violations = Vec::new();
        rules::optional_id("class_id", input.class_id, &mut violations);
        rules::optional_id("project_id", input.project_id, &mut violations);
        rules::optional_id("agent_id", input.agent_id, &mut violations);
        rules::distinct_ids(
            "knowledge_ids",
            &input.knowledge_ids,
            MAX_KNOWLEDGE_IDS,
            &mut violations,
        );
        if let Some(title) = &input.title {
            rules::text(
                "title",
                title,
                false,
                MAX_TITLE_CHARS,
                true,
                &mut violations,
            );
        }
        if let Some(notes) = &input.notes {
            rules::text(
                "notes",
                notes,
                false,
                MAX_NOTES_CHARS,
                false,
                &mut violations,
            );
        }

        rules::finish(violations)?;
        Ok(NewSession(input))
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
    pub responses: Vec<Response>,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument { violations, .. } => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn accepts_an_empty_request() {
        assert!(NewSession::parse(CreateSessionInput::default()).is_ok());
    }

    #[test]
    fn reports_every_violation() {
        let err = NewSession::parse(CreateSessionInput {
            class_id: Some(0),
            project_id: Some(-3),
            knowledge_ids: vec![1, 1, 0],
            agent_id: Some(0),
            title: Some("a\nb".into()),
            notes: Some("x".repeat(MAX_NOTES_CHARS + 1)),
        })
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "class_id",
                "project_id",
                "agent_id",
                "knowledge_ids[1]",
                "knowledge_ids[2]",
                "title",
                "notes"
            ]
        );
    }

    #[test]
    fn bounds_count_characters_not_bytes() {
        let ok = CreateSessionInput {
            title: Some("가".repeat(MAX_TITLE_CHARS)),
            knowledge_ids: (1..=50).collect(),
            ..Default::default()
        };
        assert!(NewSession::parse(ok).is_ok());
        let too_long = CreateSessionInput {
            title: Some("가".repeat(MAX_TITLE_CHARS + 1)),
            ..Default::default()
        };
        assert_eq!(fields(NewSession::parse(too_long).unwrap_err()), ["title"]);
        let too_many = CreateSessionInput {
            knowledge_ids: (1..=51).collect(),
            ..Default::default()
        };
        assert_eq!(
            fields(NewSession::parse(too_many).unwrap_err()),
            ["knowledge_ids"]
        );
    }

    #[test]
    fn fingerprint_tells_requests_apart() {
        let a = NewSession::parse(CreateSessionInput {
            title: Some("a".into()),
            ..Default::default()
        })
        .unwrap();
        let b = NewSession::parse(CreateSessionInput {
            notes: Some("a".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
