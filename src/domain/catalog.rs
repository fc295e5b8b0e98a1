//! The catalog a session is built from: classes, projects, knowledge items
//! and agents (ids are their owners'), and the users' few-shot examples.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::rules;
use crate::error::Error;

/// As `practice.v1.Class.models` declares it.
pub const MAX_CLASS_MODELS: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub class_id: i64,
    pub name: String,
    pub members: Vec<ClassMember>,
    /// In the class's order; a session gets one session model per enabled one.
    pub models: Vec<ClassModel>,
}

impl Class {
    /// The class with each member and each model once: a later listing of
    /// the same user or model name is dropped (the first one counts). The
    /// field rules are the proto's, checked before any use case runs.
    pub fn deduplicated(mut self) -> Self {
        let mut users = std::collections::HashSet::new();
        self.members.retain(|m| users.insert(m.user_id));
        let mut names = std::collections::HashSet::new();
        self.models.retain(|m| names.insert(m.model_name.clone()));
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassMember {
    pub user_id: i64,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassModel {
    pub model_name: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub project_id: i64,
    pub owner_user_id: i64,
    pub class_id: Option<i64>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Knowledge {
    pub knowledge_id: i64,
    pub owner_user_id: i64,
    pub project_id: Option<i64>,
    pub class_id: Option<i64>,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub agent_id: i64,
    pub owner_user_id: i64,
    pub class_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub system_prompt: Option<String>,
    pub style_preset: String,
    pub style_params: Map<String, Value>,
    pub generation_params: Map<String, Value>,
    /// In the agent's order.
    pub example_ids: Vec<i64>,
}

impl Agent {
    /// The size of its free-form objects (the other fields' rules are the
    /// proto's).
    pub fn validate(&self) -> Result<(), Error> {
        let mut v = Vec::new();
        rules::free_form("style_params", Some(&self.style_params), &mut v);
        rules::free_form("generation_params", Some(&self.generation_params), &mut v);
        rules::finish(v)
    }

    /// The frozen copy of the agent a session keeps in its settings, so later
    /// changes to the agent never change an existing session.
    pub fn snapshot(&self, updated_at: &DateTime<Utc>) -> Map<String, Value> {
        let value = json!({
            "agent_id": self.agent_id,
            "name": self.name,
            "description": self.description,
            "system_prompt": self.system_prompt,
            "style_preset": self.style_preset,
            "style_params": self.style_params,
            "generation_params": self.generation_params,
            "example_ids": self.example_ids,
            "updated_at": super::rfc3339(updated_at),
        });
        match value {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal is an object"),
        }
    }
}

/// A user's few-shot example as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub example_id: i64,
    pub user_id: i64,
    pub input_text: String,
    pub output_text: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub title: Option<String>,
    pub meta: Map<String, Value>,
}

impl NewExample {
    /// A digest of the request, to tell a replay from a different request
    /// that reuses an idempotency key.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical = json!([
            "example",
            self.title,
            self.input_text,
            self.output_text,
            self.is_active,
            self.meta
        ]);
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The size of `meta` (the other fields' rules are the proto's).
    pub fn validate(&self) -> Result<(), Error> {
        let mut v = Vec::new();
        rules::free_form("meta", Some(&self.meta), &mut v);
        rules::finish(v)
    }
}

impl ExamplePatch {
    pub fn validate(&self) -> Result<(), Error> {
        let mut v = Vec::new();
        rules::free_form("meta", self.meta.as_ref(), &mut v);
        rules::finish(v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewExample {
    pub title: Option<String>,
    pub input_text: String,
    pub output_text: String,
    pub is_active: bool,
    pub meta: Map<String, Value>,
}

/// The fields an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExamplePatch {
    /// `Some(None)` clears the title.
    pub title: Option<Option<String>>,
    pub input_text: Option<String>,
    pub output_text: Option<String>,
    pub is_active: Option<bool>,
    pub meta: Option<Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_has_every_agent_field() {
        let agent = Agent {
            agent_id: 8,
            owner_user_id: 1,
            class_id: None,
            name: "Tutor".into(),
            description: None,
            system_prompt: Some("Be kind".into()),
            style_preset: "balanced".into(),
            style_params: Map::new(),
            generation_params: json!({"max_tokens": 512}).as_object().unwrap().clone(),
            example_ids: vec![4, 2],
        };
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let snap = Value::Object(agent.snapshot(&t));
        assert_eq!(snap["agent_id"], 8);
        assert_eq!(snap["description"], Value::Null);
        assert_eq!(snap["generation_params"]["max_tokens"], 512);
        assert_eq!(snap["example_ids"], json!([4, 2]));
        assert_eq!(snap["updated_at"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(snap.as_object().unwrap().len(), 9);
    }
}
