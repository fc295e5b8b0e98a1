//! The conversation's events as `practice.v1.PromptEvent`.

use super::response_to_proto;
use crate::proto::practice::v1::{self as pb, prompt_event::Event};
use crate::service::conversation::PromptEvent;

impl From<PromptEvent> for pb::PromptEvent {
    fn from(e: PromptEvent) -> Self {
        let event = match e {
            PromptEvent::Started {
                session_model_id,
                response_id,
                model_name,
            } => Event::Started(pb::ModelStarted {
                session_model_id,
                response_id,
                model_name,
            }),
            PromptEvent::Delta {
                session_model_id,
                text,
            } => Event::Delta(pb::TextDelta {
                session_model_id,
                text,
            }),
            PromptEvent::Finished(r) => Event::Finished(response_to_proto(r)),
            PromptEvent::Failed(r) => Event::Failed(response_to_proto(r)),
        };
        pb::PromptEvent { event: Some(event) }
    }
}
