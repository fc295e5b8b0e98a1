//! The Connect protocol (connectrpc.com) on the gRPC paths, in-process: a
//! unary Connect call (`POST /pkg.Service/Method` with `application/proto`
//! or `application/json`, or `GET` with `?connect=v1&encoding=...&message=`
//! for RPCs marked `idempotency_level = NO_SIDE_EFFECTS`) is authenticated
//! from its headers, its message decoded (canonical proto3 JSON for the JSON
//! codec), and sent to the inner service as a real gRPC call; the reply or
//! the status comes back in Connect's shape. `Connect-Timeout-Ms` becomes
//! the call's `grpc-timeout`; bodies may be gzip-compressed both ways.
//! Streams with the proto codec pass through to any streaming RPC on the
//! port, gRPC reflection included; server streams also speak the JSON codec
//! and gzip (see `stream`).

pub mod stream;
pub mod wire;

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use self::wire::{Codec, Compression};
use super::auth::caller;
use super::reframe::ReframedBody;
use super::respond::{Protocol, refuse, respond};
use super::rpcs::{Rpcs, Shape};
use super::validate::Decoded;
use super::{BoxFuture, Middleware, MiddlewareLayer, unary};

/// Replies at least this large are gzipped for clients that accept it.
const COMPRESS_FROM: usize = 1024;

pub struct ConnectProtocol {
    rpcs: Rpcs,
    body_limit: usize,
}

impl ConnectProtocol {
    pub fn new(rpcs: Rpcs, body_limit: usize) -> Self {
        Self { rpcs, body_limit }
    }
}

/// Serves Connect calls; everything else passes on.
#[derive(Clone)]
pub struct Connect(Arc<ConnectProtocol>);

pub type ConnectLayer = MiddlewareLayer<Connect>;

impl ConnectLayer {
    pub fn new(protocol: ConnectProtocol) -> Self {
        MiddlewareLayer(Connect(Arc::new(protocol)))
    }
}

/// How a Connect call carries its message.
enum Call {
    Post(Codec),
    Get,
    /// `application/connect+proto` or `+json`: a stream of envelopes.
    Stream(Codec),
}

pub(crate) fn media_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .split(';')
        .next()
        .map(str::trim)
}

/// Is this a Connect call: a stream to any gRPC path, or a unary call to
/// one of our unary RPCs?
fn classify(request: &Request<Body>, rpcs: &Rpcs) -> Option<Call> {
    if request.method() == Method::POST && is_grpc_path(request.uri().path()) {
        let stream_codec = media_type(request.headers())
            .and_then(|t| t.strip_prefix("application/connect+"))
            .and_then(Codec::from_name);
        if let Some(codec) = stream_codec {
            return Some(Call::Stream(codec));
        }
    }
    rpcs.unary(request.uri().path())?;
    match *request.method() {
        Method::POST => {
            let codec = media_type(request.headers())?.strip_prefix("application/")?;
            Codec::from_name(codec).map(Call::Post)
        }
        Method::GET => request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "connect=v1"))
            .then_some(Call::Get),
        _ => None,
    }
}

/// `/package.Service/Method`: the services' names are dotted, the HTTP/JSON
/// routes' first segments never are.
pub(crate) fn is_grpc_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(service, method)| {
            service.contains('.') && !method.is_empty() && !method.contains('/')
        })
}

impl Middleware for Connect {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        match classify(&request, &self.0.rpcs) {
            None => Box::pin(inner.call(request)),
            Some(call) => {
                let protocol = self.0.clone();
                Box::pin(async move {
                    Ok(protocol
                        .handle(call, request, inner)
                        .await
                        .unwrap_or_else(|status| respond(Protocol::Connect, &status)))
                })
            }
        }
    }
}

/// The message of a GET call, from its query.
struct GetMessage {
    codec: Codec,
    compression: Compression,
    bytes: Bytes,
}

fn get_message(query: &str) -> Result<GetMessage, Status> {
    let mut message = None;
    let mut encoding = None;
    let mut base64 = false;
    let mut compression = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "message" => message = Some(value.into_owned()),
            "encoding" => encoding = Some(value.into_owned()),
            "base64" => base64 = value == "1",
            "compression" => compression = Some(value.into_owned()),
            _ => {}
        }
    }
    let codec = encoding
        .as_deref()
        .and_then(Codec::from_name)
        .ok_or_else(|| Status::invalid_argument("encoding must be proto or json"))?;
    let message = message.ok_or_else(|| Status::invalid_argument("message is missing"))?;
    let bytes = if base64 {
        let trimmed = message.trim_end_matches('=');
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .map_err(|_| Status::invalid_argument("message is not valid base64url"))?
            .into()
    } else {
        Bytes::from(message.into_bytes())
    };
    Ok(GetMessage {
        codec,
        compression: Compression::from_name(compression.as_deref())?,
        bytes,
    })
}

impl ConnectProtocol {
    /// A Connect stream. Every answer is HTTP 200; a refusal is the
    /// end-of-stream error (see `stream`).
    async fn stream<S>(&self, codec: Codec, request: Request<Body>, mut inner: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let (reply, early) = match self.stream_call(codec, &path, &parts, body).await {
            Ok(grpc) => {
                let Ok(response) = inner.call(grpc).await;
                let early = Status::from_header_map(response.headers())
                    .filter(|s| s.code() != tonic::Code::Ok);
                (response.into_body(), early)
            }
            Err(status) => (Body::empty(), Some(status)),
        };
        let gzip = wire::accepts_gzip(parts.headers.get("connect-accept-encoding"));
        let envelopes = stream::Envelopes {
            json: match codec {
                Codec::Json => self.rpcs.get(&path).map(|rpc| rpc.output.clone()),
                Codec::Proto => None,
            },
            gzip,
            end: stream::StreamEnd::Connect,
        };
        let mut response = Response::new(Body::new(ReframedBody::new(reply, early, envelopes)));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, codec.stream_content_type());
        if gzip {
            headers.insert("connect-content-encoding", HeaderValue::from_static("gzip"));
        }
        response
    }

    /// The gRPC call of a Connect stream. Uncompressed proto envelopes pass
    /// through as they arrive (any streaming RPC, reflection included); the
    /// JSON codec or a compressed request needs the one request message of a
    /// server-streaming RPC, decoded here. A refusal drains the body.
    async fn stream_call(
        &self,
        codec: Codec,
        path: &str,
        parts: &http::request::Parts,
        body: Body,
    ) -> Result<Request<Body>, Status> {
        let headers = &parts.headers;
        let checked = async {
            let compression = Compression::from_name(
                headers
                    .get("connect-content-encoding")
                    .and_then(|v| v.to_str().ok()),
            )?;
            let principal = caller(&parts.extensions)?;
            Ok::<_, Status>((compression, principal))
        };
        let (compression, principal) = match checked.await {
            Ok(checked) => checked,
            Err(status) => {
                super::drain(body).await;
                return Err(status);
            }
        };
        if codec == Codec::Proto && compression == Compression::Identity {
            return grpc_call(path, headers, principal, body);
        }
        let rpc = self
            .rpcs
            .get(path)
            .filter(|rpc| rpc.shape == Shape::ServerStream)
            .ok_or_else(|| {
                Status::unimplemented(
                    "JSON and compressed Connect streams are served for server-streaming RPCs; \
                     send uncompressed application/connect+proto",
                )
            })?;
        let bytes = unary::read_body(body, self.body_limit + 5).await?;
        let (flags, payload) = stream::one_envelope(&bytes)?;
        let payload = if flags & stream::COMPRESSED != 0 {
            compression.decompress(payload, self.body_limit)?
        } else {
            payload
        };
        let (bytes, message) = encoded(rpc, codec, payload)?;
        let mut call = grpc_call(path, headers, principal, unary::grpc_body(&bytes))?;
        Decoded::attach(&mut call, message);
        Ok(call)
    }

    async fn handle<S>(
        &self,
        call: Call,
        request: Request<Body>,
        inner: S,
    ) -> Result<Response<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
        S::Future: Send,
    {
        if let Call::Stream(codec) = call {
            return Ok(self.stream(codec, request, inner).await);
        }
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let rpc = self.rpcs.unary(&path).expect("classify found the RPC");
        if let Some(version) = parts.headers.get("connect-protocol-version")
            && version != "1"
        {
            super::drain(body).await;
            return Err(Status::invalid_argument(
                "connect-protocol-version must be 1",
            ));
        }
        if matches!(call, Call::Get) && !rpc.no_side_effects {
            let mut response = refuse(
                Protocol::Connect,
                StatusCode::METHOD_NOT_ALLOWED,
                &Status::unimplemented(format!("{path} has side effects: call it with POST")),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Ok(response);
        }

        // Authentication first: a refused caller's body is never read.
        let principal = match caller(&parts.extensions).map_err(Status::from) {
            Ok(principal) => principal,
            Err(status) => {
                super::drain(body).await;
                return Err(status);
            }
        };

        let (codec, compression, bytes) = match call {
            Call::Post(codec) => {
                let compression = Compression::from_name(
                    parts
                        .headers
                        .get(header::CONTENT_ENCODING)
                        .and_then(|v| v.to_str().ok()),
                )?;
                let bytes = unary::read_body(body, self.body_limit).await?;
                (codec, compression, bytes)
            }
            Call::Get => {
                let m = get_message(parts.uri.query().unwrap_or_default())?;
                (m.codec, m.compression, m.bytes)
            }
            Call::Stream(_) => unreachable!("streams returned above"),
        };
        let bytes = compression.decompress(bytes, self.body_limit)?;
        let (bytes, message) = encoded(rpc, codec, bytes)?;
        let mut grpc = grpc_call(&path, &parts.headers, principal, unary::grpc_body(&bytes))?;
        Decoded::attach(&mut grpc, message);

        let reply = unary::call(inner, grpc).await?;
        let reply = match codec {
            Codec::Proto => reply.to_vec(),
            Codec::Json => rpc.proto_to_json(&reply)?,
        };
        let gzip = wire::accepts_gzip(parts.headers.get(header::ACCEPT_ENCODING))
            && reply.len() >= COMPRESS_FROM;
        let reply = if gzip {
            Compression::Gzip.compress(reply)
        } else {
            reply
        };
        let mut response = Response::new(Body::new(Full::new(Bytes::from(reply))));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(codec.content_type()),
        );
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(response)
    }
}

/// A request message's protobuf encoding, and the message a JSON one was
/// read into.
fn encoded(
    rpc: &super::rpcs::Rpc,
    codec: Codec,
    payload: Bytes,
) -> Result<(Bytes, Option<prost_reflect::DynamicMessage>), Status> {
    Ok(match codec {
        Codec::Proto => (payload, None),
        Codec::Json => {
            let message = rpc.json_message(&payload)?;
            (
                prost::Message::encode_to_vec(&message).into(),
                Some(message),
            )
        }
    })
}

/// The in-process gRPC call for a Connect call, with `Connect-Timeout-Ms`
/// as its `grpc-timeout`.
fn grpc_call(
    path: &str,
    headers: &HeaderMap,
    principal: Option<crate::auth::Principal>,
    body: Body,
) -> Result<Request<Body>, Status> {
    let timeout = headers
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(wire::timeout_ms);
    match timeout {
        Some(ms) => {
            let mut headers = headers.clone();
            let value = HeaderValue::from_str(&format!("{}m", ms.min(99_999_999)))
                .expect("digits and a unit are a valid header value");
            headers.insert("grpc-timeout", value);
            unary::request(path, &headers, principal, body)
        }
        None => unary::request(path, headers, principal, body),
    }
}
