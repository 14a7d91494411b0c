//! The data dir on disk: created private (0700, files 0600) and kept so, locked by the one server that
//! uses it, and files written whole or not at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file `jmail serve` holds an exclusive lock on while it runs.
pub const LOCK_FILE: &str = "serve.lock";
/// Modes of the data dir (and the folders in it) and of every file in it: the server's user only.
pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;
/// How deep `make_private` walks (the data dir holds `tls/` and nothing deeper).
const DEPTH_MAX: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot use the data dir {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(
        "another jmail serve is already running on the data dir {0} (it holds {LOCK_FILE}); stop it first, or give this one another --data-dir"
    )]
    Locked(PathBuf),
    #[error(
        "there is no Jmail store in {0}: `jmail serve` or `jmail user add` creates one (check --data-dir, JMAIL_DATA_DIR or the config's data_dir)"
    )]
    Missing(PathBuf),
}

/// Held while the server runs; dropping it (or the process ending, however it ends) frees the data dir.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// Creates `dir` if needed and makes it and everything in it private, logging each fix.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let io = |e| DataDirError::Io(dir.to_path_buf(), e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io)?;
    make_private(dir, 0).map_err(io)
}

fn make_private(path: &Path, depth: usize) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let want = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
    let mode = meta.permissions().mode() & 0o777;
    if mode & !want != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & want))?;
        tracing::info!(path = %path.display(), from = format!("{mode:o}"), to = format!("{:o}", mode & want), "made private to the server's user");
    }
    if meta.is_dir() && depth < DEPTH_MAX {
        for entry in std::fs::read_dir(path)? {
            make_private(&entry?.path(), depth + 1)?;
        }
    }
    Ok(())
}

/// Takes the data dir for one server. A second `jmail serve` on it gets [`DataDirError::Locked`]; the
/// `jmail user` and import commands do not take this lock and keep working beside the server.
pub fn lock_for_serving(dir: &Path) -> Result<ServeLock, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| DataDirError::Io(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(ServeLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(DataDirError::Io(path, e)),
    }
}

/// Fails unless `dir` holds a store: commands that only read or change an existing store must not
/// create an empty one in a mistyped folder.
pub fn require_store(dir: &Path, db_file: &str) -> Result<(), DataDirError> {
    if dir.join(db_file).is_file() {
        Ok(())
    } else {
        Err(DataDirError::Missing(dir.to_path_buf()))
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, fsynced, renamed over it,
/// and the folder fsynced, so a crash or a racing writer never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn prepare_makes_the_dir_and_its_files_private() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.join("tls")).unwrap();
        std::fs::write(dir.join("jmail.db"), b"x").unwrap();
        std::fs::write(dir.join("tls/cert.pem"), b"x").unwrap();
        std::fs::set_permissions(dir.join("jmail.db"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("tls")), 0o700);
        assert_eq!(mode(&dir.join("jmail.db")), 0o600);
        assert_eq!(mode(&dir.join("tls/cert.pem")), 0o600);
    }

    #[test]
    fn one_server_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_for_serving(dir.path()).unwrap();
        assert!(matches!(
            lock_for_serving(dir.path()),
            Err(DataDirError::Locked(_))
        ));
        drop(first);
        assert!(lock_for_serving(dir.path()).is_ok());
    }

    #[test]
    fn atomic_write_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
