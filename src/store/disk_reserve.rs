//! Room kept free on the file system of an embedded store, so that a disk filling up stops new mail
//! while what frees space (an expunge, a delete, a flag change, a WAL checkpoint) still has room to be
//! written. On a disk filled to the last byte even an expunge fails, and the only way out is an
//! administrator's (Postfix keeps room the same way: `queue_minfree`).

use std::path::PathBuf;

use super::{StoreError, StoreResult};

/// The free-space check for the file system under `dir`.
pub struct DiskReserve {
    dir: PathBuf,
    /// Bytes that must stay free after a write; 0 turns the check off.
    keep_free: u64,
}

impl DiskReserve {
    pub fn new(dir: PathBuf, keep_free: u64) -> DiskReserve {
        DiskReserve { dir, keep_free }
    }

    /// How many bytes short of the reserve the disk would be after `adding` more, if any. A store that
    /// keeps space of its own for reuse (SQLite's free pages, left by deleted mail) counts that too
    /// before it refuses. A file system whose free space cannot be read is never short.
    pub fn shortfall(&self, adding: u64) -> Option<u64> {
        if self.keep_free == 0 {
            return None;
        }
        let free = free_bytes(&self.dir)?;
        let needed = self.keep_free.saturating_add(adding);
        (free < needed).then(|| needed - free)
    }

    /// The refusal when `short` bytes are missing and the store can reuse only `reusable`, if so.
    pub fn refuse(&self, short: u64, reusable: u64) -> StoreResult<()> {
        if reusable >= short {
            return Ok(());
        }
        tracing::warn!(
            dir = %self.dir.display(),
            short,
            keep_free = self.keep_free,
            "new mail refused: the data dir's disk is nearly full (limits.disk_free_bytes_min)"
        );
        Err(StoreError::LowOnDisk)
    }
}

/// Bytes an unprivileged process may still write under `dir` (statvfs's `f_bavail`).
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_is_short_and_none_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let all = DiskReserve::new(dir.path().to_path_buf(), u64::MAX / 2);
        assert!(all.shortfall(1).is_some());
        let off = DiskReserve::new(dir.path().to_path_buf(), 0);
        assert_eq!(off.shortfall(u64::MAX), None);
        let some = DiskReserve::new(dir.path().to_path_buf(), 1);
        assert_eq!(some.shortfall(0), None);
        let short = some.shortfall(free).unwrap();
        assert!((1..=free).contains(&short), "{short}");
        assert!(
            some.refuse(short, short).is_ok(),
            "reusable space covers it"
        );
        assert!(matches!(
            some.refuse(short, short - 1),
            Err(StoreError::LowOnDisk)
        ));
    }
}
