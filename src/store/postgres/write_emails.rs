//! Writes of whole JMAP Emails on PostgreSQL: the same steps as SQLite's `write_emails.rs`, each one op
//! in its own transaction, so a refusal anywhere undoes it all.

use super::reads;
use super::sql::Ctx;
use super::write_messages::{append, copy, expunge, owner_of, update_flags};
use crate::store::email_change::{self, EmailChange, EmailChanged};
use crate::store::{Flags, MailboxId, NewMessage, StoreError, StoreResult, UserId};

/// Stores `message` in each of `mailboxes` (the account's, at least one): its bytes once, a copy in
/// each, all against the quota. Returns the id of its bytes.
pub async fn create_email(
    ctx: &mut Ctx<'_>,
    user: UserId,
    mailboxes: &[MailboxId],
    message: &NewMessage,
    flags: Flags,
) -> StoreResult<i64> {
    let (&first, rest) = mailboxes.split_first().ok_or(StoreError::NoSuchMailbox)?;
    if owner_of(ctx, first).await? != user {
        return Err(StoreError::NoSuchMailbox);
    }
    let uid = append(ctx, first, message, flags, true).await?;
    for &to in rest {
        copy(ctx, user, first, &[uid], to, false).await?;
    }
    ctx.opt(
        "SELECT blob_id FROM messages WHERE mailbox_id = $1 AND uid = $2",
        &[&first, &i64::from(uid)],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or(StoreError::NoSuchMailbox)
}

/// Changes every copy of `blob` in `user`'s mailboxes as `change` says: copies and moves first (what
/// can fail for want of room), then the keywords of every copy that stays, then the expunges. The
/// account's row is locked before its copies are looked for, as every write locks it first.
pub async fn change_email(
    ctx: &mut Ctx<'_>,
    user: UserId,
    blob: i64,
    change: &EmailChange,
) -> StoreResult<EmailChanged> {
    ctx.exec("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user])
        .await?;
    let copies = reads::locate(ctx, user, &[blob]).await?;
    let Some(head) = copies.first().copied() else {
        return Ok(EmailChanged::NotFound);
    };
    let Some(plan) = email_change::plan(&copies, &change.placement) else {
        return Ok(EmailChanged::NoMailbox);
    };
    let mut staying = plan.staying;
    for &to in &plan.copy_to {
        let map = copy(ctx, user, head.mailbox, &[head.uid], to, false).await?;
        staying.insert(to, map.uids.iter().map(|&(_, new)| new).collect());
    }
    for (from, uids, to) in &plan.moves {
        let map = copy(ctx, user, *from, uids, *to, true).await?;
        staying.insert(*to, map.uids.iter().map(|&(_, new)| new).collect());
    }
    for (op, flags) in &change.keywords {
        for (&mailbox, uids) in &staying {
            update_flags(ctx, mailbox, uids, *op, flags.clone(), None).await?;
        }
    }
    for (from, uids) in &plan.expunges {
        expunge(ctx, *from, Some(uids), false).await?;
    }
    Ok(EmailChanged::Done)
}
