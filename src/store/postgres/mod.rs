//! The PostgreSQL backend: several `jmail serve` nodes share one database.
//!
//! Every op is one transaction on a pooled connection; PostgreSQL's own group commit makes concurrent
//! commits share a WAL flush, so there is no writer thread here. Counters live in the account and
//! mailbox rows and are moved by `UPDATE ... RETURNING`, whose row locks order concurrent writers to
//! the same mailbox, whichever node they run on. An op that meets a deadlock or serialization failure
//! is run again from the start. Push crosses nodes by LISTEN/NOTIFY (`push.rs`).

mod counters;
mod push;
mod queue;
mod reads;
mod schema;
mod sql;
mod write_emails;
mod write_mailboxes;
mod write_messages;
mod write_vacation;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_util::sync::CancellationToken;

use super::email_change::{EmailChange, EmailChanged};

use super::{
    AccountFeed, AccountStore, Attempted, BodyRef, Changes, CopyMap, Credentials, Delivered,
    Delivery, FlagOp, FlagUpdate, Flags, ImportBatch, ImportCounts, Listed, MailStore, MailboxId,
    MailboxInfo, MailboxSnapshot, MessageMeta, ModelLimits, NewMessage, QueueEntry, QueueStore,
    Quota, QuotaSetting, Since, StoreError, StoreResult, Usage, UserId, UserInfo, Wanted, flags,
};

pub use schema::latest_version as schema_version;

/// How long an op waits for a free connection, or for a new one to be made, before failing
/// (temporarily: a client is told to try again).
const CONNECTION_WAIT_SECS: u64 = 10;
/// Times an op that met a deadlock or serialization failure is run again before it fails.
const CONFLICT_RETRIES: u32 = 5;

/// PostgreSQL-backed [`super::Store`].
pub struct PgStore {
    pool: Pool,
    limits: ModelLimits,
    push: Arc<push::Push>,
    stop: CancellationToken,
    queue_wake: Arc<tokio::sync::Notify>,
}

/// Runs `$body` (an async block's contents using `$ctx`) in a read-write transaction, committed when it
/// returns `Ok`; a conflict runs it again from the start. Its touched mailboxes go to the feeds after
/// the commit.
macro_rules! write {
    ($store:expr, |$ctx:ident| $body:expr) => {{
        let store: &$crate::store::postgres::PgStore = $store;
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            let mut client = store.client().await?;
            let tx = client.transaction().await.map_err($crate::store::postgres::sql::db)?;
            let mut $ctx = $crate::store::postgres::sql::Ctx::new(&tx, &store.limits);
            let result = async { $body }.await;
            let touched = std::mem::take(&mut $ctx.touched);
            let outcome = match result {
                Ok(value) => tx.commit().await.map_err($crate::store::postgres::sql::db).map(|()| value),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Err($crate::store::StoreError::Conflict(why)) if attempt < $crate::store::postgres::CONFLICT_RETRIES => {
                    // The connection goes back to the pool while this op waits.
                    drop(client);
                    attempt += 1;
                    tracing::debug!(attempt, %why, "a write conflicted; running it again");
                    tokio::time::sleep(std::time::Duration::from_millis(rand::random::<u64>() % (5 << attempt))).await;
                }
                Ok(value) => {
                    // One op per transaction here (PostgreSQL commits concurrent ones in a group itself).
                    $crate::metrics::METRICS.committed(1, started.elapsed());
                    store.push.committed(touched);
                    break Ok(value);
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// Runs `$body` in a read-only REPEATABLE READ transaction: its statements see one snapshot.
macro_rules! read {
    ($store:expr, |$ctx:ident| $body:expr) => {{
        let store: &$crate::store::postgres::PgStore = $store;
        let mut client = store.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err($crate::store::postgres::sql::db)?;
        let $ctx = $crate::store::postgres::sql::Ctx::new(&tx, &store.limits);
        let result = async { $body }.await;
        drop($ctx);
        match result {
            Ok(value) => tx
                .commit()
                .await
                .map_err($crate::store::postgres::sql::db)
                .map(|()| value),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }};
}

/// Runs `$body`, whose reads are one statement, straight on a pooled connection (no transaction).
macro_rules! point {
    ($store:expr, |$ctx:ident| $body:expr) => {{
        let store: &$crate::store::postgres::PgStore = $store;
        let client = store.client().await?;
        let $ctx = $crate::store::postgres::sql::Ctx::on_client(&client, &store.limits);
        async { $body }.await
    }};
}

mod copy;
mod throttle;

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`), migrates it, and
    /// starts this node's push tasks.
    pub async fn open(url: &str, limits: ModelLimits) -> StoreResult<PgStore> {
        Self::open_with_tls(url, limits, None).await
    }

    /// [`PgStore::open`]; with `sslmode=require` in the URL, every connection is TLS with the server's
    /// certificate verified against the system's roots and `extra_roots` (a PEM file). Without it, no TLS
    /// is tried: `prefer` (libpq's default) would fail on a server whose certificate cannot be verified
    /// (Debian's self-signed default) rather than fall back.
    pub async fn open_with_tls(
        url: &str,
        limits: ModelLimits,
        extra_roots: Option<&std::path::Path>,
    ) -> StoreResult<PgStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            crate::client_tls::verifying_config(extra_roots, "store_tls_roots")
                .map_err(StoreError::Backend)?,
        );
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = Some(Duration::from_secs(CONNECTION_WAIT_SECS));
        let pool = Pool::builder(manager)
            .max_size(limits.connections_max.clamp(1, 1_000) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .recycle_timeout(wait)
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        schema::migrate(&mut client).await?;
        drop(client);
        let push = Arc::new(push::Push::new());
        let stop = CancellationToken::new();
        tokio::spawn(push::listen(push.clone(), config, tls, stop.clone()));
        tokio::spawn(push::send(push.clone(), pool.clone(), stop.clone()));
        tokio::spawn(push::poll(push.clone(), pool.clone(), stop.clone()));
        Ok(PgStore {
            pool,
            limits,
            push,
            stop,
            queue_wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        if self.stop.is_cancelled() {
            return Err(StoreError::Closed);
        }
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("no database connection: {e}")))
    }
}

/// A store dropped without `close` still stops its push tasks and its listener.
impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl QueueStore for PgStore {
    async fn queue_due(&self, now_micros: i64, max: usize) -> StoreResult<Vec<(i64, String)>> {
        point!(self, |ctx| queue::due(&ctx, now_micros, max).await)
    }

    async fn queue_take(
        &self,
        ids: Vec<i64>,
        now_micros: i64,
        lease_until_micros: i64,
    ) -> StoreResult<Vec<QueueEntry>> {
        write!(self, |ctx| queue::take(
            &ctx,
            &ids,
            now_micros,
            lease_until_micros
        )
        .await)
    }

    async fn queue_attempted(&self, outcome: Attempted) -> StoreResult<()> {
        write!(self, |ctx| queue::attempted(&mut ctx, &outcome).await)
    }

    async fn queue_list(&self) -> StoreResult<Vec<QueueEntry>> {
        read!(self, |ctx| queue::list(&ctx).await)
    }

    async fn queue_depth(&self) -> StoreResult<u64> {
        point!(self, |ctx| Ok(ctx
            .one("SELECT count(*)::BIGINT FROM queue", &[])
            .await?
            .get::<_, i64>(0) as u64))
    }

    async fn queue_entry(&self, id: i64) -> StoreResult<Option<QueueEntry>> {
        point!(self, |ctx| queue::get(&ctx, id).await)
    }

    async fn queue_retry(&self, id: Option<i64>, now_micros: i64) -> StoreResult<u64> {
        let changed = write!(self, |ctx| queue::retry(&ctx, id, now_micros).await)?;
        if changed > 0 {
            self.queue_wake.notify_one();
        }
        Ok(changed)
    }

    async fn queue_drop(&self, id: i64) -> StoreResult<bool> {
        write!(self, |ctx| queue::drop_entry(&ctx, id).await)
    }

    async fn queue_next_due(&self) -> StoreResult<Option<i64>> {
        point!(self, |ctx| queue::next_due(&ctx).await)
    }

    /// Nothing to do here: other nodes may hold live leases, which cannot be told apart from a dead
    /// node's. A dead node's leases run out by themselves (at the end of the lease the worker took).
    async fn queue_recover(&self, _now_micros: i64) -> StoreResult<u64> {
        Ok(0)
    }

    fn queue_waker(&self) -> Arc<tokio::sync::Notify> {
        self.queue_wake.clone()
    }
}

#[async_trait]
impl AccountStore for PgStore {
    async fn create_user(
        &self,
        name: &str,
        hash: &str,
        welcome: Option<NewMessage>,
    ) -> StoreResult<()> {
        write!(self, |ctx| write_mailboxes::create_user(
            &mut ctx,
            name,
            hash,
            welcome.as_ref()
        )
        .await)
    }

    async fn set_password(&self, name: &str, hash: &str) -> StoreResult<()> {
        write!(self, |ctx| {
            let sql = "UPDATE users SET password_hash = $1 WHERE name = $2";
            write_mailboxes::change_user(&ctx, sql, &[&hash, &name], name).await
        })
    }

    async fn delete_user(&self, name: &str) -> StoreResult<()> {
        write!(self, |ctx| write_mailboxes::delete_user(&ctx, name).await)
    }

    async fn list_users(&self) -> StoreResult<Vec<UserInfo>> {
        read!(self, |ctx| reads::users(&ctx, self.limits.quota_default)
            .await)
    }

    async fn set_quota(
        &self,
        name: &str,
        bytes: Option<QuotaSetting>,
        messages: Option<QuotaSetting>,
    ) -> StoreResult<()> {
        write!(self, |ctx| write_mailboxes::set_quota(
            &ctx, name, bytes, messages
        )
        .await)
    }

    async fn import(&self, batch: ImportBatch) -> StoreResult<ImportCounts> {
        write!(self, |ctx| write_messages::import(&mut ctx, &batch).await)
    }

    async fn inbox_of(&self, user: &str) -> StoreResult<Option<MailboxId>> {
        point!(self, |ctx| Ok(reads::credentials(&ctx, user)
            .await?
            .map(|c| c.inbox)))
    }
}

#[async_trait]
impl MailStore for PgStore {
    async fn credentials(&self, name: &str) -> StoreResult<Option<Credentials>> {
        point!(self, |ctx| reads::credentials(&ctx, name).await)
    }

    async fn password_hash_of(&self, id: UserId) -> StoreResult<Option<String>> {
        point!(self, |ctx| reads::password_hash_of(&ctx, id).await)
    }

    async fn tokens_from(&self, id: UserId) -> StoreResult<Option<i64>> {
        point!(self, |ctx| reads::tokens_from(&ctx, id).await)
    }

    async fn end_tokens(&self, id: UserId, from_micros: i64) -> StoreResult<()> {
        write!(self, |ctx| {
            ctx.exec(
                "UPDATE users SET tokens_from_micros = GREATEST(tokens_from_micros, $2) WHERE id = $1",
                &[&id, &from_micros],
            )
            .await
            .map(|_| ())
        })
    }

    async fn existing_users(&self, names: &[String]) -> StoreResult<Vec<String>> {
        point!(self, |ctx| reads::existing_users(&ctx, names).await)
    }

    async fn recipient(&self, name: &str) -> StoreResult<Option<super::Recipient>> {
        point!(self, |ctx| reads::recipient(
            &ctx,
            name,
            self.limits.quota_default
        )
        .await)
    }

    async fn vacation(&self, user: UserId) -> StoreResult<(super::Vacation, u64)> {
        point!(self, |ctx| reads::vacation(&ctx, user).await)
    }

    async fn set_vacation(&self, user: UserId, vacation: &super::Vacation) -> StoreResult<u64> {
        write!(self, |ctx| write_vacation::set(&mut ctx, user, vacation)
            .await)
    }

    async fn identity_settings(&self, user: UserId) -> StoreResult<(Option<String>, u64)> {
        point!(self, |ctx| reads::identity_settings(&ctx, user).await)
    }

    async fn set_identity_settings(
        &self,
        user: UserId,
        settings: &str,
        version: u64,
    ) -> StoreResult<Option<u64>> {
        write!(self, |ctx| write_vacation::set_identity_settings(
            &mut ctx, user, settings, version
        )
        .await)
    }

    async fn add_submission(
        &self,
        user: UserId,
        object: &str,
        now_micros: i64,
    ) -> StoreResult<u64> {
        write!(self, |ctx| write_vacation::add_submission(
            &mut ctx, user, object, now_micros
        )
        .await)
    }

    async fn submissions(&self, user: UserId) -> StoreResult<Vec<(u64, String)>> {
        point!(self, |ctx| reads::submissions(&ctx, user).await)
    }

    async fn destroy_submission(&self, user: UserId, id: u64) -> StoreResult<bool> {
        write!(self, |ctx| write_vacation::destroy_submission(
            &mut ctx, user, id
        )
        .await)
    }

    async fn vacation_reply_due(
        &self,
        user: UserId,
        sender: &str,
        now_micros: i64,
        interval_micros: i64,
    ) -> StoreResult<bool> {
        write!(self, |ctx| write_vacation::reply_due(
            &mut ctx,
            user,
            sender,
            now_micros,
            interval_micros
        )
        .await)
    }

    async fn usage(&self, user: UserId) -> StoreResult<Option<(Usage, Quota)>> {
        point!(self, |ctx| reads::usage(
            &ctx,
            user,
            self.limits.quota_default
        )
        .await)
    }

    async fn first_user(&self) -> StoreResult<Option<String>> {
        point!(self, |ctx| reads::first_user(&ctx).await)
    }

    async fn submit(&self, delivery: Delivery) -> StoreResult<Vec<Delivered>> {
        let queued = delivery.outbound.is_some();
        let now = chrono::Utc::now().timestamp_micros();
        let delivered = write!(self, |ctx| write_messages::submit(&mut ctx, &delivery, now)
            .await)?;
        crate::metrics::METRICS.delivered(delivered.len());
        if queued {
            self.queue_wake.notify_one();
        }
        Ok(delivered)
    }

    async fn mailboxes(&self, user: UserId) -> StoreResult<Vec<MailboxInfo>> {
        point!(self, |ctx| reads::mailboxes(&ctx, user).await)
    }

    async fn kept_subscriptions(&self, user: UserId) -> StoreResult<Vec<String>> {
        point!(self, |ctx| reads::kept_subscriptions(&ctx, user).await)
    }

    async fn recent_count(&self, mailbox: MailboxId) -> StoreResult<u64> {
        point!(self, |ctx| reads::recent_count(&ctx, mailbox).await)
    }

    async fn first_recent_uid(&self, mailbox: MailboxId) -> StoreResult<u32> {
        point!(self, |ctx| reads::first_recent_uid(&ctx, mailbox).await)
    }

    async fn mailbox(&self, user: UserId, name: &str) -> StoreResult<Option<MailboxInfo>> {
        let Ok(name) = super::rules::mailbox_name(name) else {
            return Ok(None);
        };
        point!(self, |ctx| reads::mailbox(&ctx, user, &name).await)
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        subscribed: bool,
    ) -> StoreResult<MailboxId> {
        write!(self, |ctx| write_mailboxes::create_mailbox(
            &mut ctx, user, name, subscribed
        )
        .await)
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> StoreResult<()> {
        write!(self, |ctx| write_mailboxes::rename_mailbox(
            &mut ctx, user, from, to
        )
        .await)
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> StoreResult<()> {
        write!(self, |ctx| write_mailboxes::delete_mailbox(
            &mut ctx, user, name
        )
        .await)
    }

    async fn upload_put(&self, u: super::NewUpload) -> StoreResult<bool> {
        write!(self, |ctx| {
            ctx.exec(
                "DELETE FROM uploads WHERE expires_micros <= $1",
                &[&u.now_micros],
            )
            .await?;
            // The account row, locked: two uploads at once cannot both fit in the room left for one.
            ctx.exec("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&u.user])
                .await?;
            let held: i64 = ctx
                .one(
                    "SELECT COALESCE(SUM(length(bytes)), 0)::BIGINT FROM uploads WHERE user_id = $1",
                    &[&u.user],
                )
                .await?
                .get(0);
            if held as u64 + u.bytes.len() as u64 > u.account_bytes_max {
                return Ok(false);
            }
            ctx.exec(
                "INSERT INTO uploads (user_id, key, media_type, bytes, expires_micros) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&u.user, &u.key, &u.media_type, &u.bytes, &u.expires_micros],
            )
            .await?;
            Ok(true)
        })
    }

    async fn upload_get(
        &self,
        user: UserId,
        key: &str,
        now_micros: i64,
    ) -> StoreResult<Option<(Vec<u8>, String)>> {
        point!(self, |ctx| Ok(ctx
            .opt(
                "SELECT bytes, media_type FROM uploads \
                 WHERE user_id = $1 AND key = $2 AND expires_micros > $3",
                &[&user, &key, &now_micros],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)))))
    }

    async fn subscribe(&self, user: UserId, name: &str, subscribed: bool) -> StoreResult<()> {
        write!(self, |ctx| write_mailboxes::subscribe(
            &mut ctx, user, name, subscribed
        )
        .await)
    }

    async fn claim_recent(&self, mailbox: MailboxId, below: u32) -> StoreResult<u32> {
        write!(self, |ctx| write_mailboxes::claim_recent(
            &mut ctx, mailbox, below
        )
        .await)
    }

    async fn append(
        &self,
        mailbox: MailboxId,
        message: NewMessage,
        flags: Flags,
    ) -> StoreResult<u32> {
        write!(self, |ctx| {
            write_messages::append(&mut ctx, mailbox, &message, flags.clone(), true).await
        })
    }

    async fn update_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> StoreResult<FlagUpdate> {
        write!(self, |ctx| {
            write_messages::update_flags(
                &mut ctx,
                mailbox,
                uids,
                op,
                flags.clone(),
                unchanged_since,
            )
            .await
        })
    }

    async fn copy(
        &self,
        user: UserId,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove_source: bool,
    ) -> StoreResult<CopyMap> {
        write!(self, |ctx| {
            write_messages::copy(&mut ctx, user, from, uids, to, remove_source).await
        })
    }

    async fn expunge(
        &self,
        mailbox: MailboxId,
        uids: Option<&[u32]>,
        only_deleted: bool,
    ) -> StoreResult<Vec<u32>> {
        write!(self, |ctx| {
            write_messages::expunge(&mut ctx, mailbox, uids, only_deleted).await
        })
    }

    async fn create_email(
        &self,
        user: UserId,
        mailboxes: &[MailboxId],
        message: NewMessage,
        flags: Flags,
    ) -> StoreResult<i64> {
        write!(self, |ctx| {
            write_emails::create_email(&mut ctx, user, mailboxes, &message, flags.clone()).await
        })
    }

    async fn change_email(
        &self,
        user: UserId,
        blob: i64,
        change: EmailChange,
    ) -> StoreResult<EmailChanged> {
        write!(self, |ctx| {
            write_emails::change_email(&mut ctx, user, blob, &change).await
        })
    }

    async fn account_modseq(&self, user: UserId) -> StoreResult<Option<u64>> {
        point!(self, |ctx| reads::account_modseq(&ctx, user).await)
    }

    async fn mailboxes_changed(
        &self,
        user: UserId,
        since: u64,
    ) -> StoreResult<(Vec<MailboxId>, Vec<MailboxId>)> {
        read!(self, |ctx| reads::mailboxes_changed(&ctx, user, since)
            .await)
    }

    async fn changes_from(
        &self,
        mailbox: MailboxId,
        since: Since,
        limit: usize,
    ) -> StoreResult<Changes> {
        read!(self, |ctx| reads::changes(
            &ctx,
            mailbox,
            since,
            limit.max(1)
        )
        .await)
    }

    async fn snapshot(&self, mailbox: MailboxId) -> StoreResult<MailboxSnapshot> {
        read!(self, |ctx| reads::snapshot(&ctx, mailbox).await)
    }

    async fn messages(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        wanted: Wanted,
    ) -> StoreResult<Vec<Listed>> {
        let uids = &uids[..uids.len().min(super::MESSAGES_PER_CALL_MAX)];
        point!(self, |ctx| reads::messages(&ctx, mailbox, uids, wanted)
            .await)
    }

    async fn newest(
        &self,
        mailbox: MailboxId,
        limit: usize,
        bytes_max: usize,
    ) -> StoreResult<Vec<(MessageMeta, Vec<u8>)>> {
        point!(self, |ctx| reads::newest(&ctx, mailbox, limit, bytes_max)
            .await)
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
        point!(self, |ctx| reads::body(&ctx, mailbox, uid).await)
    }

    async fn body_ref(&self, mailbox: MailboxId, uid: u32) -> StoreResult<Option<BodyRef>> {
        point!(self, |ctx| reads::body_ref(&ctx, mailbox, uid).await)
    }

    async fn body_chunk(&self, body: BodyRef, offset: u64, max: usize) -> StoreResult<Vec<u8>> {
        point!(self, |ctx| reads::body_chunk(&ctx, body, offset, max).await)
    }

    async fn summary(&self, mailbox: MailboxId, uid: u32) -> StoreResult<Option<String>> {
        point!(self, |ctx| reads::summary(&ctx, mailbox, uid).await)
    }

    async fn locate(&self, user: UserId, blobs: &[i64]) -> StoreResult<Vec<crate::store::Located>> {
        point!(self, |ctx| reads::locate(&ctx, user, blobs).await)
    }

    async fn tombstones(
        &self,
        user: UserId,
        blobs: &[i64],
    ) -> StoreResult<Vec<crate::store::Tombstone>> {
        point!(self, |ctx| reads::tombstones(&ctx, user, blobs).await)
    }

    async fn shared_copies(
        &self,
        user: UserId,
        limit: usize,
    ) -> StoreResult<Vec<crate::store::Located>> {
        point!(self, |ctx| reads::shared_copies(&ctx, user, limit).await)
    }

    fn feed(&self, user: UserId) -> AccountFeed {
        self.push.notifier.subscribe(user)
    }

    async fn close(&self) {
        self.stop.cancel();
        push::send_waiting(&self.push, &self.pool).await;
        self.pool.close();
    }
}
