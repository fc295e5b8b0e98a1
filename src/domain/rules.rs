//! Field checks on the free-form fields whose shape the proto's annotations
//! can't declare (the size of a free-form object, a `ListValue` of example
//! ids); each adds a field violation rather than failing fast, so a client
//! sees every problem at once. Every other field's rules are the proto's.

use serde_json::{Map, Value};

use crate::error::FieldViolation;

/// The most a free-form object (`meta`, `style_params`,
/// `generation_params`) may hold, as compact JSON. Sessions embed these
/// objects, so their size decides whether a session fits in one response.
pub const MAX_FREE_FORM_BYTES: usize = 16 * 1024;

/// What a client reads for text holding U+0000 (NUL), which PostgreSQL's
/// `text` can't store: refused on every backend alike.
pub const NO_NUL: &str = "must not contain U+0000 (NUL)";

/// A free-form object within `MAX_FREE_FORM_BYTES`.
pub fn free_form(field: &str, value: Option<&Map<String, Value>>, out: &mut Vec<FieldViolation>) {
    let Some(value) = value else {
        return;
    };
    let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if size > MAX_FREE_FORM_BYTES {
        out.push(FieldViolation::new(
            field,
            format!("at most {MAX_FREE_FORM_BYTES} bytes of JSON, got {size}"),
        ));
    }
}

/// Ids in a list: each >= 1 and each once.
pub fn distinct_ids(field: &str, ids: &[i64], max: usize, out: &mut Vec<FieldViolation>) {
    if ids.len() > max {
        out.push(FieldViolation::new(
            field,
            format!("at most {max} ids, got {}", ids.len()),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if *id < 1 {
            out.push(FieldViolation::new(
                format!("{field}[{i}]"),
                format!("must be >= 1, got {id}"),
            ));
        } else if !seen.insert(*id) {
            out.push(FieldViolation::new(
                format!("{field}[{i}]"),
                format!("duplicate id {id}; each may appear once"),
            ));
        }
    }
}

pub fn finish(violations: Vec<FieldViolation>) -> Result<(), crate::error::Error> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::invalid(violations))
    }
}
