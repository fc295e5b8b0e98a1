//! gRPC-Web's JSON payload mode (`application/grpc-web+json`, what
//! connect-web's gRPC-Web transport sends with `useBinaryFormat: false`),
//! which tonic-web does not speak: the one framed JSON message is decoded
//! (canonical proto3 JSON), the RPC called in-process like any other, and
//! the reply framed back as JSON with a trailer frame carrying the status.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Full;
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use super::auth::caller;
use super::rpcs::Rpcs;
use super::{BoxFuture, Middleware, MiddlewareLayer, unary};
use crate::auth::Authenticator;

const CONTENT_TYPE: &str = "application/grpc-web+json";

/// The flag of a gRPC-Web trailer frame.
const TRAILER: u8 = 0x80;

#[derive(Clone)]
pub struct GrpcWebJson(Arc<Inner>);

struct Inner {
    rpcs: Rpcs,
    auth: Arc<Authenticator>,
    body_limit: usize,
}

pub type GrpcWebJsonLayer = MiddlewareLayer<GrpcWebJson>;

impl GrpcWebJsonLayer {
    pub fn new(rpcs: Rpcs, auth: Arc<Authenticator>, body_limit: usize) -> Self {
        MiddlewareLayer(GrpcWebJson(Arc::new(Inner {
            rpcs,
            auth,
            body_limit,
        })))
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
        if !is_grpc_web_json(&request) || self.0.rpcs.unary(request.uri().path()).is_none() {
            return Box::pin(inner.call(request));
        }
        let this = self.0.clone();
        Box::pin(async move {
            Ok(match this.handle(request, inner).await {
                Ok(json) => reply(Some(&json), &Status::ok("")),
                Err(status) => reply(None, &status),
            })
        })
    }
}

impl Inner {
    async fn handle<S>(&self, request: Request<Body>, inner: S) -> Result<Vec<u8>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let rpc = self.rpcs.unary(path).expect("checked before");
        // Authentication first: a refused caller's body is never read.
        let principal = match caller(&self.auth, path, &parts.headers).await {
            Ok(principal) => principal,
            Err(status) => {
                super::drain(body).await;
                return Err(status);
            }
        };
        let bytes = unary::read_body(body, self.body_limit + 5).await?;
        let message = match bytes.first() {
            Some(0) if bytes.len() >= 5 => {
                let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                bytes
                    .get(5..5 + len)
                    .ok_or_else(|| Status::invalid_argument("the request frame is cut short"))?
            }
            Some(flag) if *flag != 0 => {
                return Err(Status::unimplemented(
                    "compressed gRPC-Web messages are not supported",
                ));
            }
            _ => return Err(Status::invalid_argument("the request has no message frame")),
        };
        let body = unary::grpc_body(&rpc.json_to_proto(message)?);
        let grpc = unary::request(path, &parts.headers, principal, body)?;
        let reply = unary::call(inner, grpc).await?;
        rpc.proto_to_json(&reply)
    }
}

/// The gRPC-Web response: the message frame (on success) and the trailer
/// frame with the status.
fn reply(json: Option<&[u8]>, status: &Status) -> Response<Body> {
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
    let mut body = BytesMut::new();
    if let Some(json) = json {
        body.put_u8(0);
        body.put_u32(json.len() as u32);
        body.put_slice(json);
    }
    body.put_u8(TRAILER);
    body.put_u32(trailers.len() as u32);
    body.put_slice(trailers.as_bytes());
    let mut response = Response::new(Body::new(Full::new(Bytes::from(body))));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
