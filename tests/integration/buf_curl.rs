//! `buf curl`, an off-the-shelf client on its defaults (the Connect
//! protocol, schemas from the server's reflection): list the methods, then
//! create a session and get one refused.

use crate::common;

use std::path::{Path, PathBuf};

fn buf() -> Result<PathBuf, String> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/.bin/buf");
    if bin.exists() {
        Ok(bin)
    } else {
        Err("no buf in tests/browser/node_modules (npm ci there)".into())
    }
}

async fn buf_curl(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(buf().unwrap())
        .arg("curl")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_curl_lists_and_calls_through_reflection() {
    if let Err(why) = buf() {
        return common::skip("the buf curl test", &why);
    }
    let app = app!(common::Backend::Sqlite);
    let url = app.url();
    for http in [None, Some("--http2-prior-knowledge")] {
        let mut args: Vec<&str> = http.into_iter().collect();
        args.extend(["--list-methods", url.as_str()]);
        let (ok, out) = buf_curl(&args).await;
        assert!(ok, "{out}");
        for method in [
            "practice.v1.PracticeService/CreateSession",
            "practice.v1.PracticeService/ListSessions",
            "practice.v1.CatalogService/UpsertClass",
        ] {
            assert!(out.lines().any(|l| l == method), "{method} in {out}");
        }
    }
    let auth = format!("Authorization: Bearer {}", common::token(42));
    let create = format!("{url}/practice.v1.PracticeService/CreateSession");
    let (ok, out) = buf_curl(&[
        "--http2-prior-knowledge",
        "-H",
        &auth,
        "-d",
        r#"{"title": "from buf curl"}"#,
        &create,
    ])
    .await;
    assert!(ok, "{out}");
    let session: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(session["title"], "from buf curl");
    assert_eq!(session["userId"], "42");
    let (ok, out) = buf_curl(&["-d", "{}", &create]).await;
    assert!(!ok);
    assert!(out.contains("unauthenticated"), "{out}");
    assert_eq!(app.counts().await.sessions, 1);
}
