//! A throwaway PostgreSQL cluster for the tests, started once per test
//! binary and stopped when that process exits; or the server named by
//! `TEST_DATABASE_URL`. Each test gets a database of its own. The cluster
//! listens only on a Unix socket in its own directory, so no TCP port has to
//! be picked (and raced for) at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The test server's URL, or why there is none.
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root
/// (initdb refuses to run as root).
fn pg_command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

/// A PostgreSQL cluster of our own, stopped when this process exits.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    durable: bool,
}

impl Cluster {
    /// A cluster tuned for tests: no fsync, no synchronous commit.
    pub fn start() -> Result<Cluster, String> {
        Self::start_with(false)
    }

    /// A cluster with PostgreSQL's default durability, for benchmarks.
    pub fn start_durable() -> Result<Cluster, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Cluster, String> {
        let bin = bin_dir().ok_or("no PostgreSQL server binaries (initdb) found")?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("practice-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .map_err(|e| e.to_string())?;
            if !ok.success() {
                return Err("cannot hand the cluster directory to the postgres user".into());
            }
        }
        let data = dir.join("data");
        let out = pg_command(&bin, "initdb", as_postgres)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let cluster = Cluster {
            bin,
            data,
            dir,
            as_postgres,
            durable,
        };
        cluster.run_pg_ctl(&["start"])?;
        // Stop the cluster and remove it once this process has exited.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runuser} {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if as_postgres {
                "runuser -u postgres --"
            } else {
                ""
            },
            pg_ctl = cluster.bin.join("pg_ctl").display(),
            data = cluster.data.display(),
            dir = cluster.dir.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(cluster)
    }

    fn run_pg_ctl(&self, action: &[&str]) -> Result<(), String> {
        let mut options = format!(
            "-k {} -c listen_addresses='' -c max_connections=400 -c shared_buffers=128MB",
            self.dir.display()
        );
        if !self.durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let out = pg_command(&self.bin, "pg_ctl", self.as_postgres)
            .args(["-w", "-t", "60", "-D"])
            .arg(&self.data)
            .args(["-l"])
            .arg(self.dir.join("log"))
            .args(["-o", &options])
            .args(action)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl {action:?} failed: {}{log}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// `pg_ctl stop -m fast`: the server goes away, sessions are cut.
    pub fn stop_fast(&self) -> Result<(), String> {
        self.run_pg_ctl(&["-m", "fast", "stop"])
    }

    pub fn start_again(&self) -> Result<(), String> {
        self.run_pg_ctl(&["start"])
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.dir.display()
        )
    }
}

/// A new, empty database on `server` (a URL of an existing database).
pub async fn try_create_database(server: &str) -> Result<String, String> {
    let name = format!(
        "practice_test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .map_err(|e| format!("cannot connect to the PostgreSQL server: {e}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("cannot create a database on the PostgreSQL server: {e}"))?;
    let (without_query, query) = server
        .split_once('?')
        .map_or((server, None), |(a, q)| (a, Some(q)));
    let (base, _) = without_query
        .rsplit_once('/')
        .ok_or_else(|| "the PostgreSQL URL has no database path".to_string())?;
    Ok(match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    })
}

/// As `try_create_database`, for tests: a failure fails the test.
pub async fn create_database(server: &str) -> String {
    try_create_database(server)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn server() -> Result<String, String> {
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
                return Ok(url);
            }
            Cluster::start().map(|cluster| cluster.url("postgres"))
        })
        .clone()
}

/// A new, empty database on the test server, or why there is no
/// PostgreSQL here.
pub async fn fresh_database() -> Result<String, String> {
    Ok(create_database(&server()?).await)
}
