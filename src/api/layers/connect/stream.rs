//! Connect streams. A Connect envelope is a gRPC frame (flag, length,
//! message), so with the proto codec the request body passes to the inner
//! gRPC call unchanged (every streaming RPC on the port, reflection
//! included) and so do the reply's messages; only the end differs: gRPC's
//! trailers become Connect's end-of-stream envelope (flag 0x02, a JSON object
//! with the error, if any, and the trailing metadata). With the JSON codec
//! or gzip, each reply message is re-enveloped: decoded and written as
//! canonical JSON, and/or compressed. (`reframe::ReframedBody` reads the
//! reply; `Envelopes` says how it is written.)

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::{Map, Value as Json, json};
use tonic::Status;

use super::super::reframe::Reframe;
use super::wire::{self, Compression};

/// The flag of a compressed envelope.
pub const COMPRESSED: u8 = 0x01;
/// The flag of Connect's end-of-stream envelope.
const END_STREAM: u8 = 0x02;

/// The one envelope of a request stream: its flags and its message.
pub fn one_envelope(bytes: &Bytes) -> Result<(u8, Bytes), Status> {
    let bad = || Status::invalid_argument("the request must be exactly one envelope");
    if bytes.len() < 5 {
        return Err(bad());
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    if bytes.len() != 5 + len || bytes[0] & END_STREAM != 0 {
        return Err(bad());
    }
    Ok((bytes[0], bytes.slice(5..)))
}

/// How the reply's messages are enveloped for the client.
pub struct Envelopes {
    /// Written as canonical JSON of this message type (the JSON codec).
    pub json: Option<MessageDescriptor>,
    pub gzip: bool,
    /// How the stream's end is told.
    pub end: StreamEnd,
}

/// The last frame of a reframed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Connect's end-of-stream envelope.
    Connect,
    /// gRPC-Web's trailer frame (the JSON payload mode, which this layer
    /// stack reframes too).
    GrpcWeb,
}

impl Envelopes {
    /// One reply message as the client's envelope.
    fn envelope(&self, message: &[u8], out: &mut BytesMut) -> Result<(), Status> {
        let mut payload = match &self.json {
            Some(desc) => {
                let message = DynamicMessage::decode(desc.clone(), message)
                    .map_err(|_| Status::internal("a reply message could not be decoded"))?;
                serde_json::to_vec(&message)
                    .map_err(|_| Status::internal("a reply message could not be written"))?
            }
            None => message.to_vec(),
        };
        let mut flags = 0;
        if self.gzip {
            payload = Compression::Gzip.compress(payload);
            flags |= COMPRESSED;
        }
        out.put_u8(flags);
        out.put_u32(payload.len() as u32);
        out.put_slice(&payload);
        Ok(())
    }
}

/// The end-of-stream envelope for a stream that ended with `status` (or
/// without error) and these trailers.
pub fn end_of_stream(status: Option<&Status>, trailers: &HeaderMap) -> Bytes {
    let mut metadata = Map::new();
    for (name, value) in trailers {
        let name = name.as_str();
        if name.starts_with("grpc-") {
            continue;
        }
        if let Ok(value) = value.to_str() {
            let entry = metadata
                .entry(name.to_owned())
                .or_insert_with(|| Json::Array(Vec::new()));
            if let Json::Array(values) = entry {
                values.push(Json::String(value.to_owned()));
            }
        }
    }
    let mut end = json!({"metadata": metadata});
    if let Some(status) = status.filter(|s| s.code() != tonic::Code::Ok) {
        end["error"] = wire::error_json(status);
    }
    let payload = serde_json::to_vec(&end).expect("JSON values serialize");
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(END_STREAM);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(&payload);
    buf.freeze()
}

impl Reframe for Envelopes {
    fn passthrough(&self) -> bool {
        self.json.is_none() && !self.gzip
    }

    fn message(&self, message: &[u8], out: &mut BytesMut) -> Result<(), Status> {
        self.envelope(message, out)
    }

    fn end(&self, status: Option<&Status>, trailers: &HeaderMap) -> Option<Bytes> {
        Some(match self.end {
            StreamEnd::Connect => end_of_stream(status, trailers),
            StreamEnd::GrpcWeb => {
                let ok = Status::ok("");
                super::super::grpc_web_json::trailer_frame(status.unwrap_or(&ok))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_stream_carries_the_error_and_metadata() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        trailers.insert("x-served-by", "a".parse().unwrap());
        let status = Status::not_found("gone");
        let bytes = end_of_stream(Some(&status), &trailers);
        assert_eq!(bytes[0], END_STREAM);
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let end: Json = serde_json::from_slice(&bytes[5..5 + len]).unwrap();
        assert_eq!(end["error"]["code"], "not_found");
        assert_eq!(end["metadata"], json!({"x-served-by": ["a"]}));
        let ok = end_of_stream(None, &HeaderMap::new());
        let end: Json = serde_json::from_slice(&ok[5..]).unwrap();
        assert!(end.get("error").is_none());
    }
}
