//! The one storage trait: mail operations over accounts and mailboxes, whatever the backend.
//!
//! Protocol sessions only ever see [`MailStore`]; administration ([`AccountStore`]) is apart, and a
//! backend implements both ([`Store`]). The SQLite backend is the default; a PostgreSQL backend will
//! implement the same trait and pass the same conformance tests (tests/it/store.rs).

pub mod change;
pub mod copy;
pub mod disk_reserve;
pub mod email_change;
pub mod notify;
pub mod open;
pub mod postgres;
pub mod rules;
pub mod sqlite;

use async_trait::async_trait;

pub use copy::{CopiedMailbox, CopiedMessage, CopiedTombstone, CopiedUser, CopyStore, IdCounters};
pub use notify::{AccountFeed, FeedEvent, MailboxWatch, Notifier};
pub use rules::{Quota, Usage};

/// Most UIDs one [`MailStore::messages`] call takes: callers page through larger sets, so one call
/// holds at most this many rows (with summaries, a few hundred KiB) and a read connection is never held
/// for long.
pub const MESSAGES_PER_CALL_MAX: usize = 1000;

/// Row id of an account.
pub type UserId = i64;
/// Row id of a mailbox. Sessions get one only from their own [`Account`], which is what keeps users apart.
pub type MailboxId = i64;

/// Message flags, stored as a bit set (IMAP's system flags); defined in the pure crate, where SEARCH
/// matches on them too.
pub use jmail_proto::flags;

/// A message's flags: the system flags as bits ([`flags`]) and its keywords, sorted, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: i64,
    pub keywords: Vec<String>,
}

impl Flags {
    pub fn system(bits: i64) -> Flags {
        Flags {
            system: bits,
            keywords: Vec::new(),
        }
    }
}

/// How a flag update treats the flags given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// What one flag update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagUpdate {
    /// Messages whose flags changed, with their new state, in UID order.
    pub changed: Vec<MessageFlags>,
    /// Messages present whose flags already were as asked, in UID order.
    pub unchanged: Vec<MessageFlags>,
    /// Messages left alone because they changed after the `unchanged_since` modseq (CONDSTORE's
    /// MODIFIED), in UID order.
    pub refused: Vec<u32>,
}

/// One message's flags as they now stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFlags {
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
}

/// A mailbox's special-use role (RFC 6154; JMAP's roles). Each role is held by at most one mailbox of an
/// account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl Role {
    /// The mailboxes every account starts with, in the order lists show them.
    pub const DEFAULTS: [(Role, &'static str); 6] = [
        (Role::Inbox, "INBOX"),
        (Role::Sent, "Sent"),
        (Role::Drafts, "Drafts"),
        (Role::Trash, "Trash"),
        (Role::Junk, "Junk"),
        (Role::Archive, "Archive"),
    ];

    /// The stored and JMAP name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inbox => "inbox",
            Role::Sent => "sent",
            Role::Drafts => "drafts",
            Role::Trash => "trash",
            Role::Junk => "junk",
            Role::Archive => "archive",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::DEFAULTS
            .iter()
            .map(|(role, _)| *role)
            .find(|role| role.as_str() == text)
    }
}

/// A mailbox as listed: all read from the mailbox's own row, without scanning its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    pub id: MailboxId,
    pub name: String,
    pub role: Option<Role>,
    pub subscribed: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub messages: u64,
    pub unseen: u64,
    /// Stored bytes of its messages.
    pub bytes: u64,
    /// The lowest UID no IMAP session has claimed as `\Recent` yet ([`MailStore::claim_recent`]).
    pub first_recent_uid: u32,
}

/// Where a copy or move put each message: (source UID, destination UID), in source UID order (UIDPLUS's
/// COPYUID), and the destination's UIDVALIDITY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyMap {
    pub uid_validity: u32,
    pub uids: Vec<(u32, u32)>,
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
    /// The zone the arrival time is told in, minutes east of UTC: an IMAP APPEND's own, else 0 (UTC).
    pub internal_zone_minutes: i32,
    /// Octets as POP3 sends it (`jmail_proto::pop3::crlf_size`), worked out from `raw` by `new`: make a
    /// new message rather than change `raw`.
    pub crlf_size: u64,
    /// What IMAP and JMAP list of it (envelope, MIME structure with byte offsets), parsed once here and
    /// stored with it: JSON of `jmail_proto::summary::Summary`.
    pub summary: String,
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
            summary: jmail_proto::summary::summarize_message(&raw).to_json(),
            raw,
            from,
            subject,
            message_id,
            internal_date_micros,
            internal_zone_minutes: 0,
        }
    }
}

/// Where a message's bytes are, to read them in pieces ([`MailStore::body_chunk`]). Sessions get one only
/// from [`MailStore::body_ref`] on a mailbox of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRef {
    pub blob: i64,
    /// Stored bytes in all.
    pub len: u64,
}

/// An account's automatic reply while its owner is away (JMAP's VacationResponse, RFC 8621 §8). The
/// server answers mail with it only while `enabled` and between `from_micros` and `to_micros` (each
/// open when `None`); `crate::vacation` decides whom it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vacation {
    pub enabled: bool,
    pub from_micros: Option<i64>,
    pub to_micros: Option<i64>,
    /// `None`: the reply's subject is made of the message's ("Auto: ...").
    pub subject: Option<String>,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
}

/// What delivery needs to know of a local recipient, read once at SMTP RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    pub user: UserId,
    /// It can take one more message (not at or past a quota).
    pub has_room: bool,
    /// Its automatic reply is switched on (whatever its dates say).
    pub away: bool,
}

/// Where one copy of a delivered message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub user: String,
    pub uid: u32,
}

/// One delivery: what [`MailStore::submit`] stores in one transaction.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Local user names whose INBOX (or Junk) gets a copy.
    pub local: Vec<String>,
    pub message: NewMessage,
    /// Keep a copy, seen, in this account's Sent mailbox.
    pub sent_copy_of: Option<UserId>,
    /// The local copies go to each recipient's Junk mailbox (DMARC `p=quarantine`).
    pub junk: bool,
    /// Recipients at other domains: queued for the delivery worker.
    pub outbound: Option<Outbound>,
}

impl Delivery {
    /// The server's own message (a notification, an automatic reply) for one local user's INBOX.
    pub fn to_local(name: String, message: NewMessage) -> Delivery {
        Delivery {
            local: vec![name],
            message,
            sent_copy_of: None,
            junk: false,
            outbound: None,
        }
    }

    /// The server's own message for other domains only.
    pub fn to_remote(message: NewMessage, outbound: Outbound) -> Delivery {
        Delivery {
            local: Vec::new(),
            message,
            sent_copy_of: None,
            junk: false,
            outbound: Some(outbound),
        }
    }
}

/// Mail for other domains, queued with the local copies of the same message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The account that sent it: delivery status notifications go to it. `None` for mail the server
    /// itself sends (a notification is never sent about a notification).
    pub user: Option<UserId>,
    /// The envelope sender (MAIL FROM); empty for the server's own notifications (RFC 5321 §4.5.5).
    pub sender: String,
    /// Per destination domain, its recipients: one queue entry and one SMTP transaction each.
    pub domains: Vec<(String, Vec<String>)>,
    /// What the sender asked of delivery reports (RFC 3461), as `crate::outbound::dsn_request` writes
    /// it; kept with each entry. `None` when nothing was asked.
    pub dsn: Option<String>,
}

/// One queue entry as the worker and `jmail queue` see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueEntry {
    pub id: i64,
    pub user: Option<UserId>,
    pub sender: String,
    pub domain: String,
    /// The recipients still to be delivered.
    pub recipients: Vec<String>,
    /// Microseconds since the Unix epoch.
    pub created_micros: i64,
    /// When it is next tried (or, while a worker holds it, when its lease runs out).
    pub next_micros: i64,
    pub attempts: u32,
    /// A worker is delivering it now (or died doing so; the lease then runs out at `next_micros`).
    pub leased: bool,
    pub last_error: Option<String>,
    /// Stored bytes of the message.
    pub size: u64,
    pub blob: i64,
    /// The sender's delivery report parameters ([`Outbound::dsn`]).
    pub dsn: Option<String>,
}

/// What became of one attempt at a queue entry.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub id: i64,
    /// Recipients to try again at `retry_micros`; none: the entry is finished and removed.
    pub retry: Vec<String>,
    pub retry_micros: i64,
    pub error: Option<String>,
    /// A delivery status notification to store, in the same transaction, in this account's INBOX.
    pub bounce: Option<(UserId, NewMessage)>,
}

/// The outbound queue: the delivery worker's side and `jmail queue`'s. Queue entries are made only by
/// [`MailStore::submit`], with the message they carry.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Up to `max` entries due at `now_micros`, oldest due first: (id, destination domain), for the
    /// worker to choose from by how busy each destination is.
    async fn queue_due(&self, now_micros: i64, max: usize) -> StoreResult<Vec<(i64, String)>>;
    /// Leases those of `ids` still due at `now_micros` until `lease_until_micros` (counted as an
    /// attempt) and returns them: a worker that dies leaves them to come due again then, and two
    /// workers never take the same entry at once.
    async fn queue_take(
        &self,
        ids: Vec<i64>,
        now_micros: i64,
        lease_until_micros: i64,
    ) -> StoreResult<Vec<QueueEntry>>;
    /// Records an attempt's outcome (and stores its notification) in one transaction.
    async fn queue_attempted(&self, outcome: Attempted) -> StoreResult<()>;
    /// Every entry, oldest first.
    async fn queue_list(&self) -> StoreResult<Vec<QueueEntry>>;
    /// How many entries there are (for `/metrics` and the admin page, without reading them).
    async fn queue_depth(&self) -> StoreResult<u64>;
    async fn queue_entry(&self, id: i64) -> StoreResult<Option<QueueEntry>>;
    /// Makes one entry (or all with `None`) due now; how many were.
    async fn queue_retry(&self, id: Option<i64>, now_micros: i64) -> StoreResult<u64>;
    /// Removes an entry without delivering it; whether there was one.
    async fn queue_drop(&self, id: i64) -> StoreResult<bool>;
    /// When the next entry is due, if any.
    async fn queue_next_due(&self) -> StoreResult<Option<i64>>;
    /// At a worker's start: entries leased by workers that are gone (a killed server) come due now
    /// instead of when their leases run out; how many. SQLite: one server holds a data dir at a time
    /// (its lock file), so every lease found at start is such a one.
    async fn queue_recover(&self, now_micros: i64) -> StoreResult<u64>;
    /// Notified when this process queues mail (other processes' is found by polling).
    fn queue_waker(&self) -> std::sync::Arc<tokio::sync::Notify>;
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
    /// The zone IMAP tells the arrival time in ([`NewMessage::internal_zone_minutes`]).
    pub internal_zone_minutes: i32,
    pub from: String,
    pub subject: String,
    /// Sorted, without repeats.
    pub keywords: Vec<String>,
    /// The stored bytes' id: the same for every copy of the message, and kept when it moves (JMAP's
    /// Email id, which RFC 8621 says never changes).
    pub blob: i64,
}

/// A mailbox's messages as a session selects it: every UID in order with its system flags, and the
/// mailbox's highest modseq, read in one snapshot so that changes after it are exactly those after
/// `highest_modseq`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxSnapshot {
    /// (UID, system flags), ascending by UID.
    pub messages: Vec<(u32, i64)>,
    pub highest_modseq: u64,
    /// The keywords the mailbox has seen (IMAP's FLAGS), in the spelling it first saw, sorted.
    pub keywords: Vec<String>,
}

/// What [`MailStore::messages`] reads of each message besides its metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The stored summary (JSON of `jmail_proto::summary::Summary`).
    pub summary: bool,
    /// The stored bytes of messages of at most this many bytes (0: of none); larger ones are read in
    /// pieces by whoever needs them, so one call holds at most this much per message.
    pub raw_bytes_max: u64,
}

/// One message as [`MailStore::messages`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub meta: MessageMeta,
    pub summary: Option<String>,
    pub raw: Option<Vec<u8>>,
}

/// One copy of a message in an account: its stored bytes' id, and its mailbox and UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Located {
    pub blob: i64,
    pub mailbox: MailboxId,
    pub uid: u32,
}

/// An expunged copy of stored bytes: where it was, and the mailbox's modseq that removed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    pub blob: i64,
    pub mailbox: MailboxId,
    pub uid: u32,
    pub modseq: u64,
}

/// What changed in a mailbox after some modseq, oldest change first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Messages added or changed (their current state).
    pub messages: Vec<MessageMeta>,
    /// UIDs deleted.
    pub gone: Vec<u32>,
    /// For each of `gone`, in the same order, the id of its stored bytes ([`MessageMeta::blob`]); `None`
    /// for a deletion recorded before tombstones kept it (schema 10).
    pub gone_blobs: Vec<Option<i64>>,
    /// Every change up to and including this modseq is in this answer; ask again from here.
    pub through_modseq: u64,
    /// True when the answer was cut at the batch limit and more changes follow `through_modseq`.
    pub more: bool,
    /// No message below this UID was stored after `through_modseq`: hand it back with it ([`Self::next`]).
    pub stored_from: u32,
}

impl Changes {
    /// Where the next read goes on from.
    pub fn next(&self) -> Since {
        Since {
            modseq: self.through_modseq,
            stored_from: self.stored_from,
        }
    }
}

/// Where a read of the change log starts: after `modseq`. `stored_from` is a UID below which no message
/// was stored after `modseq` ([`Changes::stored_from`] of the read that went through `modseq`; the
/// mailbox's UIDNEXT read together with `modseq`), or 0 when unknown. It spares the search for where new
/// mail begins, the part of an IDLE wake-up that grows with the mailbox; one too low costs a few rows read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Since {
    pub modseq: u64,
    pub stored_from: u32,
}

impl Since {
    /// After `modseq`, where new mail begins unknown.
    pub fn modseq(modseq: u64) -> Since {
        Since {
            modseq,
            stored_from: 0,
        }
    }
}

/// Accounts and messages to import in one transaction (`jmail import-legacy`).
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// (name, password hash).
    pub users: Vec<(String, String)>,
    pub messages: Vec<ImportedMessage>,
    /// A message counts as already present when a message with its Message-ID was imported into the
    /// owner's INBOX before (and is still there) and, with this set, its bytes are identical too (mail from
    /// elsewhere, where Message-IDs are not always unique). Delivered mail is not looked at: indexing every
    /// delivery's Message-ID would slow delivery down as the store grows.
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

/// An upload to keep ([`MailStore::upload_put`]).
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub user: UserId,
    pub key: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub now_micros: i64,
    /// Kept until then (microseconds since the epoch).
    pub expires_micros: i64,
    /// The most bytes of unexpired uploads the account may hold, this one included.
    pub account_bytes_max: u64,
}

/// One account as `jmail user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub created_micros: i64,
    pub usage: Usage,
    /// The quota in force: the user's own or the server's default.
    pub quota: Quota,
}

/// A user's own quota setting for one dimension (`jmail user quota`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaSetting {
    /// The server's default (`limits.quota_*_default`).
    Default,
    Unlimited,
    Limit(u64),
}

/// The limits of the mail model that the config sets, handed to a backend when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    pub mailboxes_per_account_max: u64,
    /// PostgreSQL only: connections held open at most (`limits.store_connections_max`).
    pub connections_max: u64,
    pub keywords_per_mailbox_max: u64,
    pub quota_default: Quota,
    /// SQLite only: bytes its file system keeps free (`limits.disk_free_bytes_min`).
    pub disk_free_bytes_min: u64,
}

impl Default for ModelLimits {
    fn default() -> Self {
        ModelLimits::from(&crate::config::Limits::default())
    }
}

impl From<&crate::config::Limits> for ModelLimits {
    fn from(l: &crate::config::Limits) -> Self {
        let unlimited_at_zero = |v: u64| (v > 0).then_some(v);
        ModelLimits {
            mailboxes_per_account_max: l.mailboxes_per_account_max,
            connections_max: l.store_connections_max,
            keywords_per_mailbox_max: l.keywords_per_mailbox_max,
            quota_default: Quota {
                bytes: unlimited_at_zero(l.quota_bytes_default),
                messages: unlimited_at_zero(l.quota_messages_default),
            },
            disk_free_bytes_min: l.disk_free_bytes_min,
        }
    }
}

/// Why a rename under one of the mailbox's own children is refused (a JMAP client is told `parentId`).
pub const INSIDE_ITSELF: &str = "a mailbox cannot be moved inside itself";

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
    /// A concurrent write by another connection or node conflicted with this one (a deadlock or a
    /// serialization failure) and retrying did not get it through: nothing was stored; try again.
    #[error("a concurrent write conflicted: {0}")]
    Conflict(String),
    #[error("no such mailbox")]
    NoSuchMailbox,
    #[error("a mailbox of that name exists")]
    MailboxExists,
    #[error("{0}")]
    BadMailboxName(&'static str),
    #[error("{0}")]
    MailboxRefused(&'static str),
    #[error("at most {0} mailboxes per account")]
    TooManyMailboxes(u64),
    #[error("not a valid keyword: {0}")]
    BadKeyword(String),
    #[error("at most {0} keywords per mailbox")]
    TooManyKeywords(u64),
    /// Storing this would take an account past its quota; the account's name.
    #[error("{0} is over quota")]
    OverQuota(String),
    /// The store's disk is nearly full: new mail waits, while what frees space still goes through.
    #[error("the disk is nearly full")]
    LowOnDisk,
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
    /// Sets a user's own quota on bytes and on messages (`None` leaves that one as it is).
    async fn set_quota(
        &self,
        name: &str,
        bytes: Option<QuotaSetting>,
        messages: Option<QuotaSetting>,
    ) -> StoreResult<()>;
    /// Imports all of `batch` or nothing. Existing users are left as they are; a message imported before
    /// (see [`ImportBatch::match_content`]) is not imported again.
    async fn import(&self, batch: ImportBatch) -> StoreResult<ImportCounts>;
    /// A user's INBOX, for administration (export); `None` when there is no such user.
    async fn inbox_of(&self, user: &str) -> StoreResult<Option<MailboxId>>;
}

/// A whole backend: mail operations, account administration, the queue, and copying out and in.
pub trait Store: MailStore + AccountStore + QueueStore + CopyStore {}
impl<T: MailStore + AccountStore + QueueStore + CopyStore> Store for T {}

/// The mail operations every backend provides, and all that protocol sessions see. All writes are durable
/// when the call returns `Ok`.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// A user's credentials, for login; `None` when there is no such user.
    async fn credentials(&self, name: &str) -> StoreResult<Option<Credentials>>;
    /// The stored password hash of the account with this id; `None` once it is deleted. Sessions ask before
    /// each command whether their login still stands.
    async fn password_hash_of(&self, id: UserId) -> StoreResult<Option<String>>;
    /// From when (microseconds since the epoch) the account's bearer tokens count: those issued earlier
    /// were ended by a sign-out; `None` once the account is deleted.
    async fn tokens_from(&self, id: UserId) -> StoreResult<Option<i64>>;
    /// Ends every bearer token of the account issued before `from_micros` (a sign-out): on every node,
    /// as the next request of each asks [`MailStore::tokens_from`]. Never moves the mark back.
    async fn end_tokens(&self, id: UserId, from_micros: i64) -> StoreResult<()>;
    /// Which of `names` are existing users (for splitting a v1 client's coalesced credentials).
    async fn existing_users(&self, names: &[String]) -> StoreResult<Vec<String>>;
    /// What delivery needs of the named user: whether it can take one more message, so SMTP can say
    /// a mailbox is full at RCPT, before the data, and whether its automatic reply is on. `None` when
    /// there is no such user.
    async fn recipient(&self, name: &str) -> StoreResult<Option<Recipient>>;
    /// `Ok` when a message of `bytes` would leave the store's disk reserve free
    /// (`limits.disk_free_bytes_min`), else [`StoreError::LowOnDisk`], so SMTP can refuse at MAIL
    /// (RFC 1870 `SIZE=`) before the data. A store whose disk is not its own (PostgreSQL) has no
    /// reserve to check.
    async fn has_disk_room(&self, _bytes: u64) -> StoreResult<()> {
        Ok(())
    }
    /// The account's usage and the quota in force on it (its own or the server's default); `None` when
    /// there is no such account (IMAP's QUOTA).
    async fn usage(&self, user: UserId) -> StoreResult<Option<(Usage, Quota)>>;
    /// The account's automatic reply and its version, which every change raises (0: never set; JMAP's
    /// state string). An unknown account has the default, switched off.
    async fn vacation(&self, user: UserId) -> StoreResult<(Vacation, u64)>;
    /// Replaces the account's automatic reply; returns its new version. Switching it on or changing it
    /// forgets whom it answered, so each correspondent is told the new text once.
    async fn set_vacation(&self, user: UserId, vacation: &Vacation) -> StoreResult<u64>;
    /// Whether the automatic reply may go to `sender` (lower case) now: not when it went there less than
    /// `interval_micros` ago, nor when the account remembers [`rules::VACATION_SENDERS_MAX`] senders
    /// answered within the interval (a flood of senders gets that many replies, no more). Otherwise
    /// `sender` is remembered as answered now, and `true`.
    async fn vacation_reply_due(
        &self,
        user: UserId,
        sender: &str,
        now_micros: i64,
        interval_micros: i64,
    ) -> StoreResult<bool>;
    /// The account's identity settings (JMAP's Identity: display names, signatures, identities it added)
    /// as the JSON text the JMAP layer wrote, and their version, which every change raises (0: never
    /// set; JMAP's state string). The store keeps the text as it is given.
    async fn identity_settings(&self, user: UserId) -> StoreResult<(Option<String>, u64)>;
    /// Replaces the account's identity settings if their version is still `version`, and returns the
    /// new one; `None` when another change came first (the caller reads them again).
    async fn set_identity_settings(
        &self,
        user: UserId,
        settings: &str,
        version: u64,
    ) -> StoreResult<Option<u64>>;
    /// Keeps a JMAP EmailSubmission after sending, as the JSON text given; returns its number, higher
    /// than any the store gave before. Kept submissions past [`rules::SUBMISSIONS_KEPT_MAX`], and those
    /// older than [`rules::SUBMISSION_KEPT_MICROS`], are dropped by the same write.
    async fn add_submission(&self, user: UserId, object: &str, now_micros: i64)
    -> StoreResult<u64>;
    /// The account's kept submissions by number, ascending.
    async fn submissions(&self, user: UserId) -> StoreResult<Vec<(u64, String)>>;
    /// Forgets one kept submission; false when the account has none by that number.
    async fn destroy_submission(&self, user: UserId, id: u64) -> StoreResult<bool>;
    /// The oldest existing account's name (who gets `postmaster` mail by default); `None` with no users.
    async fn first_user(&self) -> StoreResult<Option<String>>;
    /// Delivers one message to each named local user's INBOX: all or nothing, its bytes stored once. An
    /// unknown name fails the whole delivery with [`StoreError::UnknownRecipient`], one over quota with
    /// [`StoreError::OverQuota`], and nothing is stored. With `sent_copy_of`, the same transaction keeps a
    /// copy, flagged seen, in that account's Sent mailbox (when it has one): the same bytes, unless the
    /// sender is also a recipient (then two messages, the one sent and the one received).
    async fn deliver(
        &self,
        recipients: &[String],
        message: NewMessage,
        sent_copy_of: Option<UserId>,
    ) -> StoreResult<Vec<Delivered>> {
        self.submit(Delivery {
            local: recipients.to_vec(),
            message,
            sent_copy_of,
            junk: false,
            outbound: None,
        })
        .await
    }
    /// [`MailStore::deliver`] with everything a delivery can carry: local copies (to Junk with
    /// `junk`), the sender's Sent copy, and the queue entries for other domains, all in one
    /// transaction. With no local recipient and only queue entries, nothing is checked against quotas.
    async fn submit(&self, delivery: Delivery) -> StoreResult<Vec<Delivered>>;
    /// The account's mailboxes, by name.
    async fn mailboxes(&self, user: UserId) -> StoreResult<Vec<MailboxInfo>>;
    /// One mailbox of the account by name (`inbox` in any case is INBOX); `None` when there is none.
    async fn mailbox(&self, user: UserId, name: &str) -> StoreResult<Option<MailboxInfo>>;
    /// Creates a mailbox, and any missing ancestors, subscribed when asked (or when the name still was:
    /// see [`MailStore::subscribe`]). Returns the new mailbox's id.
    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        subscribed: bool,
    ) -> StoreResult<MailboxId>;
    /// Renames a mailbox and every descendant. Renaming INBOX moves its messages into a new mailbox of
    /// that name and leaves INBOX, empty, in place (RFC 9051 §6.3.6).
    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> StoreResult<()>;
    /// Deletes a mailbox and its messages; its descendants stay. INBOX cannot be deleted.
    async fn delete_mailbox(&self, user: UserId, name: &str) -> StoreResult<()>;
    /// Subscribes to or unsubscribes from one of the account's mailboxes. A mailbox deleted while
    /// subscribed leaves its name subscribed ([`MailStore::kept_subscriptions`], RFC 3501 §6.3.6) until
    /// it is unsubscribed or a mailbox of that name is made.
    async fn subscribe(&self, user: UserId, name: &str, subscribed: bool) -> StoreResult<()>;
    /// The names the account is subscribed to that have no mailbox, in byte order.
    async fn kept_subscriptions(&self, user: UserId) -> StoreResult<Vec<String>>;
    /// Claims the mailbox's messages below UID `below` as `\Recent` for one IMAP session (RFC 3501
    /// §2.3.2: the first session told of a message is the one that sees it recent): raises the mailbox's
    /// first recent UID to `below`, if lower, and returns what it was. The caller's are those from the
    /// value returned up to `below`; a concurrent claim never gets the same ones. Not a change of the
    /// mailbox: no modseq moves and no one is told.
    async fn claim_recent(&self, mailbox: MailboxId, below: u32) -> StoreResult<u32>;
    /// The mailbox's first recent UID as it stands: the lowest no session has claimed. A read, so a
    /// session can see that another already claimed what it was told of, and spare the write.
    async fn first_recent_uid(&self, mailbox: MailboxId) -> StoreResult<u32>;
    /// How many of the mailbox's messages no session has claimed as `\Recent` (STATUS RECENT): a count
    /// from its first recent UID, so asked only when wanted.
    async fn recent_count(&self, mailbox: MailboxId) -> StoreResult<u64>;
    /// Stores a message in a mailbox with the given flags (IMAP APPEND, a draft, a Sent copy). Quota applies.
    async fn append(
        &self,
        mailbox: MailboxId,
        message: NewMessage,
        flags: Flags,
    ) -> StoreResult<u32>;
    /// Changes the flags of the listed messages at once (UIDs not present are skipped). With
    /// `unchanged_since`, a message whose modseq is above it is left alone and reported refused.
    async fn update_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> StoreResult<FlagUpdate>;
    /// Copies (or, with `remove_source`, moves) the listed messages to another mailbox of the same account,
    /// all or nothing, without writing their bytes again. Copies count against the quota; moves do not.
    async fn copy(
        &self,
        user: UserId,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove_source: bool,
    ) -> StoreResult<CopyMap>;
    /// Removes messages for good: the listed UIDs (all, when `uids` is `None`), and with `only_deleted`
    /// only those flagged `\Deleted`. Returns the UIDs removed, in order.
    async fn expunge(
        &self,
        mailbox: MailboxId,
        uids: Option<&[u32]>,
        only_deleted: bool,
    ) -> StoreResult<Vec<u32>>;
    /// Stores a new message in each of `mailboxes` (the account's, at least one) with `flags`, in one
    /// transaction: its bytes once, a copy in each, all against the quota; nothing is stored when any
    /// part is refused. Returns the id of its bytes (JMAP's Email id).
    async fn create_email(
        &self,
        user: UserId,
        mailboxes: &[MailboxId],
        message: NewMessage,
        flags: Flags,
    ) -> StoreResult<i64>;
    /// Changes every copy of `blob` in the account's mailboxes as one (JMAP's Email/set update and
    /// destroy): where its copies are, then the keywords of each that stays. All or nothing, against
    /// the copies as they are when it runs.
    async fn change_email(
        &self,
        user: UserId,
        blob: i64,
        change: email_change::EmailChange,
    ) -> StoreResult<email_change::EmailChanged>;
    /// The account's change counter: it moves with every change to any of its mailboxes or messages, so
    /// "did anything change since X" is one lookup. `None` when there is no such account.
    async fn account_modseq(&self, user: UserId) -> StoreResult<Option<u64>>;
    /// The account's mailboxes changed after account modseq `since` (their ids), and the ids of those
    /// deleted since.
    async fn mailboxes_changed(
        &self,
        user: UserId,
        since: u64,
    ) -> StoreResult<(Vec<MailboxId>, Vec<MailboxId>)>;
    /// Changes after `since`, at most `limit` of them.
    async fn changes_from(
        &self,
        mailbox: MailboxId,
        since: Since,
        limit: usize,
    ) -> StoreResult<Changes>;
    /// Changes after `since_modseq`, at most `limit` of them.
    async fn changes(
        &self,
        mailbox: MailboxId,
        since_modseq: u64,
        limit: usize,
    ) -> StoreResult<Changes> {
        self.changes_from(mailbox, Since::modseq(since_modseq), limit)
            .await
    }
    /// Every message of a mailbox (UID and system flags) and its highest modseq, in one snapshot (IMAP
    /// SELECT). An unknown mailbox gives an empty snapshot.
    async fn snapshot(&self, mailbox: MailboxId) -> StoreResult<MailboxSnapshot>;
    /// The listed messages, in UID order (UIDs not present are skipped), with what `wanted` asks for. At
    /// most [`MESSAGES_PER_CALL_MAX`] UIDs per call.
    async fn messages(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        wanted: Wanted,
    ) -> StoreResult<Vec<Listed>>;
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
    /// Where a message's bytes are, to stream them (a large READ or RETR): `None` when there is no such
    /// message.
    async fn body_ref(&self, mailbox: MailboxId, uid: u32) -> StoreResult<Option<BodyRef>>;
    /// At most `max` bytes of a message's bytes from `offset`. Fails once the message is gone (expunged
    /// by another session meanwhile): what was sent of it cannot be completed then.
    async fn body_chunk(&self, body: BodyRef, offset: u64, max: usize) -> StoreResult<Vec<u8>>;
    /// What was parsed of a message at delivery (envelope, MIME structure with byte offsets) as stored,
    /// JSON of `jmail_proto::summary::Summary`.
    async fn summary(&self, mailbox: MailboxId, uid: u32) -> StoreResult<Option<String>>;
    /// Where the account keeps copies of the given stored bytes ([`MessageMeta::blob`]): a [`Located`] for
    /// each, ordered by blob, mailbox and UID; blobs the account holds no copy of are left out. At most
    /// [`MESSAGES_PER_CALL_MAX`] blobs per call.
    async fn locate(&self, user: UserId, blobs: &[i64]) -> StoreResult<Vec<Located>>;
    /// Every copy of the account's stored bytes that it holds more than once (an Email in several
    /// mailboxes, or twice in one), ordered by blob, mailbox and UID; at most `limit` of them, the first.
    async fn shared_copies(&self, user: UserId, limit: usize) -> StoreResult<Vec<Located>>;
    /// The copies of the given stored bytes that the account expunged and whose tombstones are kept,
    /// ordered by blob, mailbox and UID. At most [`MESSAGES_PER_CALL_MAX`] blobs per call.
    async fn tombstones(&self, user: UserId, blobs: &[i64]) -> StoreResult<Vec<Tombstone>>;
    /// Keeps an upload (JMAP's blobs, before a message uses them), in the store so that any node finds
    /// it. Expired uploads go on the way. `false`, and nothing kept, when the account's unexpired uploads
    /// would pass [`NewUpload::account_bytes_max`].
    async fn upload_put(&self, upload: NewUpload) -> StoreResult<bool>;
    /// An unexpired upload of the account: its bytes and media type.
    async fn upload_get(
        &self,
        user: UserId,
        key: &str,
        now_micros: i64,
    ) -> StoreResult<Option<(Vec<u8>, String)>>;
    /// The account's feed of changes (push): every commit that touches it, or a resync signal.
    fn feed(&self, user: UserId) -> AccountFeed;
    /// Finishes queued writes and closes the backend.
    async fn close(&self);
}
