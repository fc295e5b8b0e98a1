//! A real browser: a page bundled with @connectrpc/connect-web calls
//! CreateSession and GetSession over gRPC-Web from another origin in
//! headless Chromium, and shows the gRPC status of a call with a bad token.
//!
//! Needs `npm ci` in tests/browser and Debian's chromium (`.ci/run` installs
//! both); without them the test is skipped on a developer machine and fails
//! on CI.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use practice_service::proto::FILE_DESCRIPTOR_SET;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> Option<String> {
    std::env::var("CHROMIUM_PATH").ok().or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .find(|p| Path::new(p).exists())
            .map(|p| p.to_string())
    })
}

fn ready() -> Result<String, String> {
    let chromium = chromium().ok_or("no chromium (apt-get install chromium)")?;
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Err("no node_modules in tests/browser (npm ci there)".into());
    }
    Ok(chromium)
}

/// Serves the page, its bundle and the descriptor set on their own origin.
async fn serve_page(listener: tokio::net::TcpListener, bundle: Vec<u8>) {
    let index = std::fs::read(browser_dir().join("index.html")).unwrap();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let (index, bundle) = (index.clone(), bundle.clone());
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/");
            let (status, content_type, body): (&str, &str, Vec<u8>) = match path {
                "/" => ("200 OK", "text/html", index),
                "/app.js" => ("200 OK", "text/javascript", bundle),
                "/descriptors.bin" => (
                    "200 OK",
                    "application/octet-stream",
                    FILE_DESCRIPTOR_SET.to_vec(),
                ),
                _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_from_a_real_browser() {
    let chromium = match ready() {
        Ok(c) => c,
        Err(why) => return common::skip("the browser test (gRPC-Web from Chromium)", &why),
    };
    let dir = browser_dir();
    let build = Command::new("npm")
        .args(["run", "--silent", "build"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "bundling failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let bundle = std::fs::read(dir.join("dist/app.js")).unwrap();

    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!(
        "http://127.0.0.1:{}",
        page_listener.local_addr().unwrap().port()
    );
    tokio::spawn(serve_page(page_listener, bundle));

    let app = common::spawn_app_with(
        common::Backend::Sqlite,
        &[("PRACTICE_CORS_ORIGINS", &origin)],
    )
    .await
    .unwrap();
    app.class(3, &[42], &[("gpt-4o-mini", true), ("claude-3-haiku", true)])
        .await;
    let token = common::token(42);

    // connect-web speaks binary gRPC-Web (its "text" option means JSON
    // payloads, which gRPC-Web servers don't take); grpc-web-text is covered
    // by tests/grpc_web.rs.
    {
        let format = "binary";
        let url = format!("{origin}/?api={}&token={token}", app.url());
        let out = common::node_json(
            "run.mjs",
            &[url.as_ref()],
            &[("CHROMIUM_PATH", chromium.as_str())],
        )
        .await;
        let result = &out["result"];
        assert!(result.get("error").is_none(), "{format}: {result}");
        assert_eq!(result["created"]["userId"], "42", "{format}: {result}");
        assert_eq!(result["created"]["classId"], "3");
        assert_eq!(result["created"]["title"], "from the browser");
        assert_eq!(result["created"]["models"].as_array().unwrap().len(), 2);
        assert_eq!(
            result["same"], true,
            "GetSession returned the created session"
        );
        assert_eq!(result["badToken"]["code"], 16);
        assert_eq!(result["badToken"]["name"], "Unauthenticated");
        // The Connect protocol from the same page (JSON, GET for reads).
        let connect = &result["connect"];
        assert_eq!(connect["created"]["title"], "over Connect", "{result}");
        assert_eq!(connect["created"]["models"].as_array().unwrap().len(), 2);
        assert_eq!(connect["same"], true, "{result}");
        assert_eq!(connect["badToken"]["name"], "Unauthenticated", "{result}");
        // gRPC-Web's JSON payload mode.
        let web_json = &result["grpcWebJson"];
        assert_eq!(web_json["created"]["title"], "gRPC-Web JSON", "{result}");
        assert_eq!(web_json["same"], true, "{result}");
        assert_eq!(web_json["missing"]["name"], "NotFound", "{result}");
        assert_eq!(web_json["missing"]["message"], "session 999 not found");
        // The streamed prompt: per model, started, deltas, finished; the
        // page shows each model's deltas joined, equal to its stored text.
        let prompt = &result["prompt"];
        let events = prompt["events"].as_array().unwrap();
        for (id, finished) in prompt["finished"].as_object().unwrap() {
            let kinds: Vec<&str> = events
                .iter()
                .filter(|e| e["sessionModelId"] == id.as_str())
                .map(|e| e["kind"].as_str().unwrap())
                .collect();
            assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
            assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
            assert!(
                kinds.iter().filter(|k| **k == "delta").count() > 3,
                "{kinds:?}"
            );
            assert_eq!(finished["status"], "completed");
            assert_eq!(prompt["onPage"][id], finished["text"], "{result}");
        }
        assert_eq!(prompt["finished"].as_object().unwrap().len(), 2, "{result}");
        // A regenerated answer, streamed onto the page, then rated.
        let again = &result["regenerated"];
        assert_eq!(again["attempt"], "2", "{result}");
        assert_eq!(again["status"], "completed");
        assert_eq!(again["promptId"], again["firstPromptId"]);
        assert_eq!(again["onPage"], again["text"]);
        assert_eq!(result["rated"]["rating"], "up");
        assert_eq!(result["rated"]["responseId"], again["responseId"]);
        let shown = out["shown"].as_str().unwrap();
        assert!(
            shown.starts_with("gRPC status 16 (Unauthenticated)"),
            "{shown}"
        );
    }
    assert_eq!(app.counts().await.sessions, 3);
}
