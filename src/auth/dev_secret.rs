//! The development secret: with no key configured, the server signs and
//! checks HS256 tokens with a random secret kept in a file beside the
//! default database, and `practice-service token` signs with the same one.
//!
//! The file is the key to every account, so it is handled like one: made
//! atomically with mode 0600 and never overwritten; a file that others can
//! read, a symlink, or anything but a plain file stops the start instead
//! of being trusted or replaced.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::error::Error;

const FILE_NAME: &str = ".practice-dev-secret";

/// Where the development secret lives: the working directory, beside the
/// default SQLite database.
pub fn dev_secret_path() -> PathBuf {
    PathBuf::from(FILE_NAME)
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!(
        "the development secret {}: {why}",
        path.display()
    ))
}

/// Reads the secret, creating it if missing. Two processes starting at once
/// end up with the same secret: the file appears whole or not at all.
pub fn load_or_create_dev_secret(path: &Path) -> Result<Vec<u8>, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => read(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create(path) {
            Ok(secret) => Ok(secret),
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
            Err(e) => Err(refuse(path, format!("cannot be created: {e}"))),
        },
        Err(e) => Err(refuse(path, format!("cannot be read: {e}"))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| refuse(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            path,
            "is a symbolic link; it must be a plain file (delete it to make a new one)",
        ));
    }
    if !meta.is_file() {
        return Err(refuse(path, "is not a plain file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(refuse(
                path,
                format!(
                    "is readable by others (mode {mode:o}); run `chmod 600 {}` or delete it",
                    path.display()
                ),
            ));
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        let me = unsafe { libc::getuid() };
        if meta.uid() != me {
            return Err(refuse(path, "belongs to another user"));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        refuse(
            path,
            format!("cannot be read ({e}); it is never overwritten"),
        )
    })?;
    let text = text.trim();
    if text.len() < 32 {
        return Err(refuse(path, "is too short; delete it to make a new one"));
    }
    Ok(text.as_bytes().to_vec())
}

/// Writes a new secret to a private temporary file beside `path`, then
/// links it into place, which fails if `path` exists: never a partial
/// file, never an overwrite.
fn create(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // tempfile makes the file with O_EXCL and mode 0600.
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(secret.as_bytes())?;
    temp.as_file().sync_all()?;
    std::fs::hard_link(temp.path(), path)?;
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let first = load_or_create_dev_secret(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create_dev_secret(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            // Nothing else is left beside it.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[cfg(unix)]
    #[test]
    fn loose_links_and_unreadable_files_stop_the_start_and_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let secret = "a".repeat(64);
        std::fs::write(&path, &secret).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:?}", load_or_create_dev_secret(&path).unwrap_err());
        assert!(err.contains("chmod 600"), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = format!("{:?}", load_or_create_dev_secret(&link).unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");

        // Unreadable (a directory in its place): refused, never replaced.
        let dir_path = dir.path().join("not-a-file");
        std::fs::create_dir(&dir_path).unwrap();
        assert!(load_or_create_dev_secret(&dir_path).is_err());
        assert!(dir_path.is_dir());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), secret);
    }

    #[test]
    fn processes_starting_together_share_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let secrets: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_dev_secret(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(secrets.windows(2).all(|w| w[0] == w[1]));
    }
}
