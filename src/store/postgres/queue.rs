//! The outbound queue on PostgreSQL. Several nodes share it: an entry is leased by one
//! `UPDATE ... WHERE next_micros <= now` (a second node's update of the same row waits for the first
//! to commit, then finds it no longer due), and a dead node's leases run out by themselves.

use tokio_postgres::Row;

use super::sql::Ctx;
use super::write_messages;
use crate::store::{Attempted, Flags, Outbound, QueueEntry, StoreError, StoreResult};

const COLUMNS: &str = "q.id, q.user_id, q.sender, q.domain, q.recipients, q.created_micros, \
     q.next_micros, q.attempts, q.leased, q.last_error, q.dsn, octet_length(b.raw), q.blob_id";

pub async fn enqueue(ctx: &Ctx<'_>, blob: i64, outbound: &Outbound, now: i64) -> StoreResult<i64> {
    let mut rows = 0;
    for (domain, recipients) in &outbound.domains {
        if recipients.is_empty() {
            continue;
        }
        let list =
            serde_json::to_string(recipients).map_err(|e| StoreError::Backend(e.to_string()))?;
        ctx.exec(
            "INSERT INTO queue (blob_id, user_id, sender, domain, recipients, created_micros, \
             next_micros, dsn) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
            &[
                &blob,
                &outbound.user,
                &outbound.sender,
                domain,
                &list,
                &now,
                &outbound.dsn,
            ],
        )
        .await?;
        rows += 1;
    }
    Ok(rows)
}

fn entry(r: &Row) -> QueueEntry {
    let recipients: String = r.get(4);
    QueueEntry {
        id: r.get(0),
        user: r.get(1),
        sender: r.get(2),
        domain: r.get(3),
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        created_micros: r.get(5),
        next_micros: r.get(6),
        attempts: r.get::<_, i64>(7).clamp(0, u32::MAX as i64) as u32,
        leased: r.get(8),
        last_error: r.get(9),
        dsn: r.get(10),
        size: r.get::<_, i32>(11).max(0) as u64,
        blob: r.get(12),
    }
}

pub async fn due(ctx: &Ctx<'_>, now: i64, max: usize) -> StoreResult<Vec<(i64, String)>> {
    Ok(ctx
        .all(
            "SELECT id, domain FROM queue WHERE next_micros <= $1 ORDER BY next_micros LIMIT $2",
            &[&now, &(max as i64)],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Leases those of `ids` still due; rows another node is leasing this instant are skipped, not waited
/// for (SKIP LOCKED): it has them.
pub async fn take(
    ctx: &Ctx<'_>,
    ids: &[i64],
    now: i64,
    lease_until: i64,
) -> StoreResult<Vec<QueueEntry>> {
    let taken: Vec<i64> = ctx
        .all(
            "UPDATE queue SET next_micros = $2, attempts = attempts + 1, leased = TRUE \
             WHERE id IN (SELECT id FROM queue WHERE id = ANY($1) AND next_micros <= $3 \
                          ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING id",
            &[&ids, &lease_until, &now],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut entries = Vec::with_capacity(taken.len());
    for id in ids.iter().filter(|id| taken.contains(id)) {
        entries.extend(get(ctx, *id).await?);
    }
    Ok(entries)
}

pub async fn attempted(ctx: &mut Ctx<'_>, outcome: &Attempted) -> StoreResult<()> {
    if let Some((user, message)) = &outcome.bounce
        && let Some(inbox) = write_messages::mailbox_with_role(ctx, *user, "inbox").await?
    {
        write_messages::append(ctx, inbox, message, Flags::default(), false).await?;
    }
    if outcome.retry.is_empty() {
        ctx.exec("DELETE FROM queue WHERE id = $1", &[&outcome.id])
            .await?;
    } else {
        let list = serde_json::to_string(&outcome.retry)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        ctx.exec(
            "UPDATE queue SET recipients = $2, next_micros = $3, last_error = $4, leased = FALSE \
             WHERE id = $1",
            &[&outcome.id, &list, &outcome.retry_micros, &outcome.error],
        )
        .await?;
    }
    Ok(())
}

pub async fn get(ctx: &Ctx<'_>, id: i64) -> StoreResult<Option<QueueEntry>> {
    Ok(ctx
        .opt(
            &format!(
                "SELECT {COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = $1"
            ),
            &[&id],
        )
        .await?
        .map(|r| entry(&r)))
}

pub async fn list(ctx: &Ctx<'_>) -> StoreResult<Vec<QueueEntry>> {
    Ok(ctx
        .all(
            &format!(
                "SELECT {COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id ORDER BY q.id"
            ),
            &[],
        )
        .await?
        .iter()
        .map(entry)
        .collect())
}

pub async fn retry(ctx: &Ctx<'_>, id: Option<i64>, now: i64) -> StoreResult<u64> {
    match id {
        Some(id) => {
            ctx.exec(
                "UPDATE queue SET next_micros = $2 WHERE id = $1 AND NOT (leased AND next_micros > $2)",
                &[&id, &now],
            )
            .await
        }
        None => {
            ctx.exec(
                "UPDATE queue SET next_micros = $1 WHERE NOT (leased AND next_micros > $1)",
                &[&now],
            )
            .await
        }
    }
}

pub async fn drop_entry(ctx: &Ctx<'_>, id: i64) -> StoreResult<bool> {
    Ok(ctx.exec("DELETE FROM queue WHERE id = $1", &[&id]).await? > 0)
}

pub async fn next_due(ctx: &Ctx<'_>) -> StoreResult<Option<i64>> {
    Ok(ctx
        .one("SELECT min(next_micros) FROM queue", &[])
        .await?
        .get(0))
}
