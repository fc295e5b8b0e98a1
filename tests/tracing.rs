//! Traces as a collector receives them: an in-process OTLP/gRPC receiver,
//! one CreateSession per protocol with a W3C `traceparent`, then the
//! exported spans are checked (trace id, parent, attributes) and searched
//! for any token or idempotency key.

mod common;

use std::sync::{Arc, Mutex};

use common::{Backend, authed, token};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use practice_service::config::LogFormat;
use practice_service::proto::practice::v1::CreateSessionRequest;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        a.value
            .as_ref()
            .and_then(|v| v.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            })
    })
}

const IDEM_KEY: &str = "idem-key-that-must-not-leak";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_span_per_rpc_on_every_protocol() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    // SAFETY: the only test in this binary; nothing else reads the
    // environment concurrently at this point.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        std::env::set_var("OTEL_SERVICE_NAME", "practice-test");
    }
    let telemetry = practice_service::telemetry::init(LogFormat::Text);

    let app = app!(Backend::Sqlite);
    let t = token(42);
    let parent_span = "00f067aa0ba902b7";
    let traces = [
        ("grpc", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("grpc-web", "5bf92f3577b34da6a3ce929d0e0e4736"),
        ("json", "6bf92f3577b34da6a3ce929d0e0e4736"),
    ];
    for (protocol, trace_id) in traces {
        let traceparent = format!("00-{trace_id}-{parent_span}-01");
        let key = format!("{IDEM_KEY}-{protocol}");
        match protocol {
            "grpc" => {
                let mut req = authed(CreateSessionRequest::default(), &t);
                req.metadata_mut()
                    .insert("traceparent", traceparent.parse().unwrap());
                req.metadata_mut()
                    .insert("idempotency-key", key.parse().unwrap());
                app.client().await.create_session(req).await.unwrap();
            }
            "grpc-web" => {
                let body = common::grpc_frame(&CreateSessionRequest::default());
                let r = common::http_client()
                    .post(format!(
                        "{}/practice.v1.PracticeService/CreateSession",
                        app.url()
                    ))
                    .header("content-type", "application/grpc-web+proto")
                    .header("authorization", format!("Bearer {t}"))
                    .header("traceparent", &traceparent)
                    .header("idempotency-key", &key)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
            _ => {
                let r = app
                    .http_with(
                        "POST",
                        "/user/practice/sessions",
                        Some(&t),
                        Some("{}"),
                        &[("traceparent", &traceparent), ("idempotency-key", &key)],
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }
    }
    // A span ends when its request's last piece of work lets go of it,
    // which on a busy machine can be after the client has its answer:
    // flush until every trace's server span has arrived (bounded).
    for _ in 0..100 {
        telemetry.flush().await;
        let seen = collector.0.lock().unwrap().clone();
        let arrived = traces.iter().all(|(_, id)| {
            seen.iter().any(|s| {
                s.trace_id == hex(id) && s.name == "practice.v1.PracticeService/CreateSession"
            })
        });
        if arrived {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(app);
    telemetry.shutdown().await;

    let spans = collector.0.lock().unwrap().clone();
    assert!(!spans.is_empty(), "spans were exported");
    for (protocol, trace_id) in traces {
        let trace_id = hex(trace_id);
        let rpc: Vec<&Span> = spans
            .iter()
            .filter(|s| {
                s.trace_id == trace_id && s.name == "practice.v1.PracticeService/CreateSession"
            })
            .collect();
        assert_eq!(
            rpc.len(),
            1,
            "{protocol}: exactly one server span ({} spans in all)",
            spans.len()
        );
        let rpc = rpc[0];
        assert_eq!(
            rpc.parent_span_id,
            hex(parent_span),
            "{protocol}: parented on traceparent"
        );
        assert_eq!(rpc.kind, 2, "{protocol}: a SERVER span");
        assert_eq!(attr(rpc, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            attr(rpc, "rpc.service").as_deref(),
            Some("practice.v1.PracticeService")
        );
        assert_eq!(attr(rpc, "rpc.method").as_deref(), Some("CreateSession"));
        assert_eq!(
            attr(rpc, "rpc.grpc.status_code").as_deref(),
            Some("0"),
            "{protocol}"
        );
        assert_eq!(attr(rpc, "enduser.id").as_deref(), Some("42"), "{protocol}");
        assert!(
            attr(rpc, "session_id").is_some(),
            "{protocol}: the created session id"
        );
        let db = spans
            .iter()
            .find(|s| s.trace_id == trace_id && s.name == "db.transaction");
        let db = db.unwrap_or_else(|| panic!("{protocol}: a database span"));
        assert_eq!(
            db.parent_span_id, rpc.span_id,
            "{protocol}: the transaction is a child of the RPC"
        );
        assert_eq!(attr(db, "db.system").as_deref(), Some("sqlite"));
    }
    // No secret anywhere in any exported span.
    let everything = format!("{spans:?}");
    assert!(
        !everything.contains(&t),
        "the bearer token leaked into a span"
    );
    assert!(
        !everything.contains(IDEM_KEY),
        "an idempotency key leaked into a span"
    );
    assert!(!everything.contains(common::SECRET));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
