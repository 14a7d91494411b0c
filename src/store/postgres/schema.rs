//! Numbered schema migrations of the PostgreSQL backend. `jmail_schema.version` records how many have
//! run. Only ever append: an applied migration is never edited. Several nodes may start at once: each
//! migration runs in a transaction holding one advisory lock, so exactly one node applies it and the
//! others find it done.

use deadpool_postgres::Client;

use super::sql::db;
use crate::store::{StoreError, StoreResult};

/// The advisory lock key every migration holds (any fixed number: "jmail" in ASCII).
const MIGRATION_LOCK: i64 = 0x006a_6d61_696c;

const MIGRATIONS: &[&str] = &[
    // 1: the mail model as SQLite's schema 7 has it: accounts with change counters, usage and quotas;
    // mailboxes with UIDs, modseqs and counts; messages pointing at shared blobs; tombstones of
    // expunged messages and deleted mailboxes; keywords per mailbox; the outbound queue. Counts kept by
    // the writes themselves, deletions (which cascades make too) by trigger.
    r#"
    CREATE TABLE users (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_micros BIGINT NOT NULL,
        modseq BIGINT NOT NULL DEFAULT 0,
        quota_bytes BIGINT,
        quota_messages BIGINT,
        used_bytes BIGINT NOT NULL DEFAULT 0,
        used_messages BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE mailboxes (
        id BIGSERIAL PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        uid_validity BIGINT NOT NULL,
        uid_next BIGINT NOT NULL DEFAULT 1,
        highest_modseq BIGINT NOT NULL DEFAULT 0,
        role TEXT,
        subscribed BOOLEAN NOT NULL DEFAULT TRUE,
        messages BIGINT NOT NULL DEFAULT 0,
        unseen BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        account_modseq BIGINT NOT NULL DEFAULT 0,
        UNIQUE (user_id, name)
    );
    CREATE UNIQUE INDEX mailboxes_by_role ON mailboxes (user_id, role) WHERE role IS NOT NULL;
    -- Ids never reused (a sequence), so a piece of a large message read in its own transaction can
    -- never come from another message.
    CREATE TABLE blobs (
        id BIGSERIAL PRIMARY KEY,
        refs BIGINT NOT NULL DEFAULT 1,
        raw BYTEA NOT NULL,
        summary TEXT
    );
    -- Uncompressed out-of-line storage: a piece of a large message is read without reading the rest.
    ALTER TABLE blobs ALTER COLUMN raw SET STORAGE EXTERNAL;
    CREATE TABLE messages (
        id BIGSERIAL PRIMARY KEY,
        mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid BIGINT NOT NULL,
        modseq BIGINT NOT NULL,
        flags BIGINT NOT NULL DEFAULT 0,
        keywords TEXT NOT NULL DEFAULT '',
        internal_micros BIGINT NOT NULL,
        size BIGINT NOT NULL,
        crlf_size BIGINT NOT NULL,
        from_addr TEXT NOT NULL,
        subject TEXT NOT NULL,
        message_id TEXT,
        imported BOOLEAN NOT NULL DEFAULT FALSE,
        blob_id BIGINT NOT NULL,
        UNIQUE (mailbox_id, uid)
    );
    CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
    CREATE INDEX messages_imported_by_message_id ON messages (mailbox_id, message_id) WHERE imported;
    CREATE TABLE expunged (
        mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid BIGINT NOT NULL,
        modseq BIGINT NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX expunged_by_modseq ON expunged (mailbox_id, modseq);
    CREATE TABLE mailbox_keywords (
        mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        keyword TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, keyword)
    );
    CREATE TABLE mailboxes_gone (
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        mailbox_id BIGINT NOT NULL,
        account_modseq BIGINT NOT NULL
    );
    CREATE INDEX mailboxes_gone_by_modseq ON mailboxes_gone (user_id, account_modseq);
    CREATE TABLE queue (
        id BIGSERIAL PRIMARY KEY,
        blob_id BIGINT NOT NULL,
        user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
        sender TEXT NOT NULL,
        domain TEXT NOT NULL,
        recipients TEXT NOT NULL,
        created_micros BIGINT NOT NULL,
        next_micros BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        leased BOOLEAN NOT NULL DEFAULT FALSE,
        last_error TEXT
    );
    CREATE INDEX queue_by_due ON queue (next_micros);

    CREATE FUNCTION jmail_message_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE mailboxes SET messages = messages - 1,
            unseen = unseen - (CASE WHEN OLD.flags & 1 = 0 THEN 1 ELSE 0 END),
            bytes = bytes - OLD.size WHERE id = OLD.mailbox_id;
        UPDATE users SET used_messages = used_messages - 1, used_bytes = used_bytes - OLD.size
            WHERE id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
        UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
        DELETE FROM blobs WHERE id = OLD.blob_id AND refs <= 0;
        RETURN NULL;
    END $$;
    CREATE TRIGGER message_uncounted AFTER DELETE ON messages
        FOR EACH ROW EXECUTE FUNCTION jmail_message_uncounted();
    CREATE FUNCTION jmail_queue_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
        DELETE FROM blobs WHERE id = OLD.blob_id AND refs <= 0;
        RETURN NULL;
    END $$;
    CREATE TRIGGER queue_uncounted AFTER DELETE ON queue
        FOR EACH ROW EXECUTE FUNCTION jmail_queue_uncounted();
    "#,
    // 2: login failures shared by every node (`throttle.rs`): one row per address (`ip:...`) or account
    // (`user:...`) with recent failures.
    r#"
    CREATE TABLE login_failures (
        key TEXT PRIMARY KEY,
        failures BIGINT NOT NULL,
        last_micros BIGINT NOT NULL,
        blocked_until_micros BIGINT
    );
    "#,
    // 3: JMAP uploads, kept until used or expired (in the store: any node finds them).
    r#"
    CREATE TABLE uploads (
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        media_type TEXT NOT NULL,
        bytes BYTEA NOT NULL,
        expires_micros BIGINT NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    CREATE INDEX uploads_by_expiry ON uploads (expires_micros);
    "#,
    // 4: the modseq a message was stored with; only moved-on modseqs are indexed (SQLite's migration 9
    // says why). Messages from before: 0, all indexed.
    r#"
    ALTER TABLE messages ADD COLUMN created_modseq BIGINT NOT NULL DEFAULT 0;
    DROP INDEX messages_by_modseq;
    CREATE INDEX messages_changed_by_modseq ON messages (mailbox_id, modseq)
        WHERE modseq > created_modseq;
    "#,
    // 5: messages by blob and the blob on tombstones: JMAP's Email id (SQLite's migration 10 says why).
    r#"
    CREATE INDEX messages_by_blob ON messages (blob_id);
    ALTER TABLE expunged ADD COLUMN blob_id BIGINT;
    "#,
    // 6: messages by blob, then mailbox and UID (SQLite's migration 11 says why). Built in the
    // migration's transaction, which holds writes to messages meanwhile: a few seconds per million.
    r#"
    DROP INDEX messages_by_blob;
    CREATE INDEX messages_by_blob ON messages (blob_id, mailbox_id, uid);
    "#,
    // 7: tombstones by blob (SQLite's migration 12 says why).
    r#"
    CREATE INDEX expunged_by_blob ON expunged (blob_id, mailbox_id) WHERE blob_id IS NOT NULL;
    "#,
    // 8: subscriptions to names that have no mailbox (SQLite's migration 13 says why).
    r#"
    CREATE TABLE subscribed_names (
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    "#,
    // 9: the lowest UID no IMAP session has claimed as \Recent (SQLite's migration 14 says why).
    r#"
    ALTER TABLE mailboxes ADD COLUMN first_recent_uid BIGINT NOT NULL DEFAULT 0;
    UPDATE mailboxes SET first_recent_uid = uid_next;
    "#,
    // 10: the zone of a message's INTERNALDATE (SQLite's migration 15 says why).
    r#"
    ALTER TABLE messages ADD COLUMN internal_zone INTEGER NOT NULL DEFAULT 0;
    "#,
    // 11: automatic replies while away (SQLite's migration 17 says why).
    r#"
    CREATE TABLE vacations (
        user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        enabled BOOLEAN NOT NULL,
        from_micros BIGINT,
        to_micros BIGINT,
        subject TEXT,
        text_body TEXT,
        html_body TEXT,
        version BIGINT NOT NULL
    );
    CREATE TABLE vacation_replies (
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        replied_micros BIGINT NOT NULL,
        PRIMARY KEY (user_id, sender)
    );
    CREATE INDEX vacation_replies_by_time ON vacation_replies (user_id, replied_micros);
    "#,
    // 12: delivery report parameters of queued mail (SQLite's migration 18 says why).
    r#"
    ALTER TABLE queue ADD COLUMN dsn TEXT;
    "#,
    // 13: from when an account's bearer tokens count (SQLite's migration 20 says why).
    r#"
    ALTER TABLE users ADD COLUMN tokens_from_micros BIGINT NOT NULL DEFAULT 0;
    "#,
    // 14: an account's identity settings (SQLite's migration 21 says why).
    r#"
    CREATE TABLE identity_settings (
        user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        settings TEXT NOT NULL,
        version BIGINT NOT NULL
    );
    "#,
    // 15: JMAP EmailSubmissions kept after sending (SQLite's migration 22 says why).
    r#"
    CREATE TABLE submissions (
        id BIGSERIAL PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_micros BIGINT NOT NULL,
        object TEXT NOT NULL
    );
    CREATE INDEX submissions_by_user ON submissions (user_id, id);
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

/// Brings the schema up to date, one migration per transaction under the advisory lock. A database
/// written by a newer release is refused, never touched.
pub async fn migrate(client: &mut Client) -> StoreResult<()> {
    migrate_with(client, MIGRATIONS).await
}

async fn migrate_with(client: &mut Client, migrations: &[&str]) -> StoreResult<()> {
    loop {
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        // Under the lock: nodes starting at once would otherwise race to create it.
        tx.batch_execute("CREATE TABLE IF NOT EXISTS jmail_schema (version BIGINT NOT NULL)")
            .await
            .map_err(db)?;
        let applied: Option<i64> = tx
            .query_opt("SELECT version FROM jmail_schema", &[])
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        let applied = match applied {
            Some(v) => v as usize,
            None => {
                tx.execute("INSERT INTO jmail_schema (version) VALUES (0)", &[])
                    .await
                    .map_err(db)?;
                0
            }
        };
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
                "the database has schema version {applied}, written by a newer Jmail; this one knows up to {}: run the newer release",
                MIGRATIONS.len()
            )));
        }
        let Some(sql) = migrations.get(applied) else {
            tx.commit().await.map_err(db)?;
            return Ok(());
        };
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(
            "UPDATE jmail_schema SET version = $1",
            &[&(applied as i64 + 1)],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        tracing::info!(
            migration = applied + 1,
            "applied PostgreSQL schema migration"
        );
    }
}
