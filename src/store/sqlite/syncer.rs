//! Durability off the writer's path: pipelined group commit.
//!
//! The writer commits with `synchronous=NORMAL`, which writes the batch into the WAL without waiting for
//! the disk, and hands the batch's answers here. This thread flushes the WAL file with one `fdatasync`
//! and only then wakes the batch's watchers and answers its callers. While the disk works, the writer is already applying the next batch, which it commits as
//! soon as the flush is done ([`Syncer::wait_flushed`]); with `synchronous=FULL` it sat idle through
//! every flush and only then took up the next batch.
//!
//! Why this is as safe as FULL: the WAL is append-only between checkpoints, so one flush of the file makes
//! every frame written before it durable, in order. A checkpoint under NORMAL syncs the WAL before copying
//! it into the database and syncs the database after, and the WAL is only rewritten from its start once
//! a checkpoint has finished. A caller hears `Ok` only after the flush that covers its commit; mail
//! committed but not yet flushed can be read by other sessions for that moment, as in PostgreSQL, but its
//! sender has not been told it is safe, so a power loss then loses nothing that was acknowledged.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use super::checkpointer::Checkpointer;
use crate::store::{MailboxId, Notifier, UserId};

/// How often a writer waiting for a flush looks whether the syncer thread is still there.
const THREAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A committed batch: the answers to send and the mailboxes to announce once it is on disk.
pub struct Committed {
    pub answers: Vec<Box<dyn FnOnce(Option<String>) + Send>>,
    pub touched: Vec<(UserId, MailboxId, u64)>,
}

impl Committed {
    /// Wakes the watchers, then sends every answer, or the flush's failure in place of each. Watchers
    /// first: once a writer has its answer, every feed already holds the news, so a session that looks
    /// at its feed after any write it knows of finds it there (IMAP skips its change-log read on that).
    pub fn finish(self, failure: Option<String>, notifier: &Notifier) {
        if failure.is_none() {
            for (user, mailbox, modseq) in self.touched {
                notifier.notify(user, mailbox, modseq);
            }
        }
        for answer in self.answers {
            answer(failure.clone());
        }
    }
}

/// The running syncer: the writer hands it each committed batch.
pub struct Syncer {
    queue: SyncSender<Committed>,
    /// Batches handed over and not yet answered, and the writer's wait for that to reach zero.
    unflushed: Arc<(Mutex<usize>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
    /// The same file, to flush in place should the thread be gone.
    wal: File,
}

impl Syncer {
    /// Starts the thread that flushes `wal` for committed batches and, after each flush, wakes
    /// `checkpointer`.
    pub fn start(
        wal: File,
        notifier: Arc<Notifier>,
        checkpointer: Option<Checkpointer>,
    ) -> std::io::Result<Syncer> {
        // The writer waits for each flush before its next commit, so one batch at most is ever queued.
        let (queue, rx) = std::sync::mpsc::sync_channel(1);
        let own = wal.try_clone()?;
        let unflushed = Arc::new((Mutex::new(0), Condvar::new()));
        let count = unflushed.clone();
        let thread = std::thread::Builder::new()
            .name("jmail-sqlite-sync".into())
            .spawn(move || run(&own, &rx, &notifier, checkpointer.as_ref(), &count))?;
        Ok(Syncer {
            queue,
            unflushed,
            thread,
            wal,
        })
    }

    /// Answers `batch` once it is on disk: queued for the thread, or (should the thread have died)
    /// flushed here.
    pub fn hand_over(&self, batch: Committed, notifier: &Notifier) {
        *lock(&self.unflushed.0) += 1;
        if let Err(unsent) = self.queue.send(batch) {
            *lock(&self.unflushed.0) -= 1;
            unsent.0.finish(flush(&self.wal), notifier);
        }
    }

    /// Waits until every batch handed over is on disk. The writer calls it just before it commits: the
    /// ops of the next batch are applied while the disk flushes the last, but each commit still waits
    /// for a flush, so batches grow with the load as under FULL and no commit costs the CPU for a
    /// handful of ops. Should the thread have died (a panic), its batches are never counted off: the wait
    /// then ends instead of stopping every write, and later batches are flushed in place.
    pub fn wait_flushed(&self) {
        let (count, flushed) = &*self.unflushed;
        let mut n = lock(count);
        while *n > 0 && !self.thread.is_finished() {
            n = flushed
                .wait_timeout(n, THREAD_CHECK_INTERVAL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Answers what is queued and ends the thread (and with it the checkpointer).
    pub fn stop(self) {
        let Syncer { queue, thread, .. } = self;
        drop(queue);
        let _ = thread.join();
    }
}

fn run(
    wal: &File,
    rx: &Receiver<Committed>,
    notifier: &Notifier,
    checkpointer: Option<&Checkpointer>,
    unflushed: &(Mutex<usize>, Condvar),
) {
    while let Ok(batch) = rx.recv() {
        batch.finish(flush(wal), notifier);
        *lock(&unflushed.0) -= 1;
        unflushed.1.notify_all();
        if let Some(checkpointer) = checkpointer {
            checkpointer.wake();
        }
    }
}

/// The WAL file of the database at `db`, opened to be flushed. It exists once the database has been
/// written in WAL mode, and stays while any connection is open.
pub fn open_wal(db: &Path) -> std::io::Result<File> {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    File::open(name)
}

/// A poisoned count is still a count: the thread that panicked held it only to add or subtract.
fn lock(count: &Mutex<usize>) -> std::sync::MutexGuard<'_, usize> {
    count.lock().unwrap_or_else(|e| e.into_inner())
}

/// Flushes the WAL; the failure to report to its batches' callers, if any. A failed flush means the disk
/// may not hold these commits, so their callers are told the write failed (a client retries; a duplicate
/// is better than losing what it was promised).
fn flush(wal: &File) -> Option<String> {
    wal.sync_data().err().map(|e| {
        tracing::error!(error = %e, "flushing the WAL failed");
        "commit failed".to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AccountFeed;
    use std::sync::mpsc::channel;

    /// A batch of one answer (sent to the returned receiver) that announces mailbox 5 of user 1.
    fn batch() -> (Committed, Receiver<Option<String>>) {
        let (tx, rx) = channel();
        let committed = Committed {
            answers: vec![Box::new(move |failure| tx.send(failure).unwrap())],
            touched: vec![(1, 5, 9)],
        };
        (committed, rx)
    }

    /// A syncer on `wal`, handed one batch; its answer, and the feed of the batch's account.
    fn handed_one_batch(wal: File) -> (Syncer, Receiver<Option<String>>, AccountFeed) {
        let notifier = Arc::new(Notifier::default());
        let feed = notifier.subscribe(1);
        let syncer = Syncer::start(wal, notifier.clone(), None).unwrap();
        let (committed, answer) = batch();
        syncer.hand_over(committed, &notifier);
        (syncer, answer, feed)
    }

    #[tokio::test]
    async fn a_batch_is_answered_and_announced_once_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let wal = File::create(dir.path().join("x-wal")).unwrap();
        let (syncer, answer, mut feed) = handed_one_batch(wal);
        syncer.wait_flushed();
        assert_eq!(
            answer.try_recv().unwrap(),
            None,
            "answered Ok by the time it is flushed"
        );
        assert_eq!(
            feed.next().await,
            crate::store::FeedEvent::Changed {
                mailbox: 5,
                modseq: 9
            }
        );
        syncer.stop();
    }

    #[test]
    fn watchers_hear_of_a_batch_before_its_writer_is_answered() {
        let notifier = Notifier::default();
        let mut feed = notifier.subscribe(1);
        let (tx, rx) = channel();
        // The answer looks at the feed the moment it is given: the news must already be there.
        let committed = Committed {
            answers: vec![Box::new(move |_| tx.send(feed.drain_for(5)).unwrap())],
            touched: vec![(1, 5, 9)],
        };
        committed.finish(None, &notifier);
        assert!(
            rx.recv().unwrap(),
            "the feed held the news when the writer was answered"
        );
    }

    #[test]
    fn a_syncer_that_died_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let wal = File::create(dir.path().join("x-wal")).unwrap();
        let notifier = Arc::new(Notifier::default());
        let syncer = Syncer::start(wal, notifier.clone(), None).unwrap();
        let poisoned = Committed {
            answers: vec![Box::new(|_| panic!("an answer that panics (test)"))],
            touched: Vec::new(),
        };
        syncer.hand_over(poisoned, &notifier);
        syncer.wait_flushed(); // returns although that batch is never counted off
        let (committed, answer) = batch();
        syncer.hand_over(committed, &notifier);
        assert_eq!(
            answer.recv().unwrap(),
            None,
            "flushed in place and answered"
        );
        syncer.wait_flushed();
    }

    #[tokio::test]
    async fn a_failed_flush_fails_its_callers_and_announces_nothing() {
        // A pipe cannot be flushed (fdatasync: EINVAL), as a disk that failed cannot.
        let (reader, _writer) = std::io::pipe().unwrap();
        let wal = File::from(std::os::fd::OwnedFd::from(reader));
        let (syncer, answer, mut feed) = handed_one_batch(wal);
        syncer.stop();
        assert_eq!(answer.recv().unwrap().as_deref(), Some("commit failed"));
        let announced =
            tokio::time::timeout(std::time::Duration::from_millis(50), feed.next()).await;
        assert!(
            announced.is_err(),
            "no watcher hears of what may not be on disk"
        );
    }
}
