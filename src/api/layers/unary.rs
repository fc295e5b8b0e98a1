//! One unary RPC called in-process, as the HTTP/JSON and Connect layers make
//! it: frame the request message, call the inner gRPC service, and read its
//! reply (frames and trailers, or a Trailers-Only status) back into one
//! message or one status.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tower::Service;

/// Frames one encoded message as gRPC: flag 0 (uncompressed), length, bytes.
pub fn frame(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
    buf.freeze()
}

/// Request headers an in-process call passes on to the RPC: the caller's
/// credentials and idempotency key, trace context, deadline and ids. Nothing
/// else a client sent reaches the routes.
const FORWARDED_HEADERS: [&str; 7] = [
    "authorization",
    "idempotency-key",
    "traceparent",
    "tracestate",
    "grpc-timeout",
    "x-request-id",
    "user-agent",
];

/// The head of a gRPC request for `path`, with the headers it passes on
/// from the client's `headers`; its body is `grpc_body`.
fn grpc_request(path: &str, headers: &http::HeaderMap) -> http::request::Builder {
    let mut request = Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .version(http::Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    for name in FORWARDED_HEADERS {
        for value in headers.get_all(name) {
            request = request.header(name, value);
        }
    }
    request
}

/// The whole in-process request: `grpc_request`'s head, the body, and the
/// caller the layer authenticated (the auth layer then trusts it: request
/// extensions can't come from the network).
pub fn request(
    path: &str,
    headers: &http::HeaderMap,
    caller: Option<crate::auth::Principal>,
    body: Body,
) -> Result<Request<Body>, tonic::Status> {
    let mut request = grpc_request(path, headers)
        .body(body)
        .map_err(|_| tonic::Status::invalid_argument("the request headers are not valid"))?;
    // The caller the ingress found travels with the in-process request.
    request.extensions_mut().insert(match caller {
        Some(principal) => super::auth::Caller::Known(principal),
        None => super::auth::Caller::Public,
    });
    Ok(request)
}

/// The whole request body (in memory already, once the ingress admitted
/// it), refused past `limit` bytes without reading further.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, tonic::Status> {
    Ok(http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| too_large(limit))?
        .to_bytes())
}

/// A request past the body limit, on every protocol and in every layer:
/// `RESOURCE_EXHAUSTED`, as gRPC and Connect name a message past a limit
/// (the JSON routes answer it with 413).
pub fn too_large(limit: usize) -> tonic::Status {
    tonic::Status::resource_exhausted(format!("the request body is larger than {limit} bytes"))
}

/// Takes the next whole message off the front of a gRPC reply's bytes:
/// `None` until one has arrived whole. A compressed message is an error
/// (in-process calls never ask for compression).
pub fn next_message(pending: &mut BytesMut) -> Result<Option<Bytes>, tonic::Status> {
    if pending.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
    if pending.len() < 5 + len {
        return Ok(None);
    }
    if pending[0] & 1 != 0 {
        return Err(tonic::Status::internal("the RPC sent a compressed message"));
    }
    let mut message = pending.split_to(5 + len);
    Ok(Some(message.split_off(5).freeze()))
}

/// The first message of a request body held whole (a unary or
/// server-streaming request has exactly one), without copying it.
/// Compressed messages are not taken: in-process calls never send them,
/// and no client of this port is offered request compression.
pub fn first_message(bytes: &Bytes) -> Result<Bytes, tonic::Status> {
    match bytes.first() {
        Some(0) if bytes.len() >= 5 => {
            let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
            bytes
                .get(5..5 + len)
                .map(|_| bytes.slice(5..5 + len))
                .ok_or_else(|| tonic::Status::invalid_argument("the request frame is cut short"))
        }
        Some(flag) if *flag != 0 => Err(tonic::Status::unimplemented(
            "compressed request messages are not supported",
        )),
        _ => Err(tonic::Status::invalid_argument(
            "the request has no message frame",
        )),
    }
}

/// One encoded message as a gRPC request body.
pub fn grpc_body(message: &[u8]) -> Body {
    Body::new(Full::new(frame(message)))
}

/// Sends `request` to `inner` and reads the reply: the one response
/// message, or the status the RPC ended with.
pub async fn call<S>(mut inner: S, request: Request<Body>) -> Result<Bytes, tonic::Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    let Ok(response) = inner.call(request).await;
    reply(response).await
}

async fn reply(response: Response<Body>) -> Result<Bytes, tonic::Status> {
    // A Trailers-Only reply carries its status in the headers.
    if let Some(status) = tonic::Status::from_header_map(response.headers())
        && status.code() != tonic::Code::Ok
    {
        return Err(status);
    }
    let collected = response.into_body().collect().await?;
    let status = collected
        .trailers()
        .and_then(tonic::Status::from_header_map);
    let bytes = collected.to_bytes();
    match status {
        Some(s) if s.code() != tonic::Code::Ok => return Err(s),
        Some(_) => {}
        None if bytes.is_empty() => {
            return Err(tonic::Status::internal("the RPC ended without a status"));
        }
        None => {}
    }
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err(tonic::Status::internal("the RPC sent no readable reply"));
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    bytes
        .get(5..5 + len)
        .map(|_| bytes.slice(5..5 + len))
        .ok_or_else(|| tonic::Status::internal("the RPC reply was cut short"))
}
