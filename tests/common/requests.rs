//! Requests as clients send them, one definition each: gRPC calls as
//! methods on the test app, gRPC framing, plain HTTP and raw HTTP/1.1.

use std::net::SocketAddr;

use practice_service::proto::practice::v1::catalog_service_client::CatalogServiceClient;
use practice_service::proto::practice::v1::{
    self as pb, CreateSessionRequest, GetSessionRequest, Session,
};
use serde_json::Value;
use tonic::transport::Channel;

use super::{TestApp, authed, token};

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A create request with only a title.
pub fn titled(title: &str) -> CreateSessionRequest {
    CreateSessionRequest {
        title: Some(title.into()),
        ..Default::default()
    }
}

/// A create request for a session in a class.
pub fn in_class(class_id: i64) -> CreateSessionRequest {
    CreateSessionRequest {
        class_id: Some(class_id),
        ..Default::default()
    }
}

/// A create request for a session with an agent.
pub fn with_agent(agent_id: i64) -> CreateSessionRequest {
    CreateSessionRequest {
        agent_id: Some(agent_id),
        ..Default::default()
    }
}

/// The session's model names, in order.
pub fn model_names(session: &Session) -> Vec<&str> {
    session
        .models
        .iter()
        .map(|m| m.model_name.as_str())
        .collect()
}

/// The model names of a session as the JSON routes print it.
pub fn json_model_names(session: &Value) -> Vec<&str> {
    session["models"]
        .as_array()
        .expect("a models list")
        .iter()
        .map(|m| m["model_name"].as_str().expect("a model name"))
        .collect()
}

/// The fields of an example as every route prints them, in order.
pub const EXAMPLE_KEYS: [&str; 9] = [
    "example_id",
    "user_id",
    "input_text",
    "output_text",
    "is_active",
    "created_at",
    "updated_at",
    "title",
    "meta",
];

/// A class as the catalog API takes it.
pub fn class_message(class_id: i64, members: &[i64], models: &[(&str, bool)]) -> pb::Class {
    pb::Class {
        class_id,
        name: format!("Class {class_id}"),
        members: members
            .iter()
            .map(|u| pb::ClassMember {
                user_id: *u,
                role: "student".into(),
            })
            .collect(),
        models: models
            .iter()
            .map(|(m, enabled)| pb::ClassModel {
                model_name: m.to_string(),
                enabled: *enabled,
            })
            .collect(),
    }
}

/// Frames one message as gRPC and gRPC-Web do: flag 0, length, bytes.
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

impl TestApp {
    /// CreateSession over gRPC as `user`.
    pub async fn create(
        &self,
        user: i64,
        req: CreateSessionRequest,
    ) -> Result<Session, tonic::Status> {
        self.client()
            .await
            .create_session(authed(req, &token(user)))
            .await
            .map(|r| r.into_inner())
    }

    /// A create that must fail with `code` and write nothing.
    pub async fn refused(
        &self,
        user: i64,
        req: CreateSessionRequest,
        code: tonic::Code,
    ) -> tonic::Status {
        let before = self.counts().await;
        let status = self
            .create(user, req.clone())
            .await
            .expect_err("must be refused");
        assert_eq!(status.code(), code, "{req:?}: {status:?}");
        assert_eq!(
            self.counts().await,
            before,
            "a refused create wrote rows: {req:?}"
        );
        status
    }

    /// GetSession over gRPC as `user`.
    pub async fn get(&self, user: i64, session_id: i64) -> Result<Session, tonic::Status> {
        self.client()
            .await
            .get_session(authed(GetSessionRequest { session_id }, &token(user)))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn list(
        &self,
        user: i64,
        req: pb::ListSessionsRequest,
    ) -> Result<pb::ListSessionsResponse, tonic::Status> {
        self.client()
            .await
            .list_sessions(authed(req, &token(user)))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn update(
        &self,
        user: i64,
        req: pb::UpdateSessionRequest,
    ) -> Result<Session, tonic::Status> {
        self.client()
            .await
            .update_session(authed(req, &token(user)))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn delete(&self, user: i64, session_id: i64) -> Result<(), tonic::Status> {
        self.client()
            .await
            .delete_session(authed(
                pb::DeleteSessionRequest { session_id },
                &token(user),
            ))
            .await
            .map(|_| ())
    }

    pub async fn update_settings(
        &self,
        user: i64,
        req: pb::UpdateSessionSettingsRequest,
    ) -> Result<pb::SessionSettings, tonic::Status> {
        self.client()
            .await
            .update_session_settings(authed(req, &token(user)))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::connect(self.url())
            .await
            .expect("connects")
    }
}

/// A plain HTTP client (HTTP/1.1), as a JSON or browser client would use.
pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; these tests speak
    // plain HTTP, but the builder wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().http1_only().build().unwrap()
}

pub struct HttpReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// Sends a request with optional bearer token and JSON body.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> HttpReply {
        self.http_with(method, path, token, body, &[]).await
    }

    pub async fn http_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> HttpReply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = http_client().request(method, format!("{}{path}", self.url()));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("HTTP request");
        HttpReply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }
}

/// Sends one raw HTTP/1.1 request (line, headers, body) byte for byte (no
/// URL normalisation on the way), and returns the status code and body.
pub async fn raw_http(
    addr: SocketAddr,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{request_line} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // The service always sets a content length, so the body is plain.
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
