//! `practice.v1.CatalogService`: the internal catalog sync API. The auth
//! layer has already checked the `practice:admin` scope.

use tonic::{Request, Response, Status};

use crate::api::convert::{stats_to_proto, usage_to_proto};
use crate::proto::practice::v1 as pb;
use crate::proto::practice::v1::catalog_service_server::CatalogService as CatalogRpc;
use crate::service::{CatalogService, StatsService, UsageService};
use crate::store::CatalogKind;

pub struct CatalogApi {
    service: CatalogService,
    usage: UsageService,
    stats: StatsService,
}

impl CatalogApi {
    pub fn new(service: CatalogService, usage: UsageService, stats: StatsService) -> Self {
        Self {
            service,
            usage,
            stats,
        }
    }
}

#[tonic::async_trait]
impl CatalogRpc for CatalogApi {
    async fn get_class_model_stats(
        &self,
        request: Request<pb::GetModelStatsRequest>,
    ) -> Result<Response<pb::ModelStats>, Status> {
        let r = request.get_ref();
        let (since, until) = crate::api::convert::window_of(r)?;
        let stats = self.stats.of_class(r.class_id, since, until).await?;
        Ok(Response::new(stats_to_proto(stats)))
    }

    async fn get_class_usage(
        &self,
        request: Request<pb::GetClassUsageRequest>,
    ) -> Result<Response<pb::Usage>, Status> {
        let class_id = request.get_ref().class_id;
        Ok(Response::new(usage_to_proto(
            self.usage.of_class(class_id).await?,
        )))
    }

    async fn upsert_class(
        &self,
        request: Request<pb::Class>,
    ) -> Result<Response<pb::Class>, Status> {
        let class = self
            .service
            .upsert_class(request.into_inner().into())
            .await?;
        Ok(Response::new(class.into()))
    }

    async fn upsert_project(
        &self,
        request: Request<pb::Project>,
    ) -> Result<Response<pb::Project>, Status> {
        let project = self
            .service
            .upsert_project(request.into_inner().into())
            .await?;
        Ok(Response::new(project.into()))
    }

    async fn upsert_knowledge(
        &self,
        request: Request<pb::Knowledge>,
    ) -> Result<Response<pb::Knowledge>, Status> {
        let knowledge = self
            .service
            .upsert_knowledge(request.into_inner().into())
            .await?;
        Ok(Response::new(knowledge.into()))
    }

    async fn upsert_agent(
        &self,
        request: Request<pb::Agent>,
    ) -> Result<Response<pb::Agent>, Status> {
        let agent = self
            .service
            .upsert_agent(request.into_inner().into())
            .await?;
        Ok(Response::new(agent.into()))
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
