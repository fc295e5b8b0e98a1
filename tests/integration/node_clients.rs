//! The Connect project's own Node client (@connectrpc/connect-node) with
//! every transport it has: Connect (JSON, binary, GET) and gRPC-Web (binary
//! and JSON) over HTTP/1.1 and HTTP/2, and gRPC. Each creates and reads a
//! session, then meets NOT_FOUND, INVALID_ARGUMENT with its BadRequest
//! detail, and UNAUTHENTICATED. The transports share Node's keep-alive
//! connections, so a refusal that left its connection unusable shows up as
//! the next call's broken pipe.

use crate::common;

use std::path::Path;

use practice_service::proto::FILE_DESCRIPTOR_SET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connect_node_transport() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/@connectrpc/connect-node").exists() {
        return common::skip(
            "the connect-node test",
            "no node_modules in tests/browser (npm ci there)",
        );
    }
    let app = app!(common::Backend::Sqlite);
    let descriptors = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(descriptors.path(), FILE_DESCRIPTOR_SET).unwrap();
    let url = app.url();
    let token = common::token(42);
    let results = common::node_json(
        "node-clients.mjs",
        &[url.as_ref(), token.as_ref(), descriptors.path().as_os_str()],
        &[],
    )
    .await;
    let results = results.as_object().unwrap();
    assert_eq!(results.len(), 9, "{results:?}");
    for (transport, r) in results {
        assert!(r.get("error").is_none(), "{transport}: {r}");
        assert_eq!(
            r["created"]["title"],
            transport.as_str(),
            "{transport}: {r}"
        );
        assert_eq!(r["created"]["userId"], "42", "{transport}");
        assert_eq!(r["same"], true, "{transport}: {r}");
        // SendPrompt streams on every transport: started, deltas, finished
        // per model (the two default models).
        let prompt = &r["prompt"];
        let kinds = prompt["kinds"].as_array().unwrap();
        assert_eq!(kinds.first().unwrap(), "started", "{transport}: {r}");
        assert_eq!(kinds.last().unwrap(), "finished", "{transport}: {r}");
        assert_eq!(kinds.iter().filter(|k| *k == "finished").count(), 2);
        assert_eq!(prompt["joined"], prompt["stored"], "{transport}: {r}");
        assert_eq!(prompt["stored"].as_object().unwrap().len(), 2);
        assert_eq!(r["promptMissing"]["code"], "NotFound", "{transport}: {r}");
        assert_eq!(r["notFound"]["code"], "NotFound", "{transport}: {r}");
        assert_eq!(r["notFound"]["message"], "session 99999 not found");
        assert_eq!(r["invalid"]["code"], "InvalidArgument", "{transport}: {r}");
        assert_eq!(
            r["invalid"]["details"],
            serde_json::json!(["google.rpc.BadRequest"]),
            "{transport}: {r}"
        );
        assert_eq!(
            r["unauthenticated"]["code"], "Unauthenticated",
            "{transport}: {r}"
        );
    }
    assert_eq!(app.counts().await.sessions, 9);
}
