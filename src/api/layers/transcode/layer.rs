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
    pub fn new(transcoder: Transcoder) -> Self {
        MiddlewareLayer(Transcode {
            transcoder: Arc::new(transcoder),
        })
    }
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

impl Middleware for Transcode {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        match request_kind(request.headers()) {
            RequestKind::Grpc => Box::pin(inner.call(request)),
            RequestKind::Http => {
                let transcoder = self.transcoder.clone();
                Box::pin(async move { Ok(transcoder.handle(request, inner).await) })
            }
        }
    }
}
