//! A server-streaming RPC's reply as Server-Sent Events, written as each
//! message arrives.
//!
//! Each message is one event. When every field of the message belongs to
//! one `oneof` (an event type), the event's name is the set field's name and
//! its data that field's JSON; otherwise the event is `message` and its data
//! the whole message. A stream that ends with an error adds an `error`
//! event whose data is the `google.rpc.Status`.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tonic::Status;

use super::errors::status_json;
use super::json_out::JsonOut;
use crate::api::layers::reframe::Reframe;

/// Does the client ask for Server-Sent Events?
pub fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// One message as an event: its name and its data's JSON.
fn event(message: &DynamicMessage) -> (String, Vec<u8>) {
    let desc = message.descriptor();
    let mut oneofs = desc.oneofs();
    let single = oneofs
        .next()
        .filter(|o| oneofs.next().is_none() && o.fields().len() == desc.fields().len());
    if let Some(oneof) = single
        && let Some(field) = oneof.fields().find(|f| message.has_field(f))
        && let Value::Message(inner) = message.get_field(&field).as_ref()
    {
        let data = serde_json::to_vec(&JsonOut(inner)).expect("JSON values serialize");
        return (field.name().to_owned(), data);
    }
    let data = serde_json::to_vec(&JsonOut(message)).expect("JSON values serialize");
    ("message".to_owned(), data)
}

fn write_event(name: &str, data: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    // Compact JSON has no newlines, so one data line carries it.
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// A server stream's messages as events (read by `reframe::ReframedBody`).
pub struct Events {
    pub output: MessageDescriptor,
}

impl Reframe for Events {
    fn message(&self, bytes: &[u8], out: &mut BytesMut) -> Result<(), Status> {
        let message = DynamicMessage::decode(self.output.clone(), bytes)
            .map_err(|_| Status::internal("a reply message could not be decoded"))?;
        let (name, data) = event(&message);
        write_event(&name, &data, out);
        Ok(())
    }

    /// An `error` event if the RPC failed, else nothing.
    fn end(&self, status: Option<&Status>, _trailers: &HeaderMap) -> Option<Bytes> {
        let status = status.filter(|s| s.code() != tonic::Code::Ok)?;
        let mut out = BytesMut::new();
        let data = serde_json::to_vec(&status_json(status)).expect("JSON serializes");
        write_event("error", &data, &mut out);
        Some(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;
    use prost_reflect::DescriptorPool;

    #[test]
    fn accept_lists_are_read_whole() {
        let mut h = HeaderMap::new();
        assert!(!wants_events(&h));
        h.insert(
            "accept",
            "application/json, Text/Event-Stream;q=0.9".parse().unwrap(),
        );
        assert!(wants_events(&h));
    }

    #[test]
    fn a_oneof_message_names_its_event() {
        let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap();
        let desc = pool.get_message_by_name("practice.v1.PromptEvent").unwrap();
        let message = DynamicMessage::decode(
            desc,
            &prost::Message::encode_to_vec(&crate::proto::practice::v1::PromptEvent {
                event: Some(crate::proto::practice::v1::prompt_event::Event::Delta(
                    crate::proto::practice::v1::TextDelta {
                        session_model_id: 7,
                        text: "Hi".into(),
                    },
                )),
            })[..],
        )
        .unwrap();
        let (name, data) = event(&message);
        assert_eq!(name, "delta");
        let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"session_model_id": 7, "text": "Hi"})
        );
        let mut out = BytesMut::new();
        write_event(&name, b"{}", &mut out);
        assert_eq!(&out[..], b"event: delta\ndata: {}\n\n");
    }
}
