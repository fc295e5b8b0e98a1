//! The catalog pushed by the services that own classes, projects, knowledge
//! and agents. Upserts replace the whole object; deletes are soft (the row
//! stays with a `deleted_at`) so that existing sessions keep their ids,
//! their agent snapshots and their few-shot examples, while the visibility
//! rules of new sessions skip deleted objects.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::tx::{self, TxError};
use crate::domain::{Agent, Class, Knowledge, Project, now_micros};
use crate::error::{Error, FieldViolation};

/// At most this many foreign example ids are named in one error.
const MAX_REPORTED: usize = 20;
use crate::store::{CatalogKind, Store};

#[derive(Clone)]
pub struct CatalogService {
    store: Arc<dyn Store>,
}

impl CatalogService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn upsert_class(&self, class: Class) -> Result<Class, Error> {
        let class = class.deduplicated();
        self.store.upsert_class(&class, now_micros()).await?;
        Ok(class)
    }

    pub async fn upsert_project(&self, project: Project) -> Result<Project, Error> {
        self.store.upsert_project(&project, now_micros()).await?;
        Ok(project)
    }

    pub async fn upsert_knowledge(&self, knowledge: Knowledge) -> Result<Knowledge, Error> {
        self.store
            .upsert_knowledge(&knowledge, now_micros())
            .await?;
        Ok(knowledge)
    }

    /// Replaces the agent; every example id must name an existing example.
    pub async fn upsert_agent(&self, agent: Agent) -> Result<Agent, Error> {
        agent.validate()?;
        let now = now_micros();
        tx::run(|attempt| self.upsert_agent_once(&agent, now, attempt)).await?;
        Ok(agent)
    }

    async fn upsert_agent_once(
        &self,
        agent: &Agent,
        now: DateTime<Utc>,
        attempt: u32,
    ) -> Result<(), TxError> {
        let mut tx = self.store.begin_write(attempt).await?;
        if !agent.example_ids.is_empty() {
            let found = tx.example_owners(&agent.example_ids).await?;
            let owner = |id: &i64| found.iter().find(|(found, _)| found == id).map(|f| f.1);
            if let Some(missing) = agent.example_ids.iter().find(|id| owner(id).is_none()) {
                return Err(Error::NotFound(format!("example {missing} not found")).into());
            }
            // An agent's examples are its owner's: otherwise every member
            // of its class would read another user's examples.
            let foreign: Vec<FieldViolation> = agent
                .example_ids
                .iter()
                .enumerate()
                .filter(|(_, id)| owner(id) != Some(agent.owner_user_id))
                .take(MAX_REPORTED)
                .map(|(i, id)| {
                    FieldViolation::new(
                        format!("example_ids[{i}]"),
                        format!(
                            "example {id} is not one of owner {}'s examples",
                            agent.owner_user_id
                        ),
                    )
                })
                .collect();
            if !foreign.is_empty() {
                return Err(Error::invalid(foreign).into());
            }
        }
        tx.put_agent(agent, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete(&self, kind: CatalogKind, id: i64) -> Result<(), Error> {
        let (field, what) = match kind {
            CatalogKind::Class => ("class_id", "class"),
            CatalogKind::Project => ("project_id", "project"),
            CatalogKind::Knowledge => ("knowledge_id", "knowledge item"),
            CatalogKind::Agent => ("agent_id", "agent"),
        };
        if id < 1 {
            return Err(Error::invalid_field(
                field,
                format!("must be >= 1, got {id}"),
            ));
        }
        if self.store.delete_catalog(kind, id, now_micros()).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("{what} {id} not found")))
        }
    }
}
