//! Load shedding: past a global number of requests in flight, a new
//! request is refused at once (`RESOURCE_EXHAUSTED`, HTTP 429) instead of
//! waiting in a queue that only grows. Sits outside every protocol, so a
//! shed request costs no parsing and no database work. Health probes are
//! always let through.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode, header};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::{Layer, Service};

use super::{BoxFuture, take_ready};

use super::transcode::errors::plain_error;

#[derive(Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = ShedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShedService {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ShedService<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

const MESSAGE: &str = "the server is at capacity; retry with backoff";

impl<S> Service<Request<Body>> for ShedService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // Probes are never shed: under load, a busy server must not look
        // like a dead one and get restarted. (The HTTP probes are answered
        // before this layer.)
        let probe = request.uri().path().starts_with("/grpc.health.v1.Health/");
        let permit = self.permits.clone().try_acquire_owned();
        if permit.is_err() && !probe {
            let grpc = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/grpc"));
            tracing::warn!("shedding load: too many requests in flight");
            let response = if grpc {
                tonic::Status::resource_exhausted(MESSAGE).into_http()
            } else {
                plain_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    tonic::Code::ResourceExhausted,
                    MESSAGE,
                )
            };
            return Box::pin(async move { Ok(response) });
        }
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            let response = inner.call(request).await;
            drop(permit);
            response
        })
    }
}
