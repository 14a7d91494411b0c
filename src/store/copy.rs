//! Copying a whole store to another backend (`jmail store copy`): what each backend reads out and writes
//! in exactly, UIDs, UIDVALIDITY and modseqs included, which the mail operations never let a caller set.
//! Row ids are kept too (accounts, mailboxes, stored bytes), and the counters that hand out new ones: JMAP
//! ids and states are made of them, so a client's cached ids and states go on naming the same things
//! after a move to another backend. The driver that pages through one store into the other is
//! `transfer::store_copy`.

use async_trait::async_trait;

use super::{MailboxId, Role, StoreResult, UserId};

/// An account as copied: everything but its mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedUser {
    /// The source's row id, which the copy keeps.
    pub id: UserId,
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
    pub first_recent_uid: u32,
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
    pub internal_zone: i32,
    pub crlf_size: u64,
    pub from: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub imported: bool,
    /// The source's blob id, which the copy keeps: messages sharing bytes in the source share them in
    /// the copy (a blob already written gains a reference).
    pub blob: i64,
    pub raw: Vec<u8>,
    pub summary: Option<String>,
}

/// A tombstone as copied: UID, modseq and the blob the expunged message had (`None` for tombstones
/// older than that column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopiedTombstone {
    pub uid: u32,
    pub modseq: u64,
    pub blob: Option<i64>,
}

/// The highest row id each counter has handed out (deleted rows included), so that the copy never hands
/// one out again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdCounters {
    pub users: i64,
    pub mailboxes: i64,
    pub blobs: i64,
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
    /// Tombstones of expunged messages with UIDs above `after`, in UID order, at most `limit`: what
    /// QRESYNC tells a client that was away.
    async fn copy_expunged(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
    ) -> StoreResult<Vec<CopiedTombstone>>;
    /// The store's id counters.
    async fn copy_counters(&self) -> StoreResult<IdCounters>;
    /// Makes the account, with exactly these fields and id (and no mailboxes), when missing: a copy
    /// resumed finds what an earlier run made. An account of that name or id that is not such a copy
    /// (another id, creation time or password) is [`super::StoreError::UserExists`].
    async fn put_user(&self, user: &CopiedUser) -> StoreResult<()>;
    /// Makes the account's mailbox `id` when missing; returns the highest UID it holds (0: none). A
    /// mailbox of that name or id that is not an earlier run's (another id, account or UIDVALIDITY) is
    /// [`super::StoreError::MailboxExists`].
    async fn put_mailbox(
        &self,
        user: UserId,
        id: MailboxId,
        mailbox: &CopiedMailbox,
    ) -> StoreResult<u32>;
    /// Stores messages in one transaction with their blob ids, counting them in the mailbox and
    /// account; a blob already there (bytes shared in the source) gains a reference.
    async fn put_messages(
        &self,
        user: UserId,
        mailbox: MailboxId,
        messages: Vec<CopiedMessage>,
    ) -> StoreResult<()>;
    /// Stores tombstones (an earlier run's are kept).
    async fn put_expunged(&self, mailbox: MailboxId, gone: Vec<CopiedTombstone>)
    -> StoreResult<()>;
    /// Keeps these names subscribed for the account although no mailbox has them (those already kept
    /// stay).
    async fn put_kept_subscriptions(&self, user: UserId, names: &[String]) -> StoreResult<()>;
    /// Moves the id counters up to at least these (never down).
    async fn put_counters(&self, counters: IdCounters) -> StoreResult<()>;
    /// Once an account is copied: its change counter as the source had it, and new mailbox ids moved
    /// past every UIDVALIDITY copied (a mailbox made later never repeats one).
    async fn put_done(&self, user: UserId, copied: &CopiedUser) -> StoreResult<()>;
}
