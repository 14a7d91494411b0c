//! Changes made by other processes. `jmail deliver`, `jmail import` and the `jmail user` commands open the
//! database themselves, so the server's writer never sees their commits. `PRAGMA data_version` on the
//! writer's own connection changes exactly when another connection committed (the server's readers never
//! write), so the writer looks at it a few times a second and tells every watched account whose change
//! counter moved (or that is gone) to resync: what exactly another process changed is not known here.

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::writer::Job;
use crate::store::{Notifier, UserId};
use std::collections::HashMap;

/// How often the writer looks for other processes' commits: the most a watcher waits for mail that
/// `jmail deliver` stored. Each look costs one pragma when nothing changed.
pub const POLL_MILLIS: u64 = 250;

/// The data version the writer's connection last saw, and the change counter of each watched account
/// when it last looked.
pub struct SeenVersion {
    version: Option<i64>,
    accounts: HashMap<UserId, Option<i64>>,
}

impl SeenVersion {
    /// The version as the store opens: what another process commits from here on is looked for.
    pub fn now(conn: &Connection) -> SeenVersion {
        SeenVersion {
            version: read_version(conn).ok(),
            accounts: HashMap::new(),
        }
    }

    /// On the writer's connection, between batches: when another process committed since the last look,
    /// every watched account whose counter moved is told to resync, and so is every one that no longer
    /// exists (the session then finds its login gone and ends). An account first seen here is told too:
    /// a needless resync costs one query, a missed one a stale screen.
    pub fn wake_for_other_writers(&mut self, conn: &Connection, notifier: &Notifier) {
        let version = match read_version(conn) {
            Ok(v) => v,
            Err(e) => return tracing::warn!(error = %e, "reading the data version failed"),
        };
        let changed = self.version.is_some_and(|seen| seen != version);
        self.version = Some(version);
        if !changed {
            return;
        }
        let watched = notifier.watched();
        self.accounts.retain(|user, _| watched.contains(user));
        let result = (|| -> rusqlite::Result<()> {
            let mut modseq_of = conn.prepare_cached("SELECT modseq FROM users WHERE id = ?1")?;
            for user in watched {
                let modseq: Option<i64> = modseq_of
                    .query_row(params![user], |r| r.get(0))
                    .optional()?;
                if self.accounts.get(&user) != Some(&modseq) {
                    self.accounts.insert(user, modseq);
                    notifier.resync(user);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "looking for other processes' changes failed");
        }
    }
}

fn read_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

/// Asks the writer to look every [`POLL_MILLIS`] until the store closes. Holds only a weak sender, so it
/// never keeps the writer alive; a full queue skips a turn (the writer is busy and will look next time).
pub fn poll(writer: mpsc::WeakSender<Job>) {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(POLL_MILLIS));
        let Some(sender) = writer.upgrade() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = sender.try_send(Job::LookForOtherWriters)
        {
            return;
        }
    }
}
