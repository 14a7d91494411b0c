//! Read queries on PostgreSQL. Those of several statements run in one REPEATABLE READ transaction, so
//! they agree with one another as SQLite's read transactions do.

use tokio_postgres::Row;

use super::sql::{Ctx, big, u32_of, u64_of};
use crate::store::rules::{
    FirstNewUid, Quota, ReadAt, Usage, merge_changed_and_stored, merge_changes, split_keywords,
};
use crate::store::{
    BodyRef, Changes, Credentials, Listed, Located, MailboxId, MailboxInfo, MailboxSnapshot,
    MessageMeta, Role, Since, StoreError, StoreResult, Tombstone, UserId, UserInfo, Wanted,
};

pub async fn credentials(ctx: &Ctx<'_>, name: &str) -> StoreResult<Option<Credentials>> {
    Ok(ctx
        .opt(
            "SELECT u.id, u.password_hash, m.id FROM users u \
             JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX' WHERE u.name = $1",
            &[&name],
        )
        .await?
        .map(|r| Credentials {
            id: r.get(0),
            password_hash: r.get(1),
            inbox: r.get(2),
        }))
}

pub async fn tokens_from(ctx: &Ctx<'_>, id: UserId) -> StoreResult<Option<i64>> {
    Ok(ctx
        .opt("SELECT tokens_from_micros FROM users WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0)))
}

pub async fn password_hash_of(ctx: &Ctx<'_>, id: UserId) -> StoreResult<Option<String>> {
    Ok(ctx
        .opt("SELECT password_hash FROM users WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0)))
}

const META: &str = "m.uid, m.modseq, m.flags, m.size, m.crlf_size, m.internal_micros, m.from_addr, \
     m.subject, m.keywords, m.blob_id, m.internal_zone";

fn meta(r: &Row) -> MessageMeta {
    MessageMeta {
        uid: u32_of(r, 0),
        modseq: u64_of(r, 1),
        flags: r.get(2),
        size: u64_of(r, 3),
        crlf_size: u64_of(r, 4),
        internal_date_micros: r.get(5),
        internal_zone_minutes: r.get(10),
        from: r.get(6),
        subject: r.get(7),
        keywords: split_keywords(r.get(8)),
        blob: r.get(9),
    }
}

/// SQLite's `reads::changes` says how: changed messages by the modseq index of such messages, stored
/// ones by the UID key from where [`FirstNewUid`] finds them, deletions by the tombstones.
pub async fn changes(
    ctx: &Ctx<'_>,
    mailbox: MailboxId,
    from: Since,
    limit: usize,
) -> StoreResult<Changes> {
    let since = from.modseq;
    let fetch = (limit + 1) as i64;
    let (highest, uid_next) = ctx
        .opt(
            "SELECT highest_modseq, uid_next FROM mailboxes WHERE id = $1",
            &[&mailbox],
        )
        .await?
        .map(|r| (u64_of(&r, 0), u32_of(&r, 1)))
        .unwrap_or((0, 0));
    let at = ReadAt::nothing_new(highest, uid_next);
    if since >= highest {
        return Ok(merge_changes(Vec::new(), Vec::new(), at, limit));
    }
    let mut first_new = FirstNewUid::new(since, uid_next, from.stored_from);
    let since = big(since);
    let changed: Vec<MessageMeta> = ctx
        .all(
            &format!(
                "SELECT {META} FROM messages m WHERE m.mailbox_id = $1 AND m.modseq > $2 \
                 AND m.modseq > m.created_modseq ORDER BY m.modseq LIMIT $3"
            ),
            &[&mailbox, &since, &fetch],
        )
        .await?
        .iter()
        .map(meta)
        .collect();
    while let Some(at) = first_new.probe() {
        let last = ctx
            .opt(
                "SELECT uid, created_modseq FROM messages WHERE mailbox_id = $1 AND uid <= $2 \
                 ORDER BY uid DESC LIMIT 1",
                &[&mailbox, &i64::from(at)],
            )
            .await?
            .map(|r| (u32_of(&r, 0), u64_of(&r, 1)));
        first_new.found(at, last);
    }
    // Nothing stored since (the usual answer to a session that changed flags): no query.
    let stored: Vec<MessageMeta> = if first_new.start() >= uid_next {
        Vec::new()
    } else {
        ctx.all(
            &format!(
                "SELECT {META} FROM messages m WHERE m.mailbox_id = $1 AND m.uid >= $2 \
                 AND m.modseq = m.created_modseq AND m.modseq > $3 ORDER BY m.uid LIMIT $4"
            ),
            &[&mailbox, &i64::from(first_new.start()), &since, &fetch],
        )
        .await?
        .iter()
        .map(meta)
        .collect()
    };
    let gone: Vec<(u32, u64, Option<i64>)> = ctx
        .all(
            "SELECT uid, modseq, blob_id FROM expunged WHERE mailbox_id = $1 AND modseq > $2 \
             ORDER BY modseq LIMIT $3",
            &[&mailbox, &since, &fetch],
        )
        .await?
        .iter()
        .map(|r| (u32_of(r, 0), u64_of(r, 1), r.get(2)))
        .collect();
    let messages = merge_changed_and_stored(changed, stored, fetch as usize);
    Ok(merge_changes(
        messages,
        gone,
        at.new_from(first_new.start()),
        limit,
    ))
}

/// A row of blob, mailbox and UID.
fn located(r: &Row) -> Located {
    Located {
        blob: r.get(0),
        mailbox: r.get(1),
        uid: u32_of(r, 2),
    }
}

/// The tombstones in `user`'s mailboxes of each of `blobs`, ordered by blob, mailbox and UID.
pub async fn tombstones(ctx: &Ctx<'_>, user: UserId, blobs: &[i64]) -> StoreResult<Vec<Tombstone>> {
    Ok(ctx
        .all(
            "SELECT blob_id, mailbox_id, uid, modseq FROM expunged WHERE blob_id = ANY($1) \
             AND mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = $2) ORDER BY 1, 2, 3",
            &[&blobs, &user],
        )
        .await?
        .iter()
        .map(|r| Tombstone {
            blob: r.get(0),
            mailbox: r.get(1),
            uid: u32_of(r, 2),
            modseq: u64_of(r, 3),
        })
        .collect())
}

/// The copies of what `user` holds more than once, ordered by blob, mailbox and UID; the first `limit`.
pub async fn shared_copies(ctx: &Ctx<'_>, user: UserId, limit: usize) -> StoreResult<Vec<Located>> {
    Ok(ctx
        .all(
            "SELECT blob_id, mailbox_id, uid FROM messages \
             WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = $1) AND blob_id IN \
             (SELECT blob_id FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = $1) \
             GROUP BY blob_id HAVING count(*) > 1) ORDER BY 1, 2, 3 LIMIT $2",
            &[&user, &(limit as i64)],
        )
        .await?
        .iter()
        .map(located)
        .collect())
}

/// Each copy in `user`'s mailboxes of each of `blobs`, ordered by blob, mailbox and UID.
pub async fn locate(ctx: &Ctx<'_>, user: UserId, blobs: &[i64]) -> StoreResult<Vec<Located>> {
    Ok(ctx
        .all(
            "SELECT blob_id, mailbox_id, uid FROM messages WHERE blob_id = ANY($1) \
             AND mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = $2) ORDER BY 1, 2, 3",
            &[&blobs, &user],
        )
        .await?
        .iter()
        .map(located)
        .collect())
}

pub async fn newest(
    ctx: &Ctx<'_>,
    mailbox: MailboxId,
    limit: usize,
    bytes_max: usize,
) -> StoreResult<Vec<(MessageMeta, Vec<u8>)>> {
    Ok(ctx
        .all(
            &format!(
                "SELECT {META}, substring(b.raw FROM 1 FOR $3::int) FROM messages m \
                 JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = $1 ORDER BY m.uid DESC LIMIT $2"
            ),
            &[&mailbox, &(limit as i64), &(bytes_max.min(i32::MAX as usize) as i32)],
        )
        .await?
        .iter()
        .map(|r| (meta(r), r.get(11)))
        .collect())
}

pub async fn existing_users(ctx: &Ctx<'_>, names: &[String]) -> StoreResult<Vec<String>> {
    let found: Vec<String> = ctx
        .all("SELECT name FROM users WHERE name = ANY($1)", &[&names])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // In the order asked, as the SQLite backend answers.
    Ok(names
        .iter()
        .filter(|n| found.contains(n))
        .cloned()
        .collect())
}

pub async fn usage(
    ctx: &Ctx<'_>,
    user: UserId,
    default: Quota,
) -> StoreResult<Option<(Usage, Quota)>> {
    let row = ctx
        .opt(
            "SELECT used_bytes, used_messages, quota_bytes, quota_messages FROM users WHERE id = $1",
            &[&user],
        )
        .await?;
    Ok(row.map(|r| usage_of(&r, default)))
}

pub async fn recipient(
    ctx: &Ctx<'_>,
    name: &str,
    default: Quota,
) -> StoreResult<Option<crate::store::Recipient>> {
    let row = ctx
        .opt(
            "SELECT used_bytes, used_messages, quota_bytes, quota_messages, \
             EXISTS (SELECT 1 FROM vacations v WHERE v.user_id = users.id AND v.enabled), id \
             FROM users WHERE name = $1",
            &[&name],
        )
        .await?;
    let one = Usage {
        bytes: 1,
        messages: 1,
    };
    Ok(row.map(|r| {
        let (usage, quota) = usage_of(&r, default);
        crate::store::Recipient {
            user: r.get(5),
            has_room: quota.admits(usage, one),
            away: r.get(4),
        }
    }))
}

pub async fn vacation(ctx: &Ctx<'_>, user: UserId) -> StoreResult<(crate::store::Vacation, u64)> {
    let row = ctx
        .opt(
            "SELECT enabled, from_micros, to_micros, subject, text_body, html_body, version \
             FROM vacations WHERE user_id = $1",
            &[&user],
        )
        .await?;
    Ok(row
        .map(|r| {
            let vacation = crate::store::Vacation {
                enabled: r.get(0),
                from_micros: r.get(1),
                to_micros: r.get(2),
                subject: r.get(3),
                text_body: r.get(4),
                html_body: r.get(5),
            };
            (vacation, u64_of(&r, 6))
        })
        .unwrap_or_default())
}

pub async fn identity_settings(ctx: &Ctx<'_>, user: UserId) -> StoreResult<(Option<String>, u64)> {
    let row = ctx
        .opt(
            "SELECT settings, version FROM identity_settings WHERE user_id = $1",
            &[&user],
        )
        .await?;
    Ok(row
        .map(|r| (Some(r.get(0)), u64_of(&r, 1)))
        .unwrap_or_default())
}

pub async fn submissions(ctx: &Ctx<'_>, user: UserId) -> StoreResult<Vec<(u64, String)>> {
    let rows = ctx
        .all(
            "SELECT id, object FROM submissions WHERE user_id = $1 ORDER BY id",
            &[&user],
        )
        .await?;
    Ok(rows.iter().map(|r| (u64_of(r, 0), r.get(1))).collect())
}

fn usage_of(r: &Row, default: Quota) -> (Usage, Quota) {
    let usage = Usage {
        bytes: u64_of(r, 0),
        messages: u64_of(r, 1),
    };
    (usage, Quota::or_default((r.get(2), r.get(3)), default))
}

pub async fn first_user(ctx: &Ctx<'_>) -> StoreResult<Option<String>> {
    Ok(ctx
        .opt("SELECT name FROM users ORDER BY id LIMIT 1", &[])
        .await?
        .map(|r| r.get(0)))
}

pub async fn body(ctx: &Ctx<'_>, mailbox: MailboxId, uid: u32) -> StoreResult<Option<Vec<u8>>> {
    Ok(ctx
        .opt(
            "SELECT b.raw FROM messages m JOIN blobs b ON b.id = m.blob_id \
             WHERE m.mailbox_id = $1 AND m.uid = $2",
            &[&mailbox, &i64::from(uid)],
        )
        .await?
        .map(|r| r.get(0)))
}

pub async fn body_ref(ctx: &Ctx<'_>, mailbox: MailboxId, uid: u32) -> StoreResult<Option<BodyRef>> {
    Ok(ctx
        .opt(
            "SELECT m.blob_id, octet_length(b.raw) FROM messages m JOIN blobs b ON b.id = m.blob_id \
             WHERE m.mailbox_id = $1 AND m.uid = $2",
            &[&mailbox, &i64::from(uid)],
        )
        .await?
        .map(|r| BodyRef {
            blob: r.get(0),
            len: r.get::<_, i32>(1).max(0) as u64,
        }))
}

/// A piece of a blob: with the bytes stored uncompressed out of line (migration 1), PostgreSQL reads
/// only the pieces of the value that hold it.
pub async fn body_chunk(
    ctx: &Ctx<'_>,
    body: BodyRef,
    offset: u64,
    max: usize,
) -> StoreResult<Vec<u8>> {
    let take = (body.len.saturating_sub(offset) as usize).min(max);
    let row = ctx
        .opt(
            "SELECT substring(raw FROM $2::int FOR $3::int), octet_length(raw) FROM blobs WHERE id = $1",
            &[
                &body.blob,
                &((offset + 1).min(i32::MAX as u64) as i32),
                &(take.min(i32::MAX as usize) as i32),
            ],
        )
        .await?;
    match row {
        Some(r) if r.get::<_, i32>(1).max(0) as u64 == body.len => Ok(r.get(0)),
        _ => Err(StoreError::Backend("message is gone".into())),
    }
}

pub async fn snapshot(ctx: &Ctx<'_>, mailbox: MailboxId) -> StoreResult<MailboxSnapshot> {
    let messages = ctx
        .all(
            "SELECT uid, flags FROM messages WHERE mailbox_id = $1 ORDER BY uid",
            &[&mailbox],
        )
        .await?
        .iter()
        .map(|r| (u32_of(r, 0), r.get(1)))
        .collect();
    let highest_modseq = ctx
        .opt(
            "SELECT highest_modseq FROM mailboxes WHERE id = $1",
            &[&mailbox],
        )
        .await?
        .map(|r| u64_of(&r, 0))
        .unwrap_or(0);
    let keywords = ctx
        .all(
            "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = $1 ORDER BY keyword COLLATE \"C\"",
            &[&mailbox],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(MailboxSnapshot {
        messages,
        highest_modseq,
        keywords,
    })
}

pub async fn messages(
    ctx: &Ctx<'_>,
    mailbox: MailboxId,
    uids: &[u32],
    wanted: Wanted,
) -> StoreResult<Vec<Listed>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let raw_max = big(wanted.raw_bytes_max);
    let list: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
    let rows = ctx
        .all(
            &format!(
                "SELECT {META}, CASE WHEN $3 THEN b.summary END, \
                 CASE WHEN m.size <= $4 THEN b.raw END FROM messages m JOIN blobs b ON b.id = m.blob_id \
                 WHERE m.mailbox_id = $1 AND m.uid = ANY($2) ORDER BY m.uid"
            ),
            &[&mailbox, &list, &wanted.summary, &raw_max],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            meta: meta(r),
            summary: r.get(11),
            raw: r.get(12),
        })
        .collect())
}

pub async fn summary(ctx: &Ctx<'_>, mailbox: MailboxId, uid: u32) -> StoreResult<Option<String>> {
    Ok(ctx
        .opt(
            "SELECT b.summary FROM messages m JOIN blobs b ON b.id = m.blob_id \
             WHERE m.mailbox_id = $1 AND m.uid = $2",
            &[&mailbox, &i64::from(uid)],
        )
        .await?
        .and_then(|r| r.get(0)))
}

const MAILBOX_COLUMNS: &str = "id, name, role, subscribed, uid_validity, uid_next, highest_modseq, \
     messages, unseen, bytes, first_recent_uid FROM mailboxes";

fn mailbox_info(r: &Row) -> MailboxInfo {
    let role: Option<String> = r.get(2);
    MailboxInfo {
        id: r.get(0),
        name: r.get(1),
        role: role.as_deref().and_then(Role::parse),
        subscribed: r.get(3),
        uid_validity: u32_of(r, 4),
        uid_next: u32_of(r, 5),
        highest_modseq: u64_of(r, 6),
        messages: u64_of(r, 7),
        unseen: u64_of(r, 8),
        bytes: u64_of(r, 9),
        first_recent_uid: u32_of(r, 10),
    }
}

/// Messages at or above the mailbox's first recent UID (SQLite's `reads::recent_count`).
pub async fn recent_count(ctx: &Ctx<'_>, mailbox: MailboxId) -> StoreResult<u64> {
    let row = ctx
        .one(
            "SELECT count(*) FROM messages WHERE mailbox_id = $1 \
             AND uid >= (SELECT first_recent_uid FROM mailboxes WHERE id = $1)",
            &[&mailbox],
        )
        .await?;
    Ok(u64_of(&row, 0))
}

/// The mailbox's first recent UID.
pub async fn first_recent_uid(ctx: &Ctx<'_>, mailbox: MailboxId) -> StoreResult<u32> {
    let row = ctx
        .opt(
            "SELECT first_recent_uid FROM mailboxes WHERE id = $1",
            &[&mailbox],
        )
        .await?
        .ok_or(StoreError::NoSuchMailbox)?;
    Ok(u32_of(&row, 0))
}

/// The names the account is subscribed to that have no mailbox, in byte order (as SQLite sorts).
pub async fn kept_subscriptions(ctx: &Ctx<'_>, user: UserId) -> StoreResult<Vec<String>> {
    Ok(ctx
        .all(
            "SELECT name FROM subscribed_names WHERE user_id = $1 ORDER BY name COLLATE \"C\"",
            &[&user],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub async fn mailboxes(ctx: &Ctx<'_>, user: UserId) -> StoreResult<Vec<MailboxInfo>> {
    // Byte order, as SQLite sorts text: clients see the same order on both backends.
    Ok(ctx
        .all(
            &format!("SELECT {MAILBOX_COLUMNS} WHERE user_id = $1 ORDER BY name COLLATE \"C\""),
            &[&user],
        )
        .await?
        .iter()
        .map(mailbox_info)
        .collect())
}

pub async fn mailbox(ctx: &Ctx<'_>, user: UserId, name: &str) -> StoreResult<Option<MailboxInfo>> {
    Ok(ctx
        .opt(
            &format!("SELECT {MAILBOX_COLUMNS} WHERE user_id = $1 AND name = $2"),
            &[&user, &name],
        )
        .await?
        .map(|r| mailbox_info(&r)))
}

pub async fn account_modseq(ctx: &Ctx<'_>, user: UserId) -> StoreResult<Option<u64>> {
    Ok(ctx
        .opt("SELECT modseq FROM users WHERE id = $1", &[&user])
        .await?
        .map(|r| u64_of(&r, 0)))
}

pub async fn mailboxes_changed(
    ctx: &Ctx<'_>,
    user: UserId,
    since: u64,
) -> StoreResult<(Vec<MailboxId>, Vec<MailboxId>)> {
    let since = big(since);
    let changed = ctx
        .all(
            "SELECT id FROM mailboxes WHERE user_id = $1 AND account_modseq > $2 ORDER BY id",
            &[&user, &since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let gone = ctx
        .all(
            "SELECT mailbox_id FROM mailboxes_gone WHERE user_id = $1 AND account_modseq > $2 \
             ORDER BY mailbox_id",
            &[&user, &since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((changed, gone))
}

pub async fn users(ctx: &Ctx<'_>, default: Quota) -> StoreResult<Vec<UserInfo>> {
    Ok(ctx
        .all(
            "SELECT used_bytes, used_messages, quota_bytes, quota_messages, name, created_micros \
             FROM users ORDER BY name COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let (usage, quota) = usage_of(r, default);
            UserInfo {
                name: r.get(4),
                created_micros: r.get(5),
                usage,
                quota,
            }
        })
        .collect())
}
