//! The tower layers of the one port, outermost first as `startup` stacks
//! them: request ids and CORS (tower-http), [`health`] probes, [`shed`]
//! load shedding, the [`connect`] protocol, the [`transcode`] HTTP/JSON
//! layer, gRPC-Web's JSON mode ([`grpc_web_json`]), gRPC-Web (tonic-web),
//! the [`rpc`] span and deadline, and [`auth`]; then the tonic routes.
//!
//! Each of ours is a [`Middleware`]: what it does with one request. The
//! `Layer`/`Service` skeleton around it (tonic-web's shape) is written once
//! here: clone the state into each service, call the inner service that was
//! polled ready, answer with a boxed future.

pub mod auth;
pub mod connect;
pub mod grpc_web_json;
pub mod health;
pub mod ingress;
pub mod reframe;
pub mod respond;
pub mod rpc;
pub mod rpcs;
pub mod shed;
pub mod transcode;
pub mod unary;
pub mod validate;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

/// How much of a refused request's body is read and discarded, and for how
/// long at most.
const DRAIN_LIMIT: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and discards what a refused request still sends of its body
/// (bounded in size and time), so that an HTTP/1.1 client that writes its
/// body after the headers gets the refusal instead of a broken pipe, and
/// its connection stays usable. Nothing of it is parsed.
pub async fn drain(body: Body) {
    use http_body_util::{BodyExt, Limited};
    let _ = tokio::time::timeout(DRAIN_TIME, Limited::new(body, DRAIN_LIMIT).collect()).await;
}

/// The future every layer here answers with.
pub type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// What one layer does with a request: answer it itself, or pass it (maybe
/// changed) to `inner` and maybe change the answer.
pub trait Middleware: Clone + Send + Sync + 'static {
    fn call<S>(&self, inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static;
}

/// The `Layer` of a middleware.
#[derive(Clone)]
pub struct MiddlewareLayer<M>(pub M);

impl<S, M: Clone> Layer<S> for MiddlewareLayer<M> {
    type Service = MiddlewareService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        MiddlewareService {
            inner,
            middleware: self.0.clone(),
        }
    }
}

/// The `Service` of a middleware around the next one.
#[derive(Clone)]
pub struct MiddlewareService<S, M> {
    inner: S,
    middleware: M,
}

impl<S, M> Service<Request<Body>> for MiddlewareService<S, M>
where
    M: Middleware,
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready is the one to call; leave a
        // fresh clone behind for the next request (tower's contract).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.middleware.call(inner, request)
    }
}
