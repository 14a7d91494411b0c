//! Raises the open-file limit so `connections_max` connections can actually be accepted.

use rlimit::Resource;

/// File descriptors kept for everything that is not a client connection (database, logs, listeners).
const FDS_RESERVED: u64 = 256;

/// Raises the soft limit (and the hard one where allowed, e.g. as root) to fit `connections`; warns when
/// the system does not allow enough.
pub fn raise_for(connections: usize) {
    let want = connections as u64 + FDS_RESERVED;
    let Ok((soft, hard)) = Resource::NOFILE.get() else {
        return;
    };
    if soft >= want {
        return;
    }
    let raised = Resource::NOFILE
        .set(want, hard.max(want))
        .or_else(|_| Resource::NOFILE.set(hard.min(want), hard));
    let now = Resource::NOFILE.get().map(|(s, _)| s).unwrap_or(soft);
    if raised.is_err() || now < want {
        tracing::warn!(
            open_files = now,
            connections_max = connections,
            "the open-file limit allows fewer connections than limits.connections_max"
        );
    }
}
