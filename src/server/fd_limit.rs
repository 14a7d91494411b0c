//! Raises the open-file limit so the connection cap can actually be reached, and derives the cap from the
//! limit when the operator set none.

use rlimit::Resource;

use crate::config::CONNECTIONS_DEFAULT_MAX;

/// File descriptors kept for everything that is not a client connection (database, logs, listeners).
const FDS_RESERVED: u64 = 256;
/// The cap when the open-file limit cannot even be read.
const CONNECTIONS_FALLBACK: usize = 1024;

/// Raises the soft open-file limit (and the hard one where allowed, e.g. as root) to fit `wanted`
/// connections, and returns the connection cap to enforce. Without `wanted`, the cap is what the limit
/// allows, at most [`CONNECTIONS_DEFAULT_MAX`], silently; a `wanted` the system does not allow is warned
/// about, and honoured only as far as the limit goes.
pub fn fit(wanted: Option<usize>) -> usize {
    let target = wanted.unwrap_or(CONNECTIONS_DEFAULT_MAX) as u64 + FDS_RESERVED;
    let Ok((soft, hard)) = Resource::NOFILE.get() else {
        return wanted.unwrap_or(CONNECTIONS_FALLBACK);
    };
    if soft < target {
        let _ = Resource::NOFILE
            .set(target, hard.max(target))
            .or_else(|_| Resource::NOFILE.set(hard.min(target), hard));
    }
    let now = Resource::NOFILE.get().map(|(s, _)| s).unwrap_or(soft);
    let allowed = now.saturating_sub(FDS_RESERVED).max(1);
    match wanted {
        Some(n) if (n as u64) > allowed => {
            tracing::warn!(
                open_files = now,
                connections_max = n,
                "the open-file limit allows only {allowed} connections, fewer than limits.connections_max"
            );
            n
        }
        Some(n) => n,
        None => allowed.min(CONNECTIONS_DEFAULT_MAX as u64) as usize,
    }
}
