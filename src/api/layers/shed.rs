//! Load shedding: past a global number of requests in flight, a new
//! request is refused at once (`RESOURCE_EXHAUSTED`, HTTP 429) instead of
//! waiting in a queue that only grows. A request counts until its reply's
//! body ends, so a prompt's stream counts for as long as it streams. Sits outside every protocol, so a
//! shed request costs no parsing and no database work. Health probes are
//! always let through.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tower::Service;

use super::respond::{Protocol, respond};
use super::{BoxFuture, Middleware, MiddlewareLayer};

/// Refuses work past a number of requests in flight.
#[derive(Clone)]
pub struct Shed {
    permits: Arc<Semaphore>,
}

pub type ShedLayer = MiddlewareLayer<Shed>;

impl ShedLayer {
    pub fn new(max_in_flight: usize) -> Self {
        MiddlewareLayer(Shed {
            permits: Arc::new(Semaphore::new(max_in_flight)),
        })
    }
}

const MESSAGE: &str = "the server is at capacity; retry with backoff";

impl Middleware for Shed {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        // Probes are never shed: under load, a busy server must not look
        // like a dead one and get restarted. (The HTTP probes are answered
        // before this layer.)
        let probe = request.uri().path().starts_with("/grpc.health.v1.Health/");
        let permit = self.permits.clone().try_acquire_owned();
        if permit.is_err() && !probe {
            tracing::warn!("shedding load: too many requests in flight");
            let response = respond(
                Protocol::of(request.method(), request.uri().path(), request.headers()),
                &tonic::Status::resource_exhausted(MESSAGE),
            );
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(async move {
            let response = inner.call(request).await?;
            // The slot is held until the body ends, not just its head: a
            // stream is work in flight for as long as it streams.
            Ok(match permit {
                Ok(permit) => response.map(|body| {
                    Body::new(Held {
                        body,
                        _permit: permit,
                    })
                }),
                Err(_) => response,
            })
        })
    }
}

/// A response body that holds the request's slot until it is dropped.
struct Held {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
