//! Checkpoints off the writer's path.
//!
//! A checkpoint copies the WAL's pages into the database and syncs it: random writes and an fsync that
//! grow with the store. Left to SQLite's auto-checkpoint, the writer does it inside a commit and every
//! caller waits. Here a thread of its own, with its own connection, does it after the syncer's flushes, at
//! most once per [`CHECKPOINT_INTERVAL_MILLIS`], while the writer goes on. An idle store is never woken.
//!
//! The writer keeps a backstop auto-checkpoint at [`WAL_PAGES_WRITER_CHECKPOINT`]: under steady load a
//! checkpoint running beside the writer never finds the WAL fully copied (new frames arrive meanwhile), and
//! SQLite only starts the WAL over from its beginning after a checkpoint that copied everything. The
//! writer's own checkpoint then has little left to copy, and the WAL stays bounded.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The least time between two background checkpoints. Each costs two fsyncs (the WAL, the database)
/// beside the copy; at this rate that is a small share of a busy disk's flushes, and at most a tenth of
/// a second of writes waits to be copied.
pub const CHECKPOINT_INTERVAL_MILLIS: u64 = 100;

/// WAL pages past which the writer checkpoints itself (about 16 MiB of 4 KiB pages): the WAL's bound.
pub const WAL_PAGES_WRITER_CHECKPOINT: u32 = 4_000;

/// SQLite's own auto-checkpoint, kept when no checkpointer runs.
pub const WAL_PAGES_SQLITE_DEFAULT: u32 = 1_000;

/// A running checkpointer; dropping it ends the thread and waits for it, so that the writer's last
/// checkpoint at close never finds this one in its way.
pub struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `db`.
    pub fn start(db: &Path) -> std::io::Result<Checkpointer> {
        let conn = super::open_connection(db).map_err(std::io::Error::other)?;
        let (wake, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("jmail-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &rx))?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint; one already asked for and not yet begun covers this one too (and a
    /// checkpointer that is gone leaves the writer's backstop to do the work).
    pub fn wake(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, rx: &Receiver<()>) {
    let interval = Duration::from_millis(CHECKPOINT_INTERVAL_MILLIS);
    while rx.recv().is_ok() {
        let began = Instant::now();
        // PASSIVE: copy what no reader still needs, never wait for readers or the writer.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background WAL checkpoint failed");
        }
        std::thread::sleep(interval.saturating_sub(began.elapsed()));
    }
}
