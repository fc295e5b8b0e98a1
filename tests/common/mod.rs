//! The test harness: starts the real server on 127.0.0.1:0 with a fresh
//! database (SQLite file, or a new database on a throwaway PostgreSQL
//! cluster), and speaks to it as a client would.
#![allow(dead_code)]

pub mod pg;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use practice_service::auth::sign_hs256;
use practice_service::config::Config;
use practice_service::domain::{
    Agent, Class, ClassMember, ClassModel, Example, Knowledge, NewExample, Project, UserId,
    now_micros,
};
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::service::{CatalogService, ExampleService};
use practice_service::startup::Application;
use practice_service::store::{Store, TableCounts};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub const DEFAULT_MODELS: &str = "default-a,default-b";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub database_url: String,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A fresh database URL for the backend, or `None` when PostgreSQL is not
/// available here (never on CI: there a missing PostgreSQL fails the test).
pub async fn database_url(backend: Backend, dir: &tempfile::TempDir) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite:{}", dir.path().join("test.db").display())),
        Backend::Postgres => pg::fresh_database().await,
    }
}

/// Starts the server with these extra environment settings.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database_url(backend, &dir).await?;
    Some(spawn_app_at(database_url, dir, extra).await)
}

/// Starts the server on a given database.
pub async fn spawn_app_at(
    database_url: String,
    dir: tempfile::TempDir,
    extra: &[(&str, &str)],
) -> TestApp {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database_url.as_str()),
        ("PRACTICE_ADDR", "127.0.0.1:0"),
        ("PRACTICE_JWT_SECRET", SECRET),
        ("PRACTICE_DEFAULT_MODELS", DEFAULT_MODELS),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            vars.remove(*k);
        } else {
            vars.insert(k.to_string(), v.to_string());
        }
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
    // Server logs show up for failing tests (RUST_LOG filters).
    practice_service::telemetry::init_for_tests();
    let app = Application::build(config).await.expect("server starts");
    let addr = app.local_addr();
    let store = app.store();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        store,
        database_url,
        _dir: dir,
        stop: Some(stop),
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[]).await
}

/// A user token signed with the test secret.
pub fn token(user: i64) -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &user.to_string(),
        None,
        Duration::from_secs(600),
    )
    .unwrap()
}

pub fn admin_token() -> String {
    sign_hs256(
        SECRET.as_bytes(),
        "catalog-sync",
        Some("practice:admin"),
        Duration::from_secs(600),
    )
    .unwrap()
}

/// Wraps a message with `authorization` (and any other) metadata.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn obj(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

impl TestApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> PracticeServiceClient<Channel> {
        PracticeServiceClient::connect(self.url())
            .await
            .expect("connects")
    }

    pub async fn counts(&self) -> TableCounts {
        self.store.table_counts().await.unwrap()
    }

    // Catalog rows go in through the store, as the catalog API will put them.

    pub async fn class(&self, class_id: i64, members: &[i64], models: &[(&str, bool)]) {
        let class = Class {
            class_id,
            name: format!("Class {class_id}"),
            members: members
                .iter()
                .map(|u| ClassMember {
                    user_id: *u,
                    role: "student".into(),
                })
                .collect(),
            models: models
                .iter()
                .map(|(m, enabled)| ClassModel {
                    model_name: m.to_string(),
                    enabled: *enabled,
                })
                .collect(),
        };
        self.store.upsert_class(&class, now_micros()).await.unwrap();
    }

    pub async fn project(&self, project_id: i64, owner: i64, class_id: Option<i64>) {
        let project = Project {
            project_id,
            owner_user_id: owner,
            class_id,
            name: format!("Project {project_id}"),
        };
        self.store
            .upsert_project(&project, now_micros())
            .await
            .unwrap();
    }

    pub async fn knowledge(
        &self,
        knowledge_id: i64,
        owner: i64,
        project_id: Option<i64>,
        class_id: Option<i64>,
    ) {
        let k = Knowledge {
            knowledge_id,
            owner_user_id: owner,
            project_id,
            class_id,
            title: format!("Knowledge {knowledge_id}"),
        };
        self.store.upsert_knowledge(&k, now_micros()).await.unwrap();
    }

    pub async fn example(&self, user: i64, title: &str, active: bool) -> Example {
        let e = NewExample {
            title: Some(title.into()),
            input_text: format!("input of {title}"),
            output_text: format!("output of {title}"),
            is_active: active,
            meta: obj(serde_json::json!({"source": "test", "rank": 3})),
        };
        ExampleService::new(self.store.clone())
            .create(UserId::new(user).unwrap(), e)
            .await
            .unwrap()
    }

    pub async fn agent(
        &self,
        agent_id: i64,
        owner: i64,
        class_id: Option<i64>,
        example_ids: &[i64],
    ) -> Agent {
        let agent = Agent {
            agent_id,
            owner_user_id: owner,
            class_id,
            name: format!("Agent {agent_id}"),
            description: Some("helps with essays".into()),
            system_prompt: Some("You are a patient tutor.".into()),
            style_preset: "balanced".into(),
            style_params: obj(serde_json::json!({"tone": "warm"})),
            generation_params: obj(serde_json::json!({"temperature": 0.2, "max_tokens": 512})),
            example_ids: example_ids.to_vec(),
        };
        CatalogService::new(self.store.clone())
            .upsert_agent(agent.clone())
            .await
            .unwrap()
    }
}

/// Runs each named case (an `async fn(Backend)`) once on SQLite and once on
/// PostgreSQL, as `sqlite::case` and `postgres::case`.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Starts the app for a case, or returns from the case when PostgreSQL
/// isn't available on a developer's machine.
#[macro_export]
macro_rules! app {
    ($backend:expr) => {
        match $crate::common::spawn_app($backend).await {
            Some(app) => app,
            None => return,
        }
    };
    ($backend:expr, $extra:expr) => {
        match $crate::common::spawn_app_with($backend, $extra).await {
            Some(app) => app,
            None => return,
        }
    };
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

impl TestApp {
    pub async fn catalog(
        &self,
    ) -> practice_service::proto::practice::v1::catalog_service_client::CatalogServiceClient<Channel>
    {
        practice_service::proto::practice::v1::catalog_service_client::CatalogServiceClient::connect(self.url())
            .await
            .expect("connects")
    }
}
