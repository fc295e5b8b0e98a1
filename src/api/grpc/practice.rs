//! `practice.v1.PracticeService` over gRPC (and, through the layers in front
//! of it, gRPC-Web and HTTP/JSON). The server span is the RPC layer's
//! (`api::layers::rpc`); handlers add to it rather than open their own.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::api::convert::{
    example_to_proto, id_list, response_to_proto, session_to_proto, session_to_summary,
    settings_to_proto, stats_to_proto, struct_to_json, text_change, usage_to_proto, window_of,
};
use crate::api::layers::auth::principal;
use crate::api::layers::rpc::Deadline;
use crate::domain::conversation::NewPrompt;
use crate::domain::session::CreateSessionInput;
use crate::domain::{
    ExamplePatch, IdempotencyKey, NewExample, SessionFilter, SessionPatch, SettingsPatch,
};
use crate::proto::practice::v1 as pb;
use crate::proto::practice::v1::practice_service_server::PracticeService as PracticeRpc;
use crate::service::conversation::PromptEvent;
use crate::service::joined_deltas::JoinedDeltas;
use crate::service::{
    ConversationService, ExampleService, PracticeService, StatsService, UsageService,
};

pub struct PracticeApi {
    service: PracticeService,
    examples: ExampleService,
    conversation: ConversationService,
    usage: UsageService,
    stats: StatsService,
    /// The deadline of a prompt that reached us without the RPC layer.
    prompt_timeout: Duration,
}

impl PracticeApi {
    pub fn new(
        service: PracticeService,
        examples: ExampleService,
        conversation: ConversationService,
        usage: UsageService,
        stats: StatsService,
        prompt_timeout: Duration,
    ) -> Self {
        Self {
            service,
            examples,
            conversation,
            usage,
            stats,
            prompt_timeout,
        }
    }

    /// Starts a prompt; its events, as they happen.
    async fn prompt(
        &self,
        request: Request<pb::SendPromptRequest>,
    ) -> Result<mpsc::Receiver<PromptEvent>, Status> {
        let user = principal(&request)?.user_id()?;
        let key = idempotency_key(&request)?;
        // The answers end a little before the request does, so the client
        // gets their stored outcome ("did not finish in time", "busy")
        // rather than a bare DEADLINE_EXCEEDED.
        let deadline = Deadline::of(&request, self.prompt_timeout);
        let deadline = (deadline - OUTCOME_MARGIN).max(tokio::time::Instant::now());
        let r = request.into_inner();
        tracing::Span::current().record("session_id", r.session_id);
        let prompt = NewPrompt {
            session_id: r.session_id,
            prompt_text: r.prompt_text,
            session_model_ids: r.session_model_ids,
        };
        Ok(self
            .conversation
            .send_prompt(user, prompt, key, deadline)
            .await?)
    }
}

/// How long before a prompt's request deadline its answers are ended.
const OUTCOME_MARGIN: Duration = Duration::from_millis(250);

impl PracticeApi {
    /// Starts a new attempt at a turn; its events, as they happen.
    async fn regenerate(
        &self,
        request: Request<pb::RegenerateResponseRequest>,
    ) -> Result<mpsc::Receiver<PromptEvent>, Status> {
        let user = principal(&request)?.user_id()?;
        let key = idempotency_key(&request)?;
        let deadline = Deadline::of(&request, self.prompt_timeout);
        let deadline = (deadline - OUTCOME_MARGIN).max(tokio::time::Instant::now());
        let r = request.into_inner();
        tracing::Span::current().record("session_id", r.session_id);
        Ok(self
            .conversation
            .regenerate(user, r.session_id, r.response_id, key, deadline)
            .await?)
    }
}

pub type PromptStream = Pin<Box<dyn Stream<Item = Result<pb::PromptEvent, Status>> + Send>>;

/// The `idempotency-key` metadata (the `Idempotency-Key` header over HTTP).
fn idempotency_key<T>(request: &Request<T>) -> Result<Option<IdempotencyKey>, Status> {
    match request.metadata().get("idempotency-key") {
        None => Ok(None),
        Some(value) => Ok(Some(IdempotencyKey::parse(value.as_bytes())?)),
    }
}

#[tonic::async_trait]
impl PracticeRpc for PracticeApi {
    type SendPromptStream = PromptStream;
    type RegenerateResponseStream = PromptStream;

    async fn regenerate_response(
        &self,
        request: Request<pb::RegenerateResponseRequest>,
    ) -> Result<Response<PromptStream>, Status> {
        let events = self.regenerate(request).await?;
        let stream = JoinedDeltas::new(events).map(|e| Ok(pb::PromptEvent::from(e)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn regenerate_response_and_wait(
        &self,
        request: Request<pb::RegenerateResponseRequest>,
    ) -> Result<Response<pb::RegenerateResponseResponse>, Status> {
        let mut events = self.regenerate(request).await?;
        let mut response = None;
        while let Some(event) = events.recv().await {
            if let PromptEvent::Finished(r) | PromptEvent::Failed(r) = event {
                response = Some(response_to_proto(r));
            }
        }
        Ok(Response::new(pb::RegenerateResponseResponse { response }))
    }

    async fn rate_response(
        &self,
        request: Request<pb::RateResponseRequest>,
    ) -> Result<Response<pb::PracticeResponse>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.into_inner();
        tracing::Span::current().record("session_id", r.session_id);
        let rated = self
            .conversation
            .rate(
                user,
                r.session_id,
                r.response_id,
                &r.rating,
                r.comment.as_deref(),
            )
            .await?;
        Ok(Response::new(response_to_proto(rated)))
    }

    async fn choose_response(
        &self,
        request: Request<pb::ChooseResponseRequest>,
    ) -> Result<Response<pb::ChooseResponseResponse>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.into_inner();
        tracing::Span::current().record("session_id", r.session_id);
        let turn = self
            .conversation
            .choose(user, r.session_id, r.response_id, r.tie, r.none_good)
            .await?;
        Ok(Response::new(pb::ChooseResponseResponse {
            responses: turn.into_iter().map(response_to_proto).collect(),
        }))
    }

    async fn send_prompt(
        &self,
        request: Request<pb::SendPromptRequest>,
    ) -> Result<Response<PromptStream>, Status> {
        let events = self.prompt(request).await?;
        let stream = JoinedDeltas::new(events).map(|e| Ok(pb::PromptEvent::from(e)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn send_prompt_and_wait(
        &self,
        request: Request<pb::SendPromptRequest>,
    ) -> Result<Response<pb::SendPromptResponse>, Status> {
        let mut events = self.prompt(request).await?;
        let mut responses = Vec::new();
        while let Some(event) = events.recv().await {
            if let PromptEvent::Finished(r) | PromptEvent::Failed(r) = event {
                responses.push(r);
            }
        }
        // In the models' order, whichever finished first.
        responses.sort_by_key(|r| r.response_id);
        Ok(Response::new(pb::SendPromptResponse {
            responses: responses.into_iter().map(response_to_proto).collect(),
        }))
    }

    async fn get_model_stats(
        &self,
        request: Request<pb::GetModelStatsRequest>,
    ) -> Result<Response<pb::ModelStats>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.get_ref();
        let (since, until) = window_of(r)?;
        let stats = self
            .stats
            .for_teacher(user, r.class_id, since, until)
            .await?;
        Ok(Response::new(stats_to_proto(stats)))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::Usage>, Status> {
        let user = principal(&request)?.user_id()?;
        Ok(Response::new(usage_to_proto(
            self.usage.of_user(user).await?,
        )))
    }

    async fn list_responses(
        &self,
        request: Request<pb::ListResponsesRequest>,
    ) -> Result<Response<pb::ListResponsesResponse>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.get_ref();
        tracing::Span::current().record("session_id", r.session_id);
        let page = self
            .conversation
            .list_responses(user, r.session_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListResponsesResponse {
            responses: page.responses.into_iter().map(response_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user = principal(&request)?.user_id()?;
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

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user = principal(&request)?.user_id()?;
        let session_id = request.get_ref().session_id;
        tracing::Span::current().record("session_id", session_id);
        let session = self.service.get_session(user, session_id).await?;
        Ok(Response::new(session_to_proto(session)))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.get_ref();
        let filter = SessionFilter {
            class_id: r.class_id,
            project_id: r.project_id,
        };
        let page = self
            .service
            .list_sessions(user, filter, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: page.sessions.into_iter().map(session_to_summary).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_session(
        &self,
        request: Request<pb::UpdateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.into_inner();
        tracing::Span::current().record("session_id", r.session_id);
        let patch = SessionPatch {
            title: text_change("title", r.title)?,
            notes: text_change("notes", r.notes)?,
        };
        let session = self
            .service
            .update_session(user, r.session_id, patch)
            .await?;
        Ok(Response::new(session_to_proto(session)))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<()>, Status> {
        let user = principal(&request)?.user_id()?;
        let session_id = request.get_ref().session_id;
        tracing::Span::current().record("session_id", session_id);
        self.service.delete_session(user, session_id).await?;
        Ok(Response::new(()))
    }

    async fn update_session_settings(
        &self,
        request: Request<pb::UpdateSessionSettingsRequest>,
    ) -> Result<Response<pb::SessionSettings>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.into_inner();
        tracing::Span::current().record("session_id", r.session_id);
        let patch = SettingsPatch {
            style_preset: r.style_preset,
            style_params: r.style_params.map(struct_to_json),
            generation_params: r.generation_params.map(struct_to_json),
            few_shot_example_ids: r
                .few_shot_example_ids
                .map(|ids| id_list("few_shot_example_ids", ids))
                .transpose()?,
            blind: r.blind,
            continue_from: r.continue_from,
        };
        let settings = self
            .service
            .update_settings(user, r.session_id, patch)
            .await?;
        Ok(Response::new(settings_to_proto(settings)))
    }

    async fn create_example(
        &self,
        request: Request<pb::CreateExampleRequest>,
    ) -> Result<Response<pb::Example>, Status> {
        let user = principal(&request)?.user_id()?;
        let key = idempotency_key(&request)?;
        let r = request.into_inner();
        let example = NewExample {
            title: r.title,
            input_text: r.input_text,
            output_text: r.output_text,
            is_active: r.is_active.unwrap_or(true),
            meta: r.meta.map(struct_to_json).unwrap_or_default(),
        };
        let created = self.examples.create(user, example, key).await?;
        Ok(Response::new(example_to_proto(created)))
    }

    async fn get_example(
        &self,
        request: Request<pb::GetExampleRequest>,
    ) -> Result<Response<pb::Example>, Status> {
        let user = principal(&request)?.user_id()?;
        let example = self
            .examples
            .get(user, request.get_ref().example_id)
            .await?;
        Ok(Response::new(example_to_proto(example)))
    }

    async fn list_examples(
        &self,
        request: Request<pb::ListExamplesRequest>,
    ) -> Result<Response<pb::ListExamplesResponse>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.get_ref();
        let page = self.examples.list(user, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListExamplesResponse {
            examples: page.examples.into_iter().map(example_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_example(
        &self,
        request: Request<pb::UpdateExampleRequest>,
    ) -> Result<Response<pb::Example>, Status> {
        let user = principal(&request)?.user_id()?;
        let r = request.into_inner();
        let patch = ExamplePatch {
            // An empty title clears it (JSON null means "absent" in proto3).
            title: r.title.map(|t| Some(t).filter(|t| !t.is_empty())),
            input_text: r.input_text,
            output_text: r.output_text,
            is_active: r.is_active,
            meta: r.meta.map(struct_to_json),
        };
        let updated = self.examples.update(user, r.example_id, patch).await?;
        Ok(Response::new(example_to_proto(updated)))
    }

    async fn delete_example(
        &self,
        request: Request<pb::DeleteExampleRequest>,
    ) -> Result<Response<()>, Status> {
        let user = principal(&request)?.user_id()?;
        self.examples
            .delete(user, request.get_ref().example_id)
            .await?;
        Ok(Response::new(()))
    }
}
