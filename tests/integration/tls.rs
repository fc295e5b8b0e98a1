//! TLS when configured: native gRPC over HTTP/2 and JSON over HTTP/1.1 on
//! the same port, both verified against the test CA.

use crate::common;

use common::{Backend, authed, token};
use practice_service::proto::practice::v1::CreateSessionRequest;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_json_over_tls() {
    let (cert, key) = (
        common::fixture("tls_cert.pem"),
        common::fixture("tls_key.pem"),
    );
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_TLS_CERT_FILE", &cert),
            ("PRACTICE_TLS_KEY_FILE", &key)
        ]
    );
    let ca = std::fs::read(common::fixture("tls_ca.pem")).unwrap();
    let port = app.addr.port();

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let s = PracticeServiceClient::new(channel)
        .create_session(authed(
            CreateSessionRequest {
                title: Some("over TLS".into()),
                ..Default::default()
            },
            &token(42),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.user_id, 42);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!(
            "https://localhost:{port}/user/practice/sessions/{}",
            s.session_id
        ))
        .header("authorization", format!("Bearer {}", token(42)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(json["title"], "over TLS");

    // Plain HTTP to a TLS port gets nowhere.
    let plain = common::http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}
