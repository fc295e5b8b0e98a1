//! `practice.v1.PracticeService` over gRPC (and, through the layers in front
//! of it, gRPC-Web and HTTP/JSON).

use tonic::{Request, Response, Status};

use crate::api::auth::principal;
use crate::api::convert::session_to_proto;
use crate::domain::IdempotencyKey;
use crate::domain::session::CreateSessionInput;
use crate::proto::practice::v1 as pb;
use crate::proto::practice::v1::practice_service_server::PracticeService as PracticeRpc;
use crate::service::PracticeService;

pub struct PracticeApi {
    service: PracticeService,
}

impl PracticeApi {
    pub fn new(service: PracticeService) -> Self {
        Self { service }
    }
}

/// The `idempotency-key` metadata (the `Idempotency-Key` header over HTTP).
fn idempotency_key<T>(request: &Request<T>) -> Result<Option<IdempotencyKey>, Status> {
    match request.metadata().get("idempotency-key") {
        None => Ok(None),
        Some(value) => Ok(Some(IdempotencyKey::parse(value.as_bytes())?)),
    }
}

#[tonic::async_trait]
impl PracticeRpc for PracticeApi {
    #[tracing::instrument(name = "CreateSession", skip_all, fields(user_id, session_id))]
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user = principal(&request)?.user_id()?;
        tracing::Span::current().record("user_id", user.get());
        let key = idempotency_key(&request)?;
        let r = request.into_inner();
        let input = CreateSessionInput {
            class_id: r.class_id,
            project_id: r.project_id,
            knowledge_ids: r.knowledge_ids,
            agent_id: r.agent_id,
            title: r.title,
            notes: r.notes,
        };
        let session = self.service.create_session(user, input, key).await?;
        Ok(Response::new(session_to_proto(session)))
    }

    #[tracing::instrument(name = "GetSession", skip_all, fields(user_id, session_id))]
    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user = principal(&request)?.user_id()?;
        let session_id = request.get_ref().session_id;
        let span = tracing::Span::current();
        span.record("user_id", user.get());
        span.record("session_id", session_id);
        let session = self.service.get_session(user, session_id).await?;
        Ok(Response::new(session_to_proto(session)))
    }
}
