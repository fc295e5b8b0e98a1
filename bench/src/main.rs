//! practice-bench: CreateSession throughput and latency over native gRPC,
//! gRPC-Web and HTTP/JSON, on SQLite and PostgreSQL, against a raw baseline
//! (the same transaction through the store, in-process, no RPC), all in one
//! run on one machine. Prints a Markdown table with the ratios.
//!
//! `cargo run --release --bin practice-bench -- --help`

mod careful;
mod create;
mod databases;
mod load;
mod naive;
mod prompt;
mod server;
mod stream;
mod stream_clients;
mod two_users;

// The test suite's throwaway PostgreSQL cluster, shared rather than copied.
#[path = "../../tests/common/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use practice_service::domain::{
    Agent, Class, ClassMember, ClassModel, Knowledge, NewExample, UserId, now_micros,
};
use practice_service::service::{CatalogService, ExampleService};
use practice_service::store::{self, Store, StoreOptions};

use databases::database_url;
use load::Protocol;

#[derive(Parser, Debug)]
#[command(about = "Load generator for practice-service's CreateSession")]
struct Args {
    /// Databases to run on: sqlite, postgres (a throwaway cluster, or --pg-url).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    db: Vec<String>,
    /// An existing PostgreSQL server to create the bench database on.
    #[arg(long)]
    pg_url: Option<String>,
    /// Run the throwaway cluster without fsync and synchronous commit, to
    /// take the disk's flush stalls out of the latency tails.
    #[arg(long)]
    pg_no_fsync: bool,
    /// SQLite's `synchronous` for the service and both baselines: `full`
    /// (the service's default: every commit synced) or `normal`.
    #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
    sqlite_synchronous: String,
    /// Group commit for the service and the raw baseline: `on` (the
    /// service's default) or `off` (each write transaction commits alone).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    group_commit: String,
    /// PostgreSQL groups committing side by side (the service's
    /// `PRACTICE_PG_WRITE_LANES`; 0 for none).
    #[arg(long, default_value_t = StoreOptions::default().pg_write_lanes)]
    pg_write_lanes: usize,
    /// PostgreSQL settings for the run, `name=value` (e.g.
    /// `commit_delay=100`), set with ALTER SYSTEM and a reload before it:
    /// for measuring durability settings against the same baseline.
    #[arg(long, value_delimiter = ',')]
    pg_set: Vec<String>,
    /// Protocols: naive (plain statements through sqlx, no RPC), raw (the
    /// create use case on the store, no RPC), grpc, grpc-web, json, connect.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "naive,raw,grpc,grpc-web,json,connect"
    )]
    protocols: Vec<String>,
    /// Send an idempotency key with every create (the naive baseline has
    /// none, so ratios compare the same work without it).
    #[arg(long)]
    idempotency_keys: bool,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections for gRPC (HTTP/1.1 clients pool their own).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Rounds per cell; the protocols take turns within each round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also run gRPC (and raw) open-loop at this fraction of gRPC's closed-loop maximum.
    #[arg(long, default_value_t = 0.5)]
    open_fraction: f64,
    /// Scenarios to run, in order: `create` (CreateSession on every
    /// protocol), `stream` (prompts answered by three models each from
    /// practice-openai-stub, on SSE, gRPC and Connect, beside the model
    /// server read directly), `prompt` (SendPrompt over gRPC against the
    /// development model) or `prompt-two-users` (one user flooding with
    /// `--concurrency` prompts at once, another prompting one at a time,
    /// the model limited to 4 answers at once).
    #[arg(long, value_delimiter = ',', default_value = "create")]
    scenario: Vec<String>,
    /// `stream`: the protocols (sse, grpc, connect).
    #[arg(long, value_delimiter = ',', default_value = "sse,grpc,connect")]
    stream_protocols: Vec<String>,
    /// `stream`: prompts at once, each level in turn.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    levels: Vec<usize>,
    /// `stream`: words in each answer.
    #[arg(long, default_value_t = 50)]
    words: u32,
    /// `stream`: words a second in each answer.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// `stream`: milliseconds before each answer's first byte (a model's
    /// time to first token).
    #[arg(long, default_value_t = 0)]
    first_token_ms: u64,
    /// `stream`: prompts held open at once to measure memory per stream
    /// (0: skip).
    #[arg(long, default_value_t = 0)]
    hold: usize,
    /// The server binary (default: practice-service beside this one).
    #[arg(long)]
    server: Option<std::path::PathBuf>,
}

pub const USERS: i64 = 1000;
pub const KNOWLEDGE: i64 = 20;
pub const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";

/// The catalog every create reads: one class with 3 models and USERS
/// members, an agent with 3 examples, and KNOWLEDGE knowledge items.
async fn seed(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let now = now_micros();
    store
        .upsert_class(
            &Class {
                class_id: 1,
                name: "Bench class".into(),
                members: (1..=USERS)
                    .map(|u| ClassMember {
                        user_id: u,
                        role: "student".into(),
                    })
                    .collect(),
                models: ["gpt-4o-mini", "claude-3-haiku", "llama-3-8b"]
                    .iter()
                    .map(|m| ClassModel {
                        model_name: m.to_string(),
                        enabled: true,
                    })
                    .collect(),
            },
            now,
        )
        .await?;
    for k in 1..=KNOWLEDGE {
        store
            .upsert_knowledge(
                &Knowledge {
                    knowledge_id: k,
                    owner_user_id: 1,
                    project_id: None,
                    class_id: Some(1),
                    title: format!("K{k}"),
                },
                now,
            )
            .await?;
    }
    let mut example_ids = Vec::new();
    for i in 0..3 {
        let e = NewExample {
            title: Some(format!("Example {i}")),
            input_text: format!("Correct this sentence number {i}."),
            output_text: format!("Corrected sentence number {i}."),
            is_active: true,
            meta: serde_json::json!({"rank": i}).as_object().unwrap().clone(),
        };
        example_ids.push(
            ExampleService::new(store.clone())
                .create(UserId::new(1).unwrap(), e, None)
                .await?
                .example_id,
        );
    }
    CatalogService::new(store.clone())
        .upsert_agent(Agent {
            agent_id: 1,
            owner_user_id: 1,
            class_id: Some(1),
            name: "Bench tutor".into(),
            description: Some("Benchmark agent".into()),
            system_prompt: Some("You are a patient writing tutor.".into()),
            style_preset: "balanced".into(),
            style_params: serde_json::json!({"tone": "warm"})
                .as_object()
                .unwrap()
                .clone(),
            generation_params: serde_json::json!({"temperature": 0.2, "max_tokens": 512})
                .as_object()
                .unwrap()
                .clone(),
            example_ids,
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server_bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("practice-service"),
    };
    if !server_bin.exists() {
        bail!(
            "{} not found: cargo build --release first",
            server_bin.display()
        );
    }
    let protocols: Vec<Protocol> = args
        .protocols
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()?;
    load::SEND_KEYS.store(args.idempotency_keys, std::sync::atomic::Ordering::Relaxed);
    println!(
        "machine: {} cores; concurrency {}, {} s per cell; idempotency keys {}; SQLite: WAL, synchronous={}; group commit {} ({} PostgreSQL lanes); PostgreSQL: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.concurrency,
        args.duration,
        if args.idempotency_keys {
            "sent"
        } else {
            "not sent"
        },
        args.sqlite_synchronous.to_uppercase(),
        args.group_commit,
        args.pg_write_lanes,
        match (&args.pg_url, args.pg_no_fsync) {
            (Some(_), _) => "the server given by --pg-url",
            (None, false) => "throwaway cluster, fsync and synchronous_commit on",
            (None, true) => "throwaway cluster, fsync and synchronous_commit off",
        }
    );

    // Both values were checked by the argument parser.
    let options = StoreOptions {
        sync_every_commit: args.sqlite_synchronous == "full",
        group_commit: args.group_commit == "on",
        pg_write_lanes: args.pg_write_lanes,
        ..StoreOptions::default()
    };
    for scenario in &args.scenario {
        match scenario.as_str() {
            "create" => create::scenario(&args, &server_bin, &protocols, &options).await?,
            "stream" => stream::scenario(&args, &server_bin).await?,
            "prompt" => prompt_scenario(&args, &server_bin).await?,
            "prompt-two-users" => two_users::scenario(&args, &server_bin).await?,
            other => bail!("unknown scenario {other:?}"),
        }
    }
    Ok(())
}

/// A run's database on `db`, migrated and seeded; `dir` holds a SQLite
/// file (and must outlive the run).
pub(crate) struct Seeded {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub store: Arc<dyn Store>,
}

pub(crate) async fn seeded_database(
    args: &Args,
    db: &str,
    options: &StoreOptions,
) -> anyhow::Result<Seeded> {
    let dir = tempfile::tempdir()?;
    let url = database_url(db, &dir, &args.pg_url, args.pg_no_fsync).await?;
    let store = store::connect(&url, options).await?;
    store.migrate().await?;
    seed(&store).await?;
    Ok(Seeded { dir, url, store })
}

/// The service's settings that the run's flags choose.
fn server_settings(args: &Args) -> Vec<(&'static str, String)> {
    vec![
        (
            "PRACTICE_SQLITE_SYNCHRONOUS",
            args.sqlite_synchronous.clone(),
        ),
        ("PRACTICE_GROUP_COMMIT", args.group_commit.clone()),
        ("PRACTICE_PG_WRITE_LANES", args.pg_write_lanes.to_string()),
        // The lease's renewal is a write every few seconds: on SQLite it
        // would make a naive baseline's read-then-write transaction fail
        // with SQLITE_BUSY_SNAPSHOT, ending the run. A run holds one lease.
        ("PRACTICE_LEASE_MS", "3600000".into()),
    ]
}

/// The `prompt` scenario on each database: prompts per second, time to the
/// first delta and to the end, and the server's CPU per prompt.
async fn prompt_scenario(args: &Args, server_bin: &std::path::Path) -> anyhow::Result<()> {
    println!(
        "| db | concurrency | prompts/s | first delta p50 ms | p99 ms | whole answer p50 ms | p99 ms | server CPU µs/prompt |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for db in &args.db {
        let Seeded { url, .. } = &seeded_database(args, db, &StoreOptions::default()).await?;
        let server = server::Server::start(server_bin, url, &server_settings(args)).await?;
        let warm = Duration::from_secs(args.warmup);
        prompt::run(&server.url(), args.concurrency, warm).await?;
        let before = server.cpu_ticks()?;
        let stats = prompt::run(
            &server.url(),
            args.concurrency,
            Duration::from_secs(args.duration),
        )
        .await?;
        let cpu = server::ticks_to_us(server.cpu_ticks()? - before) / stats.prompts as f64;
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {db} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {cpu:.0} |",
            args.concurrency,
            stats.prompts as f64 / stats.elapsed.as_secs_f64(),
            ms(&stats.first_delta, 0.5),
            ms(&stats.first_delta, 0.99),
            ms(&stats.total, 0.5),
            ms(&stats.total, 0.99),
        );
        server.stop().await;
    }
    Ok(())
}
