//! The outbound queue's rows: made with the message they carry (in the delivery's transaction), taken
//! by the delivery worker under a lease, finished or put back by it, and listed, retried or dropped by
//! `jmail queue`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::write_messages;
use super::writer::{Ctx, backend};
use crate::store::{Attempted, Flags, Outbound, QueueEntry, StoreError, StoreResult};

const COLUMNS: &str = "q.id, q.user_id, q.sender, q.domain, q.recipients, q.created_micros, \
     q.next_micros, q.attempts, q.leased, q.last_error, q.dsn, length(b.raw), q.blob_id";

/// Queues `outbound`'s domains for the message in `blob`; how many rows (each one more reference to
/// the blob, which the caller counts).
pub fn enqueue(tx: &Connection, blob: i64, outbound: &Outbound, now: i64) -> StoreResult<i64> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO queue (blob_id, user_id, sender, domain, recipients, created_micros, \
             next_micros, dsn) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        )
        .map_err(backend)?;
    let mut rows = 0;
    for (domain, recipients) in &outbound.domains {
        if recipients.is_empty() {
            continue;
        }
        let list =
            serde_json::to_string(recipients).map_err(|e| StoreError::Backend(e.to_string()))?;
        insert
            .execute(params![
                blob,
                outbound.user,
                outbound.sender,
                domain,
                list,
                now,
                outbound.dsn
            ])
            .map_err(backend)?;
        rows += 1;
    }
    Ok(rows)
}

fn entry(r: &Row<'_>) -> rusqlite::Result<QueueEntry> {
    let recipients: String = r.get(4)?;
    Ok(QueueEntry {
        id: r.get(0)?,
        user: r.get(1)?,
        sender: r.get(2)?,
        domain: r.get(3)?,
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        created_micros: r.get(5)?,
        next_micros: r.get(6)?,
        attempts: r.get(7)?,
        leased: r.get::<_, i64>(8)? != 0,
        last_error: r.get(9)?,
        dsn: r.get(10)?,
        size: r.get(11)?,
        blob: r.get(12)?,
    })
}

/// Entries due at `now`, oldest due first, with their domains.
pub fn due(c: &Connection, now: i64, max: usize) -> rusqlite::Result<Vec<(i64, String)>> {
    c.prepare_cached(
        "SELECT id, domain FROM queue WHERE next_micros <= ?1 ORDER BY next_micros LIMIT ?2",
    )?
    .query_map(params![now, max as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// Leases those of `ids` still due at `now`.
pub fn take(
    ctx: &mut Ctx<'_>,
    ids: &[i64],
    now: i64,
    lease_until: i64,
) -> StoreResult<Vec<QueueEntry>> {
    let mut taken = Vec::with_capacity(ids.len());
    for &id in ids {
        let leased = ctx
            .tx
            .prepare_cached(
                "UPDATE queue SET next_micros = ?2, attempts = attempts + 1, leased = 1 \
                 WHERE id = ?1 AND next_micros <= ?3",
            )
            .and_then(|mut s| s.execute(params![id, lease_until, now]))
            .map_err(backend)?;
        if leased == 1 {
            taken.extend(get(ctx.tx, id)?);
        }
    }
    Ok(taken)
}

/// Finishes an entry or puts it back with the recipients left, and stores the notification.
pub fn attempted(ctx: &mut Ctx<'_>, outcome: &Attempted) -> StoreResult<()> {
    if let Some((user, message)) = &outcome.bounce
        && let Some(inbox) = inbox_of(ctx.tx, *user)?
    {
        write_messages::append(ctx, inbox, message, Flags::default(), false)?;
    }
    let sql =
        if outcome.retry.is_empty() {
            ctx.tx
                .prepare_cached("DELETE FROM queue WHERE id = ?1")
                .and_then(|mut s| s.execute(params![outcome.id]))
        } else {
            let list = serde_json::to_string(&outcome.retry)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            ctx.tx
            .prepare_cached(
                "UPDATE queue SET recipients = ?2, next_micros = ?3, last_error = ?4, leased = 0 \
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![outcome.id, list, outcome.retry_micros, outcome.error])
            })
        };
    sql.map_err(backend)?;
    Ok(())
}

fn inbox_of(tx: &Connection, user: i64) -> StoreResult<Option<i64>> {
    tx.prepare_cached("SELECT id FROM mailboxes WHERE user_id = ?1 AND role = 'inbox'")
        .and_then(|mut s| s.query_row(params![user], |r| r.get(0)).optional())
        .map_err(backend)
}

pub fn get(c: &Connection, id: i64) -> StoreResult<Option<QueueEntry>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id], entry).optional())
    .map_err(backend)
}

pub fn list(c: &Connection) -> rusqlite::Result<Vec<QueueEntry>> {
    c.prepare(&format!(
        "SELECT {COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id ORDER BY q.id"
    ))?
    .query_map([], entry)?
    .collect()
}

/// Makes entries due now; one a worker holds (its lease not yet run out) is left to it.
pub fn retry(tx: &Connection, id: Option<i64>, now: i64) -> StoreResult<u64> {
    let changed = match id {
        Some(id) => tx.execute(
            "UPDATE queue SET next_micros = ?2 WHERE id = ?1 AND NOT (leased AND next_micros > ?2)",
            params![id, now],
        ),
        None => tx.execute(
            "UPDATE queue SET next_micros = ?1 WHERE NOT (leased AND next_micros > ?1)",
            params![now],
        ),
    };
    changed.map(|n| n as u64).map_err(backend)
}

pub fn drop_entry(tx: &Connection, id: i64) -> StoreResult<bool> {
    tx.execute("DELETE FROM queue WHERE id = ?1", params![id])
        .map(|n| n > 0)
        .map_err(backend)
}

pub fn next_due(c: &Connection) -> rusqlite::Result<Option<i64>> {
    c.query_row("SELECT min(next_micros) FROM queue", [], |r| r.get(0))
}

/// Every leased entry due now (see [`crate::store::QueueStore::queue_recover`]).
pub fn recover(tx: &Connection, now: i64) -> StoreResult<u64> {
    tx.execute(
        "UPDATE queue SET next_micros = ?1, leased = 0 WHERE leased = 1 AND next_micros > ?1",
        params![now],
    )
    .map(|n| n as u64)
    .map_err(backend)
}
