//! Writes of accounts and mailboxes on PostgreSQL: users with their default mailboxes, quotas, and
//! mailbox create, rename, delete and subscribe (as SQLite's `write_mailboxes.rs`).

use super::sql::{Ctx, u32_of};
use super::write_messages;
use crate::store::rules::{ancestors, mailbox_name, renamed};
use crate::store::{
    Flags, MailboxId, NewMessage, QuotaSetting, Role, StoreError, StoreResult, UserId,
};

pub async fn create_user(
    ctx: &mut Ctx<'_>,
    name: &str,
    hash: &str,
    welcome: Option<&NewMessage>,
) -> StoreResult<()> {
    let now = chrono::Utc::now().timestamp_micros();
    // ON CONFLICT rather than catching the violation: an error would abort the whole transaction (an
    // import creates users inside a larger one).
    let row = ctx
        .opt(
            "INSERT INTO users (name, password_hash, created_micros) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[&name, &hash, &now],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::UserExists(name.to_string()));
    };
    let user: UserId = row.get(0);
    let mut inbox = 0;
    for (role, mailbox) in Role::DEFAULTS {
        let id = insert_mailbox(ctx, user, mailbox, Some(role), true).await?;
        if role == Role::Inbox {
            inbox = id;
        }
    }
    if let Some(message) = welcome {
        write_messages::append(ctx, inbox, message, Flags::default(), false).await?;
    }
    Ok(())
}

/// Drops a subscription kept for `name` while it had no mailbox; whether there was one.
async fn forget_kept_subscription(ctx: &Ctx<'_>, user: UserId, name: &str) -> StoreResult<bool> {
    let gone = ctx
        .exec(
            "DELETE FROM subscribed_names WHERE user_id = $1 AND name = $2",
            &[&user, &name],
        )
        .await?;
    Ok(gone > 0)
}

/// A new mailbox row; its UIDVALIDITY is its id (a sequence never hands one out twice). It is subscribed
/// when asked, or when its name still was (a subscription kept from a mailbox deleted before).
async fn insert_mailbox(
    ctx: &Ctx<'_>,
    user: UserId,
    name: &str,
    role: Option<Role>,
    subscribed: bool,
) -> StoreResult<MailboxId> {
    let subscribed = forget_kept_subscription(ctx, user, name).await? || subscribed;
    let id: MailboxId = ctx
        .one(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('mailboxes', 'id')) AS id) \
             INSERT INTO mailboxes (id, user_id, name, uid_validity, role, subscribed) \
             SELECT id, $1, $2, id, $3, $4 FROM n RETURNING id",
            &[&user, &name, &role.map(Role::as_str), &subscribed],
        )
        .await?
        .get(0);
    bump_account(ctx, user, &[id]).await?;
    Ok(id)
}

/// Moves the account's change counter for a change of its mailboxes themselves, and stamps them.
async fn bump_account(ctx: &Ctx<'_>, user: UserId, mailboxes: &[MailboxId]) -> StoreResult<i64> {
    let modseq: i64 = ctx
        .one(
            "UPDATE users SET modseq = modseq + 1 WHERE id = $1 RETURNING modseq",
            &[&user],
        )
        .await?
        .get(0);
    ctx.exec(
        "UPDATE mailboxes SET account_modseq = $1 WHERE id = ANY($2)",
        &[&modseq, &mailboxes],
    )
    .await?;
    Ok(modseq)
}

/// Puts mailboxes that changed themselves on their account's feed, at their current modseq.
async fn announce(ctx: &mut Ctx<'_>, user: UserId, mailboxes: &[MailboxId]) -> StoreResult<()> {
    for &id in mailboxes {
        let modseq: i64 = ctx
            .one("SELECT highest_modseq FROM mailboxes WHERE id = $1", &[&id])
            .await?
            .get(0);
        ctx.touch(user, id, modseq.max(0) as u64);
    }
    Ok(())
}

/// Runs a statement that must touch exactly the named user's row.
pub async fn change_user(
    ctx: &Ctx<'_>,
    sql: &str,
    params: super::sql::Params<'_>,
    name: &str,
) -> StoreResult<()> {
    match ctx.exec(sql, params).await? {
        0 => Err(StoreError::NoSuchUser(name.to_string())),
        _ => Ok(()),
    }
}

pub async fn delete_user(ctx: &Ctx<'_>, name: &str) -> StoreResult<()> {
    // The account row first, as every write locks it first.
    ctx.exec("SELECT 1 FROM users WHERE name = $1 FOR UPDATE", &[&name])
        .await?;
    // Messages next, so their trigger runs while their mailboxes and account still exist.
    ctx.exec(
        "DELETE FROM messages WHERE mailbox_id IN \
         (SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE u.name = $1)",
        &[&name],
    )
    .await?;
    change_user(ctx, "DELETE FROM users WHERE name = $1", &[&name], name).await
}

pub async fn set_quota(
    ctx: &Ctx<'_>,
    name: &str,
    bytes: Option<QuotaSetting>,
    messages: Option<QuotaSetting>,
) -> StoreResult<()> {
    let stored = |s: QuotaSetting| match s {
        QuotaSetting::Default => None,
        QuotaSetting::Unlimited => Some(-1i64),
        QuotaSetting::Limit(n) => Some(n.min(i64::MAX as u64) as i64),
    };
    if ctx
        .opt("SELECT 1 FROM users WHERE name = $1", &[&name])
        .await?
        .is_none()
    {
        return Err(StoreError::NoSuchUser(name.to_string()));
    }
    if let Some(b) = bytes {
        ctx.exec(
            "UPDATE users SET quota_bytes = $1 WHERE name = $2",
            &[&stored(b), &name],
        )
        .await?;
    }
    if let Some(m) = messages {
        ctx.exec(
            "UPDATE users SET quota_messages = $1 WHERE name = $2",
            &[&stored(m), &name],
        )
        .await?;
    }
    Ok(())
}

async fn find(ctx: &Ctx<'_>, user: UserId, name: &str) -> StoreResult<Option<MailboxId>> {
    Ok(ctx
        .opt(
            "SELECT id FROM mailboxes WHERE user_id = $1 AND name = $2",
            &[&user, &name],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Locks the account row: mailbox changes of one account go one at a time (the limit on their number
/// and the uniqueness of names are then checked against what is really there).
async fn lock_account(ctx: &Ctx<'_>, user: UserId) -> StoreResult<()> {
    ctx.exec("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user])
        .await
        .map(drop)
}

async fn create_path(
    ctx: &mut Ctx<'_>,
    user: UserId,
    name: &str,
    itself: bool,
    subscribed: bool,
) -> StoreResult<Option<MailboxId>> {
    let mut missing = Vec::new();
    for ancestor in ancestors(name) {
        if find(ctx, user, ancestor).await?.is_none() {
            missing.push(ancestor);
        }
    }
    if itself {
        missing.push(name);
    }
    let max = ctx.limits.mailboxes_per_account_max;
    let count: i64 = ctx
        .one(
            "SELECT count(*) FROM mailboxes WHERE user_id = $1",
            &[&user],
        )
        .await?
        .get(0);
    if count as u64 + missing.len() as u64 > max {
        return Err(StoreError::TooManyMailboxes(max));
    }
    let mut made = Vec::new();
    for m in missing {
        made.push(insert_mailbox(ctx, user, m, None, subscribed).await?);
    }
    announce(ctx, user, &made).await?;
    Ok(made.last().copied().filter(|_| itself))
}

pub async fn create_mailbox(
    ctx: &mut Ctx<'_>,
    user: UserId,
    name: &str,
    subscribed: bool,
) -> StoreResult<MailboxId> {
    let name = mailbox_name(name)?;
    lock_account(ctx, user).await?;
    if find(ctx, user, &name).await?.is_some() {
        return Err(StoreError::MailboxExists);
    }
    create_path(ctx, user, &name, true, subscribed)
        .await?
        .ok_or(StoreError::MailboxExists)
}

pub async fn rename_mailbox(
    ctx: &mut Ctx<'_>,
    user: UserId,
    from: &str,
    to: &str,
) -> StoreResult<()> {
    let (from, to) = (mailbox_name(from)?, mailbox_name(to)?);
    lock_account(ctx, user).await?;
    let Some(from_id) = find(ctx, user, &from).await? else {
        return Err(StoreError::NoSuchMailbox);
    };
    if find(ctx, user, &to).await?.is_some() {
        return Err(StoreError::MailboxExists);
    }
    if renamed(&to, &from, "").is_some() {
        return Err(StoreError::MailboxRefused(crate::store::INSIDE_ITSELF));
    }
    if from == "INBOX" {
        let to_id = create_path(ctx, user, &to, true, true)
            .await?
            .ok_or(StoreError::MailboxExists)?;
        let uids: Vec<u32> = ctx
            .all(
                "SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid",
                &[&from_id],
            )
            .await?
            .iter()
            .map(|r| super::sql::u32_of(r, 0))
            .collect();
        write_messages::copy(ctx, user, from_id, &uids, to_id, true).await?;
        return Ok(());
    }
    // Missing parents are made unsubscribed, as IMAP's CREATE makes them: nobody asked to see them.
    create_path(ctx, user, &to, false, false).await?;
    let all: Vec<(MailboxId, String)> = ctx
        .all(
            "SELECT id, name FROM mailboxes WHERE user_id = $1",
            &[&user],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let moves: Vec<(MailboxId, String)> = all
        .iter()
        .filter_map(|(id, name)| renamed(name, &from, &to).map(|new| (*id, new)))
        .collect();
    for (_, new) in &moves {
        mailbox_name(new)?;
        if all.iter().any(|(_, existing)| existing == new) {
            return Err(StoreError::MailboxExists);
        }
    }
    let ids: Vec<MailboxId> = moves.iter().map(|(id, _)| *id).collect();
    let names: Vec<&str> = moves.iter().map(|(_, n)| n.as_str()).collect();
    // One statement for the mailbox and its descendants (none of the new names exists: checked above).
    ctx.exec(
        "UPDATE mailboxes m SET name = v.name FROM unnest($1::bigint[], $2::text[]) AS v(id, name) \
         WHERE m.id = v.id",
        &[&ids, &names],
    )
    .await?;
    // A subscription kept for one of these names is now its mailbox's.
    ctx.exec(
        "WITH kept AS (DELETE FROM subscribed_names WHERE user_id = $1 AND name = ANY($2) RETURNING name) \
         UPDATE mailboxes SET subscribed = true WHERE user_id = $1 AND name IN (SELECT name FROM kept)",
        &[&user, &names],
    )
    .await?;
    bump_account(ctx, user, &ids).await?;
    announce(ctx, user, &ids).await?;
    Ok(())
}

pub async fn delete_mailbox(ctx: &mut Ctx<'_>, user: UserId, name: &str) -> StoreResult<()> {
    let name = mailbox_name(name)?;
    if name == "INBOX" {
        return Err(StoreError::MailboxRefused("INBOX cannot be deleted"));
    }
    lock_account(ctx, user).await?;
    let Some(id) = find(ctx, user, &name).await? else {
        return Err(StoreError::NoSuchMailbox);
    };
    // Its subscription outlives it (RFC 3501 §6.3.6), up to as many kept names as the account may
    // have mailboxes: CREATE, SUBSCRIBE, DELETE in a loop must not grow the list (and LSUB) for ever.
    ctx.exec(
        "INSERT INTO subscribed_names (user_id, name) \
         SELECT user_id, name FROM mailboxes WHERE id = $1 AND subscribed \
         AND (SELECT count(*) FROM subscribed_names WHERE user_id = $2) < $3 ON CONFLICT DO NOTHING",
        &[&id, &user, &(ctx.limits.mailboxes_per_account_max as i64)],
    )
    .await?;
    ctx.exec("DELETE FROM messages WHERE mailbox_id = $1", &[&id])
        .await?;
    ctx.exec("DELETE FROM mailboxes WHERE id = $1", &[&id])
        .await?;
    let modseq = bump_account(ctx, user, &[]).await?;
    ctx.exec(
        "INSERT INTO mailboxes_gone (user_id, mailbox_id, account_modseq) VALUES ($1, $2, $3)",
        &[&user, &id, &modseq],
    )
    .await?;
    ctx.touch(user, id, u64::MAX);
    Ok(())
}

/// Raises a mailbox's first recent UID to `below` and returns what it was (`MailStore::claim_recent`).
/// The row lock taken by the read makes a concurrent claim wait and then see the raised value. Lost in a
/// crash, a claim only makes its messages recent to the next session again: its commit does not wait
/// for the WAL flush.
pub async fn claim_recent(ctx: &mut Ctx<'_>, mailbox: MailboxId, below: u32) -> StoreResult<u32> {
    ctx.exec("SET LOCAL synchronous_commit = off", &[]).await?;
    let Some(row) = ctx
        .opt(
            "SELECT first_recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE",
            &[&mailbox],
        )
        .await?
    else {
        return Err(StoreError::NoSuchMailbox);
    };
    let before = u32_of(&row, 0);
    if before < below {
        ctx.exec(
            "UPDATE mailboxes SET first_recent_uid = $1 WHERE id = $2",
            &[&i64::from(below), &mailbox],
        )
        .await?;
    }
    Ok(before)
}

pub async fn subscribe(ctx: &mut Ctx<'_>, user: UserId, name: &str, on: bool) -> StoreResult<()> {
    let name = mailbox_name(name)?;
    lock_account(ctx, user).await?;
    let Some(id) = find(ctx, user, &name).await? else {
        // Without a mailbox, only a kept subscription can be taken away.
        return match !on && forget_kept_subscription(ctx, user, &name).await? {
            true => Ok(()),
            false => Err(StoreError::NoSuchMailbox),
        };
    };
    ctx.exec(
        "UPDATE mailboxes SET subscribed = $1 WHERE id = $2",
        &[&on, &id],
    )
    .await?;
    bump_account(ctx, user, &[id]).await?;
    announce(ctx, user, &[id]).await
}
