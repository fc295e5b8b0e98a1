//! One `Config`, read from the environment. Secrets never print: their
//! `Debug` is redacted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    pub default_models: Vec<String>,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub db_max_connections: u32,
    /// Largest JSON request body; larger ones get 413.
    pub max_body_bytes: usize,
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

impl Config {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the configuration from any variable lookup (the environment,
    /// or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let addr = get("PRACTICE_ADDR").unwrap_or_else(|| DEFAULT_ADDR.into());
        let addr = addr.parse().map_err(|e| {
            bad(
                "PRACTICE_ADDR",
                format!("{e} (want host:port, e.g. {DEFAULT_ADDR})"),
            )
        })?;

        let keys = [
            get("PRACTICE_JWT_SECRET").map(|s| JwtKey::Hs256(Secret::new(s))),
            get("PRACTICE_JWT_PUBLIC_KEY_FILE").map(|p| JwtKey::PublicKeyFile(p.into())),
            get("PRACTICE_JWKS")
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

        let jwt_leeway = match get("PRACTICE_JWT_LEEWAY_SECS") {
            Some(v) => {
                Duration::from_secs(v.parse().map_err(|e| bad("PRACTICE_JWT_LEEWAY_SECS", e))?)
            }
            None => Duration::from_secs(30),
        };
        let log_format = match get("PRACTICE_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "PRACTICE_LOG_FORMAT",
                    format!("{other:?} is not text or json"),
                ));
            }
        };
        let db_max_connections = match get("PRACTICE_DB_MAX_CONNECTIONS") {
            Some(v) => v
                .parse()
                .map_err(|e| bad("PRACTICE_DB_MAX_CONNECTIONS", e))?,
            None => 16,
        };

        let max_body_bytes = match get("PRACTICE_MAX_BODY_BYTES") {
            Some(v) => v.parse().map_err(|e| bad("PRACTICE_MAX_BODY_BYTES", e))?,
            None => 1024 * 1024,
        };

        Ok(Config {
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            addr,
            jwt_key,
            jwt_issuer: get("PRACTICE_JWT_ISSUER"),
            jwt_audience: get("PRACTICE_JWT_AUDIENCE"),
            jwt_leeway,
            default_models: list(
                &get("PRACTICE_DEFAULT_MODELS").unwrap_or_else(|| DEFAULT_MODELS.into()),
            ),
            cors_origins: list(&get("PRACTICE_CORS_ORIGINS").unwrap_or_default()),
            log_format,
            db_max_connections,
            max_body_bytes,
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
        assert_eq!(c.jwt_leeway, Duration::from_secs(30));
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
    fn lists_are_trimmed() {
        let c = config(&[("PRACTICE_DEFAULT_MODELS", " a, b ,,c ")]).unwrap();
        assert_eq!(c.default_models, ["a", "b", "c"]);
    }
}
