//! Health and readiness, in one place for every kind of prober:
//! `GET /healthz` (the process answers) and `GET /readyz` (the database is
//! reachable) for HTTP load balancers, and `grpc.health.v1.Health`, whose
//! status follows the database's and turns NOT_SERVING while draining.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use tonic::body::Body;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::Service;

use super::transcode::errors::json_response;
use super::{BoxFuture, Middleware, MiddlewareLayer};
use crate::store::Store;

/// The gRPC services whose health follows the database's.
const HEALTH_SERVICES: [&str; 3] = [
    "",
    "practice.v1.PracticeService",
    "practice.v1.CatalogService",
];

/// How often the gRPC health status checks the database.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The gRPC health service and the handle that keeps it in step with the
/// database.
pub struct GrpcHealth {
    reporter: HealthReporter,
    watcher: tokio::task::JoinHandle<()>,
}

impl GrpcHealth {
    /// Starts watching the database; returns the health service to serve.
    pub fn start(
        store: Arc<dyn Store>,
    ) -> (
        Self,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let watcher = tokio::spawn(watch_database(store, reporter.clone()));
        (Self { reporter, watcher }, service)
    }

    /// Every service NOT_SERVING from now on: the server is draining.
    pub async fn draining(self) {
        self.watcher.abort();
        for service in HEALTH_SERVICES {
            self.reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}

/// NOT_SERVING while the database can't be reached, SERVING again once it
/// can.
async fn watch_database(store: Arc<dyn Store>, health: HealthReporter) {
    let mut last = None;
    loop {
        let status = match store.ping().await {
            Ok(()) => ServingStatus::Serving,
            Err(_) => ServingStatus::NotServing,
        };
        if last != Some(status) {
            for service in HEALTH_SERVICES {
                health.set_service_status(service, status).await;
            }
            if last.is_some() {
                tracing::warn!(?status, "database health changed");
            }
            last = Some(status);
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Answers `GET /healthz` and `GET /readyz`; everything else passes on.
#[derive(Clone)]
pub struct Health {
    store: Arc<dyn Store>,
}

pub type HealthLayer = MiddlewareLayer<Health>;

impl HealthLayer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        MiddlewareLayer(Health { store })
    }
}

/// Which probe a request is, if any.
enum Probe {
    Live,
    Ready,
}

fn probe(request: &Request<Body>) -> Option<Probe> {
    if request.method() != Method::GET {
        return None;
    }
    match request.uri().path() {
        "/healthz" => Some(Probe::Live),
        "/readyz" => Some(Probe::Ready),
        _ => None,
    }
}

fn answer(serving: bool) -> Response<Body> {
    if serving {
        json_response(StatusCode::OK, &serde_json::json!({"status": "SERVING"}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "NOT_SERVING"}),
        )
    }
}

impl Middleware for Health {
    fn call<S>(&self, mut inner: S, request: Request<Body>) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        match probe(&request) {
            Some(Probe::Live) => Box::pin(async { Ok(answer(true)) }),
            Some(Probe::Ready) => {
                let store = self.store.clone();
                Box::pin(async move { Ok(answer(store.ping().await.is_ok())) })
            }
            None => Box::pin(inner.call(request)),
        }
    }
}
