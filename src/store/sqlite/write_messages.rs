//! Writes of messages: delivery, append, flag updates, copy and move, expunge, import. Each runs inside the
//! writer's transaction ([`Ctx`]); the rules that are not SQL come from `store::rules`.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::counters::{self, Applied, Change, Target};
use super::writer::{Ctx, backend};
use crate::store::{
    CopyMap, Delivered, Delivery, FlagOp, FlagUpdate, Flags, ImportBatch, ImportCounts, MailboxId,
    MessageFlags, NewMessage, StoreError, StoreResult, UserId, flags,
};

use crate::store::rules::{
    canonical, join_keywords, plan_flags, sorted_uids as sorted, split_keywords,
};

/// Where a new message row comes from: a new message's metadata and its (already stored) blob.
struct Row<'a> {
    message: &'a NewMessage,
    blob: i64,
    /// Came by an import: indexed by Message-ID, so importing it again finds it.
    imported: bool,
}

/// Stores a message's bytes and summary, counted as referenced once; [`add_refs`] counts more copies.
fn insert_blob(tx: &Connection, m: &NewMessage) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO blobs (raw) VALUES (?1)")?
        .execute(params![m.raw])?;
    let blob = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO blob_refs (blob_id, refs) VALUES (?1, 1)")?
        .execute(params![blob])?;
    tx.prepare_cached("INSERT INTO summaries (blob_id, summary) VALUES (?1, ?2)")?
        .execute(params![blob, m.summary])?;
    Ok(blob)
}

/// Counts `more` further messages pointing at `blob`.
fn add_refs(tx: &Connection, blob: i64, more: i64) -> StoreResult<()> {
    if more != 0 {
        tx.prepare_cached("UPDATE blob_refs SET refs = refs + ?2 WHERE blob_id = ?1")
            .and_then(|mut s| s.execute(params![blob, more]))
            .map_err(backend)?;
    }
    Ok(())
}

/// Stores one message row in the target mailbox with its next UID and modseq; with `check_quota`,
/// refuses it past the account's quota. `None` when the target does not exist.
fn insert(
    ctx: &mut Ctx<'_>,
    target: Target<'_>,
    row: &Row<'_>,
    f: &Flags,
    check_quota: bool,
) -> StoreResult<Option<Applied>> {
    let m = row.message;
    let size = m.raw.len() as i64;
    let applied = counters::apply(
        ctx,
        target,
        Change {
            uids: 1,
            modseqs: 1,
            messages: 1,
            unseen: i64::from(f.system & flags::SEEN == 0),
            bytes: size,
            check_quota,
        },
    )?;
    let Some(at) = applied else {
        return Ok(None);
    };
    let keywords = spell_keywords(ctx, at.mailbox, f.keywords.clone())?;
    ctx.tx
        .prepare_cached(
            "INSERT INTO messages (mailbox_id, uid, modseq, created_modseq, flags, keywords, \
             internal_micros, size, crlf_size, from_addr, subject, message_id, blob_id, imported, \
             internal_zone) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .and_then(|mut s| {
            s.execute(params![
                at.mailbox,
                at.uid,
                at.modseq,
                f.system,
                join_keywords(&keywords),
                m.internal_date_micros,
                size,
                m.crlf_size,
                m.from,
                m.subject,
                m.message_id,
                row.blob,
                row.imported,
                m.internal_zone_minutes
            ])
        })
        .map_err(backend)?;
    Ok(Some(at))
}

/// The keywords as `mailbox` spells them: each one the mailbox has seen in any case takes its spelling
/// there, and each new one is recorded, refusing the op when that passes the mailbox's limit. Sorted, and
/// without repeats in any case.
fn spell_keywords(
    ctx: &Ctx<'_>,
    mailbox: MailboxId,
    mut keywords: Vec<String>,
) -> StoreResult<Vec<String>> {
    if keywords.is_empty() {
        return Ok(keywords);
    }
    let mut run = || -> rusqlite::Result<(usize, u64)> {
        let mut added = 0;
        // A mailbox has at most keywords_per_mailbox_max of them: the scan past the key prefix is short.
        let mut seen = ctx.tx.prepare_cached(
            "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ?1 AND keyword = ?2 COLLATE NOCASE",
        )?;
        let mut record = ctx
            .tx
            .prepare_cached("INSERT INTO mailbox_keywords (mailbox_id, keyword) VALUES (?1, ?2)")?;
        for k in keywords.iter_mut() {
            let spelled = seen
                .query_row(params![mailbox, k.as_str()], |r| r.get::<_, String>(0))
                .optional()?;
            match spelled {
                Some(spelling) => *k = spelling,
                None => added += record.execute(params![mailbox, k.as_str()])?,
            }
        }
        let count = ctx
            .tx
            .prepare_cached("SELECT count(*) FROM mailbox_keywords WHERE mailbox_id = ?1")?
            .query_row(params![mailbox], |r| r.get(0))?;
        Ok((added, count))
    };
    let (added, count) = run().map_err(backend)?;
    let max = ctx.limits.keywords_per_mailbox_max;
    if added > 0 && count > max {
        return Err(StoreError::TooManyKeywords(max));
    }
    crate::store::rules::sort_keywords(&mut keywords);
    Ok(keywords)
}

pub fn owner_of(tx: &Connection, mailbox: MailboxId) -> StoreResult<UserId> {
    tx.prepare_cached("SELECT user_id FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![mailbox], |r| r.get(0)).optional())
        .map_err(backend)?
        .ok_or(StoreError::NoSuchMailbox)
}

pub fn submit(ctx: &mut Ctx<'_>, d: &Delivery, now_micros: i64) -> StoreResult<Vec<Delivered>> {
    let mut done = HashSet::new();
    let mut delivered = Vec::with_capacity(d.local.len());
    let blob = insert_blob(ctx.tx, &d.message).map_err(backend)?;
    let row = Row {
        message: &d.message,
        blob,
        imported: false,
    };
    let mut copies = 0i64;
    let mut recipients = HashSet::new();
    for name in &d.local {
        if !done.insert(name.as_str()) {
            continue;
        }
        let junk = match d.junk {
            true => junk_of(ctx.tx, name)?,
            false => None,
        };
        let target = match junk {
            Some((user, mailbox)) => Target::Mailbox(user, mailbox),
            None => Target::InboxOf(name),
        };
        let at = insert(ctx, target, &row, &Flags::default(), true)?
            .ok_or_else(|| StoreError::UnknownRecipient(name.clone()))?;
        delivered.push(Delivered {
            user: name.clone(),
            uid: at.uid,
        });
        recipients.insert(at.user);
        copies += 1;
    }
    if let Some(sender) = d.sent_copy_of
        && let Some(sent) = mailbox_with_role(ctx.tx, sender, "sent")?
    {
        let seen = Flags::system(flags::SEEN);
        // Mail to oneself is two messages, the one received and the one sent (each its own JMAP Email,
        // with keywords of its own): the Sent copy then keeps bytes of its own.
        match recipients.contains(&sender) {
            true => {
                let own = Row {
                    blob: insert_blob(ctx.tx, &d.message).map_err(backend)?,
                    ..row
                };
                insert(ctx, Target::Mailbox(sender, sent), &own, &seen, true)?;
            }
            false => {
                insert(ctx, Target::Mailbox(sender, sent), &row, &seen, true)?;
                copies += 1;
            }
        }
    }
    if let Some(outbound) = &d.outbound {
        copies += super::queue::enqueue(ctx.tx, blob, outbound, now_micros)?;
    }
    // The blob was counted once at insert: each further copy is one more reference.
    add_refs(ctx.tx, blob, copies - 1)?;
    Ok(delivered)
}

/// A user's id and Junk mailbox, by name; `None` when they have no Junk mailbox (their INBOX then).
fn junk_of(tx: &Connection, name: &str) -> StoreResult<Option<(UserId, MailboxId)>> {
    tx.prepare_cached(
        "SELECT u.id, m.id FROM users u JOIN mailboxes m ON m.user_id = u.id AND m.role = 'junk' \
         WHERE u.name = ?1",
    )
    .and_then(|mut s| {
        s.query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    })
    .map_err(backend)
}

fn mailbox_with_role(tx: &Connection, user: UserId, role: &str) -> StoreResult<Option<MailboxId>> {
    tx.prepare_cached("SELECT id FROM mailboxes WHERE user_id = ?1 AND role = ?2")
        .and_then(|mut s| s.query_row(params![user, role], |r| r.get(0)).optional())
        .map_err(backend)
}

/// Stores a message in a mailbox with the given flags (IMAP APPEND, a Sent copy, a new account's welcome
/// message). With `check_quota`, refused past the account's quota.
pub fn append(
    ctx: &mut Ctx<'_>,
    mailbox: MailboxId,
    message: &NewMessage,
    f: Flags,
    check_quota: bool,
) -> StoreResult<u32> {
    let f = canonical(f)?;
    let user = owner_of(ctx.tx, mailbox)?;
    let blob = insert_blob(ctx.tx, message).map_err(backend)?;
    let row = Row {
        message,
        blob,
        imported: false,
    };
    let at = insert(ctx, Target::Mailbox(user, mailbox), &row, &f, check_quota)?;
    Ok(at.ok_or(StoreError::NoSuchMailbox)?.uid)
}

/// A message's flags as stored, with its modseq.
fn current(
    tx: &Connection,
    mailbox: MailboxId,
    uid: u32,
) -> rusqlite::Result<Option<(Flags, u64)>> {
    tx.prepare_cached(
        "SELECT flags, keywords, modseq FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
    )?
    .query_row(params![mailbox, uid], |r| {
        let keywords: String = r.get(1)?;
        Ok((
            Flags {
                system: r.get(0)?,
                keywords: split_keywords(&keywords),
            },
            r.get(2)?,
        ))
    })
    .optional()
}

pub fn update_flags(
    ctx: &mut Ctx<'_>,
    mailbox: MailboxId,
    uids: &[u32],
    op: FlagOp,
    given: Flags,
    unchanged_since: Option<u64>,
) -> StoreResult<FlagUpdate> {
    let mut given = canonical(given)?;
    let user = owner_of(ctx.tx, mailbox)?;
    if op != FlagOp::Remove {
        given.keywords = spell_keywords(ctx, mailbox, given.keywords)?;
    }
    let mut present = Vec::new();
    for &uid in sorted(uids).iter() {
        if let Some((old, old_modseq)) = current(ctx.tx, mailbox, uid).map_err(backend)? {
            present.push((uid, old, old_modseq));
        }
    }
    let plan = plan_flags(present, op, &given, unchanged_since);
    let (mut update, new_flags, unseen) = (plan.update, plan.changes, plan.unseen_delta);
    if new_flags.is_empty() {
        return Ok(update);
    }
    let change = Change {
        modseqs: new_flags.len() as u64,
        unseen,
        ..Change::default()
    };
    let first_modseq = counters::apply_to(ctx, user, mailbox, change)?.modseq;
    let run = |update: &mut FlagUpdate| -> rusqlite::Result<()> {
        let mut set = ctx.tx.prepare_cached(
            "UPDATE messages SET flags = ?1, keywords = ?2, modseq = ?3 WHERE mailbox_id = ?4 AND uid = ?5",
        )?;
        for (i, (uid, new)) in new_flags.into_iter().enumerate() {
            let modseq = first_modseq + i as u64;
            set.execute(params![
                new.system,
                join_keywords(&new.keywords),
                modseq,
                mailbox,
                uid
            ])?;
            update.changed.push(MessageFlags {
                uid,
                modseq,
                flags: new,
            });
        }
        Ok(())
    };
    run(&mut update).map_err(backend)?;
    Ok(update)
}

pub fn copy(
    ctx: &mut Ctx<'_>,
    user: UserId,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    remove_source: bool,
) -> StoreResult<CopyMap> {
    if owner_of(ctx.tx, from)? != user || owner_of(ctx.tx, to)? != user {
        return Err(StoreError::NoSuchMailbox);
    }
    // The sources that exist, with what a copy carries over: (uid, size, seen, keywords).
    let present: Vec<(u32, i64, bool, String)> = {
        let mut stmt = ctx
            .tx
            .prepare_cached(
                "SELECT size, flags, keywords FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
            )
            .map_err(backend)?;
        let mut found = Vec::new();
        for uid in sorted(uids) {
            let row: Option<(i64, i64, String)> = stmt
                .query_row(params![from, uid], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(backend)?;
            if let Some((size, f, keywords)) = row {
                found.push((uid, size, f & flags::SEEN != 0, keywords));
            }
        }
        found
    };
    let uid_validity: u32 = ctx
        .tx
        .prepare_cached("SELECT uid_validity FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![to], |r| r.get(0)))
        .map_err(backend)?;
    if present.is_empty() {
        return Ok(CopyMap {
            uid_validity,
            uids: Vec::new(),
        });
    }
    // The copies keep their keywords as spelled; the destination learns those it has not seen in any case.
    let mut keywords: Vec<String> = present.iter().flat_map(|p| split_keywords(&p.3)).collect();
    crate::store::rules::sort_keywords(&mut keywords);
    spell_keywords(ctx, to, keywords)?;
    let n = present.len();
    // A move adds here what its expunge takes away there: it needs no room, so no quota check.
    let change = Change {
        uids: n as u32,
        modseqs: n as u64,
        messages: n as i64,
        unseen: present.iter().filter(|p| !p.2).count() as i64,
        bytes: present.iter().map(|p| p.1).sum(),
        check_quota: !remove_source || from == to,
    };
    let at = counters::apply_to(ctx, user, to, change)?;
    let (first_uid, first_modseq) = (at.uid, at.modseq);
    let run = || -> rusqlite::Result<Vec<(u32, u32)>> {
        let mut stmt = ctx.tx.prepare_cached(
            "INSERT INTO messages (mailbox_id, uid, modseq, created_modseq, flags, keywords, \
             internal_micros, size, crlf_size, from_addr, subject, message_id, blob_id, internal_zone) \
             SELECT ?1, ?2, ?3, ?3, flags, keywords, internal_micros, size, crlf_size, from_addr, \
             subject, message_id, blob_id, internal_zone FROM messages WHERE mailbox_id = ?4 AND uid = ?5 \
             RETURNING blob_id",
        )?;
        let mut referenced = ctx
            .tx
            .prepare_cached("UPDATE blob_refs SET refs = refs + 1 WHERE blob_id = ?1")?;
        let mut map = Vec::with_capacity(n);
        for (i, (uid, ..)) in present.iter().enumerate() {
            let new_uid = first_uid + i as u32;
            let blob: i64 = stmt.query_row(
                params![to, new_uid, first_modseq + i as u64, from, uid],
                |r| r.get(0),
            )?;
            referenced.execute(params![blob])?;
            map.push((*uid, new_uid));
        }
        Ok(map)
    };
    let map = run().map_err(backend)?;
    if remove_source {
        let sources: Vec<u32> = map.iter().map(|(s, _)| *s).collect();
        expunge(ctx, from, Some(&sources), false)?;
    }
    Ok(CopyMap {
        uid_validity,
        uids: map,
    })
}

pub fn expunge(
    ctx: &mut Ctx<'_>,
    mailbox: MailboxId,
    uids: Option<&[u32]>,
    only_deleted: bool,
) -> StoreResult<Vec<u32>> {
    let user = owner_of(ctx.tx, mailbox)?;
    let tx = ctx.tx;
    // (uid, flags, blob) of each message asked for that exists.
    let find = || -> rusqlite::Result<Vec<(u32, i64, i64)>> {
        match uids {
            Some(uids) => {
                let mut stmt = tx.prepare_cached(
                    "SELECT flags, blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                )?;
                let mut found = Vec::new();
                for uid in sorted(uids) {
                    if let Some((f, blob)) = stmt
                        .query_row(params![mailbox, uid], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        found.push((uid, f, blob));
                    }
                }
                Ok(found)
            }
            None => tx
                .prepare_cached(
                    "SELECT uid, flags, blob_id FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
                )?
                .query_map(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect(),
        }
    };
    let gone: Vec<(u32, i64)> = find()
        .map_err(backend)?
        .into_iter()
        .filter(|(_, f, _)| !only_deleted || f & flags::DELETED != 0)
        .map(|(uid, _, blob)| (uid, blob))
        .collect();
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    // Modseqs only (no UID is used up); the `message_uncounted` trigger takes the counts down.
    let change = Change {
        modseqs: gone.len() as u64,
        ..Change::default()
    };
    let first_modseq = counters::apply_to(ctx, user, mailbox, change)?.modseq;
    let run = || -> rusqlite::Result<()> {
        let mut delete = ctx
            .tx
            .prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
        let mut tomb = ctx.tx.prepare_cached(
            "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, blob_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, (uid, blob)) in gone.iter().enumerate() {
            delete.execute(params![mailbox, uid])?;
            tomb.execute(params![mailbox, uid, first_modseq + i as u64, blob])?;
        }
        Ok(())
    };
    run().map_err(backend)?;
    Ok(gone.into_iter().map(|(uid, _)| uid).collect())
}

/// A user's id and INBOX by name.
fn inbox_of(tx: &Connection, name: &str) -> rusqlite::Result<Option<(UserId, MailboxId)>> {
    tx.prepare_cached(
        "SELECT u.id, m.id FROM mailboxes m JOIN users u ON u.id = m.user_id \
         WHERE u.name = ?1 AND m.name = 'INBOX'",
    )?
    .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

pub fn import(ctx: &mut Ctx<'_>, batch: ImportBatch) -> StoreResult<ImportCounts> {
    let mut counts = ImportCounts::default();
    for (name, hash) in &batch.users {
        if inbox_of(ctx.tx, name).map_err(backend)?.is_some() {
            counts.users_existing += 1;
            continue;
        }
        super::write_mailboxes::create_user(ctx, name, hash, None)?;
        counts.users_created += 1;
    }
    for m in &batch.messages {
        let (user, inbox) = inbox_of(ctx.tx, &m.owner)
            .map_err(backend)?
            .ok_or_else(|| StoreError::UnknownRecipient(m.owner.clone()))?;
        if already_present(ctx.tx, inbox, &m.message, batch.match_content).map_err(backend)? {
            counts.messages_present += 1;
            continue;
        }
        let blob = insert_blob(ctx.tx, &m.message).map_err(backend)?;
        let row = Row {
            message: &m.message,
            blob,
            imported: true,
        };
        // An administrator's import is not held to the quota.
        let flags = Flags::system(m.flags & flags::ALL);
        insert(ctx, Target::Mailbox(user, inbox), &row, &flags, false)?;
        counts.messages_imported += 1;
    }
    Ok(counts)
}

/// Was a message with this Message-ID (and, with `match_content`, these bytes) imported into the mailbox
/// before? Only imported mail is indexed by Message-ID (see migration 5).
fn already_present(
    tx: &Connection,
    inbox: MailboxId,
    m: &NewMessage,
    match_content: bool,
) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare_cached(
        "SELECT b.raw FROM messages m JOIN blobs b ON b.id = m.blob_id \
         WHERE m.mailbox_id = ?1 AND m.message_id = ?2 AND m.imported = 1",
    )?;
    let mut rows = stmt.query(params![inbox, m.message_id])?;
    while let Some(row) = rows.next()? {
        if !match_content || row.get_ref(0)?.as_blob()? == m.raw.as_slice() {
            return Ok(true);
        }
    }
    Ok(false)
}
