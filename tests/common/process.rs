//! The real binary as a child process, for tests that need what only a
//! process of its own shows: its exit code after a signal, or its memory
//! (the test binary runs many servers at once, so its own RSS says nothing
//! about one of them).

use std::process::Stdio;
use std::time::Duration;

use practice_service::store::{self, StoreOptions, TableCounts};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, from the server's own "serving" log line.
    pub url: String,
    database_url: String,
    log: JoinHandle<String>,
}

/// Starts the binary on a SQLite database in `dir`, with the test secret
/// and JSON logs, plus `env`; returns once it serves.
pub async fn spawn_server(dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
    // A DATABASE_URL in `env` wins over the SQLite file.
    let db = env.iter().find(|(k, _)| *k == "DATABASE_URL").map_or_else(
        || format!("sqlite:{}", dir.join("server.db").display()),
        |(_, v)| v.to_string(),
    );
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_practice-service"));
    command
        .current_dir(dir)
        .env("DATABASE_URL", &db)
        .env("PRACTICE_ADDR", "127.0.0.1:0")
        .env("PRACTICE_JWT_SECRET", super::SECRET)
        .env("PRACTICE_DEFAULT_MODELS", super::DEFAULT_MODELS)
        .env("RUST_LOG", "info")
        .env("PRACTICE_LOG_FORMAT", "json");
    for (k, v) in env {
        if v.is_empty() {
            command.env_remove(k);
        } else {
            command.env(k, v);
        }
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the server logs where it serves");
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "serving" {
                break format!("http://{}", event["addr"].as_str().unwrap());
            }
        }
    })
    .await
    .expect("the server starts within 30 s");
    // The rest of the log is kept for checks after the process ends.
    let log = tokio::spawn(async move {
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    ServerProcess {
        child,
        url,
        database_url: db,
        log,
    }
}

impl ServerProcess {
    /// What the server's database holds, read through a store of its own
    /// (also after the process has ended).
    pub async fn counts(&self) -> TableCounts {
        self.store().await.table_counts().await.unwrap()
    }

    /// A store of its own on the server's database.
    pub async fn store(&self) -> std::sync::Arc<dyn store::Store> {
        store::connect(&self.database_url, &StoreOptions::default())
            .await
            .unwrap()
    }

    /// Sends a signal (`-KILL`, `-TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the server runs").to_string();
        assert!(
            std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Fails unless the server's peak resident size stayed within `bound`
    /// MiB of `before` (a `VmRSS` reading).
    pub fn assert_peak_within(&self, before: u64, bound: u64) {
        let peak = self.memory_mib("VmHWM");
        eprintln!("server RSS {before} MiB before, peak {peak} MiB");
        assert!(
            peak.saturating_sub(before) < bound,
            "the server's RSS peaked at {peak} MiB, from {before} MiB"
        );
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.url.trim_start_matches("http://").parse().unwrap()
    }

    /// A `/proc/PID/status` figure in MiB: `VmRSS` now, `VmHWM` the peak.
    pub fn memory_mib(&self, field: &str) -> u64 {
        let pid = self.child.id().expect("the server runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
            / 1024
    }

    /// Everything the process wrote after "serving", stdout and stderr,
    /// once it has ended.
    pub async fn output(mut self) -> String {
        let mut out = self.log.await.unwrap();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut out).await;
        }
        out
    }
}
