//! Proto3 JSON out, as the contract maps it (in is `json`): written here,
//! because the contract asks for what proto3 JSON printers don't do: every
//! field present (`null` for an unset nullable field), 64-bit integers as
//! numbers, proto field names, and integral `Struct` numbers without a
//! fraction (`512`, not `512.0`).

use base64::Engine;
use prost_reflect::{DynamicMessage, Kind, MapKey, ReflectMessage, Value};
use serde::ser::{Serialize, SerializeMap, Serializer};
#[cfg(test)]
use serde_json::Value as Json;

/// A message as the contract's JSON, written straight to the serializer
/// (no `serde_json::Value` tree in between: building that tree cost about
/// as much as decoding the reply).
pub struct JsonOut<'a>(pub &'a DynamicMessage);

/// The message as a JSON value, for tests that inspect it (the server
/// writes `JsonOut` straight to the response body).
#[cfg(test)]
pub fn message_to_json(message: &DynamicMessage) -> Json {
    serde_json::to_value(JsonOut(message)).unwrap_or(Json::Null)
}

impl Serialize for JsonOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let desc = message.descriptor();
        match desc.full_name() {
            "google.protobuf.Timestamp" => return timestamp_text(message).serialize(s),
            "google.protobuf.Struct" => return StructOut(message).serialize(s),
            "google.protobuf.Value" => return StructValueOut(message).serialize(s),
            "google.protobuf.ListValue" => return ListValueOut(message).serialize(s),
            name if name.starts_with("google.protobuf.") => {
                // Other well-known types keep their standard proto3 JSON form.
                let options = prost_reflect::SerializeOptions::new()
                    .stringify_64_bit_integers(false)
                    .use_proto_field_name(true);
                return message.serialize_with_options(s, &options);
            }
            _ => {}
        }
        let mut map = s.serialize_map(Some(desc.fields().len()))?;
        for field in desc.fields() {
            if field.is_list()
                || field.is_map()
                || !field.supports_presence()
                || message.has_field(&field)
            {
                let value = message.get_field(&field);
                map.serialize_entry(field.name(), &FieldOut(&value, &field.kind()))?;
            } else {
                map.serialize_entry(field.name(), &())?;
            }
        }
        map.end()
    }
}

/// One field's value; `kind` names enum values and map value types.
struct FieldOut<'a>(&'a Value, &'a Kind);

impl Serialize for FieldOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let FieldOut(value, kind) = *self;
        match value {
            Value::Bool(b) => s.serialize_bool(*b),
            Value::I32(n) => s.serialize_i32(*n),
            Value::I64(n) => s.serialize_i64(*n),
            Value::U32(n) => s.serialize_u32(*n),
            Value::U64(n) => s.serialize_u64(*n),
            Value::F32(n) => serialize_float(f64::from(*n), s),
            Value::F64(n) => serialize_float(*n, s),
            Value::String(v) => s.serialize_str(v),
            Value::Bytes(b) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::EnumNumber(n) => match kind.as_enum().and_then(|e| e.get_value(*n)) {
                Some(v) => s.serialize_str(v.name()),
                None => s.serialize_i32(*n),
            },
            Value::Message(m) => JsonOut(m).serialize(s),
            Value::List(items) => s.collect_seq(items.iter().map(|v| FieldOut(v, kind))),
            Value::Map(map) => {
                let value_kind = kind
                    .as_message()
                    .map(|m| m.map_entry_value_field().kind())
                    .unwrap_or_else(|| kind.clone());
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    let key = match k {
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(n) => n.to_string(),
                        MapKey::I64(n) => n.to_string(),
                        MapKey::U32(n) => n.to_string(),
                        MapKey::U64(n) => n.to_string(),
                        MapKey::String(s) => s.clone(),
                    };
                    out.serialize_entry(&key, &FieldOut(v, &value_kind))?;
                }
                out.end()
            }
        }
    }
}

/// proto3 JSON floats: NaN and the infinities as strings.
fn serialize_float<S: Serializer>(n: f64, s: S) -> Result<S::Ok, S::Error> {
    if n.is_nan() {
        s.serialize_str("NaN")
    } else if n.is_infinite() {
        s.serialize_str(if n > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(n)
    }
}

fn timestamp_text(m: &DynamicMessage) -> Option<String> {
    let seconds = m
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = m
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(seconds, nanos.max(0) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A `google.protobuf.Struct`, keys in a stable order whatever the map's.
struct StructOut<'a>(&'a DynamicMessage);

impl Serialize for StructOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = self.0.get_field_by_name("fields");
        let mut entries: Vec<(&String, &DynamicMessage)> = match fields.as_deref() {
            Some(Value::Map(fields)) => fields
                .iter()
                .filter_map(|(k, v)| match (k, v) {
                    (MapKey::String(k), Value::Message(v)) => Some((k, v)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, &StructValueOut(v))?;
        }
        map.end()
    }
}

struct ListValueOut<'a>(&'a DynamicMessage);

impl Serialize for ListValueOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.get_field_by_name("values").as_deref() {
            Some(Value::List(items)) => s.collect_seq(items.iter().map(|v| match v {
                Value::Message(v) => Some(StructValueOut(v)),
                _ => None,
            })),
            _ => s.collect_seq(std::iter::empty::<()>()),
        }
    }
}

/// A `google.protobuf.Value`. `Struct` numbers are doubles on the wire; an
/// integral one prints as an integer so `512` round-trips as `512`.
struct StructValueOut<'a>(&'a DynamicMessage);

impl Serialize for StructValueOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let Some(oneof) = m.descriptor().oneofs().next() else {
            return s.serialize_unit();
        };
        for field in oneof.fields() {
            if !m.has_field(&field) {
                continue;
            }
            let value = m.get_field(&field);
            return match (field.name(), value.as_ref()) {
                ("number_value", Value::F64(n)) => match crate::api::convert::integral(*n) {
                    Some(i) => s.serialize_i64(i),
                    None => serialize_float(*n, s),
                },
                ("string_value", Value::String(v)) => s.serialize_str(v),
                ("bool_value", Value::Bool(b)) => s.serialize_bool(*b),
                ("struct_value", Value::Message(v)) => StructOut(v).serialize(s),
                ("list_value", Value::Message(l)) => ListValueOut(l).serialize(s),
                _ => s.serialize_unit(),
            };
        }
        s.serialize_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::super::json::tests::desc;
    use super::*;

    #[test]
    fn writes_every_field_in_order() {
        let session = desc("practice.v1.Session");
        let j = message_to_json(&DynamicMessage::new(session.clone()));
        let keys: Vec<_> = j.as_object().unwrap().keys().cloned().collect();
        // Every field, unset ones too, in the proto's declaration order.
        let declared: Vec<_> = session.fields().map(|f| f.name().to_owned()).collect();
        assert_eq!(keys, declared);
        assert_eq!(keys.len(), 14);
        assert_eq!(j["session_id"], 0);
        assert_eq!(j["knowledge_ids"], serde_json::json!([]));
        assert_eq!(j["class_id"], Json::Null);
    }

    #[test]
    fn struct_integers_stay_integers() {
        use prost::Message;
        let s = crate::api::convert::json_to_struct(
            serde_json::json!({"max_tokens": 512, "temperature": 0.2, "big": 1e300, "list": [1, 2.5, null, true, "x", {"a": 1}]})
                .as_object()
                .unwrap()
                .clone(),
        );
        let m =
            DynamicMessage::decode(desc("google.protobuf.Struct"), s.encode_to_vec().as_slice())
                .unwrap();
        let text = serde_json::to_string(&message_to_json(&m)).unwrap();
        assert_eq!(
            text,
            r#"{"big":1e+300,"list":[1,2.5,null,true,"x",{"a":1}],"max_tokens":512,"temperature":0.2}"#
        );
    }

    #[test]
    fn timestamps_are_utc_with_z() {
        use prost::Message;
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_000,
        };
        let m = DynamicMessage::decode(
            desc("google.protobuf.Timestamp"),
            t.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(message_to_json(&m), "2023-11-14T22:13:20.123456Z");
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        };
        let m = DynamicMessage::decode(
            desc("google.protobuf.Timestamp"),
            t.encode_to_vec().as_slice(),
        )
        .unwrap();
        assert_eq!(message_to_json(&m), "2023-11-14T22:13:20Z");
    }
}
