//! Proto3 JSON both ways, as the contract maps it.
//!
//! In: prost-reflect parses (both field spellings, integers as numbers or
//! decimal strings, `null` as absent, unknown fields refused); this module
//! assembles the JSON object from body, query and path first, and names
//! the offending field when parsing fails.
//!
//! Out: written here, because the contract asks for what proto3 JSON
//! printers don't do: every field present (`null` for an unset nullable
//! field), 64-bit integers as numbers, proto field names, and integral
//! `Struct` numbers without a fraction (`512`, not `512.0`).

use base64::Engine;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value as Json};

use crate::error::{Error, FieldViolation};

/// Finds a field by its proto name or its JSON (lowerCamelCase) name.
pub fn find_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// A request body's JSON. Nesting past the free-form limit is refused with
/// the same plain message on every protocol, not the parser's.
pub fn parse_body(bytes: &[u8]) -> Result<Json, Error> {
    use crate::api::layers::validate::{
        MAX_NESTING, holds_too_many_json_values, is_json_nesting_error, nested_too_deeply,
        too_many_json_values,
    };
    let nested_too_deeply = || Error::invalid_field("body", nested_too_deeply());
    if holds_too_many_json_values(bytes) {
        return Err(Error::invalid_field("body", too_many_json_values()));
    }
    let value: Json = serde_json::from_slice(bytes).map_err(|e| {
        if is_json_nesting_error(&e) {
            nested_too_deeply()
        } else {
            Error::invalid_field("body", format!("not valid JSON: {e}"))
        }
    })?;
    // The body object and the message field holding a free-form value are
    // two levels that don't count.
    if depth(&value) > MAX_NESTING + 2 {
        return Err(nested_too_deeply());
    }
    Ok(value)
}

fn depth(value: &Json) -> usize {
    match value {
        Json::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        Json::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Refuses a field given under both of its names (`example_id` and
/// `exampleId`), in the object and in the messages it holds.
pub fn one_spelling_each(
    desc: &MessageDescriptor,
    object: &Map<String, Json>,
    prefix: &str,
) -> Result<(), Error> {
    for field in desc.fields() {
        let (name, json_name) = (field.name(), field.json_name());
        if name != json_name && object.contains_key(name) && object.contains_key(json_name) {
            return Err(Error::invalid_field(
                &format!("{prefix}{name}"),
                format!("is given twice, as {name} and as {json_name}; send one"),
            ));
        }
        let Some(nested) = field.kind().as_message().cloned() else {
            continue;
        };
        if nested.full_name().starts_with("google.protobuf.") {
            continue;
        }
        let value = object.get(name).or_else(|| object.get(json_name));
        match value {
            Some(Json::Object(o)) if !field.is_map() => {
                one_spelling_each(&nested, o, &format!("{prefix}{name}."))?;
            }
            Some(Json::Array(items)) if field.is_list() => {
                for (i, item) in items.iter().enumerate() {
                    if let Json::Object(o) = item {
                        one_spelling_each(&nested, o, &format!("{prefix}{name}[{i}]."))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses a JSON object into a message of type `desc`. On failure the
/// error names the first top-level field that does not parse.
pub fn parse_message(
    desc: &MessageDescriptor,
    object: Map<String, Json>,
) -> Result<DynamicMessage, Error> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let whole = Json::Object(object);
    match DynamicMessage::deserialize_with_options(desc.clone(), &whole, &options) {
        Ok(message) => Ok(message),
        Err(whole_err) => {
            let Json::Object(object) = whole else {
                unreachable!()
            };
            for (key, value) in object {
                if find_field(desc, &key).is_none() {
                    return Err(Error::invalid_field(&key, "unknown field"));
                }
                let single = Json::Object(Map::from_iter([(key.clone(), value)]));
                if let Err(e) =
                    DynamicMessage::deserialize_with_options(desc.clone(), &single, &options)
                {
                    let field = find_field(desc, &key).map_or(key, |f| f.name().to_owned());
                    return Err(Error::invalid_field(&field, describe(&e.to_string())));
                }
            }
            Err(Error::invalid(vec![FieldViolation::new(
                "body",
                describe(&whole_err.to_string()),
            )]))
        }
    }
}

/// serde's messages say "invalid type: string \"x\", expected i64"; keep
/// them, without the Rust type names that mean nothing to a JSON client.
fn describe(message: &str) -> String {
    message
        .replace("expected i64", "expected an integer")
        .replace("expected i32", "expected an integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected u32", "expected a non-negative integer")
}

/// A JSON value for one field from a path or query string: strings stay
/// strings (proto3 JSON parses numbers from them), booleans become booleans.
pub fn scalar_from_text(field: &FieldDescriptor, text: &str) -> Result<Json, Error> {
    match field.kind() {
        Kind::Bool => match text {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(Error::invalid_field(field.name(), "must be true or false")),
        },
        Kind::Message(m) if !is_scalar_like(&m) => Err(Error::invalid_field(
            field.name(),
            "cannot be set from the URL",
        )),
        _ => Ok(Json::String(text.to_owned())),
    }
}

/// Well-known message types that have a string form in proto3 JSON.
fn is_scalar_like(m: &MessageDescriptor) -> bool {
    matches!(
        m.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.BoolValue"
            | "google.protobuf.BytesValue"
    )
}

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
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;
    use prost_reflect::DescriptorPool;

    fn desc(name: &str) -> MessageDescriptor {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .unwrap()
            .get_message_by_name(name)
            .unwrap()
    }

    fn parse(json: Json) -> Result<DynamicMessage, Error> {
        let Json::Object(o) = json else { panic!() };
        parse_message(&desc("practice.v1.CreateSessionRequest"), o)
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidArgument { violations, .. } => violations[0].field.clone(),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn accepts_numbers_strings_nulls_and_both_spellings() {
        let m = parse(serde_json::json!({"class_id": "3", "projectId": 4, "knowledge_ids": ["5", 6], "agent_id": null, "title": null})).unwrap();
        let j = message_to_json(&m);
        assert_eq!(j["class_id"], 3);
        assert_eq!(j["project_id"], 4);
        assert_eq!(j["knowledge_ids"], serde_json::json!([5, 6]));
        assert_eq!(j["agent_id"], Json::Null);
        assert_eq!(j["title"], Json::Null);
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(
            field_of(parse(serde_json::json!({"class_id": 1.5})).unwrap_err()),
            "class_id"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"classId": "x"})).unwrap_err()),
            "class_id"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"class_id": true})).unwrap_err()),
            "class_id"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"class_id": 9223372036854775808u64})).unwrap_err()),
            "class_id"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"user_id": 1})).unwrap_err()),
            "user_id"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"knowledge_ids": 5})).unwrap_err()),
            "knowledge_ids"
        );
        assert_eq!(
            field_of(parse(serde_json::json!({"title": 5})).unwrap_err()),
            "title"
        );
    }

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
