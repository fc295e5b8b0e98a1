//! Health and readiness, in one place for every kind of prober:
//! `GET /healthz` (the process answers) and `GET /readyz` (the database is
//! reachable) for HTTP load balancers, and `grpc.health.v1.Health`, whose
//! status follows the database's and turns NOT_SERVING while draining.
//!
//! One watcher checks the database every `WATCH_EVERY`; both `/readyz` and
//! the gRPC health status answer from its last check, so a flood of probes
//! costs no database work.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use tonic::body::Body;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::Service;

use super::respond::json as json_response;
use super::{BoxFuture, Middleware, MiddlewareLayer};
use crate::store::Store;

/// The gRPC services whose health follows the database's.
type Services = Arc<[String]>;

/// How often the gRPC health status checks the database.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The database's reachability as of the watcher's last check.
#[derive(Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The gRPC health service and the handle that keeps it in step with the
/// database.
pub struct GrpcHealth {
    reporter: HealthReporter,
    services: Services,
    watcher: tokio::task::JoinHandle<()>,
}

impl GrpcHealth {
    /// Checks the database once, then keeps watching it; returns the health
    /// service to serve and the readiness the HTTP probe answers from.
    /// `services`: the ones whose health follows the database's (the
    /// server as a whole, "", is one too).
    pub async fn start(
        store: Arc<dyn Store>,
        services: Vec<String>,
    ) -> (
        Self,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        Readiness,
    ) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let ready = Readiness(Arc::new(AtomicBool::new(false)));
        // The first check runs before serving, so that probes, Check and
        // Watch know every service from the first request on.
        let services: Services = std::iter::once(String::new()).chain(services).collect();
        let first = check(store.as_ref(), &reporter, &services, &ready, None).await;
        let watcher = tokio::spawn(watch_database(
            store,
            reporter.clone(),
            services.clone(),
            ready.clone(),
            first,
        ));
        (
            Self {
                reporter,
                services,
                watcher,
            },
            service,
            ready,
        )
    }

    /// Every service NOT_SERVING from now on: the server is draining.
    pub async fn draining(self) {
        self.watcher.abort();
        for service in self.services.iter() {
            self.reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}

/// NOT_SERVING while the database can't be reached, SERVING again once it
/// can.
async fn watch_database(
    store: Arc<dyn Store>,
    health: HealthReporter,
    services: Services,
    ready: Readiness,
    mut last: ServingStatus,
) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        last = check(store.as_ref(), &health, &services, &ready, Some(last)).await;
    }
}

/// Pings the database and publishes what it found, where it changed.
async fn check(
    store: &dyn Store,
    health: &HealthReporter,
    services: &[String],
    ready: &Readiness,
    last: Option<ServingStatus>,
) -> ServingStatus {
    let reachable = store.ping().await.is_ok();
    ready.0.store(reachable, Ordering::Relaxed);
    let status = if reachable {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    if last != Some(status) {
        for service in services {
            health.set_service_status(service, status).await;
        }
        if last.is_some() {
            tracing::warn!(?status, "database health changed");
        }
    }
    status
}

/// Answers `GET /healthz` and `GET /readyz`; everything else passes on.
#[derive(Clone)]
pub struct Health {
    ready: Readiness,
}

pub type HealthLayer = MiddlewareLayer<Health>;

impl HealthLayer {
    pub fn new(ready: Readiness) -> Self {
        MiddlewareLayer(Health { ready })
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
                let ready = self.ready.is_ready();
                Box::pin(async move { Ok(answer(ready)) })
            }
            None => Box::pin(inner.call(request)),
        }
    }
}
