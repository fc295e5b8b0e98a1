//! Bearer-token authentication: which keys are trusted, and what a valid
//! token says about its caller.

mod dev_secret;
mod jwks;
mod keys;

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

pub use dev_secret::{dev_secret_path, load_or_create_dev_secret};
pub use jwks::{DEFAULT_MIN_REFRESH, KeySource, MAX_JWKS_BYTES};
pub use keys::Keys;

use crate::domain::UserId;
use crate::error::Error;

/// The scope an internal (catalog) caller's token must carry.
pub const ADMIN_SCOPE: &str = "practice:admin";

/// The verified caller, put into the request's extensions by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub scopes: Vec<String>,
}

impl Principal {
    /// The user id of a user RPC's caller: `sub` as a decimal integer >= 1.
    pub fn user_id(&self) -> Result<UserId, Error> {
        UserId::parse(&self.subject)
            .ok_or_else(|| Error::Unauthenticated("the token's subject is not a user id".into()))
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Space-separated (RFC 8693).
    #[serde(default)]
    scope: Option<String>,
    /// What some identity providers send instead: an array of scopes (or,
    /// from a few, one space-separated string).
    #[serde(default)]
    scp: Option<Scopes>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scopes {
    List(Vec<String>),
    Text(String),
}

impl Claims {
    fn scopes(self) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        match self.scp {
            Some(Scopes::List(list)) => scopes.extend(list),
            Some(Scopes::Text(text)) => scopes.extend(text.split_whitespace().map(str::to_owned)),
            None => {}
        }
        scopes
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, Default)]
pub struct ClaimRules {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
}

pub struct Authenticator {
    keys: Keys,
    rules: ClaimRules,
}

impl Authenticator {
    pub fn new(keys: Keys, rules: ClaimRules) -> Self {
        Self { keys, rules }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.rules.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.rules.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.rules.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // No audience configured: an `aud` in the token is not checked.
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Verifies a bearer token. The algorithm comes from the trusted key,
    /// never from the token's header.
    pub async fn verify(&self, token: &str) -> Result<Principal, Error> {
        // Counted by a test: each request verifies its token once.
        tracing::debug!(target: "ingress", "bearer token verified");
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Error::Unauthenticated(
                "the bearer token is malformed or uses an unsupported algorithm".into(),
            )
        })?;
        let (key, alg) = self.keys.key_for(header.kid.as_deref()).await?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(alg))
            .map_err(|e| Error::Unauthenticated(describe(e.kind()).into()))?;
        let subject = data.claims.sub.clone();
        Ok(Principal {
            subject,
            scopes: data.claims.scopes(),
        })
    }
}

fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the bearer token has expired",
        ErrorKind::ImmatureSignature => "the bearer token is not valid yet (nbf)",
        ErrorKind::InvalidSignature => "the bearer token's signature is invalid",
        ErrorKind::InvalidAlgorithm => {
            "the bearer token is not signed with the configured algorithm"
        }
        ErrorKind::InvalidIssuer => "the bearer token's issuer is not accepted",
        ErrorKind::InvalidAudience => "the bearer token's audience is not accepted",
        ErrorKind::MissingRequiredClaim(_) => {
            "the bearer token lacks a required claim (exp, sub, and iss/aud when configured)"
        }
        _ => "the bearer token is invalid",
    }
}

/// Signs a token with an HS256 secret: the `token` command and the tests.
pub fn sign_hs256(
    secret: &[u8],
    sub: &str,
    scope: Option<&str>,
    ttl: Duration,
) -> Result<String, Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "sub": sub,
        "iat": now,
        "exp": now + ttl.as_secs(),
    });
    if let Some(scope) = scope {
        claims["scope"] = scope.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(rules: ClaimRules) -> Authenticator {
        Authenticator::new(
            Keys::hs256(b"0123456789abcdef0123456789abcdef".to_vec()),
            rules,
        )
    }

    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[tokio::test]
    async fn accepts_a_good_token_and_reads_scopes() {
        let p = auth(ClaimRules::default())
            .verify(&token(
                serde_json::json!({"sub": "42", "exp": now() + 60, "scope": "a practice:admin"}),
            ))
            .await
            .unwrap();
        assert_eq!(p.user_id().unwrap().get(), 42);
        assert!(p.has_scope(ADMIN_SCOPE));
    }

    #[tokio::test]
    async fn reads_scopes_from_an_scp_array_or_string() {
        let a = auth(ClaimRules::default());
        for scp in [
            serde_json::json!(["openid", "practice:admin"]),
            serde_json::json!("openid practice:admin"),
        ] {
            let p = a
                .verify(&token(
                    serde_json::json!({"sub": "svc", "exp": now() + 60, "scp": scp}),
                ))
                .await
                .unwrap();
            assert!(p.has_scope(ADMIN_SCOPE), "{scp}");
        }
        let p = a
            .verify(&token(
                serde_json::json!({"sub": "svc", "exp": now() + 60, "scp": ["openid"]}),
            ))
            .await
            .unwrap();
        assert!(!p.has_scope(ADMIN_SCOPE));
    }

    #[tokio::test]
    async fn requires_exp_and_sub() {
        let a = auth(ClaimRules::default());
        assert!(
            a.verify(&token(serde_json::json!({"sub": "1"})))
                .await
                .is_err()
        );
        assert!(
            a.verify(&token(serde_json::json!({"exp": now() + 60})))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn honours_leeway_and_nbf() {
        let a = auth(ClaimRules {
            leeway: Duration::from_secs(30),
            ..Default::default()
        });
        assert!(
            a.verify(&token(serde_json::json!({"sub": "1", "exp": now() - 10})))
                .await
                .is_ok()
        );
        assert!(
            a.verify(&token(serde_json::json!({"sub": "1", "exp": now() - 100})))
                .await
                .is_err()
        );
        assert!(
            a.verify(&token(
                serde_json::json!({"sub": "1", "exp": now() + 600, "nbf": now() + 300})
            ))
            .await
            .is_err()
        );
    }

    #[tokio::test]
    async fn checks_issuer_and_audience_when_configured() {
        let a = auth(ClaimRules {
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            ..Default::default()
        });
        let good = serde_json::json!({"sub": "1", "exp": now() + 60, "iss": "iss", "aud": "aud"});
        assert!(a.verify(&token(good)).await.is_ok());
        for bad in [
            serde_json::json!({"sub": "1", "exp": now() + 60, "iss": "iss"}),
            serde_json::json!({"sub": "1", "exp": now() + 60, "iss": "iss", "aud": "other"}),
            serde_json::json!({"sub": "1", "exp": now() + 60, "iss": "evil", "aud": "aud"}),
        ] {
            assert!(a.verify(&token(bad)).await.is_err());
        }
    }

    #[tokio::test]
    async fn refuses_alg_none() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let unsigned = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(format!(r#"{{"sub":"1","exp":{}}}"#, now() + 60))
        );
        assert!(auth(ClaimRules::default()).verify(&unsigned).await.is_err());
    }
}
