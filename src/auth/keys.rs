//! The keys tokens are checked with: one HS256 secret, one PEM public key
//! (RS256, ES256 or EdDSA, told by the key itself), or a JWKS from a file or
//! an https URL, whose keys are picked by `kid` and refreshed, at a bounded
//! rate, when a token names a `kid` the cache does not know.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use crate::error::Error;

/// Where JWKS keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    Url(String),
}

impl KeySource {
    /// `PRACTICE_JWKS`: an https URL (http only for a loopback host, for
    /// local set-ups), or else a file path.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if let Some(rest) = value.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or_default();
            if !matches!(host, "localhost" | "127.0.0.1") {
                return Err(Error::internal(anyhow::anyhow!(
                    "PRACTICE_JWKS must be an https URL (plain http only for localhost)"
                )));
            }
            return Ok(KeySource::Url(value.to_owned()));
        }
        if value.starts_with("https://") {
            return Ok(KeySource::Url(value.to_owned()));
        }
        Ok(KeySource::File(PathBuf::from(value)))
    }
}

type KeyEntry = (DecodingKey, Algorithm);

struct JwksCache {
    source: KeySource,
    client: Option<reqwest::Client>,
    keys: HashMap<String, KeyEntry>,
    /// The only key of a set with one key, for tokens that carry no `kid`.
    single: Option<KeyEntry>,
    last_refresh: Option<Instant>,
    min_refresh: Duration,
}

/// The trusted keys. Cheap to clone.
#[derive(Clone)]
pub struct Keys(Arc<Inner>);

enum Inner {
    Static(KeyEntry),
    Jwks(Mutex<JwksCache>),
}

/// The least time between two JWKS refreshes caused by unknown `kid`s, so a
/// flood of made-up `kid`s cannot turn into a flood of fetches.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(30);

impl Keys {
    pub fn hs256(secret: Vec<u8>) -> Self {
        Keys(Arc::new(Inner::Static((
            DecodingKey::from_secret(&secret),
            Algorithm::HS256,
        ))))
    }

    /// A PEM public key; its type decides the algorithm.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let entry = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (k, Algorithm::RS256)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            (k, Algorithm::ES256)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (k, Algorithm::EdDSA)
        } else {
            return Err(Error::internal(anyhow::anyhow!(
                "the public key file holds no RSA, EC (P-256) or Ed25519 public key in PEM form"
            )));
        };
        Ok(Keys(Arc::new(Inner::Static(entry))))
    }

    /// A JWKS; loads it now, and fails if the first load fails.
    pub async fn from_jwks(source: KeySource, min_refresh: Duration) -> Result<Self, Error> {
        let client = match &source {
            KeySource::Url(_) => {
                // reqwest is built without a default TLS provider: use ring,
                // like the rest of the binary. Installing twice is harmless.
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some(
                    reqwest::Client::builder()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .map_err(|e| {
                            Error::internal(anyhow::anyhow!("cannot build the JWKS client: {e}"))
                        })?,
                )
            }
            KeySource::File(_) => None,
        };
        let mut cache = JwksCache {
            source,
            client,
            keys: HashMap::new(),
            single: None,
            last_refresh: None,
            min_refresh,
        };
        cache.refresh().await?;
        Ok(Keys(Arc::new(Inner::Jwks(Mutex::new(cache)))))
    }

    /// The key and algorithm for a token with this `kid`.
    pub async fn key_for(&self, kid: Option<&str>) -> Result<KeyEntry, Error> {
        let cache = match &*self.0 {
            Inner::Static(entry) => return Ok(entry.clone()),
            Inner::Jwks(cache) => cache,
        };
        let unknown =
            || Error::Unauthenticated("the bearer token's signing key (kid) is not trusted".into());
        let mut cache = cache.lock().await;
        let Some(kid) = kid else {
            return cache.single.clone().ok_or_else(|| {
                Error::Unauthenticated("the bearer token must name its signing key (kid)".into())
            });
        };
        if let Some(entry) = cache.keys.get(kid) {
            return Ok(entry.clone());
        }
        let due = cache
            .last_refresh
            .is_none_or(|t| t.elapsed() >= cache.min_refresh);
        if due && let Err(e) = cache.refresh().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
        }
        cache.keys.get(kid).cloned().ok_or_else(unknown)
    }
}

impl JwksCache {
    async fn refresh(&mut self) -> Result<(), Error> {
        self.last_refresh = Some(Instant::now());
        let text = match (&self.source, &self.client) {
            (KeySource::File(path), _) => tokio::fs::read_to_string(path).await.map_err(|e| {
                Error::internal(anyhow::anyhow!(
                    "cannot read JWKS file {}: {e}",
                    path.display()
                ))
            })?,
            (KeySource::Url(url), Some(client)) => client
                .get(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| Error::internal(anyhow::anyhow!("cannot fetch JWKS: {e}")))?
                .text()
                .await
                .map_err(|e| Error::internal(anyhow::anyhow!("cannot read JWKS: {e}")))?,
            (KeySource::Url(_), None) => unreachable!("a URL source always has a client"),
        };
        let set: JwkSet = serde_json::from_str(&text)
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
        self.single = if usable.len() == 1 {
            usable.pop()
        } else {
            None
        };
        self.keys = keys;
        Ok(())
    }
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
