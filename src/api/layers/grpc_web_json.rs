//! gRPC-Web's JSON payload mode (`application/grpc-web+json`, what
//! connect-web's gRPC-Web transport sends with `useBinaryFormat: false`),
//! which tonic-web does not speak: the one framed JSON message is decoded
//! (canonical proto3 JSON), the RPC called in-process like any other, and
//! the reply (one message, or a server stream's messages as they arrive)
//! framed back as JSON with a trailer frame carrying the status.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Full;
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use super::auth::caller;
use super::connect::stream::{Envelopes, StreamEnd};
use super::reframe::ReframedBody;
use super::respond::{Protocol, respond};
use super::rpcs::{Rpcs, Shape};
use super::validate::Decoded;
use super::{BoxFuture, Middleware, MiddlewareLayer, unary};

const CONTENT_TYPE: &str = "application/grpc-web+json";

/// The flag of a gRPC-Web trailer frame.
const TRAILER: u8 = 0x80;

#[derive(Clone)]
pub struct GrpcWebJson(Arc<Inner>);

struct Inner {
    rpcs: Rpcs,
    body_limit: usize,
}

pub type GrpcWebJsonLayer = MiddlewareLayer<GrpcWebJson>;

impl GrpcWebJsonLayer {
    pub fn new(rpcs: Rpcs, body_limit: usize) -> Self {
        MiddlewareLayer(GrpcWebJson(Arc::new(Inner { rpcs, body_limit })))
    }
}

fn is_grpc_web_json(request: &Request<Body>) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim() == CONTENT_TYPE)
}

impl Middleware for GrpcWebJson {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let shape = self.0.rpcs.get(request.uri().path()).map(|r| r.shape);
        if !is_grpc_web_json(&request) || !matches!(shape, Some(Shape::Unary | Shape::ServerStream))
        {
            return Box::pin(inner.call(request));
        }
        let this = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let call = match this.grpc_call(parts, body).await {
                Ok(call) => call,
                Err(status) => return Ok(respond(Protocol::GrpcWebJson, &status)),
            };
            Ok(match shape {
                Some(Shape::ServerStream) => this.stream(call, inner).await,
                _ => match this.unary(call, inner).await {
                    Ok(json) => reply(Some(&json), &Status::ok("")),
                    Err(status) => respond(Protocol::GrpcWebJson, &status),
                },
            })
        })
    }
}

impl Inner {
    /// The in-process gRPC request for a gRPC-Web JSON request: the caller
    /// authenticated (before the body is read) and the one JSON message
    /// re-encoded as protobuf.
    async fn grpc_call(
        &self,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<Request<Body>, Status> {
        let path = parts.uri.path();
        let rpc = self.rpcs.get(path).expect("checked before");
        let principal = match caller(&parts.extensions).map_err(Status::from) {
            Ok(principal) => principal,
            Err(status) => {
                super::drain(body).await;
                return Err(status);
            }
        };
        let bytes = unary::read_body(body, self.body_limit + 5).await?;
        let message = unary::first_message(&bytes)?;
        let message = rpc.json_message(&message)?;
        let body = unary::grpc_body(&prost::Message::encode_to_vec(&message));
        let mut call = unary::request(path, &parts.headers, principal, body)?;
        Decoded::attach(&mut call, Some(message));
        Ok(call)
    }

    async fn unary<S>(&self, call: Request<Body>, inner: S) -> Result<Vec<u8>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        let rpc = self.rpcs.get(call.uri().path()).expect("checked before");
        let reply = unary::call(inner, call).await?;
        rpc.proto_to_json(&reply)
    }

    /// A server stream: each reply message framed as JSON as it arrives,
    /// then the trailer frame.
    async fn stream<S>(&self, call: Request<Body>, mut inner: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        let output = self
            .rpcs
            .get(call.uri().path())
            .expect("checked before")
            .output
            .clone();
        let Ok(grpc) = inner.call(call).await;
        if let Some(status) = Status::from_header_map(grpc.headers())
            && status.code() != tonic::Code::Ok
        {
            return respond(Protocol::GrpcWebJson, &status);
        }
        let envelopes = Envelopes {
            json: Some(output),
            gzip: false,
            end: StreamEnd::GrpcWeb,
        };
        let body = ReframedBody::new(grpc.into_body(), None, envelopes);
        let mut response = Response::new(Body::new(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

/// gRPC-Web's trailer frame: the status as `grpc-status`, `grpc-message`
/// and `grpc-status-details-bin` lines.
pub fn trailer_frame(status: &Status) -> Bytes {
    let mut trailers = format!("grpc-status:{}\r\n", status.code() as i32);
    if !status.message().is_empty() {
        let message = percent_encoding::utf8_percent_encode(
            status.message(),
            percent_encoding::NON_ALPHANUMERIC,
        );
        trailers.push_str(&format!("grpc-message:{message}\r\n"));
    }
    if !status.details().is_empty() {
        use base64::Engine;
        let details = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.details());
        trailers.push_str(&format!("grpc-status-details-bin:{details}\r\n"));
    }
    let mut frame = BytesMut::with_capacity(5 + trailers.len());
    frame.put_u8(TRAILER);
    frame.put_u32(trailers.len() as u32);
    frame.put_slice(trailers.as_bytes());
    frame.freeze()
}

/// The gRPC-Web response of a unary call: the message frame (on success)
/// and the trailer frame with the status.
pub(super) fn reply(json: Option<&[u8]>, status: &Status) -> Response<Body> {
    let mut body = BytesMut::new();
    if let Some(json) = json {
        body.put_u8(0);
        body.put_u32(json.len() as u32);
        body.put_slice(json);
    }
    body.extend_from_slice(&trailer_frame(status));
    let mut response = Response::new(Body::new(Full::new(Bytes::from(body))));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
