//! Copying a whole store to another backend (`jmail store copy`): what each backend reads out and writes
//! in exactly, UIDs, UIDVALIDITY and modseqs included, which the mail operations never let a caller set.
//! The driver that pages through one store into the other is `transfer::store_copy`.

use async_trait::async_trait;

use super::{MailboxId, Role, StoreResult, UserId};

/// An account as copied: everything but its mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedUser {
    pub name: String,
    pub password_hash: String,
    pub created_micros: i64,
    /// The account's change counter (JMAP states are made from it).
    pub modseq: u64,
    /// As stored: `None` the server's default, -1 no limit.
    pub quota_bytes: Option<i64>,
    pub quota_messages: Option<i64>,
}

/// A mailbox as copied, without its messages and counts (the messages bring those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedMailbox {
    pub name: String,
    pub role: Option<Role>,
    pub subscribed: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub account_modseq: u64,
}

/// A message as copied: its row and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedMessage {
    pub uid: u32,
    pub modseq: u64,
    pub flags: i64,
    /// As stored: sorted, space-separated.
    pub keywords: String,
    pub internal_micros: i64,
    pub crlf_size: u64,
    pub from: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub imported: bool,
    /// The source's blob id, and whether other messages share it (the copy then shares it too).
    pub blob: i64,
    pub shared: bool,
    pub raw: Vec<u8>,
    pub summary: Option<String>,
}

/// Reading a store out and writing one in, exactly. Administration: sessions never see it.
#[async_trait]
pub trait CopyStore: Send + Sync + 'static {
    /// Every account, by id.
    async fn copy_users(&self) -> StoreResult<Vec<CopiedUser>>;
    /// The account's mailboxes (empty for an unknown account).
    async fn copy_mailboxes(&self, user: &str) -> StoreResult<Vec<(MailboxId, CopiedMailbox)>>;
    /// Messages of the mailbox with UIDs above `after`, in UID order: at most `limit`, and no more once
    /// `bytes_max` bytes are in (at least one).
    async fn copy_messages(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
        bytes_max: usize,
    ) -> StoreResult<Vec<CopiedMessage>>;
    /// Tombstones of expunged messages (UID, modseq) with UIDs above `after`, in UID order, at most
    /// `limit`: what QRESYNC tells a client that was away.
    async fn copy_expunged(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
    ) -> StoreResult<Vec<(u32, u64)>>;
    /// The target's account of this name, made with exactly these fields (and no mailboxes) when
    /// missing: a copy resumed finds what an earlier run made. An account of that name that is not
    /// such a copy (another creation time or password) is [`super::StoreError::UserExists`].
    async fn put_user(&self, user: &CopiedUser) -> StoreResult<UserId>;
    /// The target's mailbox of this name and the highest UID it holds (0: none), made when missing. A
    /// mailbox of that name with another UIDVALIDITY is not an earlier run's:
    /// [`super::StoreError::MailboxExists`].
    async fn put_mailbox(
        &self,
        user: UserId,
        mailbox: &CopiedMailbox,
    ) -> StoreResult<(MailboxId, u32)>;
    /// Stores messages in one transaction, counting them in the mailbox and account; each either with
    /// its bytes or with a blob of the target's that it shares (`Some(id)`, counted once more). Returns
    /// the target blob of each.
    async fn put_messages(
        &self,
        user: UserId,
        mailbox: MailboxId,
        messages: Vec<(CopiedMessage, Option<i64>)>,
    ) -> StoreResult<Vec<i64>>;
    /// Stores tombstones (an earlier run's are kept).
    async fn put_expunged(&self, mailbox: MailboxId, gone: Vec<(u32, u64)>) -> StoreResult<()>;
    /// Once an account is copied: its change counter as the source had it, and new mailbox ids moved
    /// past every UIDVALIDITY copied (a mailbox made later never repeats one).
    async fn put_done(&self, user: UserId, copied: &CopiedUser) -> StoreResult<()>;
}
