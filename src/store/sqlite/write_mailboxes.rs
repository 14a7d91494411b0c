//! Writes of accounts and mailboxes: users with their default mailboxes, quotas, and mailbox create,
//! rename, delete and subscribe. Each runs inside the writer's transaction ([`Ctx`]).

use rusqlite::{Connection, OptionalExtension, params};

use super::write_messages;
use super::writer::{Ctx, backend};
use crate::store::rules::{ancestors, mailbox_name, renamed};
use crate::store::{
    Flags, MailboxId, NewMessage, QuotaSetting, Role, StoreError, StoreResult, UserId,
};

pub fn create_user(
    ctx: &mut Ctx<'_>,
    name: &str,
    hash: &str,
    welcome: Option<&NewMessage>,
) -> StoreResult<()> {
    let inserted = ctx.tx.execute(
        "INSERT INTO users (name, password_hash, created_micros) VALUES (?1, ?2, ?3)",
        params![name, hash, chrono::Utc::now().timestamp_micros()],
    );
    match inserted {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::UserExists(name.to_string()));
        }
        other => other.map_err(backend)?,
    };
    let user = ctx.tx.last_insert_rowid();
    let mut inbox = 0;
    for (role, mailbox) in Role::DEFAULTS {
        let id = insert_mailbox(ctx.tx, user, mailbox, Some(role), true).map_err(backend)?;
        if role == Role::Inbox {
            inbox = id;
        }
    }
    if let Some(message) = welcome {
        // The server's own message: not held to a quota.
        write_messages::append(ctx, inbox, message, Flags::default(), false)?;
    }
    Ok(())
}

/// A new mailbox row. Its UIDVALIDITY is its id: ids are never reused (AUTOINCREMENT), so a mailbox
/// deleted and made again under the same name never repeats one, as IMAP requires. It is subscribed when
/// asked, or when its name still was (a subscription kept from a mailbox deleted before).
fn insert_mailbox(
    tx: &Connection,
    user: UserId,
    name: &str,
    role: Option<Role>,
    subscribed: bool,
) -> rusqlite::Result<MailboxId> {
    let subscribed = forget_kept_subscription(tx, user, name)? || subscribed;
    tx.prepare_cached(
        "INSERT INTO mailboxes (user_id, name, uid_validity, role, subscribed) \
         VALUES (?1, ?2, 0, ?3, ?4)",
    )?
    .execute(params![user, name, role.map(Role::as_str), subscribed])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("UPDATE mailboxes SET uid_validity = id WHERE id = ?1")?
        .execute(params![id])?;
    bump_account(tx, user, &[id])?;
    Ok(id)
}

/// Drops a subscription kept for `name` while it had no mailbox; whether there was one.
fn forget_kept_subscription(tx: &Connection, user: UserId, name: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached("DELETE FROM subscribed_names WHERE user_id = ?1 AND name = ?2")
        .and_then(|mut s| s.execute(params![user, name]))
        .map(|n| n > 0)
}

/// Moves the account's change counter for a change of its mailboxes themselves (not of their messages:
/// the `mailbox_changed` trigger does that), and stamps the mailboxes with it.
fn bump_account(tx: &Connection, user: UserId, mailboxes: &[MailboxId]) -> rusqlite::Result<u64> {
    let modseq: u64 = tx
        .prepare_cached("UPDATE users SET modseq = modseq + 1 WHERE id = ?1 RETURNING modseq")?
        .query_row(params![user], |r| r.get(0))?;
    let mut stamp = tx.prepare_cached("UPDATE mailboxes SET account_modseq = ?1 WHERE id = ?2")?;
    for id in mailboxes {
        stamp.execute(params![modseq, id])?;
    }
    Ok(modseq)
}

/// Puts mailboxes that changed themselves (made, renamed, (un)subscribed) on their account's feed, at
/// their current modseq.
fn announce(ctx: &mut Ctx<'_>, user: UserId, mailboxes: &[MailboxId]) -> StoreResult<()> {
    for &id in mailboxes {
        let modseq: u64 = ctx
            .tx
            .prepare_cached("SELECT highest_modseq FROM mailboxes WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |r| r.get(0)))
            .map_err(backend)?;
        ctx.touch(user, id, modseq);
    }
    Ok(())
}

/// Runs a statement that must touch exactly the named user's row.
pub fn change_user(
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

pub fn set_quota(
    tx: &Connection,
    name: &str,
    bytes: Option<QuotaSetting>,
    messages: Option<QuotaSetting>,
) -> StoreResult<()> {
    // NULL: the server's default; -1: no limit (see `Quota::or_default`).
    let stored = |s: QuotaSetting| match s {
        QuotaSetting::Default => None,
        QuotaSetting::Unlimited => Some(-1i64),
        QuotaSetting::Limit(n) => Some(n.min(i64::MAX as u64) as i64),
    };
    let exists = "SELECT 1 FROM users WHERE name = ?1";
    if tx
        .query_row(exists, params![name], |_| Ok(()))
        .optional()
        .map_err(backend)?
        .is_none()
    {
        return Err(StoreError::NoSuchUser(name.to_string()));
    }
    if let Some(b) = bytes {
        tx.execute(
            "UPDATE users SET quota_bytes = ?1 WHERE name = ?2",
            params![stored(b), name],
        )
        .map_err(backend)?;
    }
    if let Some(m) = messages {
        tx.execute(
            "UPDATE users SET quota_messages = ?1 WHERE name = ?2",
            params![stored(m), name],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// A mailbox of the account by canonical name: (id, role).
fn find(
    tx: &Connection,
    user: UserId,
    name: &str,
) -> StoreResult<Option<(MailboxId, Option<String>)>> {
    tx.prepare_cached("SELECT id, role FROM mailboxes WHERE user_id = ?1 AND name = ?2")
        .and_then(|mut s| {
            s.query_row(params![user, name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)
}

fn count(tx: &Connection, user: UserId) -> StoreResult<u64> {
    tx.prepare_cached("SELECT count(*) FROM mailboxes WHERE user_id = ?1")
        .and_then(|mut s| s.query_row(params![user], |r| r.get(0)))
        .map_err(backend)
}

/// Creates `name`'s missing ancestors and, with `itself`, `name`; refuses what passes the account's
/// mailbox limit. Returns the id of `name` when made.
fn create_path(
    ctx: &mut Ctx<'_>,
    user: UserId,
    name: &str,
    itself: bool,
    subscribed: bool,
) -> StoreResult<Option<MailboxId>> {
    let mut missing = Vec::new();
    for ancestor in ancestors(name) {
        if find(ctx.tx, user, ancestor)?.is_none() {
            missing.push(ancestor);
        }
    }
    if itself {
        missing.push(name);
    }
    let max = ctx.limits.mailboxes_per_account_max;
    if count(ctx.tx, user)? + missing.len() as u64 > max {
        return Err(StoreError::TooManyMailboxes(max));
    }
    let mut made = Vec::new();
    for m in missing {
        made.push(insert_mailbox(ctx.tx, user, m, None, subscribed).map_err(backend)?);
    }
    announce(ctx, user, &made)?;
    Ok(made.last().copied().filter(|_| itself))
}

pub fn create_mailbox(
    ctx: &mut Ctx<'_>,
    user: UserId,
    name: &str,
    subscribed: bool,
) -> StoreResult<MailboxId> {
    let name = mailbox_name(name)?;
    if find(ctx.tx, user, &name)?.is_some() {
        return Err(StoreError::MailboxExists);
    }
    create_path(ctx, user, &name, true, subscribed)?.ok_or(StoreError::MailboxExists)
}

pub fn rename_mailbox(ctx: &mut Ctx<'_>, user: UserId, from: &str, to: &str) -> StoreResult<()> {
    let (from, to) = (mailbox_name(from)?, mailbox_name(to)?);
    let Some((from_id, _)) = find(ctx.tx, user, &from)? else {
        return Err(StoreError::NoSuchMailbox);
    };
    if find(ctx.tx, user, &to)?.is_some() {
        return Err(StoreError::MailboxExists);
    }
    if renamed(&to, &from, "").is_some() {
        return Err(StoreError::MailboxRefused(crate::store::INSIDE_ITSELF));
    }
    if from == "INBOX" {
        // RFC 9051 §6.3.6: INBOX's messages move to the new mailbox; INBOX stays, empty; its
        // descendants are not renamed.
        let to_id = create_path(ctx, user, &to, true, true)?.ok_or(StoreError::MailboxExists)?;
        let uids: Vec<u32> = ctx
            .tx
            .prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
            .and_then(|mut s| s.query_map(params![from_id], |r| r.get(0))?.collect())
            .map_err(backend)?;
        write_messages::copy(ctx, user, from_id, &uids, to_id, true)?;
        return Ok(());
    }
    // Missing parents are made unsubscribed, as IMAP's CREATE makes them: nobody asked to see them.
    create_path(ctx, user, &to, false, false)?;
    let all: Vec<(MailboxId, String)> = ctx
        .tx
        .prepare_cached("SELECT id, name FROM mailboxes WHERE user_id = ?1")
        .and_then(|mut s| {
            s.query_map(params![user], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(backend)?;
    let moves: Vec<(MailboxId, String)> = all
        .iter()
        .filter_map(|(id, name)| renamed(name, &from, &to).map(|new| (*id, new)))
        .collect();
    for (_, new) in &moves {
        // A descendant's new name must pass the same rule (length, depth) as any name.
        mailbox_name(new)?;
        if all.iter().any(|(_, existing)| existing == new) {
            return Err(StoreError::MailboxExists);
        }
    }
    let mut set = ctx
        .tx
        .prepare_cached("UPDATE mailboxes SET name = ?1 WHERE id = ?2")
        .map_err(backend)?;
    for (id, new) in &moves {
        set.execute(params![new, id]).map_err(backend)?;
        // A subscription kept for this name is now the mailbox's.
        if forget_kept_subscription(ctx.tx, user, new).map_err(backend)? {
            ctx.tx
                .prepare_cached("UPDATE mailboxes SET subscribed = 1 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id]))
                .map_err(backend)?;
        }
    }
    let ids: Vec<MailboxId> = moves.iter().map(|(id, _)| *id).collect();
    bump_account(ctx.tx, user, &ids).map_err(backend)?;
    announce(ctx, user, &ids)?;
    debug_assert!(ids.contains(&from_id));
    Ok(())
}

pub fn delete_mailbox(ctx: &mut Ctx<'_>, user: UserId, name: &str) -> StoreResult<()> {
    let name = mailbox_name(name)?;
    if name == "INBOX" {
        return Err(StoreError::MailboxRefused("INBOX cannot be deleted"));
    }
    let Some((id, _)) = find(ctx.tx, user, &name)? else {
        return Err(StoreError::NoSuchMailbox);
    };
    let run = || -> rusqlite::Result<()> {
        // Its subscription outlives it (RFC 3501 §6.3.6), up to as many kept names as the account may
        // have mailboxes: CREATE, SUBSCRIBE, DELETE in a loop must not grow the list (and LSUB) for ever.
        ctx.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO subscribed_names (user_id, name) \
                 SELECT user_id, name FROM mailboxes WHERE id = ?1 AND subscribed \
                 AND (SELECT count(*) FROM subscribed_names WHERE user_id = mailboxes.user_id) < ?2",
            )?
            .execute(params![id, ctx.limits.mailboxes_per_account_max as i64])?;
        // Messages first, row by row, so the triggers keep the account's usage and free unshared bytes.
        ctx.tx
            .prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1")?
            .execute(params![id])?;
        ctx.tx
            .prepare_cached("DELETE FROM mailboxes WHERE id = ?1")?
            .execute(params![id])?;
        let modseq = bump_account(ctx.tx, user, &[])?;
        ctx.tx
            .prepare_cached(
                "INSERT INTO mailboxes_gone (user_id, mailbox_id, account_modseq) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![user, id, modseq])?;
        Ok(())
    };
    run().map_err(backend)?;
    // Whoever watches it wakes and finds it gone.
    ctx.touch(user, id, u64::MAX);
    Ok(())
}

/// Raises a mailbox's first recent UID to `below` and returns what it was (`MailStore::claim_recent`).
/// The single writer runs one claim at a time, so two never get the same UIDs.
pub fn claim_recent(ctx: &mut Ctx<'_>, mailbox: MailboxId, below: u32) -> StoreResult<u32> {
    let before: Option<u32> = ctx
        .tx
        .prepare_cached("SELECT first_recent_uid FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![mailbox], |r| r.get(0)).optional())
        .map_err(backend)?;
    let Some(before) = before else {
        return Err(StoreError::NoSuchMailbox);
    };
    if before < below {
        ctx.tx
            .prepare_cached("UPDATE mailboxes SET first_recent_uid = ?1 WHERE id = ?2")
            .and_then(|mut s| s.execute(params![below, mailbox]))
            .map_err(backend)?;
    }
    Ok(before)
}

pub fn subscribe(ctx: &mut Ctx<'_>, user: UserId, name: &str, on: bool) -> StoreResult<()> {
    let name = mailbox_name(name)?;
    let Some((id, _)) = find(ctx.tx, user, &name)? else {
        // Without a mailbox, only a kept subscription can be taken away.
        return match !on && forget_kept_subscription(ctx.tx, user, &name).map_err(backend)? {
            true => Ok(()),
            false => Err(StoreError::NoSuchMailbox),
        };
    };
    ctx.tx
        .prepare_cached("UPDATE mailboxes SET subscribed = ?1 WHERE id = ?2")
        .and_then(|mut s| s.execute(params![on, id]))
        .map_err(backend)?;
    bump_account(ctx.tx, user, &[id]).map_err(backend)?;
    announce(ctx, user, &[id])
}
