//! The transcoder as a tower layer, in tonic-web's shape: gRPC and gRPC-Web
//! requests pass straight through; anything else is the transcoder's.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response, header};
use tonic::body::Body;
use tower::{Layer, Service};

use super::Transcoder;
use crate::api::layers::{BoxFuture, take_ready};

#[derive(Clone)]
pub struct TranscodeLayer {
    transcoder: Arc<Transcoder>,
}

impl TranscodeLayer {
    pub fn new(transcoder: Transcoder) -> Self {
        Self {
            transcoder: Arc::new(transcoder),
        }
    }
}

impl<S> Layer<S> for TranscodeLayer {
    type Service = TranscodeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TranscodeService {
            inner,
            transcoder: self.transcoder.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TranscodeService<S> {
    inner: S,
    transcoder: Arc<Transcoder>,
}

/// What kind of request arrived.
enum RequestKind {
    /// gRPC or gRPC-Web: not ours.
    Grpc,
    /// Anything else: JSON routes and the plain HTTP endpoints.
    Http,
}

fn request_kind(headers: &HeaderMap) -> RequestKind {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(ct) if ct.starts_with("application/grpc") => RequestKind::Grpc,
        _ => RequestKind::Http,
    }
}

impl<S> Service<Request<Body>> for TranscodeService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        match request_kind(request.headers()) {
            RequestKind::Grpc => Box::pin(inner.call(request)),
            RequestKind::Http => {
                let transcoder = self.transcoder.clone();
                Box::pin(async move { Ok(transcoder.handle(request, inner).await) })
            }
        }
    }
}
