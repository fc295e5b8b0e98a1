//! Building the request message's JSON object from path variables and
//! query parameters.

use serde_json::{Map, Value as Json};

use super::json::{find_field, scalar_from_text};
use crate::error::Error;

/// Inserts `value` at a dotted field path of `object`, refusing to set a
/// field twice (path variables and body or query may not both set one).
pub(super) fn insert_field(
    desc: &prost_reflect::MessageDescriptor,
    object: &mut Map<String, Json>,
    path: &[String],
    text: &str,
    source: &str,
    repeat: bool,
) -> Result<(), Error> {
    insert_at(desc, object, path, &path.join("."), text, source, repeat)
}

/// `insert_field` one level down; `dotted` is the whole path, for errors.
fn insert_at(
    desc: &prost_reflect::MessageDescriptor,
    object: &mut Map<String, Json>,
    path: &[String],
    dotted: &str,
    text: &str,
    source: &str,
    repeat: bool,
) -> Result<(), Error> {
    let field = find_field(desc, &path[0])
        .ok_or_else(|| Error::invalid_field(dotted, format!("unknown {source} parameter")))?;
    let taken =
        |o: &Map<String, Json>| o.contains_key(field.name()) || o.contains_key(field.json_name());
    if path.len() > 1 {
        let nested = field
            .kind()
            .as_message()
            .cloned()
            .filter(|_| !field.is_list() && !field.is_map())
            .ok_or_else(|| Error::invalid_field(dotted, format!("unknown {source} parameter")))?;
        let entry = object
            .entry(field.name().to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
        let Json::Object(inner) = entry else {
            return Err(Error::invalid_field(dotted, "is set more than once"));
        };
        return insert_at(&nested, inner, &path[1..], dotted, text, source, repeat);
    }
    if field.is_map() {
        return Err(Error::invalid_field(
            dotted,
            format!("cannot be set from the {source}"),
        ));
    }
    let value = scalar_from_text(&field, text)?;
    if field.is_list() && repeat {
        match object
            .entry(field.name().to_owned())
            .or_insert_with(|| Json::Array(Vec::new()))
        {
            Json::Array(items) => items.push(value),
            _ => return Err(Error::invalid_field(dotted, "is set more than once")),
        }
        return Ok(());
    }
    if taken(object) {
        // The same value twice (`PUT /classes/5` with `"class_id": 5`) is
        // fine; a different one would let the body override the path.
        let existing = object
            .get(field.name())
            .or_else(|| object.get(field.json_name()));
        let same = match existing {
            Some(Json::String(s)) => s == text,
            Some(Json::Number(n)) => n.to_string() == text,
            Some(Json::Bool(b)) => b.to_string() == text,
            _ => false,
        };
        if same {
            return Ok(());
        }
        return Err(Error::invalid_field(
            dotted,
            format!("the {source} says {text:?}; the rest of the request may not say otherwise"),
        ));
    }
    object.insert(
        field.name().to_owned(),
        if field.is_list() {
            Json::Array(vec![value])
        } else {
            value
        },
    );
    Ok(())
}
