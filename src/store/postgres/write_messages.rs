//! Writes of messages on PostgreSQL: delivery, append, flag updates, copy and move, expunge, import.
//! The same steps as SQLite's `write_messages.rs`, each in the op's own transaction; the rules that are
//! not SQL come from `store::rules`.

use std::collections::HashSet;

use super::counters::{self, Applied, Change, Target};
use super::sql::{Ctx, big, u32_of, u64_of};
use crate::store::rules::{
    canonical, join_keywords, plan_flags, sort_keywords, sorted_uids, split_keywords,
};
use crate::store::{
    CopyMap, Delivered, Delivery, FlagOp, FlagUpdate, Flags, ImportBatch, ImportCounts, MailboxId,
    MessageFlags, NewMessage, StoreError, StoreResult, UserId, flags,
};

/// Stores a message's bytes and summary, counted as referenced `refs` times.
async fn insert_blob(ctx: &Ctx<'_>, m: &NewMessage, refs: i64) -> StoreResult<i64> {
    let row = ctx
        .one(
            "INSERT INTO blobs (raw, summary, refs) VALUES ($1, $2, $3) RETURNING id",
            &[&m.raw, &m.summary, &refs],
        )
        .await?;
    Ok(row.get(0))
}

async fn add_refs(ctx: &Ctx<'_>, blob: i64, more: i64) -> StoreResult<()> {
    if more != 0 {
        ctx.exec(
            "UPDATE blobs SET refs = refs + $2 WHERE id = $1",
            &[&blob, &more],
        )
        .await?;
    }
    Ok(())
}

/// Stores one message row in the target mailbox with its next UID and modseq, and its bytes unless
/// `blob` names where they already are. `None` when the target does not exist. Returns where it landed
/// and its blob.
async fn insert(
    ctx: &mut Ctx<'_>,
    target: Target<'_>,
    m: &NewMessage,
    blob: Option<i64>,
    imported: bool,
    f: &Flags,
    check_quota: bool,
) -> StoreResult<Option<(Applied, i64)>> {
    if f.keywords.is_empty() {
        let row = counters::NewRow {
            message: m,
            blob,
            flags: f.system,
            imported,
        };
        return counters::apply_and_insert(ctx, target, &row, check_quota).await;
    }
    let blob = match blob {
        Some(blob) => blob,
        None => insert_blob(ctx, m, 1).await?,
    };
    let size = m.raw.len() as i64;
    let change = Change {
        uids: 1,
        modseqs: 1,
        messages: 1,
        unseen: i64::from(f.system & flags::SEEN == 0),
        bytes: size,
        check_quota,
    };
    let Some(at) = counters::apply(ctx, target, change).await? else {
        return Ok(None);
    };
    let keywords = spell_keywords(ctx, at.mailbox, f.keywords.clone()).await?;
    ctx.exec(
        "INSERT INTO messages (mailbox_id, uid, modseq, created_modseq, flags, keywords, \
         internal_micros, size, crlf_size, from_addr, subject, message_id, blob_id, imported, \
         internal_zone) VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &at.mailbox,
            &i64::from(at.uid),
            &big(at.modseq),
            &f.system,
            &join_keywords(&keywords),
            &m.internal_date_micros,
            &size,
            &big(m.crlf_size),
            &m.from,
            &m.subject,
            &m.message_id,
            &blob,
            &imported,
            &m.internal_zone_minutes,
        ],
    )
    .await?;
    Ok(Some((at, blob)))
}

/// The keywords as `mailbox` spells them (see SQLite's `spell_keywords`): sorted, each in the spelling
/// the mailbox first saw, new ones recorded within the mailbox's limit.
async fn spell_keywords(
    ctx: &Ctx<'_>,
    mailbox: MailboxId,
    mut keywords: Vec<String>,
) -> StoreResult<Vec<String>> {
    if keywords.is_empty() {
        return Ok(keywords);
    }
    let mut added = 0;
    for k in keywords.iter_mut() {
        let spelled = ctx
            .opt(
                "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = $1 AND lower(keyword) = lower($2)",
                &[&mailbox, &k.as_str()],
            )
            .await?;
        match spelled {
            Some(row) => *k = row.get(0),
            None => {
                added += ctx
                    .exec(
                        "INSERT INTO mailbox_keywords (mailbox_id, keyword) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                        &[&mailbox, &k.as_str()],
                    )
                    .await?
            }
        }
    }
    let max = ctx.limits.keywords_per_mailbox_max;
    if added > 0 {
        let count = ctx
            .one(
                "SELECT count(*) FROM mailbox_keywords WHERE mailbox_id = $1",
                &[&mailbox],
            )
            .await?;
        if count.get::<_, i64>(0) as u64 > max {
            return Err(StoreError::TooManyKeywords(max));
        }
    }
    sort_keywords(&mut keywords);
    Ok(keywords)
}

pub async fn owner_of(ctx: &Ctx<'_>, mailbox: MailboxId) -> StoreResult<UserId> {
    ctx.opt("SELECT user_id FROM mailboxes WHERE id = $1", &[&mailbox])
        .await?
        .map(|r| r.get(0))
        .ok_or(StoreError::NoSuchMailbox)
}

/// The owner of `mailbox`, with the owner's account row locked (the first lock every write takes) and
/// the mailbox checked again under it: mailboxes are made and deleted only under that lock, so from
/// here to the commit the mailbox stays.
async fn lock_owner_of(ctx: &Ctx<'_>, mailbox: MailboxId) -> StoreResult<UserId> {
    let user = owner_of(ctx, mailbox).await?;
    ctx.exec("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user])
        .await?;
    match owner_of(ctx, mailbox).await? {
        owner if owner == user => Ok(user),
        _ => Err(StoreError::NoSuchMailbox),
    }
}

pub async fn submit(
    ctx: &mut Ctx<'_>,
    d: &Delivery,
    now_micros: i64,
) -> StoreResult<Vec<Delivered>> {
    // The bytes are stored with the first copy (or, with none, for the queue).
    let mut blob = None;
    // The answer keeps the order given.
    let mut seen = HashSet::new();
    let mut names: Vec<&String> = d.local.iter().filter(|n| seen.insert(n.as_str())).collect();
    let given: Vec<&String> = names.clone();
    names.sort();
    if names.len() + usize::from(d.sent_copy_of.is_some()) > 1 {
        // Several accounts: all locked first, in id order, so that deliveries between the same
        // accounts (the sender's Sent copy included) never wait on each other in a cycle.
        let list: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        ctx.exec(
            "SELECT 1 FROM users WHERE name = ANY($1) OR id = $2 ORDER BY id FOR UPDATE",
            &[&list, &d.sent_copy_of.unwrap_or(0)],
        )
        .await?;
    }
    let mut uids = std::collections::HashMap::new();
    let mut recipients = HashSet::new();
    let mut copies = 0i64;
    for name in names {
        let junk = match d.junk {
            true => junk_of(ctx, name).await?,
            false => None,
        };
        let target = match junk {
            Some((user, mailbox)) => Target::Mailbox(user, mailbox),
            None => Target::InboxOf(name),
        };
        let (at, stored) = insert(
            ctx,
            target,
            &d.message,
            blob,
            false,
            &Flags::default(),
            true,
        )
        .await?
        .ok_or_else(|| StoreError::UnknownRecipient(name.clone()))?;
        blob = Some(stored);
        uids.insert(name.as_str(), at.uid);
        recipients.insert(at.user);
        copies += 1;
    }
    if let Some(sender) = d.sent_copy_of
        && let Some(sent) = mailbox_with_role(ctx, sender, "sent").await?
    {
        let seen = Flags::system(flags::SEEN);
        let target = Target::Mailbox(sender, sent);
        // Mail to oneself is two messages, the one received and the one sent (each its own JMAP Email,
        // with keywords of its own): the Sent copy then keeps bytes of its own.
        let to_self = recipients.contains(&sender);
        let shared = if to_self { None } else { blob };
        if let Some((_, stored)) =
            insert(ctx, target, &d.message, shared, false, &seen, true).await?
            && !to_self
        {
            blob = Some(stored);
            copies += 1;
        }
    }
    let blob = match blob {
        Some(blob) => blob,
        None => insert_blob(ctx, &d.message, 1).await?,
    };
    if let Some(outbound) = &d.outbound {
        copies += super::queue::enqueue(ctx, blob, outbound, now_micros).await?;
    }
    // Stored once, counted once: each further copy is one more reference.
    add_refs(ctx, blob, copies.max(1) - 1).await?;
    Ok(given
        .into_iter()
        .map(|name| Delivered {
            user: name.clone(),
            uid: uids[name.as_str()],
        })
        .collect())
}

async fn junk_of(ctx: &Ctx<'_>, name: &str) -> StoreResult<Option<(UserId, MailboxId)>> {
    Ok(ctx
        .opt(
            "SELECT u.id, m.id FROM users u JOIN mailboxes m ON m.user_id = u.id AND m.role = 'junk' \
             WHERE u.name = $1",
            &[&name],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

pub async fn mailbox_with_role(
    ctx: &Ctx<'_>,
    user: UserId,
    role: &str,
) -> StoreResult<Option<MailboxId>> {
    Ok(ctx
        .opt(
            "SELECT id FROM mailboxes WHERE user_id = $1 AND role = $2",
            &[&user, &role],
        )
        .await?
        .map(|r| r.get(0)))
}

pub async fn append(
    ctx: &mut Ctx<'_>,
    mailbox: MailboxId,
    message: &NewMessage,
    f: Flags,
    check_quota: bool,
) -> StoreResult<u32> {
    let f = canonical(f)?;
    let user = lock_owner_of(ctx, mailbox).await?;
    let target = Target::Mailbox(user, mailbox);
    let at = insert(ctx, target, message, None, false, &f, check_quota).await?;
    Ok(at.ok_or(StoreError::NoSuchMailbox)?.0.uid)
}

pub async fn update_flags(
    ctx: &mut Ctx<'_>,
    mailbox: MailboxId,
    uids: &[u32],
    op: FlagOp,
    given: Flags,
    unchanged_since: Option<u64>,
) -> StoreResult<FlagUpdate> {
    let mut given = canonical(given)?;
    // The account row first, as every write takes it: lock order account, mailbox, messages.
    let user = lock_owner_of(ctx, mailbox).await?;
    if op != FlagOp::Remove {
        given.keywords = spell_keywords(ctx, mailbox, given.keywords).await?;
    }
    let wanted: Vec<i64> = sorted_uids(uids).into_iter().map(i64::from).collect();
    let rows = ctx
        .all(
            "SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = $1 AND uid = ANY($2) \
             ORDER BY uid FOR UPDATE",
            &[&mailbox, &wanted],
        )
        .await?;
    let present = rows.iter().map(|row| {
        let flags = Flags {
            system: row.get(1),
            keywords: split_keywords(row.get(2)),
        };
        (u32_of(row, 0), flags, u64_of(row, 3))
    });
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
    let first_modseq = counters::apply_to(ctx, user, mailbox, change).await?.modseq;
    // One statement for all: parallel arrays unnested into rows.
    let uids: Vec<i64> = new_flags.iter().map(|(u, _)| i64::from(*u)).collect();
    let systems: Vec<i64> = new_flags.iter().map(|(_, f)| f.system).collect();
    let keywords: Vec<String> = new_flags
        .iter()
        .map(|(_, f)| join_keywords(&f.keywords))
        .collect();
    let modseqs: Vec<i64> = (0..new_flags.len() as u64)
        .map(|i| big(first_modseq + i))
        .collect();
    ctx.exec(
        "UPDATE messages m SET flags = v.flags, keywords = v.keywords, modseq = v.modseq \
         FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[]) AS v(uid, flags, keywords, modseq) \
         WHERE m.mailbox_id = $1 AND m.uid = v.uid",
        &[&mailbox, &uids, &systems, &keywords, &modseqs],
    )
    .await?;
    for (i, (uid, new)) in new_flags.into_iter().enumerate() {
        update.changed.push(MessageFlags {
            uid,
            modseq: first_modseq + i as u64,
            flags: new,
        });
    }
    Ok(update)
}

pub async fn copy(
    ctx: &mut Ctx<'_>,
    user: UserId,
    from: MailboxId,
    uids: &[u32],
    to: MailboxId,
    remove_source: bool,
) -> StoreResult<CopyMap> {
    ctx.exec("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user])
        .await?;
    if owner_of(ctx, from).await? != user || owner_of(ctx, to).await? != user {
        return Err(StoreError::NoSuchMailbox);
    }
    let wanted: Vec<i64> = sorted_uids(uids).into_iter().map(i64::from).collect();
    let present: Vec<(u32, i64, bool, String)> = ctx
        .all(
            "SELECT uid, size, flags, keywords FROM messages WHERE mailbox_id = $1 AND uid = ANY($2) \
             ORDER BY uid",
            &[&from, &wanted],
        )
        .await?
        .iter()
        .map(|r| {
            let f: i64 = r.get(2);
            (u32_of(r, 0), r.get(1), f & flags::SEEN != 0, r.get(3))
        })
        .collect();
    let uid_validity = ctx
        .one("SELECT uid_validity FROM mailboxes WHERE id = $1", &[&to])
        .await
        .map(|r| u32_of(&r, 0))?;
    if present.is_empty() {
        return Ok(CopyMap {
            uid_validity,
            uids: Vec::new(),
        });
    }
    let mut keywords: Vec<String> = present.iter().flat_map(|p| split_keywords(&p.3)).collect();
    sort_keywords(&mut keywords);
    spell_keywords(ctx, to, keywords).await?;
    let n = present.len();
    let change = Change {
        uids: n as u32,
        modseqs: n as u64,
        messages: n as i64,
        unseen: present.iter().filter(|p| !p.2).count() as i64,
        bytes: present.iter().map(|p| p.1).sum(),
        check_quota: !remove_source || from == to,
    };
    let at = counters::apply_to(ctx, user, to, change).await?;
    let sources: Vec<i64> = present.iter().map(|p| i64::from(p.0)).collect();
    let new_uids: Vec<i64> = (0..n as i64).map(|i| i64::from(at.uid) + i).collect();
    let modseqs: Vec<i64> = (0..n as u64).map(|i| big(at.modseq + i)).collect();
    // One statement copies every row; the bytes stay where they are, one more reference each.
    ctx.exec(
        "WITH v AS (SELECT * FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS v(src, uid, modseq)), \
         copied AS (INSERT INTO messages (mailbox_id, uid, modseq, created_modseq, flags, keywords, \
             internal_micros, size, crlf_size, from_addr, subject, message_id, blob_id, internal_zone) \
             SELECT $2, v.uid, v.modseq, v.modseq, m.flags, m.keywords, m.internal_micros, m.size, \
             m.crlf_size, m.from_addr, m.subject, m.message_id, m.blob_id, m.internal_zone \
             FROM v JOIN messages m ON m.mailbox_id = $1 AND m.uid = v.src RETURNING blob_id), \
         counted AS (SELECT blob_id, count(*) AS n FROM copied GROUP BY blob_id) \
         UPDATE blobs b SET refs = refs + counted.n FROM counted WHERE b.id = counted.blob_id",
        &[&from, &to, &sources, &new_uids, &modseqs],
    )
    .await?;
    let map: Vec<(u32, u32)> = present
        .iter()
        .enumerate()
        .map(|(i, p)| (p.0, at.uid + i as u32))
        .collect();
    if remove_source {
        let sources: Vec<u32> = map.iter().map(|(s, _)| *s).collect();
        expunge(ctx, from, Some(&sources), false).await?;
    }
    Ok(CopyMap {
        uid_validity,
        uids: map,
    })
}

pub async fn expunge(
    ctx: &mut Ctx<'_>,
    mailbox: MailboxId,
    uids: Option<&[u32]>,
    only_deleted: bool,
) -> StoreResult<Vec<u32>> {
    let user = lock_owner_of(ctx, mailbox).await?;
    let rows = match uids {
        Some(uids) => {
            let wanted: Vec<i64> = sorted_uids(uids).into_iter().map(i64::from).collect();
            ctx.all(
                "SELECT uid, flags, blob_id FROM messages WHERE mailbox_id = $1 AND uid = ANY($2) \
                 ORDER BY uid",
                &[&mailbox, &wanted],
            )
            .await?
        }
        None => {
            ctx.all(
                "SELECT uid, flags, blob_id FROM messages WHERE mailbox_id = $1 ORDER BY uid",
                &[&mailbox],
            )
            .await?
        }
    };
    let (gone, blobs): (Vec<u32>, Vec<i64>) = rows
        .iter()
        .filter(|r| !only_deleted || r.get::<_, i64>(1) & flags::DELETED != 0)
        .map(|r| (u32_of(r, 0), r.get::<_, i64>(2)))
        .unzip();
    if gone.is_empty() {
        return Ok(gone);
    }
    let change = Change {
        modseqs: gone.len() as u64,
        ..Change::default()
    };
    let first_modseq = counters::apply_to(ctx, user, mailbox, change).await?.modseq;
    let uids: Vec<i64> = gone.iter().map(|u| i64::from(*u)).collect();
    let modseqs: Vec<i64> = (0..gone.len() as u64)
        .map(|i| big(first_modseq + i))
        .collect();
    // The `message_uncounted` trigger takes the counts down and frees unshared bytes.
    ctx.exec(
        "DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2)",
        &[&mailbox, &uids],
    )
    .await?;
    ctx.exec(
        "INSERT INTO expunged (mailbox_id, uid, modseq, blob_id) \
         SELECT $1, v.uid, v.modseq, v.blob \
         FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS v(uid, modseq, blob) \
         ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq, blob_id = EXCLUDED.blob_id",
        &[&mailbox, &uids, &modseqs, &blobs],
    )
    .await?;
    Ok(gone)
}

async fn inbox_of(ctx: &Ctx<'_>, name: &str) -> StoreResult<Option<(UserId, MailboxId)>> {
    Ok(ctx
        .opt(
            "SELECT u.id, m.id FROM mailboxes m JOIN users u ON u.id = m.user_id \
             WHERE u.name = $1 AND m.name = 'INBOX'",
            &[&name],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

pub async fn import(ctx: &mut Ctx<'_>, batch: &ImportBatch) -> StoreResult<ImportCounts> {
    let mut counts = ImportCounts::default();
    for (name, hash) in &batch.users {
        if inbox_of(ctx, name).await?.is_some() {
            counts.users_existing += 1;
            continue;
        }
        super::write_mailboxes::create_user(ctx, name, hash, None).await?;
        counts.users_created += 1;
    }
    for m in &batch.messages {
        let (user, inbox) = inbox_of(ctx, &m.owner)
            .await?
            .ok_or_else(|| StoreError::UnknownRecipient(m.owner.clone()))?;
        if already_present(ctx, inbox, &m.message, batch.match_content).await? {
            counts.messages_present += 1;
            continue;
        }
        let flags = Flags::system(m.flags & flags::ALL);
        let target = Target::Mailbox(user, inbox);
        insert(ctx, target, &m.message, None, true, &flags, false).await?;
        counts.messages_imported += 1;
    }
    Ok(counts)
}

async fn already_present(
    ctx: &Ctx<'_>,
    inbox: MailboxId,
    m: &NewMessage,
    match_content: bool,
) -> StoreResult<bool> {
    // Compared in the database: no stored body travels for it.
    let found = ctx
        .opt(
            "SELECT 1 FROM messages m JOIN blobs b ON b.id = m.blob_id \
             WHERE m.mailbox_id = $1 AND m.message_id = $2 AND m.imported \
             AND (NOT $3 OR b.raw = $4) LIMIT 1",
            &[&inbox, &m.message_id, &match_content, &m.raw],
        )
        .await?;
    Ok(found.is_some())
}
