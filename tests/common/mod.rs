//! The test harness: starts the real server on 127.0.0.1:0 with a fresh
//! database (SQLite file, or a new database on a throwaway PostgreSQL
//! cluster), and speaks to it as a client would.
#![allow(dead_code)]

pub mod llm;
pub mod pg;
pub mod process;
mod requests;

#[allow(unused_imports)]
pub use requests::{
    EXAMPLE_KEYS, HttpReply, class_message, fixture, grpc_frame, http_client, in_class,
    json_model_names, model_names, raw_http, titled, with_agent,
};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use practice_service::auth::sign_hs256;
use practice_service::config::Config;
use practice_service::domain::{
    Agent, Class, Example, Knowledge, NewExample, Project, UserId, now_micros,
};
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::service::{CatalogService, ExampleService};
use practice_service::startup::Application;
use practice_service::store::{Store, TableCounts};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Is this a CI run? There every test must run, and one that can't fails.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skipped groups: why, and how many tests skipped for that reason.
static SKIPPED: Mutex<BTreeMap<String, (String, usize)>> = Mutex::new(BTreeMap::new());

/// Says that a test of `group` can't run on this machine and why. On CI it
/// fails the test instead. Off CI the test returns, and the skipped groups
/// are listed on stderr when the test binary exits (after the test
/// summary), so a green run that checked less says so where people look.
pub fn skip(group: &str, why: &str) {
    if on_ci() {
        panic!("{group} must run on CI, but can't here: {why}");
    }
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        // SAFETY: registers a plain function with no captured state.
        unsafe { libc::atexit(report_skipped) };
    }
    skipped
        .entry(group.to_string())
        .or_insert_with(|| (why.to_string(), 0))
        .1 += 1;
}

extern "C" fn report_skipped() {
    use std::io::Write;
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    for (group, (why, count)) in skipped.iter() {
        let _ = writeln!(err, "SKIPPED {count} test(s): {group}: {why}");
    }
}

/// Runs a Node script of `tests/browser` and reads the JSON it prints.
pub async fn node_json(script: &str, args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let run = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{script} failed: {}\n{stdout}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script}: {e}: {stdout}"))
}

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
        Backend::Postgres => match pg::fresh_database().await {
            Ok(url) => Some(url),
            Err(why) => {
                skip("the PostgreSQL store cases", &why);
                None
            }
        },
    }
}

/// Starts the server with these extra environment settings.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database_url(backend, &dir).await?;
    Some(spawn_app_at(database_url, dir, extra).await)
}

/// Why the server refuses to start with these settings (on a fresh SQLite
/// database, on a free port); panics if it starts.
pub async fn start_error(extra: &[(&str, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite:{}", dir.path().join("db").display()),
        ),
        ("PRACTICE_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.clone());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("the settings parse");
    match Application::build(config).await {
        Ok(_) => panic!("the server started with {extra:?}"),
        Err(e) => format!("{e:#}"),
    }
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

/// A protobuf `Struct` (e.g. `token_usage`) as JSON.
pub fn struct_json(s: Option<prost_types::Struct>) -> Value {
    Value::Object(practice_service::api::convert::struct_to_json(
        s.expect("a struct"),
    ))
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
        let class = Class::from(class_message(class_id, members, models));
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
            .create(UserId::new(user).unwrap(), e, None)
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
        self.agent_with_params(
            agent_id,
            owner,
            class_id,
            example_ids,
            serde_json::json!({"temperature": 0.2, "max_tokens": 512}),
        )
        .await
    }

    /// An agent with these generation parameters.
    pub async fn agent_with_params(
        &self,
        agent_id: i64,
        owner: i64,
        class_id: Option<i64>,
        example_ids: &[i64],
        generation_params: Value,
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
            generation_params: obj(generation_params),
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
