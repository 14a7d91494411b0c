//! The single writer thread: group commit.
//!
//! Every write op goes through one bounded queue to one thread that owns the write connection. The thread
//! takes whatever ops have queued (up to [`WRITE_BATCH_MAX`]), applies each inside its own savepoint (one
//! op's failure rolls back only that op) and commits once, as soon as the previous batch is on disk; ops
//! that arrived while it was being flushed join the commit too. `syncer.rs` flushes the WAL and only then
//! answers the callers and wakes watchers. So a caller's `Ok` always means "on disk", N concurrent writes
//! cost one fsync instead of N, and the writer applies the next batch while the disk works.
//!
//! An op is a closure over the write transaction ([`Ctx`]); what the ops do is in `write_messages.rs` and
//! `write_mailboxes.rs`.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpointer::{self, Checkpointer};
use super::syncer::{self, Committed, Syncer};

use crate::store::{MailboxId, ModelLimits, Notifier, StoreError, StoreResult, UserId};

/// Most ops committed in one transaction. Bounds how long one commit holds the write lock and how much a
/// failed commit has to report as failed.
pub const WRITE_BATCH_MAX: usize = 512;

/// What an op sees while it runs: the transaction, the model's limits, and where it records the mailboxes
/// whose modseq it moved (their accounts' feeds hear of it once the batch is on disk).
pub struct Ctx<'a> {
    pub tx: &'a Connection,
    pub limits: &'a ModelLimits,
    pub touched: Vec<(UserId, MailboxId, u64)>,
}

impl Ctx<'_> {
    /// Records that `mailbox` of `user` moved to `modseq`, for the account's feed.
    pub fn touch(&mut self, user: UserId, mailbox: MailboxId, modseq: u64) {
        self.touched.push((user, mailbox, modseq));
    }
}

/// One durable write and where its answer goes.
pub struct WriteOp(Box<dyn Apply>);

impl WriteOp {
    /// An op answered once its batch is on disk.
    pub fn new<T, F>(reply: oneshot::Sender<StoreResult<T>>, run: F) -> WriteOp
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> StoreResult<T> + Send + 'static,
    {
        WriteOp(Box::new(Op {
            reply,
            run,
            at_commit: false,
        }))
    }

    /// An op answered as soon as its batch commits, before the flush: for a write whose loss in a crash
    /// harms no one (which session saw a message `\Recent` first), so its caller does not wait for the
    /// disk. Its changes are visible to every later read and write at once, like any committed change.
    pub fn answered_at_commit<T, F>(reply: oneshot::Sender<StoreResult<T>>, run: F) -> WriteOp
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> StoreResult<T> + Send + 'static,
    {
        let WriteOp(mut op) = WriteOp::new(reply, run);
        op.answer_at_commit();
        WriteOp(op)
    }
}

trait Apply: Send {
    fn answer_at_commit(&mut self);
    fn apply(self: Box<Self>, ctx: &mut Ctx<'_>) -> Pending;
    fn fail(self: Box<Self>, why: String) -> Pending;
}

struct Op<T, F> {
    reply: oneshot::Sender<StoreResult<T>>,
    run: F,
    at_commit: bool,
}

impl<T, F> Apply for Op<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Ctx<'_>) -> StoreResult<T> + Send + 'static,
{
    fn answer_at_commit(&mut self) {
        self.at_commit = true;
    }

    fn apply(self: Box<Self>, ctx: &mut Ctx<'_>) -> Pending {
        let Op {
            reply,
            run,
            at_commit,
        } = *self;
        let result = run(ctx);
        Pending {
            ok: result.is_ok(),
            at_commit,
            finish: Box::new(move |failure| {
                let answer = match failure {
                    Some(why) => Err(StoreError::Backend(why)),
                    None => result,
                };
                // A caller that gave up (disconnected) dropped its receiver; nothing to tell it.
                let _ = reply.send(answer);
            }),
        }
    }

    fn fail(self: Box<Self>, why: String) -> Pending {
        let reply = self.reply;
        Pending {
            ok: false,
            at_commit: false,
            finish: Box::new(move |_| {
                let _ = reply.send(Err(StoreError::Backend(why)));
            }),
        }
    }
}

/// An op's answer, held until its batch has committed: then sent as it is, or replaced by the commit's
/// failure.
struct Pending {
    ok: bool,
    /// Answered when the batch commits, not when it is flushed ([`WriteOp::answered_at_commit`]).
    at_commit: bool,
    finish: Box<dyn FnOnce(Option<String>) + Send>,
}

impl Pending {
    /// The same op, failed after all (its savepoint could not be released).
    fn failed(self, why: String) -> Pending {
        let finish = self.finish;
        Pending {
            ok: false,
            at_commit: self.at_commit,
            finish: Box::new(move |_| finish(Some(why))),
        }
    }
}

/// What the writer thread is asked to do.
pub enum Job {
    Write(WriteOp),
    /// See whether another process committed (`jmail deliver`, `import`, `user del` ...) and wake the
    /// watchers of what it changed. Sent by [`super::foreign::poll`].
    LookForOtherWriters,
}

/// Runs until every sender is dropped, then checkpoints the WAL. `conn` is open on `db`.
pub fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    notifier: Arc<Notifier>,
    limits: ModelLimits,
    db: &Path,
) {
    let syncer = start_syncer(&conn, db, notifier.clone());
    let mut jobs = Vec::with_capacity(WRITE_BATCH_MAX);
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    let mut seen = super::foreign::SeenVersion::now(&conn);
    while rx.blocking_recv_many(&mut jobs, WRITE_BATCH_MAX) > 0 {
        let mut look = false;
        for job in jobs.drain(..) {
            match job {
                Job::Write(op) => batch.push(op),
                Job::LookForOtherWriters => look = true,
            }
        }
        if !batch.is_empty() {
            let mut late = || loop {
                match rx.try_recv() {
                    Ok(Job::Write(op)) => return Some(op),
                    Ok(Job::LookForOtherWriters) => look = true,
                    Err(_) => return None,
                }
            };
            commit_batch(
                &mut conn,
                batch.drain(..),
                &mut late,
                &notifier,
                &limits,
                syncer.as_ref(),
            );
        }
        if look {
            seen.wake_for_other_writers(&conn, &notifier);
        }
    }
    if let Some(syncer) = syncer {
        syncer.stop();
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint at close failed");
    }
}

/// Starts the syncer (and its checkpointer) and switches the writer's connection to
/// `synchronous=NORMAL`: commits reach the WAL, and the syncer flushes them. If the syncer cannot start,
/// the connection keeps FULL: every commit is flushed in place and the writer waits for the disk. If
/// only the checkpointer cannot, the writer keeps SQLite's own auto-checkpoint.
fn start_syncer(conn: &Connection, db: &Path, notifier: Arc<Notifier>) -> Option<Syncer> {
    let checkpointer = Checkpointer::start(db)
        .map_err(|e| tracing::warn!(error = %e, "checkpoints stay on the writer: no checkpointer"))
        .ok();
    let backstop = match checkpointer {
        Some(_) => checkpointer::WAL_PAGES_WRITER_CHECKPOINT,
        None => checkpointer::WAL_PAGES_SQLITE_DEFAULT,
    };
    let started = syncer::open_wal(db)
        .and_then(|wal| Syncer::start(wal, notifier, checkpointer))
        .map_err(|e| e.to_string())
        .and_then(|syncer| {
            conn.execute_batch(&format!(
                "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = {backstop};"
            ))
            .map(|()| syncer)
            .map_err(|e| e.to_string())
        });
    match started {
        Ok(syncer) => Some(syncer),
        Err(e) => {
            tracing::warn!(error = %e, "commits are flushed in place: the WAL syncer could not start");
            None
        }
    }
}

fn commit_batch(
    conn: &mut Connection,
    ops: impl Iterator<Item = WriteOp>,
    late: &mut dyn FnMut() -> Option<WriteOp>,
    notifier: &Notifier,
    limits: &ModelLimits,
    syncer: Option<&Syncer>,
) {
    let started = std::time::Instant::now();
    let mut touched = Vec::new();
    let mut pending = Vec::new();
    let mut ops = ops;
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for WriteOp(op) in ops.by_ref() {
            pending.push(apply_one(&mut tx, op, limits, &mut touched));
        }
        if let Some(syncer) = syncer {
            syncer.wait_flushed();
            // What arrived during the flush joins this commit instead of waiting for one more flush.
            while pending.len() < WRITE_BATCH_MAX {
                let Some(WriteOp(op)) = late() else { break };
                pending.push(apply_one(&mut tx, op, limits, &mut touched));
            }
        }
        tx.commit()
    })();
    // Ops never reached (the transaction could not even begin) fail with the same error: every caller
    // gets an answer, and none is told the store is closing when it is not.
    if let Err(e) = &outcome {
        pending.extend(ops.map(|WriteOp(op)| op.fail(e.to_string())));
    }
    if outcome.is_ok() {
        crate::metrics::METRICS.committed(pending.len(), started.elapsed());
    }
    let failure = outcome.as_ref().err().map(|e| {
        tracing::error!(error = %e, ops = pending.len(), "write batch failed to commit");
        "commit failed".to_string()
    });
    if failure.is_none() {
        let (now, later): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.at_commit);
        for answer in now {
            (answer.finish)(None);
        }
        pending = later;
    }
    let committed = Committed {
        answers: pending.into_iter().map(|p| p.finish).collect(),
        touched,
    };
    match syncer {
        Some(syncer) if failure.is_none() => syncer.hand_over(committed, notifier),
        _ => committed.finish(failure, notifier),
    }
}

/// Runs one op in its own savepoint: its failure rolls back only its own changes. The mailboxes it
/// touched are added to `touched` if it succeeded.
///
/// Some errors (a full disk, an I/O error) make SQLite roll back the whole transaction, not just the
/// statement. A savepoint then would begin a transaction of its own, and its release commit it at
/// once, while the batch fails: that op's caller would be told "failed" of a write that is stored.
/// So once the batch's transaction is gone, every op left fails unapplied.
fn apply_one(
    tx: &mut rusqlite::Transaction<'_>,
    op: Box<dyn Apply>,
    limits: &ModelLimits,
    touched: &mut Vec<(UserId, MailboxId, u64)>,
) -> Pending {
    if tx.is_autocommit() {
        return op.fail("the write batch was rolled back".to_string());
    }
    let sp = match tx.savepoint() {
        Ok(sp) => sp,
        Err(e) => return op.fail(e.to_string()),
    };
    let mut ctx = Ctx {
        tx: &sp,
        limits,
        touched: Vec::new(),
    };
    let mut result = op.apply(&mut ctx);
    let op_touched = ctx.touched;
    // Its caller hears before the watchers would: an op answered at commit must change no mailbox.
    debug_assert!(
        !(result.at_commit && result.ok && !op_touched.is_empty()),
        "an op answered at commit touched a mailbox"
    );
    if result.ok {
        match sp.commit() {
            Ok(()) => touched.extend(op_touched),
            Err(e) => result = result.failed(e.to_string()),
        }
    } else {
        drop(sp); // rolls back this op only
    }
    result
}

/// A SQLite error as the store's error; its text stays in logs (sessions never show it to a peer).
pub fn backend(e: rusqlite::Error) -> StoreError {
    crate::metrics::METRICS.store_error();
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(reply: oneshot::Sender<StoreResult<()>>, x: i64) -> WriteOp {
        WriteOp::new(reply, move |ctx: &mut Ctx<'_>| {
            ctx.tx
                .execute("INSERT INTO t (x) VALUES (?1)", [x])
                .map(|_| ())
                .map_err(backend)
        })
    }

    /// An op after one whose error rolled the whole transaction back (as SQLite does on a full disk;
    /// here the op says ROLLBACK itself) is neither stored nor told it was: the batch fails as one.
    #[test]
    fn ops_after_the_transaction_is_lost_fail_unapplied() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        let lost = WriteOp::new(tx2, |ctx: &mut Ctx<'_>| -> StoreResult<()> {
            ctx.tx.execute_batch("ROLLBACK").map_err(backend)?;
            Err(StoreError::Backend("database or disk is full".into()))
        });
        let ops = vec![insert(tx1, 1), lost, insert(tx3, 3)];
        let notifier = Notifier::default();
        commit_batch(
            &mut conn,
            ops.into_iter(),
            &mut || None,
            &notifier,
            &ModelLimits::default(),
            None,
        );
        for rx in [&mut rx1, &mut rx2, &mut rx3] {
            assert!(rx.try_recv().unwrap().is_err());
        }
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 0);
        assert!(conn.is_autocommit());
    }
}
