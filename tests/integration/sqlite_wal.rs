//! SQLite's WAL is copied into the database file by the background
//! checkpointer, not by the request that happens to commit the
//! thousandth page (the writer's own automatic checkpoint is a backstop at
//! a much larger WAL).

use std::path::Path;
use std::time::Duration;

use crate::common::{Backend, authed, token};
use practice_service::proto::practice::v1::CreateSessionRequest;

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Waits until the file's size stops changing, and returns it.
async fn settled_size(path: &Path) -> u64 {
    let mut last = size(path);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = size(path);
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_pages_reach_the_database_file_in_the_background() {
    let app = app!(Backend::Sqlite);
    let db = Path::new(app.database_url.trim_start_matches("sqlite:")).to_path_buf();
    let wal = db.with_extension("db-wal");
    let before = settled_size(&db).await;

    let mut client = app.client().await;
    for i in 0..40 {
        let req = CreateSessionRequest {
            title: Some(format!("session {i} {}", "x".repeat(150))),
            notes: Some("n".repeat(4000)),
            ..Default::default()
        };
        client
            .create_session(authed(req, &token(42)))
            .await
            .unwrap();
    }
    assert!(size(&wal) > 0, "the creates went through the WAL");

    // 40 creates are a few hundred pages, far below the writer's own
    // checkpoint threshold: only the background checkpointer moves them.
    let mut after = size(&db);
    for _ in 0..50 {
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = size(&db);
    }
    assert!(
        after > before,
        "the database file did not grow ({before} bytes) after 40 creates: no background checkpoint"
    );
}
