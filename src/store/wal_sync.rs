//! Durable SQLite commits, synced in groups. With `synchronous=FULL`
//! every commit syncs the WAL by itself, so creates queued behind the one
//! writer each wait for a disk flush of their own. Instead the connection
//! runs with `synchronous=NORMAL` (a commit writes its WAL frames without
//! syncing them) and each write is acknowledged only after an `fdatasync`
//! of the WAL file that began after its commit: the same guarantee as
//! FULL, and one sync covers every commit that finished before it began.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct WalSync {
    wal: PathBuf,
    /// Commits finished so far; each takes the next number as its ticket.
    committed: AtomicU64,
    /// The highest ticket a finished sync covers. Held while syncing, so
    /// commits that finish meanwhile wait for the next sync, which covers
    /// them all.
    synced: tokio::sync::Mutex<u64>,
}

impl WalSync {
    /// For the database at `path` (its WAL is `path-wal`).
    pub fn new(path: &std::path::Path) -> Self {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: wal.into(),
            committed: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
        }
    }

    /// Returns once everything committed before the call is on disk.
    pub async fn durable(&self) -> std::io::Result<()> {
        let ticket = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            return Ok(());
        }
        // Every commit counted by now finished writing before this sync.
        let covers = self.committed.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        // Opened for each sync, not kept: SQLite may delete and recreate
        // the WAL, and a kept descriptor would sync the old file.
        tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
            Ok(file) => file.sync_data(),
            // No WAL: everything was checkpointed into the database file,
            // which the checkpoint synced.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(std::io::Error::other)??;
        *synced = covers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn one_sync_covers_the_commits_that_finished_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(dir.path().join("db-wal"), b"frames").unwrap();
        let sync = Arc::new(WalSync::new(&db));
        sync.durable().await.unwrap();
        assert_eq!(*sync.synced.lock().await, 1);
        // Twenty writers at once: every one returns covered, and the last
        // sync covers them all.
        let writers: Vec<_> = (0..20)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.durable().await })
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        assert_eq!(*sync.synced.lock().await, 21);
        // A missing WAL (all checkpointed) is nothing to sync.
        std::fs::remove_file(dir.path().join("db-wal")).unwrap();
        sync.durable().await.unwrap();
    }
}
