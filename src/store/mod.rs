//! The one storage trait: mail operations over accounts and mailboxes, whatever the backend.
//!
//! Protocol sessions only ever see [`MailStore`]; administration ([`AccountStore`]) is apart, and a
//! backend implements both ([`Store`]). The SQLite backend is the default; a PostgreSQL backend will
//! implement the same trait and pass the same conformance tests (tests/it/store.rs).

mod notify;
pub mod sqlite;

use async_trait::async_trait;

pub use notify::{MailboxWatch, Notifier};

/// Row id of an account.
pub type UserId = i64;
/// Row id of a mailbox. Sessions get one only from their own [`Account`], which is what keeps users apart.
pub type MailboxId = i64;

/// Message flags, stored as a bit set (IMAP's system flags).
pub mod flags {
    pub const SEEN: i64 = 1;
    pub const ANSWERED: i64 = 2;
    pub const FLAGGED: i64 = 4;
    pub const DRAFT: i64 = 8;
}

/// An authenticated user and the mailbox the native protocol works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub name: String,
    pub inbox: MailboxId,
    /// Which password the login used ([`crate::auth::credential_tag`]): a password change makes every
    /// session logged in with the old one stale (see [`crate::accounts::still_valid`]).
    pub credential: [u8; 8],
}

/// What a login checks a password against: the account, its INBOX and its stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub id: UserId,
    pub inbox: MailboxId,
    /// The argon2id PHC string; checking a password against it is not the backend's job
    /// ([`crate::accounts::authenticate`]).
    pub password_hash: String,
}

/// A message ready to store: its RFC 5322 bytes plus what lists show without parsing them again, all
/// worked out before it reaches a backend (which only stores them). Made by [`NewMessage::new`].
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub raw: Vec<u8>,
    /// Display form of the sender, e.g. `alice@example.org`.
    pub from: String,
    pub subject: String,
    pub message_id: Option<String>,
    /// Arrival time, microseconds since the Unix epoch.
    pub internal_date_micros: i64,
    /// Octets as POP3 sends it (`jmail_proto::pop3::crlf_size`), worked out from `raw` by `new`: make a
    /// new message rather than change `raw`.
    pub crlf_size: u64,
}

impl NewMessage {
    pub fn new(
        raw: Vec<u8>,
        from: String,
        subject: String,
        message_id: Option<String>,
        internal_date_micros: i64,
    ) -> NewMessage {
        NewMessage {
            crlf_size: jmail_proto::pop3::crlf_size(&raw),
            raw,
            from,
            subject,
            message_id,
            internal_date_micros,
        }
    }
}

/// Where one copy of a delivered message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub user: String,
    pub uid: u32,
}

/// A message as listed: metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub modseq: u64,
    pub flags: i64,
    /// Stored bytes.
    pub size: u64,
    /// Octets as sent with CRLF line ends and the last line ended (POP3's size, RFC 1939): `size` for
    /// CRLF-canonical mail, more for imported mail with bare LF. See `jmail_proto::pop3::crlf_size`.
    pub crlf_size: u64,
    pub internal_date_micros: i64,
    pub from: String,
    pub subject: String,
}

/// What changed in a mailbox after some modseq, oldest change first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Messages added or changed (their current state).
    pub messages: Vec<MessageMeta>,
    /// UIDs deleted.
    pub gone: Vec<u32>,
    /// Every change up to and including this modseq is in this answer; ask again from here.
    pub through_modseq: u64,
    /// True when the answer was cut at the batch limit and more changes follow `through_modseq`.
    pub more: bool,
}

/// Accounts and messages to import in one transaction (`jmail import-legacy`).
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// (name, password hash).
    pub users: Vec<(String, String)>,
    pub messages: Vec<ImportedMessage>,
    /// A message counts as already present when its Message-ID is in the owner's INBOX and, with this set,
    /// its bytes are identical too (mail from elsewhere, where Message-IDs are not always unique).
    pub match_content: bool,
}

/// One message to import into its owner's INBOX. It must carry a Message-ID: that makes imports
/// idempotent.
#[derive(Debug, Clone)]
pub struct ImportedMessage {
    pub owner: String,
    pub message: NewMessage,
    pub flags: i64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub users_created: u64,
    pub users_existing: u64,
    pub messages_imported: u64,
    pub messages_present: u64,
}

/// One account as `jmail user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub created_micros: i64,
    pub messages: u64,
}

/// Everything that can go wrong in the store. Internal text stays in logs: sessions map these to protocol
/// replies and never show the text of [`StoreError::Backend`] to a peer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such user: {0}")]
    UnknownRecipient(String),
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("no such user: {0}")]
    NoSuchUser(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("storage backend: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Account administration: what `jmail user`, the imports and exports do. Sessions never see it.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account with its INBOX and, atomically with it, delivers `welcome` into it.
    async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        welcome: Option<NewMessage>,
    ) -> StoreResult<()>;
    async fn set_password(&self, name: &str, password_hash: &str) -> StoreResult<()>;
    /// Deletes the account and all its mail.
    async fn delete_user(&self, name: &str) -> StoreResult<()>;
    async fn list_users(&self) -> StoreResult<Vec<UserInfo>>;
    /// Imports all of `batch` or nothing. Existing users are left as they are; a message whose Message-ID
    /// is already in its owner's INBOX is not imported again.
    async fn import(&self, batch: ImportBatch) -> StoreResult<ImportCounts>;
    /// A user's INBOX, for administration (export); `None` when there is no such user.
    async fn inbox_of(&self, user: &str) -> StoreResult<Option<MailboxId>>;
}

/// A whole backend: mail operations and account administration.
pub trait Store: MailStore + AccountStore {}
impl<T: MailStore + AccountStore> Store for T {}

/// The mail operations every backend provides, and all that protocol sessions see. All writes are durable
/// when the call returns `Ok`.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// A user's credentials, for login; `None` when there is no such user.
    async fn credentials(&self, name: &str) -> StoreResult<Option<Credentials>>;
    /// The stored password hash of the account with this id; `None` once it is deleted. Sessions ask before
    /// each command whether their login still stands.
    async fn password_hash_of(&self, id: UserId) -> StoreResult<Option<String>>;
    /// Which of `names` are existing users (for splitting a v1 client's coalesced credentials).
    async fn existing_users(&self, names: &[String]) -> StoreResult<Vec<String>>;
    /// The oldest existing account's name (who gets `postmaster` mail by default); `None` with no users.
    async fn first_user(&self) -> StoreResult<Option<String>>;
    /// Delivers one message to each named local user's INBOX: all or nothing. An unknown name fails the
    /// whole delivery with [`StoreError::UnknownRecipient`] and stores nothing.
    async fn deliver(
        &self,
        recipients: &[String],
        message: NewMessage,
    ) -> StoreResult<Vec<Delivered>>;
    /// Changes after `since_modseq`, at most `limit` of them.
    async fn changes(
        &self,
        mailbox: MailboxId,
        since_modseq: u64,
        limit: usize,
    ) -> StoreResult<Changes>;
    /// The newest `limit` messages with at most the first `bytes_max` bytes of each, newest first (the v1
    /// mailbox view, which shows about a kilobyte in all).
    async fn newest(
        &self,
        mailbox: MailboxId,
        limit: usize,
        bytes_max: usize,
    ) -> StoreResult<Vec<(MessageMeta, Vec<u8>)>>;
    /// The stored bytes of one message; with `mark_seen` the message is flagged seen durably first.
    async fn fetch(
        &self,
        mailbox: MailboxId,
        uid: u32,
        mark_seen: bool,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Sets or clears flags. `false` when there is no such message.
    async fn set_flags(
        &self,
        mailbox: MailboxId,
        uid: u32,
        add: i64,
        remove: i64,
    ) -> StoreResult<bool>;
    /// Removes a message for good. `false` when there is no such message.
    async fn expunge(&self, mailbox: MailboxId, uid: u32) -> StoreResult<bool>;
    /// A handle that wakes whenever the mailbox changes (push for WATCH).
    fn watch(&self, mailbox: MailboxId) -> MailboxWatch;
    /// Finishes queued writes and closes the backend.
    async fn close(&self);
}
