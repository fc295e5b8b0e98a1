//! `practice.v1.CatalogService` messages: the catalog objects, both ways.

use super::{json_to_struct, struct_to_json};
use crate::domain::{Agent, Class, ClassMember, ClassModel, Knowledge, Project};
use crate::proto::practice::v1 as pb;

impl From<pb::Class> for Class {
    fn from(c: pb::Class) -> Self {
        Class {
            class_id: c.class_id,
            name: c.name,
            members: c
                .members
                .into_iter()
                .map(|m| ClassMember {
                    user_id: m.user_id,
                    role: m.role,
                })
                .collect(),
            models: c
                .models
                .into_iter()
                .map(|m| ClassModel {
                    model_name: m.model_name,
                    enabled: m.enabled,
                })
                .collect(),
        }
    }
}

impl From<Class> for pb::Class {
    fn from(c: Class) -> Self {
        pb::Class {
            class_id: c.class_id,
            name: c.name,
            members: c
                .members
                .into_iter()
                .map(|m| pb::ClassMember {
                    user_id: m.user_id,
                    role: m.role,
                })
                .collect(),
            models: c
                .models
                .into_iter()
                .map(|m| pb::ClassModel {
                    model_name: m.model_name,
                    enabled: m.enabled,
                })
                .collect(),
        }
    }
}

impl From<pb::Project> for Project {
    fn from(p: pb::Project) -> Self {
        Project {
            project_id: p.project_id,
            owner_user_id: p.owner_user_id,
            class_id: p.class_id,
            name: p.name,
        }
    }
}

impl From<Project> for pb::Project {
    fn from(p: Project) -> Self {
        pb::Project {
            project_id: p.project_id,
            owner_user_id: p.owner_user_id,
            class_id: p.class_id,
            name: p.name,
        }
    }
}

impl From<pb::Knowledge> for Knowledge {
    fn from(k: pb::Knowledge) -> Self {
        Knowledge {
            knowledge_id: k.knowledge_id,
            owner_user_id: k.owner_user_id,
            project_id: k.project_id,
            class_id: k.class_id,
            title: k.title,
        }
    }
}

impl From<Knowledge> for pb::Knowledge {
    fn from(k: Knowledge) -> Self {
        pb::Knowledge {
            knowledge_id: k.knowledge_id,
            owner_user_id: k.owner_user_id,
            project_id: k.project_id,
            class_id: k.class_id,
            title: k.title,
        }
    }
}

impl From<pb::Agent> for Agent {
    fn from(a: pb::Agent) -> Self {
        Agent {
            agent_id: a.agent_id,
            owner_user_id: a.owner_user_id,
            class_id: a.class_id,
            name: a.name,
            description: a.description,
            system_prompt: a.system_prompt,
            style_preset: a.style_preset,
            style_params: a.style_params.map(struct_to_json).unwrap_or_default(),
            generation_params: a.generation_params.map(struct_to_json).unwrap_or_default(),
            example_ids: a.example_ids,
        }
    }
}

impl From<Agent> for pb::Agent {
    fn from(a: Agent) -> Self {
        pb::Agent {
            agent_id: a.agent_id,
            owner_user_id: a.owner_user_id,
            class_id: a.class_id,
            name: a.name,
            description: a.description,
            system_prompt: a.system_prompt,
            style_preset: a.style_preset,
            style_params: Some(json_to_struct(a.style_params)),
            generation_params: Some(json_to_struct(a.generation_params)),
            example_ids: a.example_ids,
        }
    }
}
