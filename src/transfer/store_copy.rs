//! Copying a whole store into another (`jmail store copy`): accounts, passwords, quotas, mailboxes with
//! their UIDVALIDITY, UIDNEXT and modseqs, and every message with its UID, modseq, flags and keywords,
//! byte for byte. Row ids are kept (accounts, mailboxes, stored bytes: JMAP's ids are made of them) and
//! so is the sharing of bytes. Streams in pages (memory holds one page), and resumes where an interrupted run stopped: a mailbox is continued after the highest UID
//! the target already holds. At the end both stores are read again and compared, mailbox by mailbox.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::store::{CopyStore, MailboxId, Store, StoreError, UserId};

/// Messages per page (and per target transaction).
const PAGE_MESSAGES_MAX: usize = 500;
/// Bytes of messages per page, above which a page ends early.
const PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub users: u64,
    pub mailboxes: u64,
    /// Messages copied by this run (a resumed run counts only what it added).
    pub messages: u64,
    pub bytes: u64,
    /// Messages compared at the end, all found identical.
    pub verified: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("verification failed: {0}")]
    Differs(String),
    #[error("{0}: copy into an empty store, or into one an earlier run of the same copy made")]
    Occupied(String),
}

/// Copies every account of `from` into `to`, telling `progress` of the bytes copied, then verifies.
pub async fn copy_store(
    from: &dyn Store,
    to: &dyn Store,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Copied, CopyError> {
    let mut done = Copied::default();
    let users = from.copy_users().await?;
    for user in &users {
        to.put_user(user).await.map_err(|e| match e {
            StoreError::UserExists(name) => CopyError::Occupied(format!(
                "the target has an account {name} (or its id) that is not a copy of this one"
            )),
            other => other.into(),
        })?;
        // The automatic reply's settings (whom it answered is not kept: a resumed copy may set them
        // again, and a correspondent may be answered once more).
        let (vacation, version) = from.vacation(user.id).await?;
        if version > 0 && to.vacation(user.id).await?.0 != vacation {
            to.set_vacation(user.id, &vacation).await?;
        }
        for (mailbox, copied) in from.copy_mailboxes(&user.name).await? {
            let mut after = to
                .put_mailbox(user.id, mailbox, &copied)
                .await
                .map_err(|e| match e {
                    StoreError::MailboxExists => CopyError::Occupied(format!(
                        "the target's account {} has a mailbox {} (or its id) that is not a copy of this one",
                        user.name, copied.name
                    )),
                    other => other.into(),
                })?;
            loop {
                let page = from
                    .copy_messages(mailbox, after, PAGE_MESSAGES_MAX, PAGE_BYTES_MAX)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.uid;
                let bytes: u64 = page.iter().map(|m| m.raw.len() as u64).sum();
                let n = page.len() as u64;
                to.put_messages(user.id, mailbox, page).await?;
                done.messages += n;
                done.bytes += bytes;
                progress(bytes);
            }
            // The tombstones, so that QRESYNC still tells a returning client what went meanwhile.
            let mut after = 0;
            loop {
                let gone = from
                    .copy_expunged(mailbox, after, PAGE_MESSAGES_MAX * 10)
                    .await?;
                let Some(last) = gone.last() else { break };
                after = last.uid;
                to.put_expunged(mailbox, gone).await?;
            }
            done.mailboxes += 1;
        }
        let kept = from.kept_subscriptions(user.id).await?;
        to.put_kept_subscriptions(user.id, &kept).await?;
        to.put_done(user.id, user).await?;
        done.users += 1;
    }
    // Last, so that ids handed out after the copy follow the source's, deleted rows' included.
    to.put_counters(from.copy_counters().await?).await?;
    done.verified = verify(from, to).await?;
    Ok(done)
}

/// Compares both stores account by account, mailbox by mailbox: the same account and mailbox ids, the
/// same mailboxes with the same UIDVALIDITY, UIDNEXT and highest modseq, and the same messages (UID,
/// modseq, flags, keywords, internal date, blob id, SHA-256 of the bytes). Returns how many messages
/// were compared.
pub async fn verify(from: &dyn Store, to: &dyn Store) -> Result<u64, CopyError> {
    let mut compared = 0;
    let their_users: HashMap<String, UserId> = to
        .copy_users()
        .await?
        .into_iter()
        .map(|u| (u.name, u.id))
        .collect();
    for user in from.copy_users().await? {
        if their_users.get(&user.name) != Some(&user.id) {
            return Err(CopyError::Differs(format!(
                "{}'s account is missing or has another id",
                user.name
            )));
        }
        if from.kept_subscriptions(user.id).await? != to.kept_subscriptions(user.id).await? {
            return Err(CopyError::Differs(format!(
                "{}'s subscriptions to names without a mailbox differ",
                user.name
            )));
        }
        let theirs: HashMap<String, (MailboxId, crate::store::CopiedMailbox)> = to
            .copy_mailboxes(&user.name)
            .await?
            .into_iter()
            .map(|(id, m)| (m.name.clone(), (id, m)))
            .collect();
        for (source, mine) in from.copy_mailboxes(&user.name).await? {
            let Some((target, copy)) = theirs.get(&mine.name) else {
                return Err(CopyError::Differs(format!(
                    "{}'s mailbox {} is missing",
                    user.name, mine.name
                )));
            };
            let same = (
                source,
                mine.uid_validity,
                mine.uid_next,
                mine.highest_modseq,
            ) == (
                *target,
                copy.uid_validity,
                copy.uid_next,
                copy.highest_modseq,
            );
            if !same {
                return Err(CopyError::Differs(format!(
                    "{}'s mailbox {}: id, UIDVALIDITY, UIDNEXT or modseq differ",
                    user.name, mine.name
                )));
            }
            let (n, a) = digest(from, source).await?;
            let (m, b) = digest(to, *target).await?;
            if (n, a) != (m, b) {
                return Err(CopyError::Differs(format!(
                    "{}'s mailbox {}: {n} messages here, {m} there, or their contents differ",
                    user.name, mine.name
                )));
            }
            compared += n;
        }
    }
    Ok(compared)
}

/// How many messages a mailbox holds and a SHA-256 over each one's UID, modseq, flags, keywords,
/// internal date, blob id and bytes, in UID order, and over its tombstones.
async fn digest(store: &dyn CopyStore, mailbox: MailboxId) -> Result<(u64, [u8; 32]), StoreError> {
    let mut hash = Sha256::new();
    let (mut count, mut after) = (0, 0);
    loop {
        let page = store
            .copy_messages(mailbox, after, PAGE_MESSAGES_MAX, PAGE_BYTES_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.uid;
        for m in &page {
            hash.update(m.uid.to_be_bytes());
            hash.update(m.modseq.to_be_bytes());
            hash.update(m.flags.to_be_bytes());
            hash.update(m.internal_micros.to_be_bytes());
            hash.update(m.internal_zone.to_be_bytes());
            hash.update(m.keywords.as_bytes());
            hash.update([0]);
            hash.update(m.blob.to_be_bytes());
            hash.update(Sha256::digest(&m.raw));
            count += 1;
        }
    }
    let mut after = 0;
    loop {
        let gone = store
            .copy_expunged(mailbox, after, PAGE_MESSAGES_MAX * 10)
            .await?;
        let Some(last) = gone.last() else { break };
        after = last.uid;
        for t in gone {
            hash.update(b"gone");
            hash.update(t.uid.to_be_bytes());
            hash.update(t.modseq.to_be_bytes());
            hash.update(t.blob.unwrap_or(0).to_be_bytes());
        }
    }
    Ok((count, hash.finalize().into()))
}
