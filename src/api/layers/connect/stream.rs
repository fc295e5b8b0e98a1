//! Connect streams with the proto codec (`application/connect+proto`), for
//! every streaming RPC on the port, gRPC reflection included. A Connect
//! envelope is a gRPC frame (flag, length, message), so the request body
//! passes to the inner gRPC call unchanged and so do the reply's messages;
//! only the end differs: gRPC's trailers become Connect's end-of-stream
//! envelope (flag 0x02, a JSON object with the error, if any, and the
//! trailing metadata).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame};
use serde_json::{Map, Value as Json, json};
use tonic::Status;
use tonic::body::Body;

use super::wire;

/// The flag of Connect's end-of-stream envelope.
const END_STREAM: u8 = 0x02;

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

/// A gRPC reply body read as a Connect stream body.
pub struct ConnectStreamBody {
    inner: Body,
    /// A Trailers-Only reply's status, sent as the only envelope.
    early: Option<Status>,
    ended: bool,
}

impl ConnectStreamBody {
    pub fn new(inner: Body, early: Option<Status>) -> Self {
        Self {
            inner,
            early,
            ended: false,
        }
    }

    fn end(&mut self, status: Option<&Status>, trailers: &HeaderMap) -> Frame<Bytes> {
        self.ended = true;
        Frame::data(end_of_stream(status, trailers))
    }
}

impl HttpBody for ConnectStreamBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(status) = self.early.take() {
            return Poll::Ready(Some(Ok(self.end(Some(&status), &HeaderMap::new()))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                Ok(trailers) => {
                    let status = Status::from_header_map(&trailers);
                    Poll::Ready(Some(Ok(self.end(status.as_ref(), &trailers))))
                }
                Err(data) => Poll::Ready(Some(Ok(data))),
            },
            Poll::Ready(Some(Err(status))) => {
                Poll::Ready(Some(Ok(self.end(Some(&status), &HeaderMap::new()))))
            }
            Poll::Ready(None) => {
                let status = Status::internal("the RPC ended without a status");
                Poll::Ready(Some(Ok(self.end(Some(&status), &HeaderMap::new()))))
            }
        }
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
