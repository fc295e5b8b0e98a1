//! The development secret: with no key configured, the server signs and
//! checks HS256 tokens with a random secret kept in a file beside the
//! default database, and `practice-service token` signs with the same one.

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

/// Reads the secret, creating it (readable by its owner only) if missing.
pub fn load_or_create_dev_secret(path: &Path) -> Result<Vec<u8>, Error> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        if text.len() < 32 {
            return Err(Error::internal(anyhow::anyhow!(
                "the development secret in {} is too short; delete it to make a new one",
                path.display()
            )));
        }
        return Ok(text.as_bytes().to_vec());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::internal(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    file.write_all(secret.as_bytes())
        .map_err(|e| Error::internal(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
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
    }
}
