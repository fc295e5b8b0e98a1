//! What every RPC gets, whatever protocol it came in on (native gRPC,
//! gRPC-Web after tonic-web, or JSON after the transcoder): one server span,
//! parented on the caller's W3C `traceparent`, and a deadline — the smaller
//! of the server's request timeout and the caller's `grpc-timeout`.
//!
//! The span carries `rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`, `enduser.id` (set by the auth layer) and
//! `session_id` (set by the use case); never a header value, so no token or
//! idempotency key can reach a trace.

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use opentelemetry::propagation::Extractor;
use tonic::Status;
use tonic::body::Body;
use tower::Service;

use super::rpcs::Rpcs;
use super::{BoxFuture, Middleware, MiddlewareLayer};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `grpc-timeout`: an integer of at most 8 digits and a unit (H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// One server span and a deadline for every RPC.
#[derive(Clone)]
pub struct Rpc {
    rpcs: Rpcs,
    timeout: Duration,
    /// For the RPCs that wait for models (the catalog says which).
    prompt_timeout: Duration,
}

pub type RpcLayer = MiddlewareLayer<Rpc>;

impl RpcLayer {
    pub fn new(rpcs: Rpcs, timeout: Duration, prompt_timeout: Duration) -> Self {
        MiddlewareLayer(Rpc {
            rpcs,
            timeout,
            prompt_timeout,
        })
    }
}

/// When the RPC layer will end the call: handlers whose work outlives the
/// reply's head (streams) bound that work by it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub tokio::time::Instant);

impl Deadline {
    /// The request's deadline, or `fallback` from now when the request
    /// didn't pass through the RPC layer.
    pub fn of<T>(request: &tonic::Request<T>, fallback: Duration) -> tokio::time::Instant {
        request
            .extensions()
            .get::<Deadline>()
            .map_or_else(|| tokio::time::Instant::now() + fallback, |d| d.0)
    }
}

impl Middleware for Rpc {
    fn call<S>(
        &self,
        mut inner: S,
        mut request: Request<Body>,
    ) -> BoxFuture<Response<Body>, Infallible>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let path = request.uri().path();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
            session_id = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&Headers(request.headers()))
        });
        let _ = span.set_parent(parent);
        if let Some(id) = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
        {
            span.record("request_id", id);
        }
        // Answer a little before the caller's own deadline: its timer (and
        // tonic's, which cancels with CANCELLED) would otherwise race ours,
        // and the caller should see DEADLINE_EXCEEDED.
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let timeout = match self.rpcs.get(path) {
            Some(rpc) if rpc.prompt_deadline => self.prompt_timeout,
            _ => self.timeout,
        };
        let deadline = deadline.map_or(timeout, |t| (t - t / 20).min(timeout));
        request
            .extensions_mut()
            .insert(Deadline(tokio::time::Instant::now() + deadline));

        let record_span = span.clone();
        Box::pin(
            async move {
                // Dropping the call on time-out drops its transaction too,
                // which rolls back: a late request leaves nothing behind.
                let response = match tokio::time::timeout(deadline, inner.call(request)).await {
                    Ok(result) => result?,
                    Err(_) => Status::deadline_exceeded(format!(
                        "the request took longer than its deadline of {} ms",
                        deadline.as_millis()
                    ))
                    .into_http::<Body>(),
                };
                // Errors come back Trailers-Only, with the status in the
                // headers; a reply with a body ends in OK for unary RPCs.
                let code =
                    Status::from_header_map(response.headers()).map_or(0, |s| s.code() as i32);
                record_span.record("rpc.grpc.status_code", code);
                if code != 0 {
                    record_span.record("otel.status_code", "ERROR");
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        for bad in ["", "m", "123456789S", "10x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
