//! Authentication as a gRPC client sees it: every bad token is
//! UNAUTHENTICATED with `www-authenticate: Bearer`, and writes nothing.

use crate::common;

use base64::Engine;
use common::{Backend, SECRET, authed};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use practice_service::proto::practice::v1::CreateSessionRequest;
use serde_json::{Value, json};
use tonic::Code;

fn now() -> u64 {
    get_current_timestamp()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn signed(alg: Algorithm, kid: Option<&str>, pem: &str, claims: &Value) -> String {
    let pem = std::fs::read(common::fixture(pem)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => unreachable!(),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key).unwrap()
}

/// A bearer ES256 token for user 42 naming `kid`.
pub(super) fn ec_bearer(kid: &str) -> String {
    format!(
        "Bearer {}",
        signed(Algorithm::ES256, Some(kid), "ec_private.pem", &claims("42"))
    )
}

/// Calls CreateSession with this Authorization value (none if `None`).
/// A bearer RS256 token for user 42, signed with the JWKS test key `rsa-1`.
pub(super) fn rsa_bearer() -> String {
    format!(
        "Bearer {}",
        signed(
            Algorithm::RS256,
            Some("rsa-1"),
            "rsa_private.pem",
            &claims("42")
        )
    )
}

pub(super) async fn call(
    app: &common::TestApp,
    authorization: Option<String>,
) -> Result<(), tonic::Status> {
    let mut req = tonic::Request::new(CreateSessionRequest::default());
    if let Some(value) = authorization {
        req.metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    app.client().await.create_session(req).await.map(|_| ())
}

pub(super) async fn assert_refused(
    app: &common::TestApp,
    authorization: Option<String>,
    why: &str,
) {
    let before = app.counts().await;
    let status = call(app, authorization).await.expect_err(why);
    assert_eq!(status.code(), Code::Unauthenticated, "{why}: {status:?}");
    assert_eq!(
        status
            .metadata()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "{why}"
    );
    assert!(!status.message().contains(SECRET), "{why}");
    assert_eq!(app.counts().await, before, "{why}: nothing written");
}

#[tokio::test]
async fn hs256_tokens() {
    let app = app!(Backend::Sqlite);
    call(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&claims("42"), SECRET.as_bytes())
        )),
    )
    .await
    .unwrap();

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let alg_none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims("42").to_string())
    );
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "no token"),
        (Some("Basic YWxhZGRpbjpvcGVu".into()), "not a bearer token"),
        (Some("Bearer".into()), "empty bearer"),
        (Some("Bearer not.a.jwt".into()), "malformed"),
        (Some(format!("Bearer {alg_none}")), "alg none"),
        (
            Some(format!(
                "Bearer {}",
                hs256(&claims("42"), b"another-secret-another-secret-xx")
            )),
            "wrong secret",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs256(&json!({"sub": "42", "exp": now() - 120}), SECRET.as_bytes())
            )),
            "expired past leeway",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs256(&json!({"sub": "42"}), SECRET.as_bytes())
            )),
            "no exp",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs256(&json!({"exp": now() + 600}), SECRET.as_bytes())
            )),
            "no sub",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs256(
                    &json!({"sub": "42", "exp": now() + 600, "nbf": now() + 300}),
                    SECRET.as_bytes()
                )
            )),
            "not yet valid",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs256(&claims("alice"), SECRET.as_bytes())
            )),
            "sub is not a user id",
        ),
        (
            Some(format!("Bearer {}", hs256(&claims("0"), SECRET.as_bytes()))),
            "sub is zero",
        ),
        (
            Some(format!(
                "Bearer {}",
                signed(Algorithm::RS256, None, "rsa_private.pem", &claims("42"))
            )),
            "RS256 against an HS256 key",
        ),
    ];
    for (authorization, why) in cases {
        assert_refused(&app, authorization, why).await;
    }
    // Within the 30 s leeway an expired token still passes.
    call(
        &app,
        Some(format!(
            "Bearer {}",
            hs256(&json!({"sub": "42", "exp": now() - 5}), SECRET.as_bytes())
        )),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn issuer_and_audience_when_configured() {
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_JWT_ISSUER", "https://id.example"),
            ("PRACTICE_JWT_AUDIENCE", "practice")
        ]
    );
    let good =
        json!({"sub": "42", "exp": now() + 600, "iss": "https://id.example", "aud": "practice"});
    call(
        &app,
        Some(format!("Bearer {}", hs256(&good, SECRET.as_bytes()))),
    )
    .await
    .unwrap();
    for (claims, why) in [
        (
            json!({"sub": "42", "exp": now() + 600, "iss": "https://id.example", "aud": "other"}),
            "wrong audience",
        ),
        (
            json!({"sub": "42", "exp": now() + 600, "iss": "https://id.example"}),
            "no audience",
        ),
        (
            json!({"sub": "42", "exp": now() + 600, "iss": "https://evil.example", "aud": "practice"}),
            "wrong issuer",
        ),
        (
            json!({"sub": "42", "exp": now() + 600, "aud": "practice"}),
            "no issuer",
        ),
    ] {
        assert_refused(
            &app,
            Some(format!("Bearer {}", hs256(&claims, SECRET.as_bytes()))),
            why,
        )
        .await;
    }
}

#[tokio::test]
async fn public_key_files_pin_their_algorithm() {
    for (alg, private, public) in [
        (Algorithm::RS256, "rsa_private.pem", "rsa_public.pem"),
        (Algorithm::ES256, "ec_private.pem", "ec_public.pem"),
        (Algorithm::EdDSA, "ed_private.pem", "ed_public.pem"),
    ] {
        let key_file = common::fixture(public);
        let app = app!(
            Backend::Sqlite,
            &[
                ("PRACTICE_JWT_SECRET", ""),
                ("PRACTICE_JWT_PUBLIC_KEY_FILE", &key_file)
            ]
        );
        call(
            &app,
            Some(format!(
                "Bearer {}",
                signed(alg, None, private, &claims("42"))
            )),
        )
        .await
        .unwrap();
        // The HS256-with-the-public-key confusion attack.
        let public_pem = std::fs::read(&key_file).unwrap();
        assert_refused(
            &app,
            Some(format!("Bearer {}", hs256(&claims("42"), &public_pem))),
            "HS256 signed with the public key",
        )
        .await;
        assert_refused(
            &app,
            Some(format!(
                "Bearer {}",
                hs256(&claims("42"), SECRET.as_bytes())
            )),
            "HS256 token",
        )
        .await;
    }
}

#[tokio::test]
async fn jwks_picks_keys_by_kid() {
    let jwks = common::fixture("jwks.json");
    let app = app!(
        Backend::Sqlite,
        &[("PRACTICE_JWT_SECRET", ""), ("PRACTICE_JWKS", &jwks)]
    );
    call(&app, Some(rsa_bearer())).await.unwrap();
    call(
        &app,
        Some(format!(
            "Bearer {}",
            signed(
                Algorithm::ES256,
                Some("ec-1"),
                "ec_private.pem",
                &claims("42")
            )
        )),
    )
    .await
    .unwrap();
    for (token, why) in [
        (
            signed(
                Algorithm::RS256,
                Some("nope"),
                "rsa_private.pem",
                &claims("42"),
            ),
            "unknown kid",
        ),
        (
            signed(Algorithm::RS256, None, "rsa_private.pem", &claims("42")),
            "no kid with two keys",
        ),
        (
            signed(
                Algorithm::ES256,
                Some("rsa-1"),
                "ec_private.pem",
                &claims("42"),
            ),
            "kid of another key type",
        ),
        (
            signed(
                Algorithm::EdDSA,
                Some("ec-1"),
                "ed_private.pem",
                &claims("42"),
            ),
            "wrong algorithm for the kid",
        ),
    ] {
        assert_refused(&app, Some(format!("Bearer {token}")), why).await;
    }
}

#[tokio::test]
async fn the_response_user_is_the_token_subject() {
    let app = app!(Backend::Sqlite);
    let s = app
        .client()
        .await
        .create_session(authed(CreateSessionRequest::default(), &common::token(77)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.user_id, 77);
}

/// Serves a JWKS over plain HTTP on loopback (allowed for local set-ups),
/// counting the fetches; the body can be swapped while running.
async fn serve_jwks(
    body: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/jwks.json",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (body, fetches) = (body.clone(), fetches.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.lock().unwrap().clone();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_is_refetched_for_new_kids_at_a_bounded_rate() {
    use std::sync::atomic::Ordering;
    let full: Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("jwks.json")).unwrap())
            .unwrap();
    let rsa_only = json!({"keys": [full["keys"][0].clone()]});
    let body = std::sync::Arc::new(std::sync::Mutex::new(rsa_only.to_string()));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = serve_jwks(body.clone(), fetches.clone()).await;
    let app = app!(
        Backend::Sqlite,
        &[
            ("PRACTICE_JWT_SECRET", ""),
            ("PRACTICE_JWKS", &url),
            ("PRACTICE_JWKS_MIN_REFRESH_MS", "1500")
        ]
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start-up"
    );
    let rsa = rsa_bearer();
    let ec = format!(
        "Bearer {}",
        signed(
            Algorithm::ES256,
            Some("ec-1"),
            "ec_private.pem",
            &claims("42")
        )
    );
    call(&app, Some(rsa.clone())).await.unwrap();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a known kid needs no fetch"
    );

    // The issuer rotates in a new key.
    *body.lock().unwrap() = full.to_string();
    // Within the refresh interval an unknown kid is refused without a fetch
    // (a flood of made-up kids can't become a flood of fetches)...
    for _ in 0..5 {
        assert_refused(&app, Some(ec.clone()), "unknown kid inside the interval").await;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // ...and once it has passed, one refetch picks the new key up.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    call(&app, Some(ec.clone())).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    for _ in 0..5 {
        call(&app, Some(ec.clone())).await.unwrap();
        assert_refused(&app, Some(ec_bearer("made-up")), "made-up kid").await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "no further fetches within the interval"
    );
}
