//! Read queries, run on pooled read connections (WAL lets them run beside the writer).

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::rules::{
    FirstNewUid, ReadAt, merge_changed_and_stored, merge_changes, split_keywords,
};
use crate::store::rules::{Quota, Usage};
use crate::store::{
    Changes, Credentials, MailboxId, MailboxInfo, MessageMeta, Role, Since, UserId, UserInfo,
};

pub fn credentials(conn: &Connection, name: &str) -> rusqlite::Result<Option<Credentials>> {
    conn.prepare_cached(
        "SELECT u.id, u.password_hash, m.id FROM users u \
         JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX' WHERE u.name = ?1",
    )?
    .query_row(params![name], |r| {
        Ok(Credentials {
            id: r.get(0)?,
            password_hash: r.get(1)?,
            inbox: r.get(2)?,
        })
    })
    .optional()
}

pub fn tokens_from(conn: &Connection, id: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT tokens_from_micros FROM users WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()
}

pub fn password_hash_of(conn: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT password_hash FROM users WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()
}

/// Changes after `since`, merged in modseq order, at most `limit`. Messages changed since they were stored
/// come from the (mailbox, modseq) index of such messages, messages stored after `since` from the UID key
/// (found by [`FirstNewUid`]), deletions from the tombstones' (mailbox, modseq) index: the cost follows
/// what changed, not the mailbox size.
pub fn changes(
    conn: &mut Connection,
    mailbox: MailboxId,
    from: Since,
    limit: usize,
) -> rusqlite::Result<Changes> {
    let since = from.modseq;
    let tx = conn.transaction()?; // one snapshot for every query
    let fetch = (limit + 1) as i64;
    // A mailbox deleted with its user has no changes to show.
    let (highest, uid_next): (u64, u32) = tx
        .prepare_cached("SELECT highest_modseq, uid_next FROM mailboxes WHERE id = ?1")?
        .query_row(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    let at = ReadAt::nothing_new(highest, uid_next);
    if since >= highest {
        return Ok(merge_changes(Vec::new(), Vec::new(), at, limit));
    }
    let changed: Vec<MessageMeta> = tx
        .prepare_cached(
            "SELECT uid, modseq, flags, size, crlf_size, internal_micros, from_addr, subject, keywords, \
             blob_id, internal_zone \
             FROM messages WHERE mailbox_id = ?1 AND modseq > ?2 AND modseq > created_modseq \
             ORDER BY modseq LIMIT ?3",
        )?
        .query_map(params![mailbox, since, fetch], meta)?
        .collect::<rusqlite::Result<_>>()?;
    let mut first_new = FirstNewUid::new(since, uid_next, from.stored_from);
    {
        let mut last_at = tx.prepare_cached(
            "SELECT uid, created_modseq FROM messages WHERE mailbox_id = ?1 AND uid <= ?2 \
             ORDER BY uid DESC LIMIT 1",
        )?;
        while let Some(at) = first_new.probe() {
            let last = last_at
                .query_row(params![mailbox, at], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            first_new.found(at, last);
        }
    }
    // Nothing stored since (the usual answer to a session that changed flags): no query.
    let stored: Vec<MessageMeta> = if first_new.start() >= uid_next {
        Vec::new()
    } else {
        tx.prepare_cached(
            "SELECT uid, modseq, flags, size, crlf_size, internal_micros, from_addr, subject, keywords, \
             blob_id, internal_zone \
             FROM messages WHERE mailbox_id = ?1 AND uid >= ?2 AND modseq = created_modseq \
             AND modseq > ?3 ORDER BY uid LIMIT ?4",
        )?
        .query_map(params![mailbox, first_new.start(), since, fetch], meta)?
        .collect::<rusqlite::Result<_>>()?
    };
    let gone: Vec<(u32, u64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT uid, modseq, blob_id FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 \
             ORDER BY modseq LIMIT ?3",
        )?
        .query_map(params![mailbox, since, fetch], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    tx.commit()?;
    let messages = merge_changed_and_stored(changed, stored, fetch as usize);
    Ok(merge_changes(
        messages,
        gone,
        at.new_from(first_new.start()),
        limit,
    ))
}

/// The copies of what `user` holds more than once, ordered by blob, mailbox and UID; the first `limit`.
pub fn shared_copies(
    conn: &mut Connection,
    user: UserId,
    limit: usize,
) -> rusqlite::Result<Vec<crate::store::Located>> {
    conn.prepare_cached(
        "SELECT blob_id, mailbox_id, uid FROM messages \
         WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?1) AND blob_id IN \
         (SELECT blob_id FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?1) \
         GROUP BY blob_id HAVING count(*) > 1) ORDER BY blob_id, mailbox_id, uid LIMIT ?2",
    )?
    .query_map(params![user, limit as i64], located)?
    .collect()
}

/// A row of blob, mailbox and UID.
fn located(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::store::Located> {
    Ok(crate::store::Located {
        blob: r.get(0)?,
        mailbox: r.get(1)?,
        uid: r.get(2)?,
    })
}

/// Each copy in `user`'s mailboxes of each of `blobs`, ordered by blob, mailbox and UID.
pub fn locate(
    conn: &Connection,
    user: UserId,
    blobs: &[i64],
) -> rusqlite::Result<Vec<crate::store::Located>> {
    per_blob(
        conn,
        "SELECT blob_id, mailbox_id, uid FROM messages WHERE blob_id IN (SELECT value FROM json_each(?1)) \
         AND mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?2) ORDER BY 1, 2, 3",
        user,
        blobs,
        located,
    )
}

/// The tombstones in `user`'s mailboxes of each of `blobs`, ordered by blob, mailbox and UID.
pub fn tombstones(
    conn: &Connection,
    user: UserId,
    blobs: &[i64],
) -> rusqlite::Result<Vec<crate::store::Tombstone>> {
    per_blob(
        conn,
        "SELECT blob_id, mailbox_id, uid, modseq FROM expunged \
         WHERE blob_id IN (SELECT value FROM json_each(?1)) \
         AND mailbox_id IN (SELECT id FROM mailboxes WHERE user_id = ?2) ORDER BY 1, 2, 3",
        user,
        blobs,
        |r| {
            Ok(crate::store::Tombstone {
                blob: r.get(0)?,
                mailbox: r.get(1)?,
                uid: r.get(2)?,
                modseq: r.get(3)?,
            })
        },
    )
}

/// The rows `sql` gives for `blobs` (`?1`, a JSON array) of account `?2`: one statement, however many
/// blobs (a lookup each was a statement each).
fn per_blob<T>(
    conn: &Connection,
    sql: &str,
    user: UserId,
    blobs: &[i64],
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let list = serde_json::to_string(blobs).expect("a list of integers is JSON");
    conn.prepare_cached(sql)?
        .query_map(params![list, user], row)?
        .collect()
}

/// Newest first, with bodies: walks the (mailbox, uid) key backwards, so the cost is `limit` rows.
pub fn newest(
    conn: &Connection,
    mailbox: MailboxId,
    limit: usize,
    bytes_max: usize,
) -> rusqlite::Result<Vec<(MessageMeta, Vec<u8>)>> {
    conn.prepare_cached(
        "SELECT m.uid, m.modseq, m.flags, m.size, m.crlf_size, m.internal_micros, m.from_addr, m.subject, \
         m.keywords, m.blob_id, m.internal_zone, substr(b.raw, 1, ?3) \
         FROM messages m JOIN blobs b ON b.id = m.blob_id \
         WHERE m.mailbox_id = ?1 ORDER BY m.uid DESC LIMIT ?2",
    )?
    .query_map(params![mailbox, limit as i64, bytes_max as i64], |r| {
        Ok((meta(r)?, r.get(11)?))
    })?
    .collect()
}

pub fn existing_users(conn: &Connection, names: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT name FROM users WHERE name = ?1")?;
    for name in names {
        if let Some(n) = stmt.query_row(params![name], |r| r.get(0)).optional()? {
            found.push(n);
        }
    }
    Ok(found)
}

/// An account's usage and the quota in force on it, by id.
pub fn usage(
    conn: &Connection,
    user: UserId,
    default: Quota,
) -> rusqlite::Result<Option<(Usage, Quota)>> {
    usage_where(conn, "id = ?1", params![user], default)
}

/// Whether the named account can take one more message.
pub fn recipient(
    conn: &Connection,
    name: &str,
    default: Quota,
) -> rusqlite::Result<Option<crate::store::Recipient>> {
    let one = Usage {
        bytes: 1,
        messages: 1,
    };
    conn.prepare_cached(
        "SELECT used_bytes, used_messages, quota_bytes, quota_messages, \
         EXISTS (SELECT 1 FROM vacations v WHERE v.user_id = users.id AND v.enabled), id \
         FROM users WHERE name = ?1",
    )?
    .query_row(params![name], |r| {
        let (usage, quota) = usage_of(r, default)?;
        Ok(crate::store::Recipient {
            user: r.get(5)?,
            has_room: quota.admits(usage, one),
            away: r.get(4)?,
        })
    })
    .optional()
}

pub fn vacation(
    conn: &Connection,
    user: UserId,
) -> rusqlite::Result<(crate::store::Vacation, u64)> {
    let row = conn
        .prepare_cached(
            "SELECT enabled, from_micros, to_micros, subject, text_body, html_body, version \
             FROM vacations WHERE user_id = ?1",
        )?
        .query_row(params![user], |r| {
            Ok((
                crate::store::Vacation {
                    enabled: r.get(0)?,
                    from_micros: r.get(1)?,
                    to_micros: r.get(2)?,
                    subject: r.get(3)?,
                    text_body: r.get(4)?,
                    html_body: r.get(5)?,
                },
                r.get(6)?,
            ))
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

pub fn identity_settings(
    conn: &Connection,
    user: UserId,
) -> rusqlite::Result<(Option<String>, u64)> {
    let row = conn
        .prepare_cached("SELECT settings, version FROM identity_settings WHERE user_id = ?1")?
        .query_row(params![user], |r| Ok((Some(r.get(0)?), r.get(1)?)))
        .optional()?;
    Ok(row.unwrap_or_default())
}

pub fn submissions(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<(u64, String)>> {
    conn.prepare_cached("SELECT id, object FROM submissions WHERE user_id = ?1 ORDER BY id")?
        .query_map(params![user], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn usage_where(
    conn: &Connection,
    condition: &str,
    key: impl rusqlite::Params,
    default: Quota,
) -> rusqlite::Result<Option<(Usage, Quota)>> {
    conn.prepare_cached(&format!(
        "SELECT used_bytes, used_messages, quota_bytes, quota_messages FROM users WHERE {condition}"
    ))?
    .query_row(key, |r| usage_of(r, default))
    .optional()
}

/// Usage and quota from a row's first four columns: used bytes and messages, own quotas.
fn usage_of(r: &rusqlite::Row<'_>, default: Quota) -> rusqlite::Result<(Usage, Quota)> {
    let usage = Usage {
        bytes: r.get(0)?,
        messages: r.get(1)?,
    };
    Ok((usage, Quota::or_default((r.get(2)?, r.get(3)?), default)))
}

pub fn first_user(conn: &mut Connection) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT name FROM users ORDER BY id LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()
}

/// A message's listing from its first 11 columns: uid, modseq, flags, size, crlf_size, internal_micros,
/// from_addr, subject, keywords, blob_id, internal_zone.
fn meta(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageMeta> {
    Ok(MessageMeta {
        uid: r.get(0)?,
        modseq: r.get(1)?,
        flags: r.get(2)?,
        size: r.get(3)?,
        crlf_size: r.get(4)?,
        internal_date_micros: r.get(5)?,
        internal_zone_minutes: r.get(10)?,
        from: r.get(6)?,
        subject: r.get(7)?,
        keywords: split_keywords(r.get_ref(8)?.as_str()?),
        blob: r.get(9)?,
    })
}

pub fn body(conn: &Connection, mailbox: MailboxId, uid: u32) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(
        "SELECT b.raw FROM messages m JOIN blobs b ON b.id = m.blob_id \
         WHERE m.mailbox_id = ?1 AND m.uid = ?2",
    )?
    .query_row(params![mailbox, uid], |r| r.get(0))
    .optional()
}

pub fn body_ref(
    conn: &Connection,
    mailbox: MailboxId,
    uid: u32,
) -> rusqlite::Result<Option<crate::store::BodyRef>> {
    conn.prepare_cached(
        "SELECT m.blob_id, length(b.raw) FROM messages m JOIN blobs b ON b.id = m.blob_id \
         WHERE m.mailbox_id = ?1 AND m.uid = ?2",
    )?
    .query_row(params![mailbox, uid], |r| {
        Ok(crate::store::BodyRef {
            blob: r.get(0)?,
            len: r.get(1)?,
        })
    })
    .optional()
}

/// A piece of a blob, read without loading the rest (SQLite's incremental blob I/O).
pub fn body_chunk(
    conn: &Connection,
    body: crate::store::BodyRef,
    offset: u64,
    max: usize,
) -> rusqlite::Result<Vec<u8>> {
    let blob = conn.blob_open(rusqlite::MAIN_DB, "blobs", "raw", body.blob, true)?;
    if blob.len() as u64 != body.len {
        return Err(rusqlite::Error::QueryReturnedNoRows);
    }
    let take = (body.len.saturating_sub(offset) as usize).min(max);
    let mut out = vec![0; take];
    blob.read_at_exact(&mut out, offset as usize)?;
    Ok(out)
}

/// Every UID with its flags and the highest modseq, in one read transaction.
pub fn snapshot(
    conn: &mut Connection,
    mailbox: MailboxId,
) -> rusqlite::Result<crate::store::MailboxSnapshot> {
    let tx = conn.transaction()?;
    let messages = tx
        .prepare_cached("SELECT uid, flags FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?
        .query_map(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let highest_modseq = tx
        .prepare_cached("SELECT highest_modseq FROM mailboxes WHERE id = ?1")?
        .query_row(params![mailbox], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let keywords = tx
        .prepare_cached(
            "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ?1 ORDER BY keyword",
        )?
        .query_map(params![mailbox], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tx.commit()?;
    Ok(crate::store::MailboxSnapshot {
        messages,
        highest_modseq,
        keywords,
    })
}

/// The listed messages (ascending UIDs expected), one indexed lookup each, in one read transaction so
/// they agree with one another.
pub fn messages(
    conn: &mut Connection,
    mailbox: MailboxId,
    uids: &[u32],
    wanted: crate::store::Wanted,
) -> rusqlite::Result<Vec<crate::store::Listed>> {
    // The summary and the bytes are looked up only when wanted: a listing alone reads no blob.
    const COLUMNS: &str = "SELECT m.uid, m.modseq, m.flags, m.size, m.crlf_size, m.internal_micros, \
         m.from_addr, m.subject, m.keywords, m.blob_id, m.internal_zone, \
         CASE WHEN ?3 THEN (SELECT summary FROM summaries WHERE blob_id = m.blob_id) END, \
         CASE WHEN m.size <= ?4 THEN (SELECT raw FROM blobs WHERE id = m.blob_id) END \
         FROM messages m";
    let listed = |r: &rusqlite::Row<'_>| {
        Ok(crate::store::Listed {
            meta: meta(r)?,
            summary: r.get(11)?,
            raw: r.get(12)?,
        })
    };
    let raw_max = wanted.raw_bytes_max.min(i64::MAX as u64) as i64;
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(uids.len());
    let (Some(&first), Some(&last)) = (uids.first(), uids.last()) else {
        return Ok(out);
    };
    if uids.len() >= 16 && u64::from(last - first) < 2 * uids.len() as u64 {
        // Dense: one walk of the UID range, keeping the listed ones.
        let mut stmt = tx.prepare_cached(&format!(
            "{COLUMNS} WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?5 ORDER BY m.uid"
        ))?;
        let rows = stmt.query_map(
            params![mailbox, first, wanted.summary, raw_max, last],
            listed,
        )?;
        for row in rows {
            let row = row?;
            if uids.binary_search(&row.meta.uid).is_ok() {
                out.push(row);
            }
        }
    } else {
        let mut stmt =
            tx.prepare_cached(&format!("{COLUMNS} WHERE m.mailbox_id = ?1 AND m.uid = ?2"))?;
        for &uid in uids {
            let row = stmt
                .query_row(params![mailbox, uid, wanted.summary, raw_max], listed)
                .optional()?;
            out.extend(row);
        }
    }
    drop(tx);
    Ok(out)
}

pub fn summary(
    conn: &Connection,
    mailbox: MailboxId,
    uid: u32,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT s.summary FROM messages m JOIN summaries s ON s.blob_id = m.blob_id \
         WHERE m.mailbox_id = ?1 AND m.uid = ?2",
    )?
    .query_row(params![mailbox, uid], |r| r.get::<_, Option<String>>(0))
    .optional()
    .map(Option::flatten)
}

const MAILBOX_COLUMNS: &str = "id, name, role, subscribed, uid_validity, uid_next, highest_modseq, \
     messages, unseen, bytes, first_recent_uid FROM mailboxes";

fn mailbox_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<MailboxInfo> {
    let role: Option<String> = r.get(2)?;
    Ok(MailboxInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        role: role.as_deref().and_then(Role::parse),
        subscribed: r.get(3)?,
        uid_validity: r.get(4)?,
        uid_next: r.get(5)?,
        highest_modseq: r.get(6)?,
        messages: r.get(7)?,
        unseen: r.get(8)?,
        bytes: r.get(9)?,
        first_recent_uid: r.get(10)?,
    })
}

/// Messages at or above the mailbox's first recent UID: a range of the (mailbox, UID) key.
pub fn recent_count(conn: &Connection, mailbox: MailboxId) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT count(*) FROM messages WHERE mailbox_id = ?1 \
         AND uid >= (SELECT first_recent_uid FROM mailboxes WHERE id = ?1)",
    )?
    .query_row(params![mailbox], |r| r.get(0))
}

/// The mailbox's first recent UID; `None` when there is no such mailbox.
pub fn first_recent_uid(conn: &Connection, mailbox: MailboxId) -> rusqlite::Result<Option<u32>> {
    conn.prepare_cached("SELECT first_recent_uid FROM mailboxes WHERE id = ?1")?
        .query_row(params![mailbox], |r| r.get(0))
        .optional()
}

/// The names the account is subscribed to that have no mailbox, in byte order.
pub fn kept_subscriptions(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT name FROM subscribed_names WHERE user_id = ?1 ORDER BY name")?
        .query_map(params![user], |r| r.get(0))?
        .collect()
}

pub fn mailboxes(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<MailboxInfo>> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLUMNS} WHERE user_id = ?1 ORDER BY name"
    ))?
    .query_map(params![user], mailbox_info)?
    .collect()
}

pub fn mailbox(
    conn: &Connection,
    user: UserId,
    name: &str,
) -> rusqlite::Result<Option<MailboxInfo>> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLUMNS} WHERE user_id = ?1 AND name = ?2"
    ))?
    .query_row(params![user, name], mailbox_info)
    .optional()
}

pub fn account_modseq(conn: &Connection, user: UserId) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT modseq FROM users WHERE id = ?1")?
        .query_row(params![user], |r| r.get(0))
        .optional()
}

pub fn mailboxes_changed(
    conn: &mut Connection,
    user: UserId,
    since: u64,
) -> rusqlite::Result<(Vec<MailboxId>, Vec<MailboxId>)> {
    let tx = conn.transaction()?;
    let changed = tx
        .prepare_cached(
            "SELECT id FROM mailboxes WHERE user_id = ?1 AND account_modseq > ?2 ORDER BY id",
        )?
        .query_map(params![user, since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let gone = tx
        .prepare_cached(
            "SELECT mailbox_id FROM mailboxes_gone WHERE user_id = ?1 AND account_modseq > ?2 \
             ORDER BY mailbox_id",
        )?
        .query_map(params![user, since], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tx.commit()?;
    Ok((changed, gone))
}

pub fn users(conn: &Connection, default: Quota) -> rusqlite::Result<Vec<UserInfo>> {
    conn.prepare_cached(
        "SELECT name, created_micros, used_bytes, used_messages, quota_bytes, quota_messages \
         FROM users ORDER BY name",
    )?
    .query_map([], |r| {
        Ok(UserInfo {
            name: r.get(0)?,
            created_micros: r.get(1)?,
            usage: Usage {
                bytes: r.get(2)?,
                messages: r.get(3)?,
            },
            quota: Quota::or_default((r.get(4)?, r.get(5)?), default),
        })
    })?
    .collect()
}

/// Bytes of the database file's free pages (left by deleted mail), which SQLite reuses before the file
/// grows.
pub fn reusable_bytes(conn: &mut Connection) -> rusqlite::Result<u64> {
    let pages: u64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(pages.saturating_mul(page_size))
}
