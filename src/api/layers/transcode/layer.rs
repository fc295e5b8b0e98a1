//! The transcoder as a tower layer, in tonic-web's shape: gRPC and gRPC-Web
//! requests pass straight through; anything else is the transcoder's.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderMap, Request, Response, header};
use tonic::body::Body;
use tower::Service;

use super::Transcoder;
use crate::api::layers::{BoxFuture, Middleware, MiddlewareLayer};

/// Transcodes HTTP/JSON requests; gRPC and gRPC-Web pass through.
#[derive(Clone)]
pub struct Transcode {
    transcoder: Arc<Transcoder>,
}

pub type TranscodeLayer = MiddlewareLayer<Transcode>;

impl TranscodeLayer {
    pub fn new(transcoder: Arc<Transcoder>) -> Self {
        MiddlewareLayer(Transcode { transcoder })
    }
}

/// A gRPC or gRPC-Web request: not the transcoder's.
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl Middleware for Transcode {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        if is_grpc(request.headers()) {
            return Box::pin(inner.call(request));
        }
        let transcoder = self.transcoder.clone();
        Box::pin(async move { Ok(transcoder.handle(request, inner).await) })
    }
}
