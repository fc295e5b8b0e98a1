//! Proto3 JSON in, as the contract maps it (out is `json_out`):
//! prost-reflect parses (both field spellings, integers as numbers or
//! decimal strings, `null` as absent, unknown fields refused); this module
//! assembles the JSON object from body, query and path first, and names
//! the offending field when parsing fails.

use prost_reflect::{DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
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
    crate::api::layers::validate::message_built();
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

#[cfg(test)]
pub(super) mod tests {
    use super::super::json_out::message_to_json;
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;
    use prost_reflect::DescriptorPool;

    pub(in crate::api::layers::transcode) fn desc(name: &str) -> MessageDescriptor {
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
}
