//! How the store connects and writes: the settings shared by both backends.

/// Pool and timeout settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long to wait for a free connection before answering UNAVAILABLE.
    pub acquire_timeout: std::time::Duration,
    /// The longest one statement may run (or, on SQLite, wait for a lock).
    pub statement_timeout: std::time::Duration,
    /// SQLite: a write returns only once the WAL holding it is synced
    /// (`wal_sync`, the guarantee of `synchronous=FULL`), so an acknowledged
    /// write survives a power loss or an OS crash. Off, a crash of the
    /// machine (not of the process) can lose the writes committed since
    /// the last checkpoint; the file stays consistent. PostgreSQL's own
    /// settings decide there.
    pub sync_every_commit: bool,
    /// Write transactions waiting for a write connection commit together,
    /// each in a savepoint (`group_commit`); off, each commits by itself.
    pub group_commit: bool,
    /// PostgreSQL: how many groups commit side by side, each on a
    /// connection of its own; 0, none (SQLite has one writer, so one lane).
    /// Two by default: one lane serializes every write on one backend, and
    /// more than two cost PostgreSQL more CPU per create on a small machine
    /// (README, "Performance").
    pub pg_write_lanes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: std::time::Duration::from_secs(2),
            statement_timeout: std::time::Duration::from_secs(5),
            sync_every_commit: true,
            group_commit: true,
            pg_write_lanes: 2,
        }
    }
}
