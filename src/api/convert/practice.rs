//! `practice.v1.PracticeService` messages: sessions and examples.

use prost_types::value::Kind;

use super::{integral, json_to_struct, timestamp};
use crate::domain::{self, session::Response as DomainResponse};
use crate::error::Error;
use crate::proto::practice::v1 as pb;

pub fn example_to_proto(e: domain::Example) -> pb::Example {
    pb::Example {
        example_id: e.example_id,
        user_id: e.user_id,
        input_text: e.input_text,
        output_text: e.output_text,
        is_active: e.is_active,
        created_at: Some(timestamp(e.created_at)),
        updated_at: Some(timestamp(e.updated_at)),
        title: e.title,
        meta: Some(json_to_struct(e.meta)),
    }
}

pub fn response_to_proto(r: DomainResponse) -> pb::PracticeResponse {
    pb::PracticeResponse {
        response_id: r.response_id,
        session_model_id: r.session_model_id,
        session_id: r.session_id,
        model_name: r.model_name,
        prompt_text: r.prompt_text,
        response_text: r.response_text,
        created_at: Some(timestamp(r.created_at)),
        token_usage: Some(json_to_struct(r.token_usage)),
        latency_ms: r.latency_ms,
        status: r.status.as_str().to_owned(),
        error: r.error,
        first_byte_ms: r.first_byte_ms,
        prompt_id: r.prompt_id,
        attempt: r.attempt,
        rating: r.rating,
        rating_comment: r.rating_comment,
        choice: r.choice,
        cost_usd: r.cost_micros.map(|c| c as f64 / 1e6),
    }
}

pub fn session_to_proto(s: domain::Session) -> pb::Session {
    pb::Session {
        session_id: s.session_id,
        user_id: s.user_id,
        created_at: Some(timestamp(s.created_at)),
        updated_at: Some(timestamp(s.updated_at)),
        class_id: s.class_id,
        project_id: s.project_id,
        knowledge_ids: s.knowledge_ids,
        agent_id: s.agent_id,
        title: s.title,
        notes: s.notes,
        settings: Some(settings_to_proto(s.settings)),
        models: s
            .models
            .into_iter()
            .map(|m| pb::SessionModel {
                session_model_id: m.session_model_id,
                session_id: m.session_id,
                model_name: m.model_name,
                sort_order: m.sort_order,
                created_at: Some(timestamp(m.created_at)),
            })
            .collect(),
        responses: s.responses.into_iter().map(response_to_proto).collect(),
        has_more_responses: s.has_more_responses,
    }
}

pub fn settings_to_proto(st: domain::Settings) -> pb::SessionSettings {
    pb::SessionSettings {
        setting_id: st.setting_id,
        session_id: st.session_id,
        created_at: Some(timestamp(st.created_at)),
        updated_at: Some(timestamp(st.updated_at)),
        style_preset: st.style_preset,
        style_params: Some(json_to_struct(st.style_params)),
        generation_params: Some(json_to_struct(st.generation_params)),
        agent_snapshot: Some(json_to_struct(st.agent_snapshot)),
        blind: st.blind,
        continue_from: st.continue_from,
        few_shot_links: st
            .few_shot_links
            .into_iter()
            .map(|l| pb::FewShotLink {
                id: l.id,
                setting_id: l.setting_id,
                example_id: l.example_id,
                sort_order: l.sort_order,
                created_at: Some(timestamp(l.created_at)),
                example: Some(example_to_proto(l.example)),
            })
            .collect(),
    }
}

/// A session as lists show it: everything but the responses. The summary
/// has Session's field numbers, so the session's encoding (its responses
/// left out) is the summary's.
pub fn session_to_summary(mut s: domain::Session) -> pb::SessionSummary {
    s.responses.clear();
    let bytes = prost::Message::encode_to_vec(&session_to_proto(s));
    prost::Message::decode(bytes.as_slice())
        .expect("SessionSummary has Session's field numbers and types")
}

/// A text field of a patch given as `google.protobuf.Value`: absent leaves
/// it, null clears it, a string sets it.
pub fn text_change(
    field: &str,
    value: Option<prost_types::Value>,
) -> Result<Option<Option<String>>, Error> {
    match value.map(|v| v.kind) {
        None => Ok(None),
        Some(None | Some(Kind::NullValue(_))) => Ok(Some(None)),
        Some(Some(Kind::StringValue(s))) => Ok(Some(Some(s))),
        Some(Some(_)) => Err(Error::invalid_field(field, "must be a string or null")),
    }
}

/// A list of ids given as `google.protobuf.ListValue` (a JSON array).
pub fn id_list(field: &str, list: prost_types::ListValue) -> Result<Vec<i64>, Error> {
    list.values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            match v.kind {
                Some(Kind::NumberValue(n)) => integral(n).ok_or(()),
                _ => Err(()),
            }
            .map_err(|()| Error::invalid_field(&format!("{field}[{i}]"), "must be an integer"))
        })
        .collect()
}
