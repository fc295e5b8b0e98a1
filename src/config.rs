//! One `Config`, read from the environment. Secrets never print: their
//! `Debug` is redacted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod conversation;

pub use conversation::ConversationConfig;

use crate::auth::KeySource;
use crate::error::Error;

pub const DEFAULT_DATABASE_URL: &str = "sqlite:practice.db";
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_MODELS: &str = "gpt-4o-mini";

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Which key checks tokens.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// `PRACTICE_JWT_SECRET`
    Hs256(Secret),
    /// `PRACTICE_JWT_PUBLIC_KEY_FILE`
    PublicKeyFile(PathBuf),
    /// `PRACTICE_JWKS`
    Jwks(KeySource),
    /// None configured: a random HS256 secret in a file beside the default
    /// database (development only).
    Development,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub addr: SocketAddr,
    pub jwt_key: JwtKey,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_leeway: Duration,
    /// The least time between JWKS refetches caused by unknown `kid`s.
    pub jwks_min_refresh: Duration,
    pub default_models: Vec<String>,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub db_max_connections: u32,
    /// `PRACTICE_SQLITE_SYNCHRONOUS`: `full` (the default; every commit is
    /// on disk before it is acknowledged, synced in groups) or `normal` (faster; a machine
    /// crash can lose the last acknowledged writes).
    pub sqlite_sync_every_commit: bool,
    /// `PRACTICE_GROUP_COMMIT`: `on` (the default; write transactions
    /// waiting for a write connection commit together) or `off`.
    pub group_commit: bool,
    /// `PRACTICE_PG_WRITE_LANES`: on PostgreSQL, how many groups commit
    /// side by side, each on a connection of its own (default 2); 0: no
    /// groups there, each write transaction commits by itself.
    pub pg_write_lanes: usize,
    /// Largest JSON request body (413 above) and gRPC request message
    /// (`OUT_OF_RANGE` above): the same order for every protocol.
    pub max_body_bytes: usize,
    pub limits: Limits,
    /// `PRACTICE_TLS_CERT_FILE` and `PRACTICE_TLS_KEY_FILE` (PEM): serve TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub conversation: ConversationConfig,
}

/// Every limit the server runs with, each set explicitly.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whole-request deadline; a smaller `grpc-timeout` wins.
    pub request_timeout: Duration,
    /// Waiting for a database connection; shorter than the request timeout.
    pub db_acquire_timeout: Duration,
    /// One SQL statement (PostgreSQL `statement_timeout`, SQLite busy wait).
    pub db_statement_timeout: Duration,
    /// Requests in flight across all connections before shedding (429).
    pub max_in_flight: usize,
    /// Requests in flight on one connection (further ones wait).
    pub max_per_connection: usize,
    pub max_concurrent_streams: u32,
    pub max_header_list_bytes: u32,
    pub max_response_bytes: usize,
    pub keepalive: Duration,
    pub max_connection_age: Duration,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Request bytes held in memory at once, across every request: a body
    /// waits for room (or gets 503) rather than grow the process.
    pub max_buffered_bytes: usize,
    /// Open connections; past it the server stops accepting until one
    /// closes (the kernel's backlog holds the rest).
    pub max_connections: usize,
}

fn bad(name: &str, why: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!("{name}: {why}"))
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The variables a configuration is read from, and the readings the
/// settings share: each refuses a value it can't read, by name.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, Error> {
        match self.get(name) {
            Some(v) => v
                .parse()
                .map_err(|e| bad(name, format!("{e} (want a whole number)"))),
            None => Ok(default),
        }
    }

    fn ms(&self, name: &str, default: u64) -> Result<Duration, Error> {
        self.number(name, default).map(Duration::from_millis)
    }

    /// A setting with two values; the first is the default.
    fn switch(&self, name: &str, yes: &str, no: &str) -> Result<bool, Error> {
        match self.get(name) {
            None => Ok(true),
            Some(v) if v == yes => Ok(true),
            Some(v) if v == no => Ok(false),
            Some(other) => Err(bad(name, format!("{other:?} is not {yes} or {no}"))),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the configuration from any variable lookup (the environment,
    /// or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars(get);
        let addr = vars
            .get("PRACTICE_ADDR")
            .unwrap_or_else(|| DEFAULT_ADDR.into());
        let addr: SocketAddr = addr.parse().map_err(|e| {
            bad(
                "PRACTICE_ADDR",
                format!("{e} (want host:port, e.g. {DEFAULT_ADDR})"),
            )
        })?;

        let keys = [
            vars.get("PRACTICE_JWT_SECRET")
                .map(|s| JwtKey::Hs256(Secret::new(s))),
            vars.get("PRACTICE_JWT_PUBLIC_KEY_FILE")
                .map(|p| JwtKey::PublicKeyFile(p.into())),
            vars.get("PRACTICE_JWKS")
                .map(|v| KeySource::parse(&v).map(JwtKey::Jwks))
                .transpose()?,
        ];
        let mut configured = keys.into_iter().flatten();
        let jwt_key = configured.next().unwrap_or(JwtKey::Development);
        if configured.next().is_some() {
            return Err(bad(
                "JWT keys",
                "set only one of PRACTICE_JWT_SECRET, PRACTICE_JWT_PUBLIC_KEY_FILE and PRACTICE_JWKS",
            ));
        }
        if let JwtKey::Hs256(secret) = &jwt_key
            && secret.expose().len() < 32
        {
            return Err(bad("PRACTICE_JWT_SECRET", "must be at least 32 bytes"));
        }

        let jwt_leeway = match vars.get("PRACTICE_JWT_LEEWAY_SECS") {
            Some(v) => {
                Duration::from_secs(v.parse().map_err(|e| bad("PRACTICE_JWT_LEEWAY_SECS", e))?)
            }
            None => Duration::from_secs(30),
        };
        let log_format = match vars.get("PRACTICE_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "PRACTICE_LOG_FORMAT",
                    format!("{other:?} is not text or json"),
                ));
            }
        };

        let max_body_bytes = vars.number("PRACTICE_MAX_BODY_BYTES", 1024 * 1024)? as usize;
        let store_defaults = crate::store::StoreOptions::default();
        let limits = Limits {
            request_timeout: vars.ms("PRACTICE_REQUEST_TIMEOUT_MS", 10_000)?,
            db_acquire_timeout: vars.ms("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            db_statement_timeout: vars.ms("PRACTICE_DB_STATEMENT_TIMEOUT_MS", 5_000)?,
            max_in_flight: vars.number("PRACTICE_MAX_IN_FLIGHT", 1024)? as usize,
            max_per_connection: vars.number("PRACTICE_MAX_PER_CONNECTION", 256)? as usize,
            max_concurrent_streams: vars.number("PRACTICE_MAX_CONCURRENT_STREAMS", 256)? as u32,
            max_header_list_bytes: vars.number("PRACTICE_MAX_HEADER_LIST_BYTES", 16 * 1024)? as u32,
            max_response_bytes: vars.number("PRACTICE_MAX_RESPONSE_BYTES", 4 * 1024 * 1024)?
                as usize,
            keepalive: vars.ms("PRACTICE_KEEPALIVE_MS", 30_000)?,
            max_connection_age: vars.ms("PRACTICE_MAX_CONNECTION_AGE_MS", 600_000)?,
            shutdown_grace: vars.ms("PRACTICE_SHUTDOWN_GRACE_MS", 20_000)?,
            max_buffered_bytes: vars.number("PRACTICE_MAX_BUFFERED_BYTES", 64 * 1024 * 1024)?
                as usize,
            max_connections: vars.number("PRACTICE_MAX_CONNECTIONS", 16_384)? as usize,
        };
        if limits.db_acquire_timeout >= limits.request_timeout
            || limits.db_statement_timeout >= limits.request_timeout
        {
            return Err(bad(
                "database timeouts",
                "PRACTICE_DB_ACQUIRE_TIMEOUT_MS and PRACTICE_DB_STATEMENT_TIMEOUT_MS must be shorter than PRACTICE_REQUEST_TIMEOUT_MS",
            ));
        }
        if limits.max_buffered_bytes < 2 * max_body_bytes || limits.max_connections == 0 {
            return Err(bad(
                "limits",
                "PRACTICE_MAX_BUFFERED_BYTES must hold two of the largest bodies \
                 (PRACTICE_MAX_BODY_BYTES), and PRACTICE_MAX_CONNECTIONS must be above 0",
            ));
        }
        if limits.max_in_flight == 0 || max_body_bytes == 0 {
            return Err(bad(
                "limits",
                "PRACTICE_MAX_IN_FLIGHT and PRACTICE_MAX_BODY_BYTES must be above 0",
            ));
        }

        let tls = match (
            vars.get("PRACTICE_TLS_CERT_FILE"),
            vars.get("PRACTICE_TLS_KEY_FILE"),
        ) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(bad(
                    "TLS",
                    "set both PRACTICE_TLS_CERT_FILE and PRACTICE_TLS_KEY_FILE, or neither",
                ));
            }
        };

        let database_url = vars
            .get("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        // The development secret is a file on this machine: fine for a
        // local SQLite run, never for a server others reach or share.
        if matches!(jwt_key, JwtKey::Development) {
            if !addr.ip().is_loopback() {
                return Err(bad(
                    "development mode",
                    format!(
                        "no JWT key is configured, so only a loopback PRACTICE_ADDR is served (got {addr}); \
                         set PRACTICE_JWT_SECRET, PRACTICE_JWT_PUBLIC_KEY_FILE or PRACTICE_JWKS"
                    ),
                ));
            }
            if database_url.starts_with("postgres") {
                return Err(bad(
                    "development mode",
                    "no JWT key is configured, which is for a local SQLite database only; \
                     set PRACTICE_JWT_SECRET, PRACTICE_JWT_PUBLIC_KEY_FILE or PRACTICE_JWKS to use PostgreSQL",
                ));
            }
        }

        Ok(Config {
            database_url,
            addr,
            jwt_key,
            jwt_issuer: vars.get("PRACTICE_JWT_ISSUER"),
            jwt_audience: vars.get("PRACTICE_JWT_AUDIENCE"),
            jwt_leeway,
            jwks_min_refresh: vars.ms(
                "PRACTICE_JWKS_MIN_REFRESH_MS",
                crate::auth::DEFAULT_MIN_REFRESH.as_millis() as u64,
            )?,
            default_models: list(
                &vars
                    .get("PRACTICE_DEFAULT_MODELS")
                    .unwrap_or_else(|| DEFAULT_MODELS.into()),
            ),
            cors_origins: list(&vars.get("PRACTICE_CORS_ORIGINS").unwrap_or_default()),
            log_format,
            db_max_connections: vars.number(
                "PRACTICE_DB_MAX_CONNECTIONS",
                store_defaults.max_connections.into(),
            )? as u32,
            sqlite_sync_every_commit: vars.switch(
                "PRACTICE_SQLITE_SYNCHRONOUS",
                "full",
                "normal",
            )?,
            group_commit: vars.switch("PRACTICE_GROUP_COMMIT", "on", "off")?,
            pg_write_lanes: vars
                .number(
                    "PRACTICE_PG_WRITE_LANES",
                    store_defaults.pg_write_lanes as u64,
                )?
                .min(64) as usize,
            max_body_bytes,
            limits,
            tls,
            conversation: ConversationConfig::read(&vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert!(matches!(c.jwt_key, JwtKey::Development));
        assert_eq!(c.default_models, ["gpt-4o-mini"]);
        // Development keys only on loopback, and only with SQLite.
        for (k, v) in [
            ("PRACTICE_ADDR", "0.0.0.0:8080"),
            ("DATABASE_URL", "postgres://localhost/practice"),
        ] {
            let err = format!("{:?}", config(&[(k, v)]).unwrap_err());
            assert!(err.contains("PRACTICE_JWT_SECRET"), "{err}");
        }
        assert_eq!(c.jwt_leeway, Duration::from_secs(30));
        // Every acknowledged SQLite commit is on disk unless asked otherwise.
        assert!(c.sqlite_sync_every_commit);
        let normal = config(&[("PRACTICE_SQLITE_SYNCHRONOUS", "normal")]).unwrap();
        assert!(!normal.sqlite_sync_every_commit);
        assert!(config(&[("PRACTICE_SQLITE_SYNCHRONOUS", "off")]).is_err());
        assert!(c.group_commit);
        assert_eq!(c.pg_write_lanes, 2);
        let alone = config(&[("PRACTICE_GROUP_COMMIT", "off")]).unwrap();
        assert!(!alone.group_commit);
        assert!(config(&[("PRACTICE_GROUP_COMMIT", "yes")]).is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = config(&[(
            "PRACTICE_JWT_SECRET",
            "super-secret-value-that-is-long-enough",
        )])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
    }

    #[test]
    fn rejects_two_keys_and_short_secrets() {
        assert!(
            config(&[
                ("PRACTICE_JWT_SECRET", &"x".repeat(32)),
                ("PRACTICE_JWKS", "/tmp/k.json")
            ])
            .is_err()
        );
        assert!(config(&[("PRACTICE_JWT_SECRET", "short")]).is_err());
        assert!(config(&[("PRACTICE_JWKS", "http://example.com/jwks")]).is_err());
    }

    #[test]
    fn database_timeouts_must_fit_in_the_request_timeout() {
        assert!(
            config(&[
                ("PRACTICE_REQUEST_TIMEOUT_MS", "1000"),
                ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "1000")
            ])
            .is_err()
        );
        assert!(
            config(&[
                ("PRACTICE_REQUEST_TIMEOUT_MS", "1000"),
                ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "2000")
            ])
            .is_err()
        );
        assert!(config(&[("PRACTICE_MAX_IN_FLIGHT", "0")]).is_err());
        assert!(config(&[("PRACTICE_MAX_IN_FLIGHT", "lots")]).is_err());
        let c = config(&[]).unwrap();
        assert!(c.limits.db_statement_timeout < c.limits.request_timeout);
    }

    #[test]
    fn lists_are_trimmed() {
        let c = config(&[("PRACTICE_DEFAULT_MODELS", " a, b ,,c ")]).unwrap();
        assert_eq!(c.default_models, ["a", "b", "c"]);
    }
}
