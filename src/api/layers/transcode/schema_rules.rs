//! What a request field's rules say in JSON Schema, for `/openapi.json`:
//! the keywords each `buf.validate` rule becomes, the shape of the
//! free-form fields whose rules the domain fixes, and when a field must be
//! sent or may be null.

use prost_reflect::{FieldDescriptor, Kind};
use serde_json::{Value as Json, json};

use crate::api::validation::Check;

/// A 64-bit integer's decimal string form, for a minimum of 0 or 1. The
/// string form is held to 18 digits, safely inside the range.
pub(super) fn int64_pattern(min: Option<i64>) -> &'static str {
    match min {
        Some(1) => "^[1-9][0-9]{0,17}$",
        Some(0) => "^(0|[1-9][0-9]{0,17})$",
        _ => "^-?[0-9]{1,18}$",
    }
}

/// The strings holding `part`: what a `not_contains` rule's `not` refuses.
/// The type keeps a null (an absent optional field) valid: a bare pattern
/// holds for every value but a string.
fn containing(part: &str) -> Json {
    json!({"type": "string", "pattern": regex::escape(part)})
}

/// Adds the rules' keywords to a request value's schema.
pub(super) fn constrain(schema: &mut Json, checks: &[Check], kind: &Kind) {
    for check in checks {
        match check {
            Check::Min(n) => {
                schema["minimum"] = json!(n);
                if matches!(kind, Kind::Int64 | Kind::Sint64 | Kind::Sfixed64) {
                    schema["pattern"] = json!(int64_pattern(Some(*n)));
                }
            }
            Check::Max(n) => schema["maximum"] = json!(n),
            Check::MinChars(n) => schema["minLength"] = json!(n),
            Check::MaxChars(n) => schema["maxLength"] = json!(n),
            Check::Pattern(re) => schema["pattern"] = json!(re.as_str()),
            Check::NotContains(part) => schema["not"] = containing(part),
            Check::OneOf(values) => schema["enum"] = json!(values),
            Check::MinItems(n) => schema["minItems"] = json!(n),
            Check::MaxItems(n) => schema["maxItems"] = json!(n),
            Check::Unique => schema["uniqueItems"] = json!(true),
            Check::Items(item) => constrain(&mut schema["items"], item, kind),
            // Null is added with the field's other nulls.
            Check::StringOrNull(text) => {
                *schema = json!({"type": "string"});
                constrain(schema, text, &Kind::String);
            }
        }
    }
    // JSON Schema counts "1" and 1 as different items, but they are the
    // same id: a list of unique 64-bit integers offers the number form
    // only, so what the document calls unique is unique to the server too
    // (which still accepts the string form).
    if checks.iter().any(|c| matches!(c, Check::Unique))
        && let Some(items) = schema.get_mut("items").and_then(Json::as_object_mut)
        && items.get("type") == Some(&json!(["integer", "string"]))
    {
        items.insert("type".into(), json!("integer"));
        items.remove("pattern");
    }
}

/// The free-form fields (`google.protobuf.Value`, `ListValue`) whose shape
/// the session edit rules fix (`domain::session_edit`), which the proto's
/// annotations can't declare on such types: what those rules accept, from
/// their limits.
pub(super) fn free_form_shape(f: &FieldDescriptor) -> Option<Json> {
    use crate::domain::session_edit::MAX_FEW_SHOT_EXAMPLES;
    Some(match f.full_name() {
        "practice.v1.UpdateSessionSettingsRequest.generation_params" => {
            crate::domain::generation::default_schema()
        }
        "practice.v1.UpdateSessionSettingsRequest.few_shot_example_ids" => json!({
            "type": ["array", "null"], "maxItems": MAX_FEW_SHOT_EXAMPLES, "uniqueItems": true,
            // A list value's numbers are doubles: integers are exact up to 2^53.
            "items": {"type": "integer", "minimum": 1, "maximum": (1i64 << 53) - 1},
        }),
        _ => return None,
    })
}

/// Does a field without presence have to be sent: do its rules refuse the
/// value it has when absent?
pub(super) fn must_be_sent(f: &FieldDescriptor, checks: &[Check]) -> bool {
    if f.supports_presence() || f.is_list() || f.is_map() {
        return false;
    }
    checks.iter().any(|c| match c {
        Check::Min(n) => *n > 0,
        Check::MinChars(n) => *n > 0,
        Check::Pattern(re) => !re.is_match(""),
        Check::OneOf(values) => !values.iter().any(String::is_empty),
        _ => false,
    })
}

pub(super) fn nullable(schema: Json) -> Json {
    match schema {
        Json::Object(mut o) => {
            if let Some(Json::Array(values)) = o.get_mut("enum") {
                values.push(Json::Null);
            }
            if let Some(Json::String(t)) = o.get("type").cloned() {
                o.insert("type".into(), json!([t, "null"]));
                Json::Object(o)
            } else if let Some(Json::Array(mut types)) = o.get("type").cloned() {
                types.push(json!("null"));
                o.insert("type".into(), Json::Array(types));
                Json::Object(o)
            } else {
                json!({"anyOf": [Json::Object(o), {"type": "null"}]})
            }
        }
        other => other,
    }
}
