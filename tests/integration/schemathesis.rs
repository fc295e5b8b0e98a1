//! The OpenAPI document against the server, by an off-the-shelf fuzzer:
//! `schemathesis run --checks all` with a user's token and with an admin's,
//! on each backend.
//! Whatever the document calls valid must be accepted, whatever it calls
//! invalid refused, and every answer must match the document. The example
//! count and the seed are fixed, so a run fits the CI budget and repeats.
//!
//! schemathesis comes from PyPI into `tests/.venv` (`.ci/run` makes it):
//! `python3 -m venv tests/.venv && tests/.venv/bin/pip install schemathesis==4.32.5`

use crate::common;

const EXAMPLES: &str = "25";

// On both backends: a value one database stores and the other refuses
// (U+0000 in text, say) is a 500 only one of them shows.
on_both_backends!(the_openapi_document_tells_the_truth);

async fn the_openapi_document_tells_the_truth(backend: common::Backend) {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv/bin/schemathesis");
    if !bin.exists() {
        common::skip(
            "the schemathesis run",
            "no tests/.venv/bin/schemathesis (see tests/integration/schemathesis.rs)",
        );
        return;
    }
    // Generous timeouts: the suite's other tests share the machine, and a
    // 503 from a busy database would read as a server error.
    let app = app!(
        backend,
        &[
            ("PRACTICE_DEV_MODEL_DELAY_MS", "0"),
            ("PRACTICE_REQUEST_TIMEOUT_MS", "60000"),
            ("PRACTICE_DB_ACQUIRE_TIMEOUT_MS", "30000"),
            ("PRACTICE_DB_STATEMENT_TIMEOUT_MS", "30000"),
        ]
    );
    // A class the user is in, so some creates and prompts succeed.
    app.class(1, &[42], &[("m-a", true), ("m-b", true)]).await;
    let schema = format!("{}/openapi.json", app.url());
    for (who, token, seed) in [
        ("user", common::token(42), "1"),
        ("admin", common::admin_token(), "2"),
    ] {
        let run = tokio::process::Command::new(&bin)
            .args([
                "run",
                &schema,
                "--checks",
                "all",
                "--max-examples",
                EXAMPLES,
            ])
            .args(["--seed", seed, "--workers", "1", "--no-color"])
            // The stateful phase reads a 404 for a missing example id in
            // PATCH .../settings (the contract's answer for a reference the
            // caller can't see) as the session itself having vanished.
            .args(["--exclude-checks", "ensure_resource_availability"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .await
            .unwrap();
        let out = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "schemathesis with the {who} token found failures:\n{out}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(out.contains("generated"), "{out}");
    }
}
