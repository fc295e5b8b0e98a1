//! Admission: a request's body arrives before the request takes a slot.
//!
//! Load shedding counts requests in flight, and every protocol layer reads
//! its body inside that count. A client that sends its headers and then
//! trickles its body would hold a slot (and, further in, a database
//! connection) for as long as it liked. This layer, outside the shedding,
//! waits for the whole body of a caller with a valid token, within the
//! request timeout and a size bound, and only then passes the request on
//! with its body in memory. Waiting costs a connection and a buffer, never
//! a slot meant for work.
//!
//! A request without a valid token is passed on as it is: the protocol
//! layers refuse it before reading its body (authentication always comes
//! first), so nobody's body is buffered before they are authenticated.
//! Client-streaming RPCs (reflection) are passed on too: their body is a
//! conversation, not a message.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tonic::body::Body;
use tower::Service;

use super::auth::has_valid_token;
use super::rpcs::{Rpcs, Shape};
use super::transcode::declares_body;
use super::{BoxFuture, Middleware, MiddlewareLayer, early_refusal};
use crate::auth::Authenticator;

/// Room for framing around the largest message (gRPC and Connect
/// envelopes, JSON whitespace); each protocol then applies its exact limit.
const FRAMING: usize = 64 * 1024;

#[derive(Clone)]
pub struct Admit(Arc<Inner>);

struct Inner {
    auth: Arc<Authenticator>,
    rpcs: Rpcs,
    timeout: Duration,
    limit: usize,
}

pub type AdmitLayer = MiddlewareLayer<Admit>;

impl AdmitLayer {
    pub fn new(auth: Arc<Authenticator>, rpcs: Rpcs, timeout: Duration, body_limit: usize) -> Self {
        MiddlewareLayer(Admit(Arc::new(Inner {
            auth,
            rpcs,
            timeout,
            limit: body_limit + FRAMING,
        })))
    }
}

impl Middleware for Admit {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let streaming = self
            .0
            .rpcs
            .get(request.uri().path())
            .is_some_and(|r| r.shape == Shape::ClientStream);
        if streaming || !declares_body(request.headers()) {
            return Box::pin(inner.call(request));
        }
        let this = self.0.clone();
        Box::pin(async move {
            if !has_valid_token(&this.auth, request.headers()).await {
                return inner.call(request).await;
            }
            let (parts, body) = request.into_parts();
            let refuse = |http, status| Ok(early_refusal(&parts.headers, http, status));
            let read = tokio::time::timeout(this.timeout, Limited::new(body, this.limit).collect());
            let bytes = match read.await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        tonic::Status::resource_exhausted(format!(
                            "the request body is larger than {} bytes",
                            this.limit - FRAMING
                        )),
                    );
                }
                Ok(Err(_)) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        tonic::Status::invalid_argument("the request body could not be read"),
                    );
                }
                Err(_) => {
                    return refuse(
                        StatusCode::REQUEST_TIMEOUT,
                        tonic::Status::deadline_exceeded(format!(
                            "the request body did not arrive within {} ms",
                            this.timeout.as_millis()
                        )),
                    );
                }
            };
            inner
                .call(Request::from_parts(parts, Body::new(Full::new(bytes))))
                .await
        })
    }
}
