//! The learner's use cases: create and read practice sessions.

use std::sync::Arc;

use crate::domain::session::CreateSessionInput;
use crate::domain::{IdempotencyKey, NewSession, Session, UserId, now_micros};
use crate::error::Error;
use crate::store::{CreateContext, Store};

#[derive(Clone)]
pub struct PracticeService {
    store: Arc<dyn Store>,
    default_models: Arc<[String]>,
}

impl PracticeService {
    pub fn new(store: Arc<dyn Store>, default_models: Vec<String>) -> Self {
        Self {
            store,
            default_models: default_models.into(),
        }
    }

    pub async fn create_session(
        &self,
        user: UserId,
        input: CreateSessionInput,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Session, Error> {
        let new = NewSession::parse(input)?;
        let ctx = CreateContext {
            user,
            idempotency_key: idempotency_key.as_ref(),
            default_models: &self.default_models,
            now: now_micros(),
        };
        let session = self.store.create_session(ctx, &new).await?;
        tracing::Span::current().record("session_id", session.session_id);
        Ok(session)
    }

    pub async fn get_session(&self, user: UserId, session_id: i64) -> Result<Session, Error> {
        if session_id < 1 {
            return Err(Error::invalid_field(
                "session_id",
                format!("must be >= 1, got {session_id}"),
            ));
        }
        self.store
            .get_session(user, session_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("session {session_id} not found")))
    }
}
