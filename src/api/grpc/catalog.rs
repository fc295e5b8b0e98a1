//! `practice.v1.CatalogService`: the internal catalog sync API. The auth
//! layer has already checked the `practice:admin` scope.

use tonic::{Request, Response, Status};

use crate::api::convert::{json_to_struct, struct_to_json};
use crate::domain::{Agent, Class, ClassMember, ClassModel, Knowledge, Project};
use crate::proto::practice::v1 as pb;
use crate::proto::practice::v1::catalog_service_server::CatalogService as CatalogRpc;
use crate::service::CatalogService;
use crate::store::CatalogKind;

pub struct CatalogApi {
    service: CatalogService,
}

impl CatalogApi {
    pub fn new(service: CatalogService) -> Self {
        Self { service }
    }
}

fn class_from_proto(c: pb::Class) -> Class {
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

fn class_to_proto(c: Class) -> pb::Class {
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

fn project_from_proto(p: pb::Project) -> Project {
    Project {
        project_id: p.project_id,
        owner_user_id: p.owner_user_id,
        class_id: p.class_id,
        name: p.name,
    }
}

fn project_to_proto(p: Project) -> pb::Project {
    pb::Project {
        project_id: p.project_id,
        owner_user_id: p.owner_user_id,
        class_id: p.class_id,
        name: p.name,
    }
}

fn knowledge_from_proto(k: pb::Knowledge) -> Knowledge {
    Knowledge {
        knowledge_id: k.knowledge_id,
        owner_user_id: k.owner_user_id,
        project_id: k.project_id,
        class_id: k.class_id,
        title: k.title,
    }
}

fn knowledge_to_proto(k: Knowledge) -> pb::Knowledge {
    pb::Knowledge {
        knowledge_id: k.knowledge_id,
        owner_user_id: k.owner_user_id,
        project_id: k.project_id,
        class_id: k.class_id,
        title: k.title,
    }
}

fn agent_from_proto(a: pb::Agent) -> Agent {
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

fn agent_to_proto(a: Agent) -> pb::Agent {
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

#[tonic::async_trait]
impl CatalogRpc for CatalogApi {
    async fn upsert_class(
        &self,
        request: Request<pb::Class>,
    ) -> Result<Response<pb::Class>, Status> {
        let class = self
            .service
            .upsert_class(class_from_proto(request.into_inner()))
            .await?;
        Ok(Response::new(class_to_proto(class)))
    }

    async fn upsert_project(
        &self,
        request: Request<pb::Project>,
    ) -> Result<Response<pb::Project>, Status> {
        let project = self
            .service
            .upsert_project(project_from_proto(request.into_inner()))
            .await?;
        Ok(Response::new(project_to_proto(project)))
    }

    async fn upsert_knowledge(
        &self,
        request: Request<pb::Knowledge>,
    ) -> Result<Response<pb::Knowledge>, Status> {
        let knowledge = self
            .service
            .upsert_knowledge(knowledge_from_proto(request.into_inner()))
            .await?;
        Ok(Response::new(knowledge_to_proto(knowledge)))
    }

    async fn upsert_agent(
        &self,
        request: Request<pb::Agent>,
    ) -> Result<Response<pb::Agent>, Status> {
        let agent = self
            .service
            .upsert_agent(agent_from_proto(request.into_inner()))
            .await?;
        Ok(Response::new(agent_to_proto(agent)))
    }

    async fn delete_class(
        &self,
        request: Request<pb::DeleteClassRequest>,
    ) -> Result<Response<()>, Status> {
        self.service
            .delete(CatalogKind::Class, request.get_ref().class_id)
            .await?;
        Ok(Response::new(()))
    }

    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Result<Response<()>, Status> {
        self.service
            .delete(CatalogKind::Project, request.get_ref().project_id)
            .await?;
        Ok(Response::new(()))
    }

    async fn delete_knowledge(
        &self,
        request: Request<pb::DeleteKnowledgeRequest>,
    ) -> Result<Response<()>, Status> {
        self.service
            .delete(CatalogKind::Knowledge, request.get_ref().knowledge_id)
            .await?;
        Ok(Response::new(()))
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<()>, Status> {
        self.service
            .delete(CatalogKind::Agent, request.get_ref().agent_id)
            .await?;
        Ok(Response::new(()))
    }
}
