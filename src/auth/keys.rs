//! The keys tokens are checked with: one HS256 secret, one PEM public key
//! (RS256, ES256 or EdDSA, told by the key itself), or a JWKS (`jwks.rs`).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::jwks::{Jwks, KeySource};
use crate::error::Error;

pub type KeyEntry = (DecodingKey, Algorithm);

/// The trusted keys. Cheap to clone.
#[derive(Clone)]
pub struct Keys(Arc<Inner>);

enum Inner {
    Static(KeyEntry),
    Jwks(Arc<Jwks>),
}

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

    /// A JWKS; loads it now, and fails if the first load fails. Its keys
    /// are then refreshed in the background for as long as they are used.
    pub async fn from_jwks(source: KeySource, min_refresh: Duration) -> Result<Self, Error> {
        let jwks = Jwks::load(source, min_refresh).await?;
        Ok(Keys(Arc::new(Inner::Jwks(jwks))))
    }

    /// The key and algorithm for a token with this `kid`.
    pub async fn key_for(&self, kid: Option<&str>) -> Result<KeyEntry, Error> {
        match &*self.0 {
            Inner::Static(entry) => Ok(entry.clone()),
            Inner::Jwks(jwks) => jwks.key_for(kid).await,
        }
    }
}
