//! The size rules, checked on the encoded message before it is decoded:
//! `max_items`, and the size of free-form values (`google.protobuf.Struct`,
//! `Value`, `ListValue`). Decoding builds a value for every item, tens of
//! bytes each, so a 1 MiB body of one-byte items would cost tens of MiB
//! before a rule could refuse it. Counting on the wire costs nothing but
//! the scan. The same rules on JSON text are `json_sizes`.

use std::collections::{HashMap, HashSet};

use prost::bytes::Buf;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

use super::{Check, Rules, too_many_items};
use crate::domain::rules;
use crate::error::FieldViolation;

/// How deep the scan follows messages inside messages; past that, the
/// decoder's own recursion limit refuses the request.
const MAX_DEPTH: usize = 32;

/// For each message that holds a sized list, itself or in a message it
/// holds: the fields worth looking at, by field number.
#[derive(Debug, Clone, Default)]
pub struct ListLimits {
    by_message: HashMap<String, HashMap<u32, Look>>,
}

#[derive(Debug, Clone)]
pub(super) struct Look {
    pub(super) field: FieldDescriptor,
    /// The field's `max_items`.
    pub(super) max: Option<u64>,
    /// The field holds messages that hold sized lists.
    pub(super) look_inside: bool,
    /// The field holds a free-form value.
    pub(super) free_form: Option<FreeForm>,
}

/// The free-form types, and what bounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FreeForm {
    /// A `Struct`: at most `MAX_FREE_FORM_BYTES` of compact JSON, the
    /// domain's rule for every free-form object.
    Object,
    /// A `Value` or `ListValue` (a title, a list of ids): at most
    /// `MAX_FREE_FORM_VALUES` values.
    Other,
}

/// How many values a `Value` or `ListValue` field may hold: far above any
/// valid one (a list of 50 ids), far below what would cost memory.
pub const MAX_FREE_FORM_VALUES: u64 = 4096;

/// The largest encoding of a free-form value that can be valid: a Struct
/// takes at most six bytes of protobuf per byte of compact JSON (a number
/// `0,` is nine bytes and a wrapper), and text values hold at most 20,000
/// characters of four bytes.
const MAX_FREE_FORM_WIRE: usize = 6 * rules::MAX_FREE_FORM_BYTES;

pub(super) fn free_form_of(field: &FieldDescriptor) -> Option<FreeForm> {
    match message_of(field)?.full_name() {
        "google.protobuf.Struct" => Some(FreeForm::Object),
        "google.protobuf.Value" | "google.protobuf.ListValue" => Some(FreeForm::Other),
        _ => None,
    }
}

/// What a free-form value past its bound in JSON is told.
pub(super) fn too_large(kind: FreeForm, size: u64) -> String {
    match kind {
        FreeForm::Object => format!(
            "at most {} bytes of JSON, got {size}",
            rules::MAX_FREE_FORM_BYTES
        ),
        FreeForm::Other => format!("at most {MAX_FREE_FORM_VALUES} values, got {size}"),
    }
}

impl ListLimits {
    pub fn new(pool: &DescriptorPool, rules: &Rules) -> Self {
        let max_of = |field: &FieldDescriptor| {
            rules.of(field).iter().find_map(|c| match c {
                Check::MaxItems(max) => Some(*max),
                _ => None,
            })
        };
        // Which messages hold a sized list, to a fixed point: a message
        // holds one if a field of it is sized or holds such a message.
        let mut holders = HashSet::new();
        loop {
            let before = holders.len();
            for message in pool.all_messages() {
                let holds = message.fields().any(|f| {
                    max_of(&f).is_some()
                        || free_form_of(&f).is_some()
                        || message_of(&f).is_some_and(|m| holders.contains(m.full_name()))
                });
                if holds {
                    holders.insert(message.full_name().to_owned());
                }
            }
            if holders.len() == before {
                break;
            }
        }
        let mut by_message = HashMap::new();
        for message in pool
            .all_messages()
            .filter(|m| holders.contains(m.full_name()))
        {
            let looks: HashMap<u32, Look> = message
                .fields()
                .filter_map(|field| {
                    let max = max_of(&field);
                    let look_inside =
                        message_of(&field).is_some_and(|m| holders.contains(m.full_name()));
                    let free_form = free_form_of(&field);
                    (max.is_some() || look_inside || free_form.is_some()).then(|| {
                        (
                            field.number(),
                            Look {
                                field,
                                max,
                                look_inside,
                                free_form,
                            },
                        )
                    })
                })
                .collect();
            by_message.insert(message.full_name().to_owned(), looks);
        }
        Self { by_message }
    }

    /// The size rules to look at in a `message`, by field number.
    pub(super) fn looks(&self, message: &MessageDescriptor) -> Option<&HashMap<u32, Look>> {
        self.by_message.get(message.full_name())
    }

    /// The first list in `bytes`, an encoded `desc`, holding more items than
    /// its `max_items`, or free-form value past its bound. A message that
    /// can't be scanned is left to the decoder, which refuses it.
    pub fn oversized(&self, desc: &MessageDescriptor, bytes: &[u8]) -> Option<FieldViolation> {
        self.scan(desc, bytes, "", 0).ok().flatten()
    }

    fn scan(
        &self,
        desc: &MessageDescriptor,
        mut buf: &[u8],
        prefix: &str,
        depth: usize,
    ) -> Result<Option<FieldViolation>, ()> {
        let Some(looks) = self.by_message.get(desc.full_name()) else {
            return Ok(None);
        };
        if depth > MAX_DEPTH {
            return Ok(None);
        }
        // Items seen so far, by field number: a list may arrive in pieces.
        let mut counts: HashMap<u32, u64> = HashMap::new();
        while buf.has_remaining() {
            let (number, wire_type) = decode_key(&mut buf).map_err(drop)?;
            let Some(look) = looks.get(&number) else {
                skip_field(wire_type, number, &mut buf, DecodeContext::default()).map_err(drop)?;
                continue;
            };
            let path = format!("{prefix}{}", look.field.name());
            let seen = counts.entry(number).or_default();
            let items = if wire_type == WireType::LengthDelimited {
                let len = usize::try_from(decode_varint(&mut buf).map_err(drop)?).map_err(drop)?;
                if len > buf.remaining() {
                    return Err(());
                }
                let (payload, rest) = buf.split_at(len);
                buf = rest;
                if look.free_form.is_some() && len > MAX_FREE_FORM_WIRE {
                    return Ok(Some(FieldViolation::new(
                        path,
                        format!("at most {MAX_FREE_FORM_WIRE} bytes encoded, got {len}"),
                    )));
                }
                if let Some(message) = message_of(&look.field) {
                    if look.look_inside {
                        let inner = match look.field.is_list() {
                            true => format!("{path}[{seen}]."),
                            false => format!("{path}."),
                        };
                        if let Some(v) = self.scan(&message, payload, &inner, depth + 1)? {
                            return Ok(Some(v));
                        }
                    }
                    1
                } else {
                    packed_items(&look.field.kind(), payload)
                }
            } else {
                skip_field(wire_type, number, &mut buf, DecodeContext::default()).map_err(drop)?;
                1
            };
            *seen += items;
            if let Some(max) = look.max.filter(|max| *seen > *max) {
                return Ok(Some(FieldViolation::new(path, too_many_items(max, *seen))));
            }
        }
        Ok(None)
    }
}

fn message_of(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(m) if !field.is_map() => Some(m),
        _ => None,
    }
}

/// Items in one length-delimited record of a list of `kind`: a packed run
/// of numbers, or one string or bytes item.
fn packed_items(kind: &Kind, payload: &[u8]) -> u64 {
    let n = match kind {
        Kind::String | Kind::Bytes => 1,
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => payload.len() / 4,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => payload.len() / 8,
        // Varints: each ends at a byte below 0x80.
        _ => payload.iter().filter(|b| **b < 0x80).count(),
    };
    n as u64
}
