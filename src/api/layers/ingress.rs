//! The way in: every request is authenticated once and its body read once,
//! here, before it counts as in flight.
//!
//! - The caller: the RPC a request is for (its gRPC path, or the HTTP
//!   route's) says what it needs; the token is verified from the headers
//!   alone, before any body is read, and the outcome ([`Caller`]) travels
//!   in the request's extensions. Each protocol layer refuses a refused
//!   caller in its own shape, and none verifies again.
//! - The body: an admitted caller's body is read whole, within the request
//!   timeout, the body limit and a per-process byte budget, and passed on
//!   in memory. A client that trickles its body holds a connection and its
//!   share of the budget, never a slot meant for work; many nearly complete
//!   bodies wait for room (then get 503) instead of growing the process.
//!
//! A refused caller's body is left unread for its protocol layer to drain;
//! client-streaming RPCs (reflection) pass with their body unread: it is a
//! conversation, not a message.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::body::Body;
use tower::Service;

use super::auth::Caller;
use super::respond::{Protocol, refuse};
use super::rpcs::{Rpcs, Shape};
use super::transcode::Transcoder;
use super::{BoxFuture, Middleware, MiddlewareLayer};
use crate::auth::Authenticator;

/// Room for framing around the largest message (gRPC and Connect
/// envelopes, JSON whitespace); each protocol then applies its exact limit.
const FRAMING: usize = 64 * 1024;

/// How long a body may wait for room in the byte budget before its
/// request is refused as busy.
const BUDGET_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Ingress(Arc<Inner>);

struct Inner {
    auth: Arc<Authenticator>,
    rpcs: Rpcs,
    transcoder: Arc<Transcoder>,
    timeout: Duration,
    limit: usize,
    /// The byte budget: one permit a byte.
    budget: Arc<Semaphore>,
}

pub type IngressLayer = MiddlewareLayer<Ingress>;

/// What the ingress is built from.
pub struct IngressOptions {
    pub timeout: Duration,
    pub body_limit: usize,
    pub max_buffered_bytes: usize,
}

impl IngressLayer {
    pub fn new(
        auth: Arc<Authenticator>,
        rpcs: Rpcs,
        transcoder: Arc<Transcoder>,
        options: IngressOptions,
    ) -> Self {
        MiddlewareLayer(Ingress(Arc::new(Inner {
            auth,
            rpcs,
            transcoder,
            timeout: options.timeout,
            limit: options.body_limit + FRAMING,
            budget: Arc::new(Semaphore::new(options.max_buffered_bytes)),
        })))
    }
}

impl Middleware for Ingress {
    fn call<S>(
        &self,
        mut inner: S,
        mut request: Request<Body>,
    ) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let this = self.0.clone();
        Box::pin(async move {
            let Some(path) = this.target(&request) else {
                // No RPC: the plain HTTP endpoints, 404s and 405s.
                return inner.call(request).await;
            };
            let rpc = this.rpcs.get(&path);
            let streaming = rpc.is_some_and(|rpc| rpc.shape == Shape::ClientStream);
            let access = Rpcs::access(rpc);
            let caller = Caller::check(&this.auth, access, request.headers()).await;
            let admitted = matches!(caller, Caller::Known(_));
            request.extensions_mut().insert(caller);
            if !admitted || streaming || request.body().is_end_stream() {
                return inner.call(request).await;
            }
            let (parts, body) = request.into_parts();
            let (bytes, _room) = match this.read(&parts.headers, body).await {
                Ok(read) => read,
                Err((http, status)) => {
                    let protocol = Protocol::of(&parts.method, parts.uri.path(), &parts.headers);
                    return Ok(refuse(protocol, http, &status));
                }
            };
            inner
                .call(Request::from_parts(parts, Body::new(Full::new(bytes))))
                .await
        })
    }
}

type Refusal = (StatusCode, tonic::Status);

impl Inner {
    /// The gRPC path of the RPC a request is for: its own path on the
    /// gRPC, gRPC-Web and Connect protocols (known or not: an unknown one
    /// still needs a user), the route's on the HTTP/JSON routes.
    fn target(&self, request: &Request<Body>) -> Option<String> {
        let path = request.uri().path();
        if super::connect::is_grpc_path(path) {
            return Some(path.to_owned());
        }
        self.transcoder
            .target(request.method(), path, request.headers())
            .map(str::to_owned)
    }

    /// The whole body, with its room in the budget (held while the request
    /// is served).
    async fn read(
        &self,
        headers: &HeaderMap,
        mut body: Body,
    ) -> Result<(Bytes, Vec<OwnedSemaphorePermit>), Refusal> {
        let deadline = Instant::now() + self.timeout;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.limit) {
            return Err(self.too_large());
        }
        // A declared length takes its room before a byte is read; a chunked
        // body takes room chunk by chunk.
        let mut room = Vec::new();
        if let Some(n) = declared {
            room.push(self.room(n).await?);
        }
        let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0));
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(self.too_slow()),
                Ok(None) => break,
                Ok(Some(Err(_))) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        tonic::Status::invalid_argument("the request body could not be read"),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buffer.len() + data.len() > self.limit {
                return Err(self.too_large());
            }
            if declared.is_none_or(|n| buffer.len() + data.len() > n) {
                room.push(self.room(data.len()).await?);
            }
            buffer.extend_from_slice(&data);
        }
        // Counted by a test: each request's body is read once.
        tracing::debug!(target: "ingress", bytes = buffer.len(), "request body read");
        Ok((buffer.freeze(), room))
    }

    async fn room(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Refusal> {
        let permits = u32::try_from(bytes).map_err(|_| self.too_large())?;
        match tokio::time::timeout(BUDGET_WAIT, self.budget.clone().acquire_many_owned(permits))
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Status::unavailable(
                    "the server is holding as many request bodies as it can; retry shortly",
                ),
            )),
        }
    }

    fn too_large(&self) -> Refusal {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            super::unary::too_large(self.limit - FRAMING),
        )
    }

    fn too_slow(&self) -> Refusal {
        (
            StatusCode::REQUEST_TIMEOUT,
            tonic::Status::deadline_exceeded(format!(
                "the request body did not arrive within {} ms",
                self.timeout.as_millis()
            )),
        )
    }
}
