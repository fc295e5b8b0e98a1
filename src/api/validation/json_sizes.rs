//! The size rules of `list_sizes` on a JSON request's text, checked before
//! any value is built: parsing builds a value for every item (tens of bytes
//! each), so a 90 KB list of 45,000 ids would cost megabytes before its
//! `max_items` could refuse it. This walks the text with serde, keeping
//! nothing but counts and the current field's path.
//!
//! What the walk can't read (malformed JSON, a wrong type) is left to the
//! parser, which refuses it with its own words.

use std::cell::RefCell;
use std::fmt;

use prost_reflect::{FieldDescriptor, MessageDescriptor};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::list_sizes::{FreeForm, ListLimits, Look, MAX_FREE_FORM_VALUES, too_large};
use super::too_many_items;
use crate::api::layers::transcode::json::find_field;
use crate::domain::rules::MAX_FREE_FORM_BYTES;
use crate::error::FieldViolation;

/// The first size rule the JSON `text` breaks: of the message `desc`, or
/// (with `field`) of that one field's value, for a body that is one field.
pub fn oversized(
    limits: &ListLimits,
    desc: &MessageDescriptor,
    field: Option<&FieldDescriptor>,
    text: &[u8],
) -> Option<FieldViolation> {
    let walk = Walk {
        limits,
        found: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let _ = match field {
        None => MessageSeed {
            walk: &walk,
            desc: desc.clone(),
            prefix: String::new(),
        }
        .deserialize(&mut de),
        Some(field) => match walk.limits.looks(desc).and_then(|l| l.get(&field.number())) {
            Some(look) => FieldSeed {
                walk: &walk,
                look,
                path: field.name().to_owned(),
            }
            .deserialize(&mut de),
            None => return None,
        },
    };
    walk.found.into_inner()
}

struct Walk<'a> {
    limits: &'a ListLimits,
    /// The violation that stopped the walk (serde's errors carry only text).
    found: RefCell<Option<FieldViolation>>,
}

impl Walk<'_> {
    fn stop<E: serde::de::Error>(&self, violation: FieldViolation) -> E {
        *self.found.borrow_mut() = Some(violation);
        E::custom("a size rule is broken")
    }
}

/// The visits of a walk that passes over scalars: where one stands in place
/// of a list or a message, the walk leaves it for the parser to judge, and
/// goes on with the fields after it.
macro_rules! skip_scalars {
    () => {
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
    };
}

/// A message: only the fields with size rules are looked into.
struct MessageSeed<'a> {
    walk: &'a Walk<'a>,
    desc: MessageDescriptor,
    prefix: String,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let looks = self.walk.limits.looks(&self.desc);
        while let Some(key) = map.next_key::<String>()? {
            let look = looks.and_then(|looks| {
                let field = find_field(&self.desc, &key)?;
                looks.get(&field.number())
            });
            match look {
                Some(look) => map.next_value_seed(FieldSeed {
                    walk: self.walk,
                    look,
                    path: format!("{}{}", self.prefix, look.field.name()),
                })?,
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(())
    }
    // Anything else is the parser's to judge.
    skip_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The value of one field with a size rule.
struct FieldSeed<'a> {
    walk: &'a Walk<'a>,
    look: &'a Look,
    path: String,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        let walk = self.walk;
        if let Some(kind) = self.look.free_form {
            let size = de.deserialize_any(Size(kind))?;
            let bound = match kind {
                FreeForm::Object => MAX_FREE_FORM_BYTES as u64,
                FreeForm::Other => MAX_FREE_FORM_VALUES,
            };
            if size > bound {
                return Err(walk.stop(FieldViolation::new(self.path, too_large(kind, size))));
            }
            return Ok(());
        }
        if self.look.field.is_list() {
            return de.deserialize_any(ListVisitor(self));
        }
        match self.look.field.kind().as_message() {
            Some(desc) if self.look.look_inside => MessageSeed {
                walk,
                desc: desc.clone(),
                prefix: format!("{}.", self.path),
            }
            .deserialize(de),
            _ => serde::Deserialize::deserialize(de).map(|IgnoredAny| ()),
        }
    }
}

struct ListVisitor<'a>(FieldSeed<'a>);

impl<'de> Visitor<'de> for ListVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let FieldSeed { walk, look, path } = self.0;
        let inner = look.field.kind().as_message().cloned();
        let mut seen = 0u64;
        loop {
            let more = match (&inner, look.look_inside) {
                (Some(desc), true) => seq
                    .next_element_seed(MessageSeed {
                        walk,
                        desc: desc.clone(),
                        prefix: format!("{path}[{seen}]."),
                    })?
                    .is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            seen += 1;
            if let Some(max) = look.max.filter(|max| seen > *max) {
                // Count on to the end, so the error says how many there were.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    seen += 1;
                }
                return Err(walk.stop(FieldViolation::new(path, too_many_items(max, seen))));
            }
        }
    }
    // A null or a wrong type is the parser's to judge.
    skip_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The size of a free-form value: for an object, the bytes of its compact
/// JSON as the domain writes it (integral numbers as integers); for
/// anything else, how many values it holds.
#[derive(Clone, Copy)]
struct Size(FreeForm);

impl Size {
    fn scalar(self, json_bytes: usize) -> u64 {
        match self.0 {
            FreeForm::Object => json_bytes as u64,
            FreeForm::Other => 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Size {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<u64, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Size {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<u64, E> {
        Ok(self.scalar(4))
    }
    fn visit_bool<E>(self, v: bool) -> Result<u64, E> {
        Ok(self.scalar(if v { 4 } else { 5 }))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_f64<E>(self, v: f64) -> Result<u64, E> {
        // Free-form numbers are doubles; integral ones print as integers.
        let text = if v.fract() == 0.0 && v.abs() < 1e15 {
            (v as i64).to_string()
        } else {
            serde_json::to_string(&v).unwrap_or_default()
        };
        Ok(self.scalar(text.len()))
    }
    fn visit_str<E>(self, v: &str) -> Result<u64, E> {
        Ok(self.scalar(json_string_len(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let (mut inside, mut items) = (0u64, 0u64);
        while let Some(item) = seq.next_element_seed(self)? {
            inside += item;
            items += 1;
        }
        Ok(self.container(inside, items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let (mut inside, mut entries) = (0u64, 0u64);
        while let Some(key) = map.next_key::<String>()? {
            if self.0 == FreeForm::Object {
                // `"key":` before the value.
                inside += json_string_len(&key) as u64 + 1;
            }
            inside += map.next_value_seed(self)?;
            entries += 1;
        }
        Ok(self.container(inside, entries))
    }
}

impl Size {
    /// A list or an object around `inside`: brackets and commas, or one
    /// value more.
    fn container(self, inside: u64, items: u64) -> u64 {
        match self.0 {
            FreeForm::Object => inside + 2 + items.saturating_sub(1),
            FreeForm::Other => inside + 1,
        }
    }
}

/// The bytes of `text` as a JSON string, quotes and escapes included.
fn json_string_len(text: &str) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, text);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_sizes_are_the_compact_json_the_domain_measures() {
        for text in [
            r#"{}"#,
            r#"{"a": 1, "b": [true, false, null, "x\"y\n"], "c": {"d": 2.5}}"#,
            r#"{"n": 1e3, "big": 123456789, "neg": -7, "u": "é\u0001"}"#,
        ] {
            let value: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).unwrap();
            let round =
                crate::api::convert::struct_to_json(crate::api::convert::json_to_struct(value));
            let expected = serde_json::to_vec(&round).unwrap().len() as u64;
            let mut de = serde_json::Deserializer::from_str(text);
            assert_eq!(
                Size(FreeForm::Object).deserialize(&mut de).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn other_free_form_values_are_counted() {
        let mut de = serde_json::Deserializer::from_str(r#"[1, [2, 3], {"a": null}, "x"]"#);
        // The list, 1, the inner list and its two items, the object, its
        // value, "x".
        assert_eq!(Size(FreeForm::Other).deserialize(&mut de).unwrap(), 8);
    }
}
