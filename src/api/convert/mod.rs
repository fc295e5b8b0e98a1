//! Protobuf messages to and from domain values: the well-known types here,
//! each service's messages in its own module.

mod catalog;
mod conversation;
mod practice;

pub use conversation::{stats_to_proto, usage_to_proto, window_of};
pub use practice::{
    example_to_proto, id_list, response_to_proto, session_to_proto, session_to_summary,
    settings_to_proto, text_change,
};

use chrono::{DateTime, Utc};
use prost_types::value::Kind;
use serde_json::{Map, Value};

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
