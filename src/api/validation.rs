//! The request rules declared in the proto with `buf.validate` annotations,
//! read once from the descriptors: what the validation layer checks on
//! every request and what `/openapi.json` publishes, from one source.
//!
//! Only the rule kinds the protos use are understood (integer bounds,
//! string lengths in characters, patterns, refused substrings and allowed
//! values, list sizes, distinct items and item rules); an annotation with
//! any other rule stops the start, so no declared rule is ever silently
//! left unchecked.
//! Semantics follow protovalidate: a field with presence (`optional`, a
//! message) is checked only when set; lengths count characters.

mod json_sizes;
mod list_sizes;

use std::collections::HashMap;

use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, ReflectMessage, Value,
};

use crate::domain::rules;
use crate::error::FieldViolation;
use list_sizes::ListLimits;

/// The patterns the protos use, with the words a client reads for them.
const PATTERN_WORDS: [(&str, &str); 3] = [
    (r"[^\x00-\x20\x7F-\x9F]", "must not be blank"),
    (
        r"^[^\x00-\x1F\x7F-\x9F]*$",
        "must not contain control characters (such as newlines or tabs)",
    ),
    (
        r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        "must not be blank or contain control characters (such as newlines or tabs)",
    ),
];

/// One rule on a value.
#[derive(Debug, Clone)]
pub enum Check {
    Min(i64),
    Max(i64),
    MinChars(u64),
    MaxChars(u64),
    Pattern(regex::Regex),
    /// protovalidate's `not_contains`.
    NotContains(String),
    OneOf(Vec<String>),
    MinItems(u64),
    MaxItems(u64),
    Unique,
    /// Rules on each item of a list.
    Items(Vec<Check>),
    /// A `google.protobuf.Value` holding null, or a string under these
    /// rules (`practice.v1.string_or_null`).
    StringOrNull(Vec<Check>),
}

/// What a value other than a string or null is told where
/// `string_or_null` applies.
const NOT_STRING_OR_NULL: &str = "must be a string or null";

/// Every rule of every message that has some, by message name.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    by_message: HashMap<String, Vec<(FieldDescriptor, Vec<Check>)>>,
    lists: ListLimits,
}

impl Rules {
    pub fn from_pool(pool: &DescriptorPool) -> Result<Self, String> {
        let validate = pool.get_extension_by_name("buf.validate.field");
        let mut by_message = HashMap::new();
        for message in pool.all_messages() {
            let mut fields = Vec::new();
            for field in message.fields() {
                let Some(ext) = &validate else { break };
                let checks =
                    field_checks(ext, &field).map_err(|e| format!("{}: {e}", field.full_name()))?;
                if !checks.is_empty() {
                    fields.push((field, checks));
                }
            }
            if !fields.is_empty() {
                by_message.insert(message.full_name().to_owned(), fields);
            }
        }
        shared_rules(pool, &mut by_message)?;
        let mut rules = Self {
            by_message,
            lists: ListLimits::default(),
        };
        rules.lists = ListLimits::new(pool, &rules);
        Ok(rules)
    }

    /// The first list in `bytes`, an encoded `desc`, past its `max_items`,
    /// found without decoding the message: the check to run before
    /// `check`, so an oversized list costs no more than its bytes.
    pub fn oversized_list(
        &self,
        desc: &prost_reflect::MessageDescriptor,
        bytes: &[u8],
    ) -> Option<FieldViolation> {
        self.lists.oversized(desc, bytes)
    }

    /// The same size rules on a JSON request (`field`: the body is that
    /// one field's value), read from its text before anything is parsed.
    pub fn oversized_json(
        &self,
        desc: &prost_reflect::MessageDescriptor,
        field: Option<&FieldDescriptor>,
        text: &[u8],
    ) -> Option<FieldViolation> {
        json_sizes::oversized(&self.lists, desc, field, text)
    }

    /// The rules of one field, if it has any.
    pub fn of(&self, field: &FieldDescriptor) -> &[Check] {
        self.by_message
            .get(field.parent_message().full_name())
            .and_then(|fields| fields.iter().find(|(f, _)| f.number() == field.number()))
            .map_or(&[], |(_, checks)| checks.as_slice())
    }

    /// Every violation in `message` and the messages it holds, in field
    /// order, up to `limit` (the caller says how many are worth finding).
    pub fn check(&self, message: &DynamicMessage, limit: usize) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        self.check_message(message, "", limit, &mut out);
        out
    }

    fn check_message(
        &self,
        message: &DynamicMessage,
        prefix: &str,
        limit: usize,
        out: &mut Vec<FieldViolation>,
    ) {
        let desc = message.descriptor();
        let rules = self.by_message.get(desc.full_name());
        for field in desc.fields() {
            if out.len() >= limit {
                return;
            }
            // The path is written only for a field with rules or messages
            // inside: most fields of a request have neither.
            let path = || format!("{prefix}{}", field.name());
            let present = message.has_field(&field);
            // By number within the message found by name, so the rules hold
            // whichever copy of the descriptor set built the message.
            let found = rules.and_then(|r| r.iter().find(|(f, _)| f.number() == field.number()));
            if let Some((_, checks)) = found
                && (present || !field.supports_presence())
            {
                check_value(&message.get_field(&field), checks, &path(), limit, out);
            }
            if !present {
                continue;
            }
            // Rules of the messages a field holds.
            match message.get_field(&field).as_ref() {
                Value::Message(m) if self.by_message.contains_key(m.descriptor().full_name()) => {
                    self.check_message(m, &format!("{}.", path()), limit, out);
                }
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(m) = item
                            && self.by_message.contains_key(m.descriptor().full_name())
                        {
                            self.check_message(m, &format!("{}[{i}].", path()), limit, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn check_value(
    value: &Value,
    checks: &[Check],
    path: &str,
    limit: usize,
    out: &mut Vec<FieldViolation>,
) {
    // A list past its size limit is refused for that alone: checking each
    // of its items would cost in proportion to whatever the client sent.
    if let Some(why) = checks
        .iter()
        .filter(|c| matches!(c, Check::MaxItems(_)))
        .find_map(|c| broken(c, value))
    {
        if out.len() < limit {
            out.push(FieldViolation::new(path, why));
        }
        return;
    }
    for check in checks {
        match (check, value) {
            (Check::StringOrNull(string_checks), Value::Message(m)) => match json_kind(m) {
                Some(Value::String(s)) => {
                    check_value(&Value::String(s), string_checks, path, limit, out);
                }
                // Null, or no kind at all (which the service reads as null).
                None | Some(Value::EnumNumber(_)) => {}
                _ if out.len() < limit => {
                    out.push(FieldViolation::new(path, NOT_STRING_OR_NULL));
                }
                _ => {}
            },
            (Check::Unique, Value::List(items)) => {
                let mut seen = std::collections::HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    if out.len() >= limit {
                        return;
                    }
                    // Lists with a uniqueness rule hold integers or strings.
                    let key = match item {
                        Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    if !seen.insert(key) {
                        out.push(FieldViolation::new(
                            format!("{path}[{i}]"),
                            "duplicate item; each may appear once",
                        ));
                    }
                }
            }
            (Check::Items(item_checks), Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if out.len() >= limit {
                        return;
                    }
                    check_value(item, item_checks, &format!("{path}[{i}]"), limit, out);
                }
            }
            (check, value) => {
                if let Some(why) = broken(check, value)
                    && out.len() < limit
                {
                    out.push(FieldViolation::new(path, why));
                }
            }
        }
    }
}

/// Why `value` breaks a rule on one value, if it does.
fn broken(check: &Check, value: &Value) -> Option<String> {
    let chars = |s: &str| s.chars().count() as u64;
    Some(match (check, value) {
        (Check::Min(min), v) if as_i64(v).is_some_and(|n| n < *min) => {
            format!("must be >= {min}, got {}", as_i64(v).unwrap_or_default())
        }
        (Check::Max(max), v) if as_i64(v).is_some_and(|n| n > *max) => {
            format!("must be <= {max}, got {}", as_i64(v).unwrap_or_default())
        }
        (Check::MinChars(min), Value::String(s)) if chars(s) < *min => {
            format!("must be at least {min} characters")
        }
        (Check::MaxChars(max), Value::String(s)) if chars(s) > *max => {
            format!("at most {max} characters, got {}", chars(s))
        }
        (Check::Pattern(re), Value::String(s)) if !re.is_match(s) => pattern_words(re.as_str()),
        (Check::NotContains(part), Value::String(s)) if s.contains(part.as_str()) => {
            not_contains_words(part)
        }
        (Check::OneOf(allowed), Value::String(s)) if !allowed.contains(s) => {
            let shown: String = s.chars().take(50).collect();
            format!("must be one of {}, got {shown:?}", allowed.join(", "))
        }
        (Check::MinItems(min), Value::List(items)) if (items.len() as u64) < *min => {
            format!("at least {min} items")
        }
        (Check::MaxItems(max), Value::List(items)) if items.len() as u64 > *max => {
            too_many_items(*max, items.len() as u64)
        }
        _ => return None,
    })
}

fn too_many_items(max: u64, items: u64) -> String {
    format!("at most {max} items, got {items}")
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::I64(n) => Some(*n),
        Value::I32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

/// What a pattern means, in words where the protos' patterns are known.
pub fn pattern_words(pattern: &str) -> String {
    PATTERN_WORDS
        .iter()
        .find(|(p, _)| *p == pattern)
        .map_or_else(|| format!("must match {pattern}"), |(_, w)| (*w).to_owned())
}

/// What a `not_contains` rule refuses, in words; the protos refuse only
/// U+0000, which PostgreSQL can't store in text.
fn not_contains_words(part: &str) -> String {
    if part == "\0" {
        rules::NO_NUL.to_owned()
    } else {
        format!("must not contain {part:?}")
    }
}

/// The kind a `google.protobuf.Value` holds: its one set field's value
/// (`null_value` is an enum number).
fn json_kind(value: &DynamicMessage) -> Option<Value> {
    value.fields().next().map(|(_, v)| v.clone())
}

/// Adds the rules of the free-form fields that name a typed field's rules
/// (`practice.v1.string_or_null`). A name that doesn't resolve to a string
/// field, or the option on anything but a `google.protobuf.Value`, stops
/// the start.
fn shared_rules(
    pool: &DescriptorPool,
    by_message: &mut HashMap<String, Vec<(FieldDescriptor, Vec<Check>)>>,
) -> Result<(), String> {
    let Some(ext) = pool.get_extension_by_name("practice.v1.string_or_null") else {
        return Ok(());
    };
    let mut found = Vec::new();
    for message in pool.all_messages() {
        for field in message.fields() {
            let options = field.options();
            if !options.has_extension(&ext) {
                continue;
            }
            let named = options
                .get_extension(&ext)
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let refused =
                |why: &str| format!("{}: string_or_null {named:?} {why}", field.full_name());
            let holds_value = matches!(field.kind(), prost_reflect::Kind::Message(m)
                if m.full_name() == "google.protobuf.Value");
            if !holds_value || field.is_list() {
                return Err(refused("is only for a google.protobuf.Value field"));
            }
            let (holder, name) = named
                .rsplit_once('.')
                .ok_or_else(|| refused("is not a field"))?;
            let source = pool
                .get_message_by_name(holder)
                .and_then(|m| m.get_field_by_name(name))
                .filter(|f| f.kind() == prost_reflect::Kind::String && !f.is_list())
                .ok_or_else(|| refused("is not a string field"))?;
            let checks = by_message
                .get(holder)
                .and_then(|fields| fields.iter().find(|(f, _)| *f == source))
                .map(|(_, checks)| checks.clone())
                .unwrap_or_default();
            found.push((field, Check::StringOrNull(checks)));
        }
    }
    for (field, check) in found {
        by_message
            .entry(field.parent_message().full_name().to_owned())
            .or_default()
            .push((field, vec![check]));
    }
    Ok(())
}

/// The rules the annotation on `field` declares.
fn field_checks(ext: &ExtensionDescriptor, field: &FieldDescriptor) -> Result<Vec<Check>, String> {
    let options = field.options();
    if !options.has_extension(ext) {
        return Ok(Vec::new());
    }
    match options.get_extension(ext).as_ref() {
        Value::Message(rules) => read_rules(rules),
        _ => Ok(Vec::new()),
    }
}

/// A `buf.validate.FieldRules` message as checks.
fn read_rules(rules: &DynamicMessage) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    for (field, value) in rules.fields() {
        let Value::Message(kind) = value else {
            return Err(format!("unsupported rule {}", field.name()));
        };
        match field.name() {
            "int64" | "int32" => {
                for (f, v) in kind.fields() {
                    let n = as_i64(v).ok_or("a bound must be an integer")?;
                    checks.push(match f.name() {
                        "gte" => Check::Min(n),
                        "gt" => Check::Min(n + 1),
                        "lte" => Check::Max(n),
                        "lt" => Check::Max(n - 1),
                        other => return Err(format!("unsupported rule {other}")),
                    });
                }
            }
            "string" => {
                for (f, v) in kind.fields() {
                    checks.push(match (f.name(), v) {
                        ("min_len", Value::U64(n)) => Check::MinChars(*n),
                        ("max_len", Value::U64(n)) => Check::MaxChars(*n),
                        ("pattern", Value::String(p)) => Check::Pattern(
                            regex::Regex::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?,
                        ),
                        ("not_contains", Value::String(s)) => Check::NotContains(s.clone()),
                        ("in", Value::List(items)) => Check::OneOf(
                            items
                                .iter()
                                .filter_map(|i| i.as_str().map(str::to_owned))
                                .collect(),
                        ),
                        (other, _) => return Err(format!("unsupported rule {other}")),
                    });
                }
            }
            "repeated" => {
                for (f, v) in kind.fields() {
                    checks.push(match (f.name(), v) {
                        ("min_items", Value::U64(n)) => Check::MinItems(*n),
                        ("max_items", Value::U64(n)) => Check::MaxItems(*n),
                        ("unique", Value::Bool(true)) => Check::Unique,
                        ("items", Value::Message(items)) => Check::Items(read_rules(items)?),
                        (other, _) => return Err(format!("unsupported rule {other}")),
                    });
                }
            }
            other => return Err(format!("unsupported rule {other}")),
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests;
