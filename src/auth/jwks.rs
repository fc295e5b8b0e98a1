//! Keys from a JWKS (a file, or an https URL), picked by `kid`.
//!
//! Verifying a token never waits for a fetch: the current key set is read
//! without a lock that a fetch holds. A token with an unknown `kid` may
//! cause one refetch, at most every `min_refresh`, and only one at a time
//! (other unknown `kid`s are refused meanwhile; known ones verify as usual).
//! The set is also refreshed on a timer (the server's `Cache-Control:
//! max-age`, within bounds), so a key removed upstream stops being trusted.
//! Fetches follow no redirect, read at most `MAX_JWKS_BYTES`, and time out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use super::keys::KeyEntry;
use crate::error::Error;

/// The largest key set read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// The periodic refresh, when the server says nothing or something
/// unreasonable: between the bounds, this by default.
const REFRESH_DEFAULT: Duration = Duration::from_secs(300);
const REFRESH_MIN: Duration = Duration::from_secs(60);
const REFRESH_MAX: Duration = Duration::from_secs(3600);

/// The least time between two JWKS refreshes caused by unknown `kid`s, so a
/// flood of made-up `kid`s cannot turn into a flood of fetches.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(30);

/// Where JWKS keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    Url(reqwest::Url),
}

impl KeySource {
    /// `PRACTICE_JWKS`: an https URL (plain http only for a loopback host,
    /// for local set-ups), or else a file path.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::internal(anyhow::anyhow!("PRACTICE_JWKS {why}"));
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            return Ok(KeySource::File(PathBuf::from(value)));
        }
        let url = reqwest::Url::parse(value).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err(bad("has no host")),
        };
        match url.scheme() {
            "https" => Ok(KeySource::Url(url)),
            "http" if loopback => Ok(KeySource::Url(url)),
            _ => Err(bad(
                "must be an https URL (plain http only for a loopback host)",
            )),
        }
    }
}

/// One loaded key set.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, KeyEntry>,
    /// The only key of a set with one key, for tokens that carry no `kid`.
    single: Option<KeyEntry>,
}

pub struct Jwks {
    source: KeySource,
    client: reqwest::Client,
    current: RwLock<Arc<KeySet>>,
    /// Held while a fetch caused by an unknown `kid` runs; the time of the
    /// last such fetch.
    refetch: Mutex<Option<Instant>>,
    min_refresh: Duration,
}

impl Jwks {
    pub async fn load(source: KeySource, min_refresh: Duration) -> Result<Arc<Self>, Error> {
        // reqwest is built without a default TLS provider: use ring, like
        // the rest of the binary. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(anyhow::anyhow!("cannot build the JWKS client: {e}")))?;
        let jwks = Arc::new(Self {
            source,
            client,
            current: RwLock::new(Arc::new(KeySet::default())),
            // The load just now counts: unknown kids wait `min_refresh` for the next.
            refetch: Mutex::new(Some(Instant::now())),
            min_refresh,
        });
        let every = jwks.refresh().await?;
        spawn_refresher(Arc::downgrade(&jwks), every);
        Ok(jwks)
    }

    fn keys(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn key_for(&self, kid: Option<&str>) -> Result<KeyEntry, Error> {
        let Some(kid) = kid else {
            return self.keys().single.clone().ok_or_else(|| {
                Error::Unauthenticated("the bearer token must name its signing key (kid)".into())
            });
        };
        if let Some(entry) = self.keys().keys.get(kid) {
            return Ok(entry.clone());
        }
        let unknown =
            || Error::Unauthenticated("the bearer token's signing key (kid) is not trusted".into());
        // Unknown: one refetch at a time, at a bounded rate. While one runs,
        // other unknown kids are refused at once rather than queued behind
        // a key server that may be slow.
        let Ok(mut last) = self.refetch.try_lock() else {
            return Err(unknown());
        };
        if let Some(entry) = self.keys().keys.get(kid) {
            return Ok(entry.clone()); // a fetch that just ended brought it
        }
        if last.is_none_or(|t| t.elapsed() >= self.min_refresh) {
            *last = Some(Instant::now());
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "JWKS refresh failed");
            }
        }
        drop(last);
        self.keys().keys.get(kid).cloned().ok_or_else(unknown)
    }

    /// Loads the key set and swaps it in; how long until the next refresh.
    async fn refresh(&self) -> Result<Duration, Error> {
        let (bytes, every) = match &self.source {
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| {
                    Error::internal(anyhow::anyhow!(
                        "cannot read JWKS file {}: {e}",
                        path.display()
                    ))
                })?;
                (bytes, REFRESH_DEFAULT)
            }
            KeySource::Url(url) => self.fetch(url).await?,
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(Error::internal(anyhow::anyhow!(
                "the JWKS is larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        let set: JwkSet = serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(anyhow::anyhow!("the JWKS is not valid JSON: {e}")))?;
        let mut keys = HashMap::new();
        let mut usable = Vec::new();
        for jwk in &set.keys {
            match entry_for(jwk) {
                Some(entry) => {
                    if let Some(kid) = &jwk.common.key_id {
                        keys.insert(kid.clone(), entry.clone());
                    }
                    usable.push(entry);
                }
                None => {
                    tracing::warn!(kid = ?jwk.common.key_id, "skipping a JWKS key that is not an RS/ES/EdDSA public key")
                }
            }
        }
        let single = if usable.len() == 1 {
            usable.pop()
        } else {
            None
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(KeySet { keys, single });
        Ok(every)
    }

    /// GETs the key set: no redirects, at most `MAX_JWKS_BYTES`; and the
    /// refresh interval its `Cache-Control: max-age` asks for, bounded.
    async fn fetch(&self, url: &reqwest::Url) -> Result<(Vec<u8>, Duration), Error> {
        let failed = |why: String| Error::internal(anyhow::anyhow!("cannot fetch JWKS: {why}"));
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status().as_u16())));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
        }
        let every = max_age(response.headers())
            .map_or(REFRESH_DEFAULT, |d| d.clamp(REFRESH_MIN, REFRESH_MAX));
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?
        {
            if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, every))
    }
}

/// `Cache-Control: max-age=N`, if given.
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|n| n.trim().parse().ok())
        .map(Duration::from_secs)
}

/// Refreshes the set on a timer while anyone still holds it.
fn spawn_refresher(jwks: Weak<Jwks>, first: Duration) {
    tokio::spawn(async move {
        let mut every = first;
        loop {
            tokio::time::sleep(every).await;
            let Some(jwks) = jwks.upgrade() else {
                return;
            };
            match jwks.refresh().await {
                Ok(next) => every = next,
                // Keep the keys we have, and try again sooner.
                Err(e) => {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed");
                    every = REFRESH_MIN;
                }
            }
        }
    });
}

/// A JWK's key and the one algorithm it may verify. Symmetric keys are never
/// taken from a JWKS.
fn entry_for(jwk: &Jwk) -> Option<KeyEntry> {
    let from_params = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => from_params,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::RS384) => Algorithm::RS384,
        Some(KeyAlgorithm::RS512) => Algorithm::RS512,
        Some(KeyAlgorithm::PS256) => Algorithm::PS256,
        Some(KeyAlgorithm::PS384) => Algorithm::PS384,
        Some(KeyAlgorithm::PS512) => Algorithm::PS512,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::ES384) => Algorithm::ES384,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    // The declared algorithm must fit the key's type.
    if alg.family() != from_params.family() {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok().map(|k| (k, alg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_checked() {
        for ok in [
            "https://id.example.com/.well-known/jwks.json",
            "http://localhost:8080/jwks",
            "http://127.0.0.1/jwks",
            "http://[::1]:9/jwks",
        ] {
            assert!(
                matches!(KeySource::parse(ok), Ok(KeySource::Url(_))),
                "{ok}"
            );
        }
        for bad in [
            "http://localhost:1@evil.example/",
            "http://evil.example/jwks",
            "http://localhost.evil.example/jwks",
            "https://user:pw@id.example.com/jwks",
            "http://127.0.0.1.evil.example/",
        ] {
            assert!(KeySource::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            KeySource::parse("/etc/jwks.json"),
            Ok(KeySource::File(_))
        ));
    }

    #[test]
    fn max_age_is_read() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=120".parse().unwrap(),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(120)));
        assert_eq!(max_age(&http::HeaderMap::new()), None);
    }
}
