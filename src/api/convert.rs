//! Domain values to protobuf messages.

use chrono::{DateTime, Utc};
use prost_types::value::Kind;
use serde_json::{Map, Value};

use crate::domain::{self, session::Response as DomainResponse};
use crate::proto::practice::v1 as pb;

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// A JSON object as `google.protobuf.Struct`.
pub fn json_to_struct(map: Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        // Struct numbers are doubles; the JSON side prints integral ones
        // without a fraction, so 512 round-trips as 512.
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// `google.protobuf.Struct` as a JSON object; integral numbers come back as
/// integers.
pub fn struct_to_json(s: prost_types::Struct) -> Map<String, Value> {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn value_to_json(v: prost_types::Value) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => match integral(n) {
            Some(i) => Value::from(i),
            None => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        },
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
    }
}

/// The integer a `Struct` number stands for, if it is one: Struct numbers
/// are doubles, and `512` must come back as `512`, not `512.0`. Only values
/// a double holds exactly (|n| < 2^53) count.
pub fn integral(n: f64) -> Option<i64> {
    (n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0).then_some(n as i64)
}

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

fn response_to_proto(r: DomainResponse) -> pb::PracticeResponse {
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
    }
}

pub fn session_to_proto(s: domain::Session) -> pb::Session {
    let st = s.settings;
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
        settings: Some(pb::SessionSettings {
            setting_id: st.setting_id,
            session_id: st.session_id,
            created_at: Some(timestamp(st.created_at)),
            updated_at: Some(timestamp(st.updated_at)),
            style_preset: st.style_preset,
            style_params: Some(json_to_struct(st.style_params)),
            generation_params: Some(json_to_struct(st.generation_params)),
            agent_snapshot: Some(json_to_struct(st.agent_snapshot)),
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
        }),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_round_trips_integers_and_nesting() {
        let json = serde_json::json!({"max_tokens": 512, "temperature": 0.2, "stop": ["a", null], "nested": {"ok": true}});
        let map = json.as_object().unwrap().clone();
        let back = struct_to_json(json_to_struct(map.clone()));
        assert_eq!(Value::Object(back), json);
    }
}
