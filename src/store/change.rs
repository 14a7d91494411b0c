//! What a write does to an account's and a mailbox's counters, as both backends' `counters.rs` take it.

use super::{MailboxId, UserId};

/// Which mailbox a change is to: one of the account's by id, or the INBOX of an account known by name
/// (a delivery, which so needs no lookup of its own).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Mailbox(UserId, MailboxId),
    InboxOf(&'a str),
}

/// What one op does to one mailbox.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change {
    /// New rows, each taking a UID.
    pub uids: u32,
    /// Modseqs taken: one per message added or changed.
    pub modseqs: u64,
    pub messages: i64,
    pub unseen: i64,
    pub bytes: i64,
    /// Refuse the change when it takes the account past its quota.
    pub check_quota: bool,
}

/// Where a change landed: the account and mailbox, and the first UID and modseq it took.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    pub user: UserId,
    pub mailbox: MailboxId,
    pub uid: u32,
    pub modseq: u64,
}
