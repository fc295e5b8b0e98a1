//! The `stream` scenario: prompts answered by three models each, against
//! the OpenAI-wire model server (`practice-openai-stub`, its own process),
//! on Server-Sent Events, gRPC and Connect, beside a client reading the
//! model server directly. It reports prompts and deltas a second, the
//! service's CPU per delta, the time to the first delta the service adds,
//! the memory an open stream holds, and the most prompts at once whose
//! added p99 stays under 10 ms.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use practice_service::proto::practice::v1::CreateSessionRequest;
use practice_service::proto::practice::v1::practice_service_client::PracticeServiceClient;
use practice_service::store::StoreOptions;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use super::server::{self, Server};
use super::stream_clients::{Client, MODELS, Outcome, Wire};
use super::{Args, Seeded, seeded_database};

/// The added p99 a level must stay under to count as held.
const HELD_P99_MS: f64 = 10.0;

/// How often `hold` opens another prompt.
const HOLD_PACE: Duration = Duration::from_micros(3_333);

/// The model server, as its own process.
struct Stub {
    _child: Child,
    addr: String,
}

impl Stub {
    async fn start(binary: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(binary)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the stub's stdout")?;
        let mut first = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut first)
            .await?;
        Ok(Self {
            _child: child,
            addr: first.trim().to_owned(),
        })
    }

    /// A models file with the class's three models on this server.
    fn models_file(&self, dir: &Path) -> anyhow::Result<String> {
        let mut text = String::new();
        for model in MODELS {
            text.push_str(&format!(
                "[models.\"{model}\"]\nbase_url = \"http://{}/v1\"\nhttp2_prior_knowledge = true\nmax_concurrency = 10000\ntimeout_secs = 600\n\n",
                self.addr
            ));
        }
        let path = dir.join("models.toml");
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    }
}

/// What one run of `n` prompts at once measured.
struct Run {
    prompts: u64,
    deltas: u64,
    elapsed: Duration,
    first: Histogram<u64>,
    /// Service CPU over the run, µs; none for the direct baseline.
    cpu_us: f64,
    rss_mb: f64,
}

impl Run {
    fn ms(&self, q: f64) -> f64 {
        self.first.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Every session a worker prompts in: (token, session id), one a worker.
type Sessions = Arc<Vec<(String, i64)>>;

async fn new_sessions(url: &str, n: usize) -> anyhow::Result<Sessions> {
    let tokens = super::load::tokens();
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    let client = PracticeServiceClient::new(channel);
    let mut made = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let creates = chunk.iter().map(|&w| {
            let mut client = client.clone();
            let token = tokens[w % tokens.len()].clone();
            async move {
                let mut request = tonic::Request::new(CreateSessionRequest {
                    class_id: Some(1),
                    title: Some(format!("Stream bench {w}")),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let id = client
                    .create_session(request)
                    .await?
                    .into_inner()
                    .session_id;
                anyhow::Ok((token, id))
            }
        });
        made.extend(futures_util::future::try_join_all(creates).await?);
    }
    Ok(Arc::new(made))
}

/// `n` workers prompting back to back for `duration`, each in a session of
/// its own. Every measured run gets new sessions: a model is sent its
/// session's earlier turns, so prompts in sessions carried over from runs
/// before would cost more with every run, and no two cells would compare.
async fn run(
    client: &Client,
    sessions: &Sessions,
    server: Option<&Server>,
    n: usize,
    duration: Duration,
    text: &str,
) -> anyhow::Result<Run> {
    let before = server.map(Server::cpu_ticks).transpose()?;
    let started = Instant::now();
    let mut workers = Vec::with_capacity(n);
    for w in 0..n {
        let (client, sessions, text) = (client.clone(), sessions.clone(), text.to_owned());
        workers.push(tokio::spawn(async move {
            let (token, session_id) = &sessions[w];
            let mut outcomes: Vec<Outcome> = Vec::new();
            while started.elapsed() < duration {
                outcomes.push(client.prompt(w, token, *session_id, &text).await?);
            }
            anyhow::Ok(outcomes)
        }));
    }
    let mut first = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut prompts, mut deltas) = (0, 0);
    for worker in workers {
        for outcome in worker.await?? {
            first.record(outcome.first_us.max(1))?;
            deltas += outcome.deltas;
            prompts += 1;
        }
    }
    let elapsed = started.elapsed();
    let cpu_us = match (server, before) {
        (Some(server), Some(before)) => server::ticks_to_us(server.cpu_ticks()? - before),
        _ => 0.0,
    };
    Ok(Run {
        prompts,
        deltas,
        elapsed,
        first,
        cpu_us,
        rss_mb: server.and_then(Server::peak_rss_mb).unwrap_or(0.0),
    })
}

/// A prompt asking the model server for `words` words at `rate` a second,
/// the first after `first_ms`.
fn prompt_text(words: u32, rate: f64, first_ms: u64) -> String {
    format!("Please check my sentence. [words={words} rate={rate} first={first_ms}]")
}

pub async fn scenario(args: &Args, server_bin: &Path) -> anyhow::Result<()> {
    let stub = Stub::start(&server_bin.with_file_name("practice-openai-stub")).await?;
    let wires: Vec<Wire> = args
        .stream_protocols
        .iter()
        .map(|w| w.parse())
        .collect::<Result<_, _>>()?;
    let duration = Duration::from_secs(args.duration);
    let most = args
        .levels
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(args.hold);
    println!(
        "machine: {} cores; answers of {} words at {} words/s, the first after {} ms, from practice-openai-stub (HTTP/2, its own process); {} s per cell",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.words,
        args.rate,
        args.first_token_ms,
        args.duration,
    );
    for db in &args.db {
        let Seeded { dir, url, .. } = &seeded_database(args, db, &StoreOptions::default()).await?;
        let mut settings = super::server_settings(args);
        settings.extend(stream_settings(&stub.models_file(dir.path())?));
        let server = Server::start(server_bin, url, &settings).await?;
        let sessions = new_sessions(&server.url(), most).await?;
        if args.hold > 0 {
            hold(&server, &sessions, args.hold).await?;
        }
        let direct = Client::new(Wire::Direct, &format!("http://{}", stub.addr), 0).await?;
        let text = prompt_text(args.words, args.rate, args.first_token_ms);
        let mut rows = Vec::new();
        for &n in &args.levels {
            let warm = Duration::from_secs(args.warmup);
            let baseline = run(&direct, &sessions, None, n, duration, &text).await?;
            for &wire in &wires {
                let client = Client::new(wire, &server.url(), n).await?;
                let fresh = new_sessions(&server.url(), n).await?;
                run(&client, &fresh, Some(&server), n, warm, &text).await?;
                let fresh = new_sessions(&server.url(), n).await?;
                let measured = run(&client, &fresh, Some(&server), n, duration, &text).await?;
                rows.push((
                    db.clone(),
                    wire,
                    n,
                    measured,
                    baseline.ms(0.5),
                    baseline.ms(0.99),
                ));
            }
        }
        print_rows(&rows, args.words);
        marginal(&server, &args.levels, duration, args.rate).await?;
        server.stop().await;
    }
    Ok(())
}

/// The service's settings for many prompts at once: the stub's models, and
/// limits far above what a run asks for, so the run measures the service.
fn stream_settings(models_file: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PRACTICE_MODELS_FILE", models_file.to_owned()),
        ("PRACTICE_MAX_IN_FLIGHT", "40000".into()),
        ("PRACTICE_MAX_CONNECTIONS", "18000".into()),
        ("PRACTICE_USER_PROMPTS_IN_FLIGHT", "1000".into()),
        ("PRACTICE_USER_PROMPTS_PER_MINUTE", "1000000".into()),
        ("PRACTICE_USER_TOKENS_PER_DAY", "1000000000000".into()),
        ("PRACTICE_CLASS_TOKENS_PER_DAY", "1000000000000".into()),
        ("PRACTICE_PROMPT_TIMEOUT_MS", "600000".into()),
    ]
}

/// `words`: the deltas the model server sends for each answer. The service
/// may join deltas that arrive together (when it is behind), so its CPU is
/// counted per delta the models sent, and the deltas clients received are
/// shown beside.
fn print_rows(rows: &[(String, Wire, usize, Run, f64, f64)], words: u32) {
    println!(
        "| db | protocol | prompts at once | prompts/s | deltas received/s | service CPU µs per model delta | first delta p50 ms | p99 ms | model server direct p50 ms | p99 ms | added p50 ms | added p99 ms | server peak RSS MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut held: Vec<(Wire, usize)> = Vec::new();
    for (db, wire, n, r, d50, d99) in rows {
        let secs = r.elapsed.as_secs_f64();
        let (added50, added99) = (r.ms(0.5) - d50, r.ms(0.99) - d99);
        if added99 < HELD_P99_MS {
            match held.iter_mut().find(|(w, _)| w == wire) {
                Some((_, most)) => *most = (*most).max(*n),
                None => held.push((*wire, *n)),
            }
        }
        println!(
            "| {db} | {} | {n} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {d50:.2} | {d99:.2} | {added50:.2} | {added99:.2} | {:.0} |",
            wire.name(),
            r.prompts as f64 / secs,
            r.deltas as f64 / secs,
            r.cpu_us / (r.prompts * MODELS.len() as u64 * u64::from(words)).max(1) as f64,
            r.ms(0.5),
            r.ms(0.99),
            r.rss_mb,
        );
    }
    for (wire, most) in held {
        println!(
            "most prompts at once with added p99 under {HELD_P99_MS} ms, {}: {most} (of the levels run)",
            wire.name()
        );
    }
}

/// The CPU one more delta costs: gRPC at the first level, answers of 10
/// words against answers of 90, so the per-prompt work cancels out.
async fn marginal(
    server: &Server,
    levels: &[usize],
    duration: Duration,
    rate: f64,
) -> anyhow::Result<()> {
    let n = levels.first().copied().unwrap_or(10);
    let client = Client::new(Wire::Grpc, &server.url(), n).await?;
    let mut per_prompt = Vec::new();
    for words in [10, 90] {
        let r = run(
            &client,
            &new_sessions(&server.url(), n).await?,
            Some(server),
            n,
            duration,
            &prompt_text(words, rate, 0),
        )
        .await?;
        // Deltas the models sent: the service may join some on the way.
        per_prompt.push((
            r.cpu_us / r.prompts as f64,
            f64::from(words) * MODELS.len() as f64,
        ));
    }
    let [(short_cpu, short_deltas), (long_cpu, long_deltas)] = per_prompt[..] else {
        bail!("two runs");
    };
    println!(
        "service CPU per prompt, gRPC, {n} at once: {short_cpu:.0} µs for {short_deltas:.0} deltas, {long_cpu:.0} µs for {long_deltas:.0}: {:.2} µs per further delta",
        (long_cpu - short_cpu) / (long_deltas - short_deltas)
    );
    Ok(())
}

/// `n` prompts held open at once over gRPC (answers of 1,000 words, one
/// every 2 s, opened 300 a second): the service's resident memory per open prompt once every one
/// is streaming, and the time to its first delta while they ramp up.
async fn hold(server: &Server, sessions: &Sessions, n: usize) -> anyhow::Result<()> {
    let idle = server.rss_mb().context("the server's RSS")?;
    let client = Client::new(Wire::Grpc, &server.url(), n).await?;
    let started = Arc::new(AtomicU64::new(0));
    let firsts = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut workers = Vec::with_capacity(n);
    let begun = Instant::now();
    for w in 0..n {
        // Opened at a steady pace, as users arrive, not all in one instant
        // (a burst past what the database takes is refused, by design).
        tokio::time::sleep_until((begun + HOLD_PACE * w as u32).into()).await;
        let (client, sessions) = (client.clone(), sessions.clone());
        let (started, firsts) = (started.clone(), firsts.clone());
        workers.push(tokio::spawn(async move {
            let (token, session_id) = &sessions[w];
            let text = prompt_text(1000, 0.5, 0);
            client
                .hold_open(w, token, *session_id, &text, &started, &firsts)
                .await
        }));
    }
    while started.load(Ordering::Relaxed) < n as u64 {
        if let Some(done) = workers.iter().position(|w| w.is_finished()) {
            let worker = workers.swap_remove(done);
            bail!("a held prompt ended early: {:?}", worker.await?);
        }
        if begun.elapsed() > Duration::from_secs(50) {
            bail!(
                "{} of {n} prompts streaming after 50 s",
                started.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp = begun.elapsed();
    // Each model sends its first word at once; give the last ones time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = server.rss_mb().context("the server's RSS")?;
    for worker in &workers {
        worker.abort();
    }
    let mut first = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for us in firsts.lock().expect("firsts").iter() {
        first.record((*us).max(1))?;
    }
    println!(
        "{n} prompts open at once (x3 model streams), gRPC: server RSS {idle:.0} MB idle, {open:.0} MB open: {:.1} KB per prompt, {:.1} KB per model stream; all streaming {:.1} s after the first was sent (300 a second); first delta p50 {:.1} ms, p99 {:.1} ms",
        (open - idle) * 1024.0 / n as f64,
        (open - idle) * 1024.0 / (3 * n) as f64,
        ramp.as_secs_f64(),
        first.value_at_quantile(0.5) as f64 / 1000.0,
        first.value_at_quantile(0.99) as f64 / 1000.0,
    );
    // Their answers end as cancelled once the clients went away.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}
