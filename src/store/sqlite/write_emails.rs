//! Writes of whole JMAP Emails (`store::email_change`): a create in several mailboxes, and a change of
//! every copy at once, each one op in the writer's transaction, so a refusal anywhere undoes it all.

use rusqlite::{OptionalExtension, params};

use super::reads;
use super::write_messages::{append, copy, expunge, owner_of, update_flags};
use super::writer::{Ctx, backend};
use crate::store::email_change::{self, EmailChange, EmailChanged};
use crate::store::{Flags, MailboxId, NewMessage, StoreError, StoreResult, UserId};

/// Stores `message` in each of `mailboxes` (the account's, at least one): its bytes once, a copy in
/// each, all against the quota. Returns the id of its bytes.
pub fn create_email(
    ctx: &mut Ctx<'_>,
    user: UserId,
    mailboxes: &[MailboxId],
    message: &NewMessage,
    flags: Flags,
) -> StoreResult<i64> {
    let (&first, rest) = mailboxes.split_first().ok_or(StoreError::NoSuchMailbox)?;
    if owner_of(ctx.tx, first)? != user {
        return Err(StoreError::NoSuchMailbox);
    }
    let uid = append(ctx, first, message, flags, true)?;
    for &to in rest {
        copy(ctx, user, first, &[uid], to, false)?;
    }
    ctx.tx
        .prepare_cached("SELECT blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
        .and_then(|mut s| s.query_row(params![first, uid], |r| r.get(0)).optional())
        .map_err(backend)?
        .ok_or(StoreError::NoSuchMailbox)
}

/// Changes every copy of `blob` in `user`'s mailboxes as `change` says: copies and moves first (what
/// can fail for want of room), then the keywords of every copy that stays, then the expunges.
pub fn change_email(
    ctx: &mut Ctx<'_>,
    user: UserId,
    blob: i64,
    change: &EmailChange,
) -> StoreResult<EmailChanged> {
    let copies = reads::locate(ctx.tx, user, &[blob]).map_err(backend)?;
    let Some(head) = copies.first().copied() else {
        return Ok(EmailChanged::NotFound);
    };
    let Some(plan) = email_change::plan(&copies, &change.placement) else {
        return Ok(EmailChanged::NoMailbox);
    };
    let mut staying = plan.staying;
    for &to in &plan.copy_to {
        let map = copy(ctx, user, head.mailbox, &[head.uid], to, false)?;
        staying.insert(to, map.uids.iter().map(|&(_, new)| new).collect());
    }
    for (from, uids, to) in &plan.moves {
        let map = copy(ctx, user, *from, uids, *to, true)?;
        staying.insert(*to, map.uids.iter().map(|&(_, new)| new).collect());
    }
    for (op, flags) in &change.keywords {
        for (&mailbox, uids) in &staying {
            update_flags(ctx, mailbox, uids, *op, flags.clone(), None)?;
        }
    }
    for (from, uids) in &plan.expunges {
        expunge(ctx, *from, Some(uids), false)?;
    }
    Ok(EmailChanged::Done)
}
