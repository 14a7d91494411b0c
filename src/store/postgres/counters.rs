//! The one place a write moves an account's and a mailbox's counters (as SQLite's `counters.rs`): the
//! account row first, then the mailbox row, each one `UPDATE ... RETURNING`. The row locks those updates
//! take are what keeps two nodes apart: a second delivery to the same mailbox waits for the first to
//! commit, so UIDs are never handed out twice and modseqs rise in commit order.

use super::sql::{Ctx, big, u32_of, u64_of};
use crate::store::rules::{Quota, within_quota};
use crate::store::{MailboxId, StoreError, StoreResult, UserId};

pub use crate::store::change::{Applied, Change, Target};

const ACCOUNT_COLUMNS: &str =
    "RETURNING id, modseq, name, used_bytes, used_messages, quota_bytes, quota_messages";

/// Applies `c` to `target`. `Ok(None)` when there is no such account or mailbox. With `check_quota`, an
/// account past its quota afterwards fails the op with [`StoreError::OverQuota`] (its transaction is
/// rolled back).
pub async fn apply(
    ctx: &mut Ctx<'_>,
    target: Target<'_>,
    c: Change,
) -> StoreResult<Option<Applied>> {
    let set = "UPDATE users SET modseq = modseq + 1, used_messages = used_messages + $2, \
               used_bytes = used_bytes + $3 WHERE";
    let row = match target {
        Target::Mailbox(user, _) => {
            let sql = format!("{set} id = $1 {ACCOUNT_COLUMNS}");
            ctx.opt(&sql, &[&user, &c.messages, &c.bytes]).await?
        }
        Target::InboxOf(name) => {
            let sql = format!("{set} name = $1 {ACCOUNT_COLUMNS}");
            ctx.opt(&sql, &[&name, &c.messages, &c.bytes]).await?
        }
    };
    let Some(account) = row else {
        return Ok(None);
    };
    let user: UserId = account.get(0);
    let account_modseq: i64 = account.get(1);
    if c.check_quota {
        let quota = Quota::or_default((account.get(5), account.get(6)), ctx.limits.quota_default);
        if !within_quota(quota, (account.get(3), account.get(4)), c.bytes, c.messages) {
            return Err(StoreError::OverQuota(account.get(2)));
        }
    }
    let (uids, modseqs) = (i64::from(c.uids), big(c.modseqs));
    let update = "UPDATE mailboxes SET uid_next = uid_next + $2, highest_modseq = highest_modseq + $3, \
                  messages = messages + $4, unseen = unseen + $5, bytes = bytes + $6, account_modseq = $7 \
                  WHERE user_id = $1 AND";
    let returning = "RETURNING id, uid_next - $2, highest_modseq - $3 + 1";
    let row = match target {
        Target::Mailbox(_, mailbox) => {
            let sql = format!("{update} id = $8 {returning}");
            let p: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
                &user,
                &uids,
                &modseqs,
                &c.messages,
                &c.unseen,
                &c.bytes,
                &account_modseq,
                &mailbox,
            ];
            ctx.opt(&sql, &p).await?
        }
        Target::InboxOf(_) => {
            let sql = format!("{update} name = 'INBOX' {returning}");
            let p: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
                &user,
                &uids,
                &modseqs,
                &c.messages,
                &c.unseen,
                &c.bytes,
                &account_modseq,
            ];
            ctx.opt(&sql, &p).await?
        }
    };
    let Some(row) = row else {
        // The account is there but the mailbox went (deleted by another connection since the caller
        // found it): the op runs again and finds it gone.
        return Err(vanished());
    };
    let (mailbox, uid, modseq): (MailboxId, u32, u64) =
        (row.get(0), u32_of(&row, 1), u64_of(&row, 2));
    if c.modseqs > 0 {
        ctx.touch(user, mailbox, modseq + c.modseqs - 1);
    }
    Ok(Some(Applied {
        user,
        mailbox,
        uid,
        modseq,
    }))
}

/// A mailbox that its account no longer has, met after the caller found it: a concurrent change, so the
/// op is run again (and then finds it gone) rather than committing a half-done change.
fn vanished() -> StoreError {
    StoreError::Conflict("the mailbox was deleted meanwhile".into())
}

/// [`apply`] to a mailbox of a known account: a missing one is [`StoreError::NoSuchMailbox`].
pub async fn apply_to(
    ctx: &mut Ctx<'_>,
    user: UserId,
    mailbox: MailboxId,
    c: Change,
) -> StoreResult<Applied> {
    apply(ctx, Target::Mailbox(user, mailbox), c)
        .await?
        .ok_or(StoreError::NoSuchMailbox)
}

/// A new message's row: what [`apply_and_insert`] stores besides the counters.
pub struct NewRow<'a> {
    pub message: &'a crate::store::NewMessage,
    /// Its bytes' blob; `None`: stored by the same statement (and counted once).
    pub blob: Option<i64>,
    pub flags: i64,
    pub imported: bool,
}

/// [`apply`] for one new message without keywords, and its row, in one statement: the account row, the
/// mailbox row, the bytes (when new) and the message row as data-modifying CTEs, so a delivery costs one
/// round trip per recipient rather than four. The quota is checked on what the account row returns (an
/// account past it fails the op, whose transaction is rolled back). Returns where it landed and the blob.
pub async fn apply_and_insert(
    ctx: &mut Ctx<'_>,
    target: Target<'_>,
    row: &NewRow<'_>,
    check_quota: bool,
) -> StoreResult<Option<(Applied, i64)>> {
    let m = row.message;
    let size = m.raw.len() as i64;
    let unseen = i64::from(row.flags & crate::store::flags::SEEN == 0);
    let key: Box<dyn tokio_postgres::types::ToSql + Sync + Send + '_> = match target {
        Target::Mailbox(user, _) => Box::new(user),
        Target::InboxOf(name) => Box::new(name),
    };
    let crlf = big(m.crlf_size);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        key.as_ref(),
        &size,
        &unseen,
        &row.flags,
        &m.internal_date_micros,
        &crlf,
        &m.from,
        &m.subject,
        &m.message_id,
        &row.imported,
        &m.internal_zone_minutes,
    ];
    let (account_key, mailbox_key) = match &target {
        Target::Mailbox(_, mailbox) => {
            params.push(mailbox);
            ("id", format!("m.id = ${}", params.len()))
        }
        Target::InboxOf(_) => ("name", "m.name = 'INBOX'".to_string()),
    };
    let (blob_cte, blob_id) = match &row.blob {
        None => {
            params.push(&m.raw);
            params.push(&m.summary);
            let n = params.len();
            (
                format!(
                    "b AS (INSERT INTO blobs (raw, summary) VALUES (${}, ${n}) RETURNING id),",
                    n - 1
                ),
                "(SELECT id FROM b)".to_string(),
            )
        }
        Some(blob) => {
            params.push(blob);
            (String::new(), format!("${}", params.len()))
        }
    };
    let sql = format!(
        "WITH {blob_cte} \
         u AS (UPDATE users SET modseq = modseq + 1, used_messages = used_messages + 1, \
               used_bytes = used_bytes + $2 WHERE {account_key} = $1 \
               RETURNING id, modseq, name, used_bytes, used_messages, quota_bytes, quota_messages), \
         mb AS (UPDATE mailboxes m SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1, \
                messages = messages + 1, unseen = unseen + $3, bytes = bytes + $2, account_modseq = u.modseq \
                FROM u WHERE m.user_id = u.id AND {mailbox_key} \
                RETURNING m.id, m.uid_next - 1 AS uid, m.highest_modseq AS modseq), \
         ins AS (INSERT INTO messages (mailbox_id, uid, modseq, created_modseq, flags, keywords, \
                 internal_micros, size, crlf_size, from_addr, subject, message_id, imported, blob_id, \
                 internal_zone) \
                 SELECT mb.id, mb.uid, mb.modseq, mb.modseq, $4, '', $5, $2, $6, $7, $8, $9, $10, \
                 {blob_id}, $11 FROM mb \
                 RETURNING blob_id) \
         SELECT u.id, u.modseq, u.name, u.used_bytes, u.used_messages, u.quota_bytes, u.quota_messages, \
                mb.id, mb.uid, mb.modseq, (SELECT blob_id FROM ins) FROM u LEFT JOIN mb ON TRUE"
    );
    let Some(r) = ctx.opt(&sql, &params).await? else {
        return Ok(None);
    };
    if check_quota {
        let quota = Quota::or_default((r.get(5), r.get(6)), ctx.limits.quota_default);
        if !within_quota(quota, (r.get(3), r.get(4)), size, 1) {
            return Err(StoreError::OverQuota(r.get(2)));
        }
    }
    let Some(mailbox) = r.get::<_, Option<MailboxId>>(7) else {
        return Err(vanished());
    };
    let user: UserId = r.get(0);
    let applied = Applied {
        user,
        mailbox,
        uid: u32_of(&r, 8),
        modseq: u64_of(&r, 9),
    };
    ctx.touch(user, mailbox, applied.modseq);
    Ok(Some((applied, r.get(10))))
}
