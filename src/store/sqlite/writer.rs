//! The single writer thread: group commit.
//!
//! Every write op goes through one bounded queue to one thread that owns the write connection. The thread
//! takes whatever ops have queued (up to [`WRITE_BATCH_MAX`]), applies each inside its own savepoint (one
//! op's failure rolls back only that op), commits once with `synchronous=FULL`, and only then answers the
//! callers and wakes watchers. So a caller's `Ok` always means "on disk", and N concurrent writes cost one
//! fsync instead of N.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::store::{
    Delivered, ImportBatch, ImportCounts, MailboxId, NewMessage, Notifier, StoreError, StoreResult,
};

/// Most ops committed in one transaction. Bounds how long one commit holds the write lock and how much a
/// failed commit has to report as failed.
pub const WRITE_BATCH_MAX: usize = 512;

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// One durable write, with where to send its result.
pub enum WriteOp {
    CreateUser {
        name: String,
        hash: String,
        welcome: Option<NewMessage>,
        reply: Reply<()>,
    },
    SetPassword {
        name: String,
        hash: String,
        reply: Reply<()>,
    },
    DeleteUser {
        name: String,
        reply: Reply<()>,
    },
    Deliver {
        recipients: Vec<String>,
        message: NewMessage,
        reply: Reply<Vec<Delivered>>,
    },
    SetFlags {
        mailbox: MailboxId,
        uid: u32,
        add: i64,
        remove: i64,
        reply: Reply<bool>,
    },
    Expunge {
        mailbox: MailboxId,
        uid: u32,
        reply: Reply<bool>,
    },
    Import {
        batch: ImportBatch,
        reply: Reply<ImportCounts>,
    },
}

/// An op's result, held until its batch has committed.
enum Pending {
    Unit(Reply<()>, StoreResult<()>),
    Delivered(Reply<Vec<Delivered>>, StoreResult<Vec<Delivered>>),
    Bool(Reply<bool>, StoreResult<bool>),
    Imported(Reply<ImportCounts>, StoreResult<ImportCounts>),
}

impl Pending {
    fn is_ok(&self) -> bool {
        match self {
            Pending::Unit(_, r) => r.is_ok(),
            Pending::Delivered(_, r) => r.is_ok(),
            Pending::Bool(_, r) => r.is_ok(),
            Pending::Imported(_, r) => r.is_ok(),
        }
    }

    /// Sends the result, or `failure` for every op when the commit itself failed.
    fn finish(self, failure: Option<&str>) {
        let fail = || StoreError::Backend(failure.unwrap_or_default().to_string());
        // A caller that gave up (disconnected) dropped its receiver; nothing to tell it.
        match self {
            Pending::Unit(tx, r) => drop(tx.send(if failure.is_some() { Err(fail()) } else { r })),
            Pending::Delivered(tx, r) => {
                drop(tx.send(if failure.is_some() { Err(fail()) } else { r }))
            }
            Pending::Bool(tx, r) => drop(tx.send(if failure.is_some() { Err(fail()) } else { r })),
            Pending::Imported(tx, r) => {
                drop(tx.send(if failure.is_some() { Err(fail()) } else { r }))
            }
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

/// Runs until every sender is dropped, then checkpoints the WAL.
pub fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, notifier: &Notifier) {
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
            commit_batch(&mut conn, batch.drain(..), notifier);
        }
        if look {
            seen.wake_for_other_writers(&conn, notifier);
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "WAL checkpoint at close failed");
    }
}

fn commit_batch(conn: &mut Connection, ops: impl Iterator<Item = WriteOp>, notifier: &Notifier) {
    let mut touched = Vec::new();
    let mut pending = Vec::new();
    let mut ops = ops;
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for op in ops.by_ref() {
            let sp = match tx.savepoint() {
                Ok(sp) => sp,
                Err(e) => {
                    pending.push(op.fail(&e));
                    continue;
                }
            };
            let mut op_touched = Vec::new();
            let mut result = apply(&sp, op, &mut op_touched);
            if result.is_ok() {
                match sp.commit() {
                    Ok(()) => touched.extend(op_touched),
                    Err(e) => result = result.failed(&e),
                }
            } else {
                drop(sp); // rolls back this op only
            }
            pending.push(result);
        }
        tx.commit()
    })();
    // Ops never reached (the transaction could not even begin) fail with the same error: every caller
    // gets an answer, and none is told the store is closing when it is not.
    if let Err(e) = &outcome {
        pending.extend(ops.map(|op| op.fail(e)));
    }
    let failure = outcome.as_ref().err().map(|e| {
        tracing::error!(error = %e, ops = pending.len(), "write batch failed to commit");
        "commit failed".to_string()
    });
    for p in pending {
        p.finish(failure.as_deref());
    }
    if failure.is_none() {
        for (mailbox, modseq) in touched {
            notifier.notify(mailbox, modseq);
        }
    }
}

impl WriteOp {
    /// This op's answer when it could not be applied at all.
    fn fail(self, e: &rusqlite::Error) -> Pending {
        let err = || backend_ref(e);
        match self {
            WriteOp::CreateUser { reply, .. }
            | WriteOp::SetPassword { reply, .. }
            | WriteOp::DeleteUser { reply, .. } => Pending::Unit(reply, Err(err())),
            WriteOp::Deliver { reply, .. } => Pending::Delivered(reply, Err(err())),
            WriteOp::SetFlags { reply, .. } | WriteOp::Expunge { reply, .. } => {
                Pending::Bool(reply, Err(err()))
            }
            WriteOp::Import { reply, .. } => Pending::Imported(reply, Err(err())),
        }
    }
}

impl Pending {
    /// The same op, failed: its savepoint could not be released.
    fn failed(self, e: &rusqlite::Error) -> Pending {
        let err = backend_ref(e);
        match self {
            Pending::Unit(tx, _) => Pending::Unit(tx, Err(err)),
            Pending::Delivered(tx, _) => Pending::Delivered(tx, Err(err)),
            Pending::Bool(tx, _) => Pending::Bool(tx, Err(err)),
            Pending::Imported(tx, _) => Pending::Imported(tx, Err(err)),
        }
    }
}

fn backend_ref(e: &rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Applies one op. Errors of the op itself (unknown user...) become its result; errors of SQLite too, and
/// the savepoint rolls the op back either way.
fn apply(tx: &Connection, op: WriteOp, touched: &mut Vec<(MailboxId, u64)>) -> Pending {
    match op {
        WriteOp::CreateUser {
            name,
            hash,
            welcome,
            reply,
        } => Pending::Unit(reply, create_user(tx, &name, &hash, welcome, touched)),
        WriteOp::SetPassword { name, hash, reply } => {
            let sql = "UPDATE users SET password_hash = ?1 WHERE name = ?2";
            Pending::Unit(reply, change_user(tx, sql, params![hash, name], &name))
        }
        WriteOp::DeleteUser { name, reply } => {
            let sql = "DELETE FROM users WHERE name = ?1";
            Pending::Unit(reply, change_user(tx, sql, params![name], &name))
        }
        WriteOp::Deliver {
            recipients,
            message,
            reply,
        } => Pending::Delivered(reply, deliver(tx, &recipients, &message, touched)),
        WriteOp::SetFlags {
            mailbox,
            uid,
            add,
            remove,
            reply,
        } => Pending::Bool(reply, set_flags(tx, mailbox, uid, add, remove, touched)),
        WriteOp::Expunge {
            mailbox,
            uid,
            reply,
        } => Pending::Bool(reply, expunge(tx, mailbox, uid, touched)),
        WriteOp::Import { batch, reply } => Pending::Imported(reply, import(tx, batch, touched)),
    }
}

/// Runs a statement that must touch exactly the named user's row.
fn change_user(
    tx: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    name: &str,
) -> StoreResult<()> {
    match tx.execute(sql, params).map_err(backend)? {
        0 => Err(StoreError::NoSuchUser(name.to_string())),
        _ => Ok(()),
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    backend_ref(&e)
}

fn create_user(
    tx: &Connection,
    name: &str,
    hash: &str,
    welcome: Option<NewMessage>,
    touched: &mut Vec<(MailboxId, u64)>,
) -> StoreResult<()> {
    let now = chrono::Utc::now();
    let inserted = tx.execute(
        "INSERT INTO users (name, password_hash, created_micros) VALUES (?1, ?2, ?3)",
        params![name, hash, now.timestamp_micros()],
    );
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::UserExists(name.to_string()));
        }
        other => other.map_err(backend)?,
    };
    let user_id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO mailboxes (user_id, name, uid_validity) VALUES (?1, 'INBOX', ?2)",
        params![user_id, now.timestamp()],
    )
    .map_err(backend)?;
    let inbox = tx.last_insert_rowid();
    if let Some(message) = welcome {
        append(tx, inbox, &message, 0, touched).map_err(backend)?;
    }
    Ok(())
}

fn deliver(
    tx: &Connection,
    recipients: &[String],
    message: &NewMessage,
    touched: &mut Vec<(MailboxId, u64)>,
) -> StoreResult<Vec<Delivered>> {
    let mut done = HashSet::new();
    let mut delivered = Vec::with_capacity(recipients.len());
    for name in recipients {
        if !done.insert(name.as_str()) {
            continue;
        }
        let inbox: Option<MailboxId> = tx
            .prepare_cached(
                "SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.user_id \
                 WHERE u.name = ?1 AND m.name = 'INBOX'",
            )
            .and_then(|mut s| s.query_row(params![name], |r| r.get(0)).optional())
            .map_err(backend)?;
        let inbox = inbox.ok_or_else(|| StoreError::UnknownRecipient(name.clone()))?;
        let uid = append(tx, inbox, message, 0, touched).map_err(backend)?;
        delivered.push(Delivered {
            user: name.clone(),
            uid,
        });
    }
    Ok(delivered)
}

/// Takes the next UID and modseq of a mailbox.
fn append(
    tx: &Connection,
    mailbox: MailboxId,
    m: &NewMessage,
    flags: i64,
    touched: &mut Vec<(MailboxId, u64)>,
) -> rusqlite::Result<u32> {
    let (uid, modseq): (u32, u64) = tx
        .prepare_cached(
            "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 \
             WHERE id = ?1 RETURNING uid_next - 1, highest_modseq",
        )?
        .query_row(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
    tx.prepare_cached(
        "INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_micros, size, crlf_size, \
         from_addr, subject, message_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        mailbox,
        uid,
        modseq,
        flags,
        m.internal_date_micros,
        m.raw.len() as u64,
        m.crlf_size,
        m.from,
        m.subject,
        m.message_id
    ])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO bodies (message_id, raw) VALUES (?1, ?2)")?
        .execute(params![id, m.raw])?;
    touched.push((mailbox, modseq));
    Ok(uid)
}

fn next_modseq(tx: &Connection, mailbox: MailboxId) -> rusqlite::Result<u64> {
    tx.prepare_cached(
        "UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1 \
         RETURNING highest_modseq",
    )?
    .query_row(params![mailbox], |r| r.get(0))
}

fn set_flags(
    tx: &Connection,
    mailbox: MailboxId,
    uid: u32,
    add: i64,
    remove: i64,
    touched: &mut Vec<(MailboxId, u64)>,
) -> StoreResult<bool> {
    let mut run = || -> rusqlite::Result<bool> {
        let old: Option<i64> = tx
            .prepare_cached("SELECT flags FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?
            .query_row(params![mailbox, uid], |r| r.get(0))
            .optional()?;
        let Some(old) = old else { return Ok(false) };
        let new = (old | add) & !remove;
        if new != old {
            let modseq = next_modseq(tx, mailbox)?;
            tx.prepare_cached(
                "UPDATE messages SET flags = ?1, modseq = ?2 WHERE mailbox_id = ?3 AND uid = ?4",
            )?
            .execute(params![new, modseq, mailbox, uid])?;
            touched.push((mailbox, modseq));
        }
        Ok(true)
    };
    run().map_err(backend)
}

fn expunge(
    tx: &Connection,
    mailbox: MailboxId,
    uid: u32,
    touched: &mut Vec<(MailboxId, u64)>,
) -> StoreResult<bool> {
    let mut run = || -> rusqlite::Result<bool> {
        let removed = tx
            .prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?
            .execute(params![mailbox, uid])?;
        if removed == 0 {
            return Ok(false);
        }
        let modseq = next_modseq(tx, mailbox)?;
        tx.prepare_cached("INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)")?
            .execute(params![mailbox, uid, modseq])?;
        touched.push((mailbox, modseq));
        Ok(true)
    };
    run().map_err(backend)
}

fn inbox_of(tx: &Connection, name: &str) -> rusqlite::Result<Option<MailboxId>> {
    tx.prepare_cached(
        "SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.user_id \
         WHERE u.name = ?1 AND m.name = 'INBOX'",
    )?
    .query_row(params![name], |r| r.get(0))
    .optional()
}

fn import(
    tx: &Connection,
    batch: ImportBatch,
    touched: &mut Vec<(MailboxId, u64)>,
) -> StoreResult<ImportCounts> {
    let mut counts = ImportCounts::default();
    for (name, hash) in &batch.users {
        if inbox_of(tx, name).map_err(backend)?.is_some() {
            counts.users_existing += 1;
            continue;
        }
        create_user(tx, name, hash, None, touched)?;
        counts.users_created += 1;
    }
    for m in &batch.messages {
        let inbox = inbox_of(tx, &m.owner)
            .map_err(backend)?
            .ok_or_else(|| StoreError::UnknownRecipient(m.owner.clone()))?;
        if already_present(tx, inbox, &m.message, batch.match_content).map_err(backend)? {
            counts.messages_present += 1;
            continue;
        }
        append(tx, inbox, &m.message, m.flags, touched).map_err(backend)?;
        counts.messages_imported += 1;
    }
    Ok(counts)
}

/// Is a message with this Message-ID (and, with `match_content`, these bytes) already in the mailbox?
fn already_present(
    tx: &Connection,
    inbox: MailboxId,
    m: &NewMessage,
    match_content: bool,
) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare_cached(
        "SELECT b.raw FROM messages m JOIN bodies b ON b.message_id = m.id \
         WHERE m.mailbox_id = ?1 AND m.message_id = ?2",
    )?;
    let mut rows = stmt.query(params![inbox, m.message_id])?;
    while let Some(row) = rows.next()? {
        if !match_content || row.get_ref(0)?.as_blob()? == m.raw.as_slice() {
            return Ok(true);
        }
    }
    Ok(false)
}
