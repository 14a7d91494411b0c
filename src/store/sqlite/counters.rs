//! The one place a write moves an account's and a mailbox's counters: the account's change counter and
//! usage (checked against its quota), then the mailbox's UIDs, modseqs and counts. Two statements per
//! change, whatever it is, so a delivery costs a handful of statements in all. Deletions are the
//! exception: the `message_uncounted` trigger keeps counts there, because cascades delete too.

use rusqlite::{OptionalExtension, params};

use super::writer::{Ctx, backend};
use crate::store::rules::{Quota, within_quota};
use crate::store::{MailboxId, StoreError, StoreResult, UserId};

pub use crate::store::change::{Applied, Change, Target};

/// The account row's update: change counter and usage, returning what the quota check needs. Built at
/// compile time: it runs for every delivery.
macro_rules! account_update {
    ($key:literal) => {
        concat!(
            "UPDATE users SET modseq = modseq + 1, used_messages = used_messages + ?2, ",
            "used_bytes = used_bytes + ?3 WHERE ",
            $key,
            " = ?1 RETURNING id, modseq, name, used_bytes, used_messages, quota_bytes, quota_messages"
        )
    };
}

/// The mailbox row's update: UIDs, modseqs, counts and the account's stamp, returning the first taken.
macro_rules! mailbox_update {
    ($which:literal) => {
        concat!(
            "UPDATE mailboxes SET uid_next = uid_next + ?2, highest_modseq = highest_modseq + ?3, ",
            "messages = messages + ?4, unseen = unseen + ?5, bytes = bytes + ?6, account_modseq = ?7 ",
            "WHERE user_id = ?1 AND ",
            $which,
            " RETURNING id, uid_next - ?2, highest_modseq - ?3 + 1"
        )
    };
}

type AccountRow = (UserId, u64, String, i64, i64, Option<i64>, Option<i64>);

/// Applies `c` to `target`. `Ok(None)` when there is no such account or mailbox. With `check_quota`, an
/// account past its quota afterwards fails the op with [`StoreError::OverQuota`] (its savepoint undoes
/// the change).
pub fn apply(ctx: &mut Ctx<'_>, target: Target<'_>, c: Change) -> StoreResult<Option<Applied>> {
    let account_row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<AccountRow> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    };
    let (sql, key): (&str, &dyn rusqlite::ToSql) = match &target {
        Target::Mailbox(user, _) => (account_update!("id"), user),
        Target::InboxOf(name) => (account_update!("name"), name),
    };
    let account = ctx.tx.prepare_cached(sql).and_then(|mut s| {
        s.query_row(params![key, c.messages, c.bytes], account_row)
            .optional()
    });
    let Some((user, account_modseq, name, bytes, messages, own_bytes, own_messages)) =
        account.map_err(backend)?
    else {
        return Ok(None);
    };
    let quota = Quota::or_default((own_bytes, own_messages), ctx.limits.quota_default);
    if c.check_quota && !within_quota(quota, (bytes, messages), c.bytes, c.messages) {
        return Err(StoreError::OverQuota(name));
    }
    let counts = params![
        user,
        c.uids,
        c.modseqs,
        c.messages,
        c.unseen,
        c.bytes,
        account_modseq
    ];
    let first = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(MailboxId, u32, u64)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    };
    let mailbox = match target {
        Target::Mailbox(_, mailbox) => {
            ctx.tx
                .prepare_cached(mailbox_update!("id = ?8"))
                .and_then(|mut s| {
                    let mut all = counts.to_vec();
                    all.push(&mailbox);
                    s.query_row(all.as_slice(), first).optional()
                })
        }
        Target::InboxOf(_) => ctx
            .tx
            .prepare_cached(mailbox_update!("name = 'INBOX'"))
            .and_then(|mut s| s.query_row(counts, first).optional()),
    };
    let Some((mailbox, uid, modseq)) = mailbox.map_err(backend)? else {
        return Ok(None);
    };
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

/// [`apply`] to a mailbox of a known account: a missing one is [`StoreError::NoSuchMailbox`].
pub fn apply_to(
    ctx: &mut Ctx<'_>,
    user: UserId,
    mailbox: MailboxId,
    c: Change,
) -> StoreResult<Applied> {
    apply(ctx, Target::Mailbox(user, mailbox), c)?.ok_or(StoreError::NoSuchMailbox)
}
