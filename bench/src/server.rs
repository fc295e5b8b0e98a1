//! The service under test, as its own process, so its CPU time and memory
//! can be read from /proc apart from the load generator's.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    addr: String,
}

/// Clock ticks per second for /proc/<pid>/stat times (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

pub fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1_000_000.0 / TICKS_PER_SECOND
}

impl Server {
    pub async fn start(
        binary: &Path,
        database_url: &str,
        settings: &[(&'static str, String)],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("PRACTICE_ADDR", &addr)
            .env("PRACTICE_JWT_SECRET", super::SECRET)
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = Server { child, addr };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&server.addr).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not start listening on {}", server.addr)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// User plus system CPU time so far, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        process_ticks(&self.pid().to_string()).context("the server's /proc/PID/stat")
    }

    /// Resident memory now (VmRSS), in MB.
    pub fn rss_mb(&self) -> Option<f64> {
        self.status_mb("VmRSS:")
    }

    fn status_mb(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }

    /// The most resident memory the process has had (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        self.status_mb("VmHWM:")
    }

    /// CPU so far, split by process: the service, the database (every
    /// `postgres` process; SQLite runs inside its caller), this load
    /// generator.
    pub fn cpu(&self) -> anyhow::Result<Cpu> {
        Ok(Cpu {
            service: self.cpu_ticks()?,
            database: postgres_ticks(),
            load: process_ticks("self").unwrap_or(0),
        })
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// CPU clock ticks by process; `after - before` is what a run cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub service: u64,
    pub database: u64,
    pub load: u64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, before: Cpu) -> Cpu {
        Cpu {
            service: self.service.saturating_sub(before.service),
            database: self.database.saturating_sub(before.database),
            load: self.load.saturating_sub(before.load),
        }
    }
}

impl std::ops::AddAssign for Cpu {
    fn add_assign(&mut self, other: Cpu) {
        self.service += other.service;
        self.database += other.database;
        self.load += other.load;
    }
}

/// utime + stime of one process (`self` for this one), from /proc.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU of every process named `postgres` (the postmaster and its
/// backends, checkpointer, WAL writer ...). Pools keep their connections
/// open through a run, so no backend's time leaves with it.
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| process_ticks(&pid))
        .sum()
}
