//! The embedded default backend: one SQLite file in WAL mode under the data dir.

mod checkpointer;
mod copy;
mod counters;
mod foreign;
mod queue;
mod reads;
mod schema;
mod syncer;
mod write_emails;
mod write_mailboxes;
mod write_messages;
mod write_vacation;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::disk_reserve::DiskReserve;
use super::email_change::{EmailChange, EmailChanged};
use super::{
    AccountStore, Attempted, Changes, CopyMap, Delivered, Delivery, FlagOp, FlagUpdate, Flags,
    ImportBatch, ImportCounts, MailStore, MailboxId, MailboxInfo, MessageMeta, ModelLimits,
    NewMessage, Notifier, QueueEntry, QueueStore, QuotaSetting, Since, StoreError, StoreResult,
    UserId, UserInfo, flags,
};
use writer::{Ctx, Job, WriteOp};

pub use schema::latest_version as schema_version;
pub use writer::WRITE_BATCH_MAX;

/// Writes waiting for the writer thread. When full, callers wait: backpressure instead of unbounded memory.
pub const WRITE_QUEUE_MAX: usize = 4096;
/// Read connections open at once. Each costs a file handle and SQLite's page cache.
pub const READ_CONNECTIONS_MAX: usize = 8;
/// How long a connection waits for another process's write lock (the CLI writing while the server runs).
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// The file name of the database inside the data dir.
pub const DB_FILE: &str = "jmail.db";

/// SQLite-backed [`MailStore`].
pub struct SqliteStore {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    notifier: Arc<Notifier>,
    /// The connection point lookups run on inline, on the caller's own async worker (see
    /// [`SqliteStore::point_read`]).
    inline: Mutex<Option<Connection>>,
    limits: ModelLimits,
    /// Free space kept on the data dir's disk: checked before every write that adds mail.
    reserve: DiskReserve,
    /// Told when a delivery queues mail for other domains, so the delivery worker looks at once.
    queue_wake: Arc<tokio::sync::Notify>,
}

/// How long an inline point lookup may wait for a lock (only a WAL recovery or a migration holds one
/// against readers): it runs on an async worker, which must not stall.
const INLINE_BUSY_MS: u64 = 20;
/// Most blobs one `locate` looks up inline on the caller's worker (about a microsecond of index probes
/// each); more go to the reader pool.
const LOCATE_INLINE_MAX: usize = 64;

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

pub(super) fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // FULL: in WAL mode, every commit is fsynced before it returns. The writer alone switches to NORMAL,
    // once its syncer runs to flush the WAL before anyone hears Ok (writer.rs, syncer.rs).
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(conn)
}

/// Commits one real write (the schema version, rewritten as it is), so a store that can be read but not
/// written (a read-only data dir with leftover `-wal`/`-shm` files, a read-only mount) refuses to start
/// instead of answering every delivery with a temporary failure.
fn check_commit(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    crate::metrics::METRICS.store_error();
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` with the default limits.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_with(data_dir, ModelLimits::default())
    }

    /// Opens (creating if needed) the database in `data_dir` and migrates it to the current schema; mail
    /// stored before summaries were kept gets its summary now.
    pub fn open_with(data_dir: &Path, limits: ModelLimits) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir).map_err(backend)?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_connection(&path).map_err(backend)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(backend)?;
        if mode != "wal" {
            return Err(StoreError::Backend(format!(
                "could not enable WAL (mode {mode})"
            )));
        }
        schema::migrate(&mut conn).map_err(backend)?;
        schema::fill_in_summaries(&mut conn).map_err(backend)?;
        check_commit(&mut conn).map_err(|e| {
            StoreError::Backend(format!(
                "the store in {} cannot commit a write ({e}); check that the data dir and its files are writable by this user and the disk is not full or read-only",
                data_dir.display()
            ))
        })?;
        let reserve = DiskReserve::new(data_dir.to_path_buf(), limits.disk_free_bytes_min);
        let notifier = Arc::new(Notifier::default());
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_MAX);
        let thread_notifier = notifier.clone();
        let db = path.clone();
        let handle = std::thread::Builder::new()
            .name("jmail-sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, thread_notifier, limits, &db))
            .map_err(backend)?;
        let weak = tx.downgrade();
        std::thread::Builder::new()
            .name("jmail-sqlite-poll".into())
            .spawn(move || foreign::poll(weak))
            .map_err(backend)?;
        Ok(SqliteStore {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(READ_CONNECTIONS_MAX)),
            }),
            notifier,
            inline: Mutex::new(None),
            limits,
            reserve,
            queue_wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// `Ok` when `adding` more bytes leave the disk reserve free, counting the database's free pages
    /// (left by deleted mail, reused before the file grows), which are read only when the disk is short.
    async fn keep_disk_reserve(&self, adding: u64) -> StoreResult<()> {
        let Some(short) = self.reserve.shortfall(adding) else {
            return Ok(());
        };
        let reusable = self.read(reads::reusable_bytes).await?;
        self.reserve.refuse(short, reusable)
    }

    /// Queues a write and waits until it is committed and on disk.
    async fn write<T: Send + 'static>(
        &self,
        run: impl FnOnce(&mut Ctx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.queue_write(WriteOp::new(reply, run)).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a write whose loss in a crash harms no one and waits only until it is committed
    /// ([`WriteOp::answered_at_commit`]).
    async fn write_not_flushed<T: Send + 'static>(
        &self,
        run: impl FnOnce(&mut Ctx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.queue_write(WriteOp::answered_at_commit(reply, run))
            .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn queue_write(&self, op: WriteOp) -> StoreResult<()> {
        let sender = self
            .writer
            .lock()
            .expect("writer lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        sender
            .send(Job::Write(op))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Runs a lookup of one row by key (a few microseconds) on the caller's async worker, sparing it the
    /// two thread hops of [`Self::read`]: a login check on every command, a recipient at every RCPT.
    /// Only one runs inline at a time; one that finds the inline connection taken goes to the pool.
    async fn point_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        if self.writer.lock().expect("writer lock").is_none() {
            return Err(StoreError::Closed);
        }
        let Ok(mut slot) = self.inline.try_lock() else {
            return self.read(move |c| f(c)).await;
        };
        if slot.is_none() {
            let conn = open_connection(&self.readers.path).map_err(backend)?;
            conn.busy_timeout(std::time::Duration::from_millis(INLINE_BUSY_MS))
                .map_err(backend)?;
            *slot = Some(conn);
        }
        f(slot.as_ref().expect("opened above")).map_err(backend)
    }

    /// Runs a read on a pooled connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        // The permit goes with the blocking work: a cancelled caller does not free it while the query runs.
        let permit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().expect("reader pool lock").pop();
            let mut conn = match idle {
                Some(c) => c,
                None => open_connection(&pool.path)?,
            };
            let result = f(&mut conn);
            let mut idle = pool.idle.lock().expect("reader pool lock");
            if idle.len() < READ_CONNECTIONS_MAX {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(backend)?
        .map_err(backend)
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn queue_due(&self, now_micros: i64, max: usize) -> StoreResult<Vec<(i64, String)>> {
        self.read(move |c| queue::due(c, now_micros, max)).await
    }

    async fn queue_take(
        &self,
        ids: Vec<i64>,
        now_micros: i64,
        lease_until_micros: i64,
    ) -> StoreResult<Vec<QueueEntry>> {
        self.write(move |ctx| queue::take(ctx, &ids, now_micros, lease_until_micros))
            .await
    }

    async fn queue_attempted(&self, outcome: Attempted) -> StoreResult<()> {
        self.write(move |ctx| queue::attempted(ctx, &outcome)).await
    }

    async fn queue_list(&self) -> StoreResult<Vec<QueueEntry>> {
        self.read(|c| queue::list(c)).await
    }

    async fn queue_depth(&self) -> StoreResult<u64> {
        self.point_read(|c| {
            c.prepare_cached("SELECT count(*) FROM queue")?
                .query_row([], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn queue_entry(&self, id: i64) -> StoreResult<Option<QueueEntry>> {
        self.write(move |ctx| queue::get(ctx.tx, id)).await
    }

    async fn queue_retry(&self, id: Option<i64>, now_micros: i64) -> StoreResult<u64> {
        let changed = self
            .write(move |ctx| queue::retry(ctx.tx, id, now_micros))
            .await?;
        if changed > 0 {
            self.queue_wake.notify_one();
        }
        Ok(changed)
    }

    async fn queue_drop(&self, id: i64) -> StoreResult<bool> {
        self.write(move |ctx| queue::drop_entry(ctx.tx, id)).await
    }

    async fn queue_next_due(&self) -> StoreResult<Option<i64>> {
        self.read(|c| queue::next_due(c)).await
    }

    async fn queue_recover(&self, now_micros: i64) -> StoreResult<u64> {
        self.write(move |ctx| queue::recover(ctx.tx, now_micros))
            .await
    }

    fn queue_waker(&self) -> Arc<tokio::sync::Notify> {
        self.queue_wake.clone()
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_user(
        &self,
        name: &str,
        hash: &str,
        welcome: Option<NewMessage>,
    ) -> StoreResult<()> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.write(move |ctx| write_mailboxes::create_user(ctx, &name, &hash, welcome.as_ref()))
            .await
    }

    async fn set_password(&self, name: &str, hash: &str) -> StoreResult<()> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.write(move |ctx| {
            let sql = "UPDATE users SET password_hash = ?1 WHERE name = ?2";
            write_mailboxes::change_user(ctx.tx, sql, rusqlite::params![hash, name], &name)
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> StoreResult<()> {
        let name = name.to_string();
        self.write(move |ctx| {
            let sql = "DELETE FROM users WHERE name = ?1";
            write_mailboxes::change_user(ctx.tx, sql, rusqlite::params![name], &name)
        })
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserInfo>> {
        let default = self.limits.quota_default;
        self.read(move |c| reads::users(c, default)).await
    }

    async fn set_quota(
        &self,
        name: &str,
        bytes: Option<QuotaSetting>,
        messages: Option<QuotaSetting>,
    ) -> StoreResult<()> {
        let name = name.to_string();
        self.write(move |ctx| write_mailboxes::set_quota(ctx.tx, &name, bytes, messages))
            .await
    }

    async fn import(&self, batch: ImportBatch) -> StoreResult<ImportCounts> {
        let bytes: usize = batch.messages.iter().map(|m| m.message.raw.len()).sum();
        self.keep_disk_reserve(bytes as u64).await?;
        self.write(move |ctx| write_messages::import(ctx, batch))
            .await
    }

    async fn inbox_of(&self, user: &str) -> StoreResult<Option<MailboxId>> {
        let user = user.to_string();
        self.read(move |c| Ok(reads::credentials(c, &user)?.map(|c| c.inbox)))
            .await
    }
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn credentials(&self, name: &str) -> StoreResult<Option<super::Credentials>> {
        let lookup = name.to_string();
        self.read(move |c| reads::credentials(c, &lookup)).await
    }

    /// Runs inline on the caller's thread, not on the blocking pool: every command of every session asks,
    /// and a primary-key lookup on a cached statement takes microseconds, far less than the hop to the
    /// pool and back (which made each refresh a third slower).
    async fn password_hash_of(&self, id: super::UserId) -> StoreResult<Option<String>> {
        self.point_read(move |c| reads::password_hash_of(c, id))
            .await
    }

    async fn tokens_from(&self, id: super::UserId) -> StoreResult<Option<i64>> {
        self.point_read(move |c| reads::tokens_from(c, id)).await
    }

    async fn end_tokens(&self, id: super::UserId, from_micros: i64) -> StoreResult<()> {
        self.write(move |ctx| {
            ctx.tx
                .execute(
                    "UPDATE users SET tokens_from_micros = max(tokens_from_micros, ?2) WHERE id = ?1",
                    rusqlite::params![id, from_micros],
                )
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    async fn existing_users(&self, names: &[String]) -> StoreResult<Vec<String>> {
        let names = names.to_vec();
        self.read(move |c| reads::existing_users(c, &names)).await
    }

    async fn has_disk_room(&self, bytes: u64) -> StoreResult<()> {
        self.keep_disk_reserve(bytes).await
    }

    async fn recipient(&self, name: &str) -> StoreResult<Option<super::Recipient>> {
        let (name, default) = (name.to_string(), self.limits.quota_default);
        self.point_read(move |c| reads::recipient(c, &name, default))
            .await
    }

    async fn vacation(&self, user: UserId) -> StoreResult<(super::Vacation, u64)> {
        self.point_read(move |c| reads::vacation(c, user)).await
    }

    async fn set_vacation(&self, user: UserId, vacation: &super::Vacation) -> StoreResult<u64> {
        let vacation = vacation.clone();
        self.write(move |ctx| write_vacation::set(ctx, user, &vacation))
            .await
    }

    async fn identity_settings(&self, user: UserId) -> StoreResult<(Option<String>, u64)> {
        self.point_read(move |c| reads::identity_settings(c, user))
            .await
    }

    async fn set_identity_settings(
        &self,
        user: UserId,
        settings: &str,
        version: u64,
    ) -> StoreResult<Option<u64>> {
        let settings = settings.to_string();
        self.write(move |ctx| write_vacation::set_identity_settings(ctx, user, &settings, version))
            .await
    }

    async fn add_submission(
        &self,
        user: UserId,
        object: &str,
        now_micros: i64,
    ) -> StoreResult<u64> {
        let object = object.to_string();
        self.write(move |ctx| write_vacation::add_submission(ctx, user, &object, now_micros))
            .await
    }

    async fn submissions(&self, user: UserId) -> StoreResult<Vec<(u64, String)>> {
        self.point_read(move |c| reads::submissions(c, user)).await
    }

    async fn destroy_submission(&self, user: UserId, id: u64) -> StoreResult<bool> {
        self.write(move |ctx| write_vacation::destroy_submission(ctx, user, id))
            .await
    }

    async fn vacation_reply_due(
        &self,
        user: UserId,
        sender: &str,
        now_micros: i64,
        interval_micros: i64,
    ) -> StoreResult<bool> {
        let sender = sender.to_string();
        // Lost in a crash, the record only lets one more reply go to this sender.
        self.write_not_flushed(move |ctx| {
            write_vacation::reply_due(ctx, user, &sender, now_micros, interval_micros)
        })
        .await
    }

    async fn usage(&self, user: UserId) -> StoreResult<Option<(super::Usage, super::Quota)>> {
        let default = self.limits.quota_default;
        self.point_read(move |c| reads::usage(c, user, default))
            .await
    }

    async fn first_user(&self) -> StoreResult<Option<String>> {
        self.read(reads::first_user).await
    }

    async fn newest(
        &self,
        mailbox: MailboxId,
        limit: usize,
        bytes_max: usize,
    ) -> StoreResult<Vec<(MessageMeta, Vec<u8>)>> {
        self.read(move |c| reads::newest(c, mailbox, limit, bytes_max))
            .await
    }

    async fn submit(&self, delivery: Delivery) -> StoreResult<Vec<Delivered>> {
        self.keep_disk_reserve(delivery.message.raw.len() as u64)
            .await?;
        let queued = delivery.outbound.is_some();
        let now = chrono::Utc::now().timestamp_micros();
        let delivered = self
            .write(move |ctx| write_messages::submit(ctx, &delivery, now))
            .await?;
        crate::metrics::METRICS.delivered(delivered.len());
        if queued {
            self.queue_wake.notify_one();
        }
        Ok(delivered)
    }

    async fn mailboxes(&self, user: UserId) -> StoreResult<Vec<MailboxInfo>> {
        self.read(move |c| reads::mailboxes(c, user)).await
    }

    async fn kept_subscriptions(&self, user: UserId) -> StoreResult<Vec<String>> {
        self.read(move |c| reads::kept_subscriptions(c, user)).await
    }

    async fn recent_count(&self, mailbox: MailboxId) -> StoreResult<u64> {
        self.read(move |c| reads::recent_count(c, mailbox)).await
    }

    async fn first_recent_uid(&self, mailbox: MailboxId) -> StoreResult<u32> {
        self.read(move |c| reads::first_recent_uid(c, mailbox))
            .await?
            .ok_or(StoreError::NoSuchMailbox)
    }

    async fn mailbox(&self, user: UserId, name: &str) -> StoreResult<Option<MailboxInfo>> {
        let Ok(name) = super::rules::mailbox_name(name) else {
            return Ok(None);
        };
        self.read(move |c| reads::mailbox(c, user, &name)).await
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        subscribed: bool,
    ) -> StoreResult<MailboxId> {
        let name = name.to_string();
        self.write(move |ctx| write_mailboxes::create_mailbox(ctx, user, &name, subscribed))
            .await
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> StoreResult<()> {
        let (from, to) = (from.to_string(), to.to_string());
        self.write(move |ctx| write_mailboxes::rename_mailbox(ctx, user, &from, &to))
            .await
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> StoreResult<()> {
        let name = name.to_string();
        self.write(move |ctx| write_mailboxes::delete_mailbox(ctx, user, &name))
            .await
    }

    async fn upload_put(&self, u: super::NewUpload) -> StoreResult<bool> {
        self.keep_disk_reserve(u.bytes.len() as u64).await?;
        self.write(move |ctx| {
            let run = || -> rusqlite::Result<bool> {
                ctx.tx
                    .prepare_cached("DELETE FROM uploads WHERE expires_micros <= ?1")?
                    .execute(rusqlite::params![u.now_micros])?;
                let held: i64 = ctx
                    .tx
                    .prepare_cached(
                        "SELECT COALESCE(SUM(length(bytes)), 0) FROM uploads WHERE user_id = ?1",
                    )?
                    .query_row(rusqlite::params![u.user], |r| r.get(0))?;
                if held as u64 + u.bytes.len() as u64 > u.account_bytes_max {
                    return Ok(false);
                }
                ctx.tx
                    .prepare_cached(
                        "INSERT INTO uploads (user_id, key, media_type, bytes, expires_micros) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![
                        u.user,
                        u.key,
                        u.media_type,
                        u.bytes,
                        u.expires_micros
                    ])?;
                Ok(true)
            };
            run().map_err(writer::backend)
        })
        .await
    }

    async fn upload_get(
        &self,
        user: UserId,
        key: &str,
        now_micros: i64,
    ) -> StoreResult<Option<(Vec<u8>, String)>> {
        let key = key.to_string();
        self.point_read(move |c| {
            c.prepare_cached(
                "SELECT bytes, media_type FROM uploads \
                 WHERE user_id = ?1 AND key = ?2 AND expires_micros > ?3",
            )?
            .query_row(rusqlite::params![user, key, now_micros], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
        })
        .await
    }

    async fn subscribe(&self, user: UserId, name: &str, subscribed: bool) -> StoreResult<()> {
        let name = name.to_string();
        self.write(move |ctx| write_mailboxes::subscribe(ctx, user, &name, subscribed))
            .await
    }

    async fn claim_recent(&self, mailbox: MailboxId, below: u32) -> StoreResult<u32> {
        // Lost in a crash, a claim only makes its messages recent to the next session again.
        self.write_not_flushed(move |ctx| write_mailboxes::claim_recent(ctx, mailbox, below))
            .await
    }

    async fn append(
        &self,
        mailbox: MailboxId,
        message: NewMessage,
        flags: Flags,
    ) -> StoreResult<u32> {
        self.keep_disk_reserve(message.raw.len() as u64).await?;
        self.write(move |ctx| write_messages::append(ctx, mailbox, &message, flags, true))
            .await
    }

    async fn update_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> StoreResult<FlagUpdate> {
        let uids = uids.to_vec();
        self.write(move |ctx| {
            write_messages::update_flags(ctx, mailbox, &uids, op, flags, unchanged_since)
        })
        .await
    }

    async fn copy(
        &self,
        user: UserId,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove_source: bool,
    ) -> StoreResult<CopyMap> {
        let uids = uids.to_vec();
        self.write(move |ctx| write_messages::copy(ctx, user, from, &uids, to, remove_source))
            .await
    }

    async fn expunge(
        &self,
        mailbox: MailboxId,
        uids: Option<&[u32]>,
        only_deleted: bool,
    ) -> StoreResult<Vec<u32>> {
        let uids = uids.map(<[u32]>::to_vec);
        self.write(move |ctx| write_messages::expunge(ctx, mailbox, uids.as_deref(), only_deleted))
            .await
    }

    async fn create_email(
        &self,
        user: UserId,
        mailboxes: &[MailboxId],
        message: NewMessage,
        flags: Flags,
    ) -> StoreResult<i64> {
        self.keep_disk_reserve(message.raw.len() as u64).await?;
        let mailboxes = mailboxes.to_vec();
        self.write(move |ctx| write_emails::create_email(ctx, user, &mailboxes, &message, flags))
            .await
    }

    async fn change_email(
        &self,
        user: UserId,
        blob: i64,
        change: EmailChange,
    ) -> StoreResult<EmailChanged> {
        self.write(move |ctx| write_emails::change_email(ctx, user, blob, &change))
            .await
    }

    async fn account_modseq(&self, user: UserId) -> StoreResult<Option<u64>> {
        self.read(move |c| reads::account_modseq(c, user)).await
    }

    async fn mailboxes_changed(
        &self,
        user: UserId,
        since: u64,
    ) -> StoreResult<(Vec<MailboxId>, Vec<MailboxId>)> {
        self.read(move |c| reads::mailboxes_changed(c, user, since))
            .await
    }

    async fn changes_from(
        &self,
        mailbox: MailboxId,
        since: Since,
        limit: usize,
    ) -> StoreResult<Changes> {
        self.read(move |c| reads::changes(c, mailbox, since, limit.max(1)))
            .await
    }

    async fn fetch(
        &self,
        mailbox: MailboxId,
        uid: u32,
        mark_seen: bool,
    ) -> StoreResult<Option<Vec<u8>>> {
        if mark_seen {
            let seen = Flags::system(flags::SEEN);
            self.update_flags(mailbox, &[uid], FlagOp::Add, seen, None)
                .await?;
        }
        self.read(move |c| reads::body(c, mailbox, uid)).await
    }

    async fn body_ref(&self, mailbox: MailboxId, uid: u32) -> StoreResult<Option<super::BodyRef>> {
        self.read(move |c| reads::body_ref(c, mailbox, uid)).await
    }

    async fn body_chunk(
        &self,
        body: super::BodyRef,
        offset: u64,
        max: usize,
    ) -> StoreResult<Vec<u8>> {
        self.read(move |c| reads::body_chunk(c, body, offset, max))
            .await
    }

    async fn snapshot(&self, mailbox: MailboxId) -> StoreResult<super::MailboxSnapshot> {
        self.read(move |c| reads::snapshot(c, mailbox)).await
    }

    async fn messages(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        wanted: super::Wanted,
    ) -> StoreResult<Vec<super::Listed>> {
        let uids = uids[..uids.len().min(super::MESSAGES_PER_CALL_MAX)].to_vec();
        self.read(move |c| reads::messages(c, mailbox, &uids, wanted))
            .await
    }

    async fn summary(&self, mailbox: MailboxId, uid: u32) -> StoreResult<Option<String>> {
        self.read(move |c| reads::summary(c, mailbox, uid)).await
    }

    async fn locate(&self, user: UserId, blobs: &[i64]) -> StoreResult<Vec<super::Located>> {
        let blobs = blobs.to_vec();
        // An Email/get's worth is a few index probes: inline, without the pool's two thread hops.
        match blobs.len() <= LOCATE_INLINE_MAX {
            true => {
                self.point_read(move |c| reads::locate(c, user, &blobs))
                    .await
            }
            false => self.read(move |c| reads::locate(c, user, &blobs)).await,
        }
    }

    async fn tombstones(&self, user: UserId, blobs: &[i64]) -> StoreResult<Vec<super::Tombstone>> {
        let blobs = blobs.to_vec();
        self.read(move |c| reads::tombstones(c, user, &blobs)).await
    }

    async fn shared_copies(&self, user: UserId, limit: usize) -> StoreResult<Vec<super::Located>> {
        self.read(move |c| reads::shared_copies(c, user, limit))
            .await
    }

    fn feed(&self, user: UserId) -> super::AccountFeed {
        self.notifier.subscribe(user)
    }

    async fn close(&self) {
        drop(self.writer.lock().expect("writer lock").take());
        let handle = self.writer_thread.lock().expect("writer lock").take();
        if let Some(handle) = handle {
            // The thread ends once queued writes are committed and the WAL is checkpointed.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.readers.idle.lock().expect("reader pool lock").clear();
        drop(self.inline.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_store_that_cannot_commit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::SqliteStore::open(dir.path()).unwrap());
        let path = dir.path().join(super::DB_FILE);
        let mut writable = rusqlite::Connection::open(&path).unwrap();
        assert!(super::check_commit(&mut writable).is_ok());
        let mut read_only = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        assert!(super::check_commit(&mut read_only).is_err());
    }

    /// .cargo/config.toml builds SQLite without its two process-wide locks (a shared page-cache LRU and
    /// allocation counters): a build made without that file would serve, but contend between threads.
    #[test]
    fn sqlite_is_built_without_process_wide_locks() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
