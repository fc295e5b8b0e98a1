//! The load loops and one client per protocol. Every reply is checked; a
//! bad one stops the run.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use hdrhistogram::Histogram;
use practice_service::auth::sign_hs256;
use practice_service::domain::session::CreateSessionInput;
use practice_service::domain::{IdempotencyKey, UserId};
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::proto::practice::v1::{CreateSessionRequest, Session};
use practice_service::service::PracticeService;
use practice_service::store::{Store, StoreOptions};
use prost::Message;
use tonic::transport::Channel;

use super::careful::Careful;
use super::{KNOWLEDGE, SECRET, USERS, naive};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The obvious statements, one at a time: on SQLite on one rusqlite
    /// connection, the whole create on its thread (`careful.rs`); on
    /// PostgreSQL through sqlx (`naive.rs`).
    Naive,
    Raw,
    Grpc,
    GrpcWeb,
    Json,
    /// Connect's unary JSON, the default of Connect clients.
    Connect,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Naive => "naive SQL (no RPC)",
            Protocol::Raw => "raw (store, no RPC)",
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Json => "json",
            Protocol::Connect => "connect",
        }
    }
}

impl FromStr for Protocol {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "naive" => Protocol::Naive,
            "raw" => Protocol::Raw,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "json" => Protocol::Json,
            "connect" => Protocol::Connect,
            other => {
                bail!("unknown protocol {other:?} (naive, raw, grpc, grpc-web, json, connect)")
            }
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// A fixed number of requests in flight.
    Closed { concurrency: usize },
    /// A fixed rate; latency counts from each request's intended send time.
    Open { rate: f64 },
}

pub struct Stats {
    pub ok: u64,
    pub elapsed: Duration,
    histogram: Histogram<u64>,
}

impl Stats {
    /// Adds another run of the same cell (rounds are interleaved across
    /// protocols, so slow drifts of a noisy machine hit them all alike).
    pub fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.elapsed += other.elapsed;
        self.histogram.add(other.histogram).expect("same bounds");
    }

    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.histogram.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Whether creates carry an idempotency key (`--idempotency-keys`).
pub static SEND_KEYS: AtomicBool = AtomicBool::new(false);

fn send_keys() -> bool {
    SEND_KEYS.load(Ordering::Relaxed)
}

/// One create's inputs, unique per call: user, title, knowledge ids, key.
pub struct Call {
    pub user: i64,
    pub title: String,
    pub knowledge_ids: Vec<i64>,
    pub key: String,
}

fn call(run: &str, i: u64) -> Call {
    let i = i as i64;
    let k1 = 1 + i % KNOWLEDGE;
    let k2 = 1 + (k1 + i / KNOWLEDGE) % KNOWLEDGE;
    let k2 = if k2 == k1 { 1 + k1 % KNOWLEDGE } else { k2 };
    Call {
        user: 1 + i % USERS,
        title: format!("Bench session {i}"),
        knowledge_ids: vec![k1, k2],
        key: format!("{run}-{i}"),
    }
}

pub enum Target {
    NaiveSqlite(Careful),
    NaivePostgres(sqlx::PgPool),
    /// The create use case on the store, with no RPC in between.
    Raw(PracticeService),
    Grpc {
        channels: Vec<PracticeServiceClient<Channel>>,
        tokens: Arc<Vec<String>>,
    },
    Http {
        protocol: Protocol,
        client: reqwest::Client,
        url: String,
        tokens: Arc<Vec<String>>,
    },
}

pub fn tokens() -> Arc<Vec<String>> {
    Arc::new(
        (1..=USERS)
            .map(|u| {
                sign_hs256(
                    SECRET.as_bytes(),
                    &u.to_string(),
                    None,
                    Duration::from_secs(3600),
                )
                .expect("signs")
            })
            .collect(),
    )
}

fn check_session(s: &Session, c: &Call) -> anyhow::Result<()> {
    if s.session_id < 1
        || s.user_id != c.user
        || s.models.len() != 3
        || s.knowledge_ids != c.knowledge_ids
    {
        bail!("unexpected session: {s:?}");
    }
    if s.settings.as_ref().map_or(0, |st| st.few_shot_links.len()) != 3 {
        bail!("expected 3 few-shot links");
    }
    Ok(())
}

impl Target {
    pub fn raw(store: Arc<dyn Store>) -> Self {
        Target::Raw(PracticeService::new(
            store,
            Vec::new(),
            4 * 1024 * 1024,
            practice_service::service::answers::Answers::new("bench".into()),
            practice_service::llm::Models::development(std::time::Duration::ZERO, None),
        ))
    }

    pub async fn connect(
        protocol: Protocol,
        url: &str,
        connections: usize,
    ) -> anyhow::Result<Self> {
        Ok(match protocol {
            Protocol::Grpc => {
                let mut channels = Vec::new();
                for _ in 0..connections.max(1) {
                    channels.push(PracticeServiceClient::new(
                        Channel::from_shared(url.to_string())?.connect().await?,
                    ));
                }
                Target::Grpc {
                    channels,
                    tokens: tokens(),
                }
            }
            Protocol::GrpcWeb | Protocol::Json | Protocol::Connect => Target::Http {
                protocol,
                client: reqwest::Client::builder()
                    .http1_only()
                    .pool_max_idle_per_host(256)
                    .build()?,
                url: url.to_string(),
                tokens: tokens(),
            },
            Protocol::Raw | Protocol::Naive => bail!("the raw and naive targets need the database"),
        })
    }

    /// The naive baseline on its own pool: one connection on SQLite, as
    /// many as the service's on PostgreSQL; the service's journal mode and
    /// durability on SQLite, none of its other tuning.
    pub async fn naive(url: &str, store: &StoreOptions) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Target::NaiveSqlite(Careful::open(
                url,
                store.sync_every_commit,
            )?))
        } else {
            let pool = sqlx::pool::PoolOptions::new()
                .max_connections(store.max_connections)
                .connect(url)
                .await?;
            Ok(Target::NaivePostgres(pool))
        }
    }

    async fn one(&self, run: &str, i: u64) -> anyhow::Result<()> {
        let c = call(run, i);
        match self {
            Target::NaiveSqlite(careful) => careful.create(&c).await.map(drop),
            Target::NaivePostgres(pool) => naive::create(pool, &c).await.map(drop),
            Target::Raw(service) => {
                let input = CreateSessionInput {
                    class_id: Some(1),
                    agent_id: Some(1),
                    knowledge_ids: c.knowledge_ids.clone(),
                    title: Some(c.title.clone()),
                    ..Default::default()
                };
                let key = send_keys()
                    .then(|| IdempotencyKey::parse(c.key.as_bytes()))
                    .transpose()?;
                let user = UserId::new(c.user).ok_or_else(|| anyhow!("bad user"))?;
                let s = service.create_session(user, input, key).await?;
                if s.models.len() != 3 || s.settings.few_shot_links.len() != 3 {
                    bail!("unexpected session");
                }
                Ok(())
            }
            Target::Grpc { channels, tokens } => {
                let mut client = channels[i as usize % channels.len()].clone();
                let mut req = tonic::Request::new(request(&c));
                req.metadata_mut().insert(
                    "authorization",
                    format!("Bearer {}", tokens[(c.user - 1) as usize]).parse()?,
                );
                if send_keys() {
                    req.metadata_mut().insert("idempotency-key", c.key.parse()?);
                }
                let s = client.create_session(req).await?.into_inner();
                check_session(&s, &c)
            }
            Target::Http {
                protocol,
                client,
                url,
                tokens,
            } => {
                let auth = format!("Bearer {}", tokens[(c.user - 1) as usize]);
                if matches!(protocol, Protocol::Connect | Protocol::Json) {
                    // Connect takes canonical proto3 JSON (lowerCamelCase,
                    // int64 as strings); the JSON route the original names.
                    let (path, body, user_field, user) = if *protocol == Protocol::Connect {
                        let ids: Vec<String> = c.knowledge_ids.iter().map(i64::to_string).collect();
                        let body = serde_json::json!({
                            "classId": "1", "agentId": "1", "knowledgeIds": ids, "title": c.title,
                        });
                        let user = serde_json::Value::from(c.user.to_string());
                        (
                            "/practice.v1.PracticeService/CreateSession",
                            body,
                            "userId",
                            user,
                        )
                    } else {
                        let body = serde_json::json!({
                            "class_id": 1, "agent_id": 1, "knowledge_ids": c.knowledge_ids, "title": c.title,
                        });
                        ("/user/practice/sessions", body, "user_id", c.user.into())
                    };
                    let mut post = client
                        .post(format!("{url}{path}"))
                        .header("authorization", auth)
                        .header("content-type", "application/json");
                    if send_keys() {
                        post = post.header("idempotency-key", &c.key);
                    }
                    if *protocol == Protocol::Connect {
                        post = post.header("connect-protocol-version", "1");
                    }
                    let resp = post.body(body.to_string()).send().await?;
                    if resp.status() != 200 {
                        bail!("HTTP {}: {}", resp.status(), resp.text().await?);
                    }
                    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
                    if v[user_field] != user || v["models"].as_array().map_or(0, Vec::len) != 3 {
                        bail!("unexpected session: {v}");
                    }
                    Ok(())
                } else {
                    let msg = request(&c).encode_to_vec();
                    let mut framed = Vec::with_capacity(msg.len() + 5);
                    framed.push(0);
                    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
                    framed.extend_from_slice(&msg);
                    let mut post = client
                        .post(format!("{url}/practice.v1.PracticeService/CreateSession"))
                        .header("authorization", auth);
                    if send_keys() {
                        post = post.header("idempotency-key", &c.key);
                    }
                    let resp = post
                        .header("content-type", "application/grpc-web+proto")
                        .header("x-grpc-web", "1")
                        .body(framed)
                        .send()
                        .await?;
                    if resp.status() != 200 {
                        bail!("HTTP {}", resp.status());
                    }
                    let bytes = resp.bytes().await?;
                    let (session, status) = parse_grpc_web(&bytes)?;
                    if status != "0" {
                        bail!("grpc-status {status}");
                    }
                    check_session(&Session::decode(session.as_slice())?, &c)
                }
            }
        }
    }
}

fn request(c: &Call) -> CreateSessionRequest {
    CreateSessionRequest {
        class_id: Some(1),
        agent_id: Some(1),
        knowledge_ids: c.knowledge_ids.clone(),
        title: Some(c.title.clone()),
        ..Default::default()
    }
}

/// The message and the grpc-status trailer of a gRPC-Web reply.
fn parse_grpc_web(mut bytes: &[u8]) -> anyhow::Result<(Vec<u8>, String)> {
    let mut message = Vec::new();
    let mut status = String::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let payload = bytes
            .get(5..5 + len)
            .ok_or_else(|| anyhow!("short frame"))?;
        if bytes[0] & 0x80 != 0 {
            for line in String::from_utf8_lossy(payload).split("\r\n") {
                if let Some(v) = line.strip_prefix("grpc-status:") {
                    status = v.trim().to_string();
                }
            }
        } else {
            message = payload.to_vec();
        }
        bytes = &bytes[5 + len..];
    }
    Ok((message, status))
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs the target for `duration` and returns what it measured.
pub async fn run(
    target: &Arc<Target>,
    mode: Mode,
    duration: Duration,
    run: &str,
) -> anyhow::Result<Stats> {
    let run: Arc<str> = Arc::from(run);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut histogram = new_histogram();
    let mut ok = 0u64;
    match mode {
        Mode::Closed { concurrency } => {
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (next, run, target) = (next.clone(), run.clone(), target.clone());
                tasks.push(tokio::spawn(async move {
                    let mut h = new_histogram();
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let t = Instant::now();
                        target.one(&run, i).await?;
                        h.saturating_record(t.elapsed().as_micros() as u64);
                        n += 1;
                    }
                    anyhow::Ok((h, n))
                }));
            }
            for t in tasks {
                let (h, n) = t.await??;
                histogram.add(h)?;
                ok += n;
            }
        }
        Mode::Open { rate } => {
            let total = (rate * duration.as_secs_f64()) as u64;
            let interval = Duration::from_secs_f64(1.0 / rate);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            for n in 0..total {
                let intended = start + interval * n as u32;
                tokio::time::sleep_until(intended.into()).await;
                let (tx, run, target) = (tx.clone(), run.clone(), target.clone());
                tokio::spawn(async move {
                    let result = target
                        .one(&run, n)
                        .await
                        .map(|()| intended.elapsed().as_micros() as u64);
                    let _ = tx.send(result);
                });
            }
            drop(tx);
            while let Some(result) = rx.recv().await {
                histogram.saturating_record(result?);
                ok += 1;
            }
        }
    }
    Ok(Stats {
        ok,
        elapsed: start.elapsed().max(Duration::from_millis(1)),
        histogram,
    })
}
