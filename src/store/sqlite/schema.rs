//! Numbered schema migrations. `PRAGMA user_version` records how many have run. Only ever append: an applied
//! migration is never edited, so an upgrade never breaks existing data.

use rusqlite::{Connection, OptionalExtension};

const MIGRATIONS: &[&str] = &[
    // 1: accounts, mailboxes, messages with change numbers, bodies, and tombstones for deleted messages.
    r#"
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_micros INTEGER NOT NULL
    );
    CREATE TABLE mailboxes (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        uid_validity INTEGER NOT NULL,
        uid_next INTEGER NOT NULL DEFAULT 1,
        highest_modseq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, name)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        flags INTEGER NOT NULL DEFAULT 0,
        internal_micros INTEGER NOT NULL,
        size INTEGER NOT NULL,
        from_addr TEXT NOT NULL,
        subject TEXT NOT NULL,
        message_id TEXT,
        UNIQUE (mailbox_id, uid)
    );
    CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
    CREATE TABLE bodies (
        message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        raw BLOB NOT NULL
    );
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    );
    CREATE INDEX expunged_by_modseq ON expunged (mailbox_id, modseq);
    "#,
    // 2: find a message by Message-ID within a mailbox (idempotent imports).
    r#"
    CREATE INDEX messages_by_message_id ON messages (mailbox_id, message_id);
    "#,
    // 3: AUTOINCREMENT ids for users and mailboxes. Without it SQLite reuses the largest id after a delete,
    // so a session still open for a deleted account could reach the next new account's mailbox. Rebuilt
    // the SQLite way (new table, copy, drop, rename) with foreign keys off; `migrate` checks them after.
    r#"
    CREATE TABLE users_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_micros INTEGER NOT NULL
    );
    INSERT INTO users_v3 (id, name, password_hash, created_micros)
        SELECT id, name, password_hash, created_micros FROM users;
    DROP TABLE users;
    ALTER TABLE users_v3 RENAME TO users;
    CREATE TABLE mailboxes_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        uid_validity INTEGER NOT NULL,
        uid_next INTEGER NOT NULL DEFAULT 1,
        highest_modseq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, name)
    );
    INSERT INTO mailboxes_v3 (id, user_id, name, uid_validity, uid_next, highest_modseq)
        SELECT id, user_id, name, uid_validity, uid_next, highest_modseq FROM mailboxes;
    DROP TABLE mailboxes;
    ALTER TABLE mailboxes_v3 RENAME TO mailboxes;
    "#,
    // 4: each message's size as POP3 sends it (CRLF line ends, last line ended; `jmail_proto::pop3::crlf_size`),
    // so LIST and STAT need no bodies. Existing rows: length + bare LFs + 2 when the last byte is not LF,
    // counted on the bytes (a BLOB cast to TEXT keeps its bytes; replace() works on bytes).
    r#"
    ALTER TABLE messages ADD COLUMN crlf_size INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET crlf_size = (
        SELECT length(b.raw)
            + (length(b.raw) - length(CAST(replace(CAST(b.raw AS TEXT), char(10), '') AS BLOB)))
            - (length(b.raw) - length(CAST(replace(CAST(b.raw AS TEXT), char(13, 10), '') AS BLOB))) / 2
            + CASE WHEN length(b.raw) > 0 AND substr(b.raw, -1) <> x'0a' THEN 2 ELSE 0 END
        FROM bodies b WHERE b.message_id = messages.id
    );
    "#,
    // 5: the mail model of mailboxes, keywords and quotas.
    // - Message bytes move to `blobs`, shared by every copy (a copy writes a row, not the bytes again);
    //   `refs` counts the messages pointing at a blob, which goes with its last one (a count, not an
    //   index on messages.blob_id: every delivery would pay for that index; migration 10 adds one all the
    //   same, for JMAP). `summary` is what delivery parsed (envelope, MIME structure),
    //   filled in for older mail when the store opens.
    // - Messages gain keywords (sorted, space-separated atoms) and the `\Deleted` flag (bit 16).
    // - Mailboxes gain a special-use role, a subscription, and counts, so listing them scans no messages;
    //   every account gets the six default mailboxes.
    // - Accounts gain a change counter of their own (moved with every change to any of their mailboxes),
    //   quotas and usage; deleted mailboxes leave a tombstone.
    // - The writer keeps counts, usage and counters in the same statements that take UIDs and modseqs (see
    //   write_messages.rs); deletions, which cascades also make, keep them by trigger, and free a blob
    //   with its last message.
    r#"
    -- AUTOINCREMENT: a large message is read in pieces, each in its own transaction; an id never
    -- reused means a piece can never come from another message that took a deleted one's id.
    CREATE TABLE blobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        refs INTEGER NOT NULL DEFAULT 1,
        raw BLOB NOT NULL,
        summary TEXT
    );
    INSERT INTO blobs (id, raw) SELECT message_id, raw FROM bodies;
    INSERT INTO blobs (id, raw) SELECT id, x'' FROM messages WHERE id NOT IN (SELECT id FROM blobs);
    CREATE TABLE messages_v5 (
        id INTEGER PRIMARY KEY,
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        flags INTEGER NOT NULL DEFAULT 0,
        keywords TEXT NOT NULL DEFAULT '',
        internal_micros INTEGER NOT NULL,
        size INTEGER NOT NULL,
        crlf_size INTEGER NOT NULL DEFAULT 0,
        from_addr TEXT NOT NULL,
        subject TEXT NOT NULL,
        message_id TEXT,
        -- 1 for mail that came by `jmail import` / `import-legacy` (and all mail from before version 5):
        -- only those are indexed by Message-ID, for idempotent imports. An index over every delivery's
        -- Message-ID (random keys) dirtied a page per message and made delivery slower as the store grew.
        imported INTEGER NOT NULL DEFAULT 0,
        -- No REFERENCES: `refs` keeps it right, and a foreign key would make every blob deletion scan
        -- the messages (no index on blob_id then; migration 10 adds one, for JMAP).
        blob_id INTEGER NOT NULL,
        UNIQUE (mailbox_id, uid)
    );
    INSERT INTO messages_v5 (id, mailbox_id, uid, modseq, flags, internal_micros, size, crlf_size,
                             from_addr, subject, message_id, imported, blob_id)
        SELECT m.id, m.mailbox_id, m.uid, m.modseq, m.flags, m.internal_micros, m.size, m.crlf_size,
               m.from_addr, m.subject, m.message_id, 1, m.id
        FROM messages m;
    DROP TABLE bodies;
    DROP TABLE messages;
    ALTER TABLE messages_v5 RENAME TO messages;
    CREATE INDEX messages_by_modseq ON messages (mailbox_id, modseq);
    CREATE INDEX messages_imported_by_message_id ON messages (mailbox_id, message_id)
        WHERE imported = 1;

    ALTER TABLE mailboxes ADD COLUMN role TEXT;
    ALTER TABLE mailboxes ADD COLUMN subscribed INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE mailboxes ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN account_modseq INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX mailboxes_by_role ON mailboxes (user_id, role) WHERE role IS NOT NULL;
    CREATE TABLE mailbox_keywords (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        keyword TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, keyword)
    ) WITHOUT ROWID;
    CREATE TABLE mailboxes_gone (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        mailbox_id INTEGER NOT NULL,
        account_modseq INTEGER NOT NULL
    );
    CREATE INDEX mailboxes_gone_by_modseq ON mailboxes_gone (user_id, account_modseq);

    ALTER TABLE users ADD COLUMN modseq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN quota_bytes INTEGER;
    ALTER TABLE users ADD COLUMN quota_messages INTEGER;
    ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;

    UPDATE mailboxes SET role = 'inbox' WHERE name = 'INBOX';
    INSERT INTO mailboxes (user_id, name, uid_validity, role)
        SELECT u.id, d.name, CAST(strftime('%s', 'now') AS INTEGER), d.role
        FROM users u, (SELECT 'Sent' AS name, 'sent' AS role UNION ALL SELECT 'Drafts', 'drafts'
                       UNION ALL SELECT 'Trash', 'trash' UNION ALL SELECT 'Junk', 'junk'
                       UNION ALL SELECT 'Archive', 'archive') d
        WHERE NOT EXISTS (SELECT 1 FROM mailboxes m WHERE m.user_id = u.id AND m.name = d.name);
    UPDATE mailboxes SET
        messages = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id),
        unseen = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND m.flags & 1 = 0),
        bytes = (SELECT coalesce(sum(size), 0) FROM messages m WHERE m.mailbox_id = mailboxes.id);
    UPDATE users SET
        used_messages = (SELECT coalesce(sum(messages), 0) FROM mailboxes b WHERE b.user_id = users.id),
        used_bytes = (SELECT coalesce(sum(bytes), 0) FROM mailboxes b WHERE b.user_id = users.id),
        modseq = (SELECT coalesce(sum(highest_modseq), 0) FROM mailboxes b WHERE b.user_id = users.id);

    CREATE TRIGGER message_uncounted AFTER DELETE ON messages BEGIN
        UPDATE mailboxes SET messages = messages - 1, unseen = unseen - (OLD.flags & 1 = 0),
            bytes = bytes - OLD.size WHERE id = OLD.mailbox_id;
        UPDATE users SET used_messages = used_messages - 1, used_bytes = used_bytes - OLD.size
            WHERE id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
        UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
        DELETE FROM blobs WHERE id = OLD.blob_id AND refs <= 0;
    END;
    "#,
    // 6: summaries are made again by the full summary parser (display names and header values as sent,
    // RFC 2231 parameters, digest parts, every part's header offsets, terse keys): `fill_in_summaries`
    // remakes every one it finds missing, at open.
    r#"
    UPDATE blobs SET summary = NULL;
    "#,
    // 7: the outbound queue. One row per message and destination domain (one SMTP transaction each),
    // holding the recipients there still to be delivered; the bytes are the message's blob, counted in
    // its `refs` like any stored copy. `next_micros` is when the row is next due; a worker that takes a
    // row moves it to the end of its lease, so a row whose worker died comes due again by itself.
    r#"
    CREATE TABLE queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        blob_id INTEGER NOT NULL,
        user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        sender TEXT NOT NULL,
        domain TEXT NOT NULL,
        recipients TEXT NOT NULL,
        created_micros INTEGER NOT NULL,
        next_micros INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        leased INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX queue_by_due ON queue (next_micros);
    CREATE TRIGGER queue_uncounted AFTER DELETE ON queue BEGIN
        UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
        DELETE FROM blobs WHERE id = OLD.blob_id AND refs <= 0;
    END;
    "#,
    // 8: JMAP uploads, kept until used or expired (in the store: any node finds them).
    r#"
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        media_type TEXT NOT NULL,
        bytes BLOB NOT NULL,
        expires_micros INTEGER NOT NULL,
        UNIQUE (user_id, key)
    );
    CREATE INDEX uploads_by_expiry ON uploads (expires_micros);
"#,
    // 9: the modseq a message was stored with. Stored mail keeps it (modseq = created_modseq) until a
    // change moves its modseq on, and such mail needs no modseq index: its modseqs rise with its UIDs, so
    // the UID key finds it (`reads::changes`). Only moved-on modseqs are indexed, which spares every
    // delivery a page of its own in a second per-mailbox index. Messages from before know no created
    // modseq: 0, so all of them stay indexed.
    r#"
    ALTER TABLE messages ADD COLUMN created_modseq INTEGER NOT NULL DEFAULT 0;
    DROP INDEX messages_by_modseq;
    CREATE INDEX messages_changed_by_modseq ON messages (mailbox_id, modseq)
        WHERE modseq > created_modseq;
"#,
    // 10: JMAP's Email id is the id of a message's stored bytes, which every copy shares and a move keeps
    // (RFC 8621: an Email id never changes). Finding an Email's copies needs messages by blob; telling
    // whether an expunged copy was the Email's last needs the blob on its tombstone (`NULL` for those
    // from before: JMAP then cannot work out changes across them, and its client resyncs).
    r#"
    CREATE INDEX messages_by_blob ON messages (blob_id);
    ALTER TABLE expunged ADD COLUMN blob_id INTEGER;
"#,
    // 11: messages by blob, then mailbox and UID: finding an account's copies of an Email checks the
    // mailbox in the index and reads nothing else, however many other accounts share the bytes (one
    // delivery to a thousand users is one blob).
    r#"
    DROP INDEX messages_by_blob;
    CREATE INDEX messages_by_blob ON messages (blob_id, mailbox_id, uid);
"#,
    // 12: tombstones by blob: whether an Email had a copy at a JMAP state asks for the copies it lost
    // since, wherever they were, and a page of changes may not have read every mailbox's log.
    r#"
    CREATE INDEX expunged_by_blob ON expunged (blob_id, mailbox_id) WHERE blob_id IS NOT NULL;
"#,
    // 13: subscriptions to names that have no mailbox. A mailbox deleted while subscribed keeps its
    // subscription (RFC 3501 §6.3.6: a server MUST NOT remove a name from the subscription list by
    // itself) until UNSUBSCRIBE, or until a mailbox of that name exists again and carries it.
    r#"
    CREATE TABLE subscribed_names (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    ) WITHOUT ROWID;
"#,
    // 14: the lowest UID no IMAP session has claimed as \Recent (RFC 3501 §2.3.2). A new mailbox
    // starts at 0, so all it receives is recent to the first session that selects it; mail stored
    // before this version is recent to no one.
    r#"
    ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 0;
    UPDATE mailboxes SET first_recent_uid = uid_next;
"#,
    // 15: the zone of a message's INTERNALDATE, minutes east of UTC: an IMAP APPEND's date comes back
    // as it was given, and SEARCH BEFORE/ON/SINCE take the date in that zone (as Dovecot does).
    r#"
    ALTER TABLE messages ADD COLUMN internal_zone INTEGER NOT NULL DEFAULT 0;
"#,
    // 16: summaries get a table of their own. In `blobs` the summary came after the message bytes, and
    // SQLite reaches a column past a large one only by reading every overflow page before it: reading
    // the summary of a 30 KB message read all 30 KB. `summaries_missing` lists the blobs still without
    // one, for `fill_in_summaries` at open (a check of one small table instead of a scan of every
    // message). The old column keeps its copies: clearing it would rewrite every message in one
    // transaction; nothing reads or writes it any more. (Only the first statement reads the messages'
    // overflow pages; the last reads ids.)
    r#"
    CREATE TABLE summaries (
        blob_id INTEGER PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
        summary TEXT NOT NULL
    );
    INSERT INTO summaries (blob_id, summary) SELECT id, summary FROM blobs WHERE summary IS NOT NULL;
    CREATE TABLE summaries_missing (blob_id INTEGER PRIMARY KEY);
    INSERT INTO summaries_missing (blob_id)
        SELECT id FROM blobs WHERE id NOT IN (SELECT blob_id FROM summaries);
"#,
    // 17: automatic replies while away (JMAP's VacationResponse): one row per account that set one,
    // and whom it answered when, so each sender is answered once per interval (RFC 5230 §4.6).
    r#"
    CREATE TABLE vacations (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        enabled INTEGER NOT NULL,
        from_micros INTEGER,
        to_micros INTEGER,
        subject TEXT,
        text_body TEXT,
        html_body TEXT,
        version INTEGER NOT NULL
    );
    CREATE TABLE vacation_replies (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        replied_micros INTEGER NOT NULL,
        PRIMARY KEY (user_id, sender)
    ) WITHOUT ROWID;
    CREATE INDEX vacation_replies_by_time ON vacation_replies (user_id, replied_micros);
"#,
    // 18: what a sender asked of delivery reports (RFC 3461 NOTIFY, ORCPT, RET, ENVID), as JSON, with
    // each queue entry; NULL (nothing asked) for all mail queued before.
    r#"
    ALTER TABLE queue ADD COLUMN dsn TEXT;
"#,
    // 19: a blob's count of copies gets a table of its own. In `blobs` it sat in the row with the
    // message's bytes, and SQLite stores 0 and 1 in no bytes at all, so the first COPY of a message
    // (1 to 2) and every MOVE (2 to 1) changed the record's size and rewrote the whole row, overflow
    // pages and all: 18 MB written for a first COPY of a 9 MB message, 47 MB for a MOVE, which also
    // ate the free-space reserve a full disk keeps for moving mail to Trash. `blobs.refs` stays,
    // unread (dropping it would rewrite every message); only ids and counts are read here.
    r#"
    CREATE TABLE blob_refs (blob_id INTEGER PRIMARY KEY, refs INTEGER NOT NULL);
    INSERT INTO blob_refs (blob_id, refs) SELECT id, refs FROM blobs;
    DROP TRIGGER message_uncounted;
    CREATE TRIGGER message_uncounted AFTER DELETE ON messages BEGIN
        UPDATE mailboxes SET messages = messages - 1, unseen = unseen - (OLD.flags & 1 = 0),
            bytes = bytes - OLD.size WHERE id = OLD.mailbox_id;
        UPDATE users SET used_messages = used_messages - 1, used_bytes = used_bytes - OLD.size
            WHERE id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
        UPDATE blob_refs SET refs = refs - 1 WHERE blob_id = OLD.blob_id;
        DELETE FROM blobs WHERE id = OLD.blob_id
            AND (SELECT refs FROM blob_refs WHERE blob_id = OLD.blob_id) <= 0;
        DELETE FROM blob_refs WHERE blob_id = OLD.blob_id AND refs <= 0;
    END;
    DROP TRIGGER queue_uncounted;
    CREATE TRIGGER queue_uncounted AFTER DELETE ON queue BEGIN
        UPDATE blob_refs SET refs = refs - 1 WHERE blob_id = OLD.blob_id;
        DELETE FROM blobs WHERE id = OLD.blob_id
            AND (SELECT refs FROM blob_refs WHERE blob_id = OLD.blob_id) <= 0;
        DELETE FROM blob_refs WHERE blob_id = OLD.blob_id AND refs <= 0;
    END;
"#,
    // 20: signing out ends the account's bearer tokens (JMAP, the webmail) issued before it, on every
    // node: a token is signed, not stored, so the account keeps from when its tokens count.
    r#"
    ALTER TABLE users ADD COLUMN tokens_from_micros INTEGER NOT NULL DEFAULT 0;
"#,
    // 21: an account's identity settings (JMAP's Identity/set: display names, signatures, identities it
    // added), one JSON text per account that changed any, with a version for the state string.
    r#"
    CREATE TABLE identity_settings (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        settings TEXT NOT NULL,
        version INTEGER NOT NULL
    );
"#,
    // 22: JMAP EmailSubmissions kept after sending (the latest of each account, for a week), each as
    // its JSON text; AUTOINCREMENT so a number is never given twice (the state builds on that).
    r#"
    CREATE TABLE submissions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_micros INTEGER NOT NULL,
        object TEXT NOT NULL
    );
    CREATE INDEX submissions_by_user ON submissions (user_id, id);
"#,
];

/// Brings the schema up to date, one migration per transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies migrations up to number `target`. Foreign keys are off meanwhile (table rebuilds need that;
/// the pragma cannot change inside a transaction) and each migration checks them before it commits.
fn migrate_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    run_migrations(conn, &MIGRATIONS[..target])
}

/// Applies those of `migrations` not applied yet. A store written by a newer release (a schema this build
/// does not know) is refused, never touched: an older binary must not write into it.
fn run_migrations(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    // One statement, one snapshot: a process creating the store meanwhile is seen whole or not at all.
    let (applied, tables): (usize, i64) = conn.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version), \
         (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if applied == 0 && tables > 0 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(
                "the file is an SQLite database of something else (it has tables and no Jmail schema version); give Jmail a data dir of its own"
                    .to_string(),
            ),
        ));
    }
    if applied > MIGRATIONS.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the store has schema version {applied}, written by a newer Jmail; this one knows up to {}: run the newer release",
                MIGRATIONS.len()
            )),
        ));
    }
    if applied >= migrations.len() {
        return Ok(());
    }
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = apply(conn, migrations, applied);
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    result
}

/// Each migration in a transaction of its own: one that fails rolls back whole, and the store stays at
/// the version before it, as usable as it was.
fn apply(conn: &mut Connection, migrations: &[&str], applied: usize) -> rusqlite::Result<()> {
    for (index, sql) in migrations.iter().enumerate().skip(applied) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > index {
            continue;
        }
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY);
            return Err(rusqlite::Error::SqliteFailure(
                code,
                Some(format!(
                    "migration {} left broken references in {table}",
                    index + 1
                )),
            ));
        }
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
        tracing::info!(migration = index + 1, "applied schema migration");
    }
    Ok(())
}

/// Rows of old mail summarized per transaction when a store opens after an upgrade (to version 5, which
/// began storing summaries, or 6, which remade them): bounds
/// how long one transaction holds the write lock (other processes wait meanwhile). Their bytes are read
/// one message at a time, so memory holds one message, however large.
const SUMMARY_BATCH_MAX: usize = 500;

/// Gives every message without one the summary delivery now stores with each (a migration cannot: the
/// parser is Rust): mail stored before version 5, and all mail after version 6 cleared the old ones,
/// as version 16 listed them in `summaries_missing`. Runs at open, in batches; a no-op once done.
pub fn fill_in_summaries(conn: &mut Connection) -> rusqlite::Result<()> {
    let missing: i64 =
        conn.query_row("SELECT count(*) FROM summaries_missing", [], |r| r.get(0))?;
    if missing == 0 {
        return Ok(());
    }
    tracing::info!(
        messages = missing,
        "summarizing stored mail for this version (once)"
    );
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ids: Vec<i64> = tx
            .prepare("SELECT blob_id FROM summaries_missing LIMIT ?1")?
            .query_map([SUMMARY_BATCH_MAX as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let done = ids.len() < SUMMARY_BATCH_MAX;
        {
            let mut raw_of = tx.prepare("SELECT raw FROM blobs WHERE id = ?1")?;
            let mut set =
                tx.prepare("INSERT OR REPLACE INTO summaries (blob_id, summary) VALUES (?1, ?2)")?;
            let mut filled = tx.prepare("DELETE FROM summaries_missing WHERE blob_id = ?1")?;
            for id in &ids {
                // A message deleted since it was listed needs nothing.
                let raw: Option<Vec<u8>> = raw_of.query_row([id], |r| r.get(0)).optional()?;
                if let Some(raw) = raw {
                    let summary = jmail_proto::summary::summarize_message(&raw).to_json();
                    set.execute(rusqlite::params![id, summary])?;
                }
                filled.execute([id])?;
            }
        }
        tx.commit()?;
        if done {
            return Ok(());
        }
    }
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 4 computes in SQL what the writer computes in Rust for new messages.
    #[test]
    fn upgrade_to_version_4_counts_crlf_sizes_like_the_writer() {
        let samples: &[&[u8]] = &[
            b"",
            b"a",
            b"a\n",
            b"a\r\n",
            b"\n\n\r\n\0\n\xff\xfe\n\r",
            b"x\0y\nz",
            b"\r\r\n\n\r",
            b"\xc3\n\0\0\n\n",
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute_batch(
            "INSERT INTO users (name, password_hash, created_micros) VALUES ('ann', 'h', 1);
             INSERT INTO mailboxes (user_id, name, uid_validity) VALUES (1, 'INBOX', 1);",
        )
        .unwrap();
        for (i, raw) in samples.iter().enumerate() {
            conn.execute(
                "INSERT INTO messages (mailbox_id, uid, modseq, internal_micros, size, from_addr, subject) \
                 VALUES (1, ?1, ?1, 0, ?2, 'a', 's')",
                rusqlite::params![i + 1, raw.len()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO bodies (message_id, raw) VALUES (last_insert_rowid(), ?1)",
                rusqlite::params![raw],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        for (i, raw) in samples.iter().enumerate() {
            let size: u64 = conn
                .query_row(
                    "SELECT crlf_size FROM messages WHERE uid = ?1",
                    rusqlite::params![i + 1],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(size, jmail_proto::pop3::crlf_size(raw), "{raw:?}");
        }
    }

    /// Summaries stored by version 5's parser are remade by today's at the next open.
    #[test]
    fn version_6_remakes_the_summaries_of_version_5() {
        let raw = b"From: \"Ann B\" <ann@example.org>\r\nSubject: hi\r\n\r\nbody\r\n";
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 5).unwrap();
        conn.execute(
            "INSERT INTO blobs (refs, raw, summary) VALUES (1, ?1, '{\"e\":{\"f\":[]},\"s\":{\"size\":4}}')",
            rusqlite::params![&raw[..]],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        fill_in_summaries(&mut conn).unwrap();
        let stored: String = conn
            .query_row("SELECT summary FROM summaries", [], |r| r.get(0))
            .unwrap();
        let summary = jmail_proto::summary::Summary::from_json(&stored).unwrap();
        assert_eq!(summary, jmail_proto::summary::summarize_message(raw));
        assert_eq!(summary.envelope.from[0].name.as_deref(), Some("Ann B"));
    }

    /// Version 16 moves summaries out of `blobs`, and lists for filling in at open the blobs without one.
    #[test]
    fn version_16_moves_summaries_to_their_own_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 15).unwrap();
        conn.execute_batch(
            "INSERT INTO blobs (id, refs, raw, summary) VALUES (1, 1, x'6869', '{\"kept\":1}');
             INSERT INTO blobs (id, refs, raw, summary) VALUES (2, 1, x'0d0a6869', NULL);
             INSERT INTO blobs (id, refs, raw, summary) VALUES (3, 1, x'0d0a6869', NULL);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let summaries = |conn: &Connection| -> Vec<(i64, String)> {
            conn.prepare("SELECT blob_id, summary FROM summaries ORDER BY blob_id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(summaries(&conn), [(1, "{\"kept\":1}".to_string())]);
        // One of those without a summary goes before the next open, which fills in the other.
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM blobs WHERE id = 3;")
            .unwrap();
        fill_in_summaries(&mut conn).unwrap();
        let made = jmail_proto::summary::summarize_message(b"\r\nhi").to_json();
        assert_eq!(summaries(&conn)[1], (2, made));
        assert_eq!(summaries(&conn).len(), 2);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM summaries_missing", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        // A summary goes with its message.
        conn.execute("DELETE FROM blobs WHERE id = 1", []).unwrap();
        assert_eq!(summaries(&conn).len(), 1);
    }

    /// Version 19 moves the counts of copies out of `blobs`; the last copy's deletion still frees a blob.
    #[test]
    fn version_19_moves_counts_of_copies_to_their_own_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 18).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, name, password_hash, created_micros) VALUES (1, 'a', 'x', 0);
             INSERT INTO mailboxes (id, user_id, name, uid_validity) VALUES (1, 1, 'INBOX', 1);
             INSERT INTO blobs (id, refs, raw) VALUES (1, 2, x'6869'), (2, 1, x'6869');
             INSERT INTO messages (mailbox_id, uid, modseq, internal_micros, size, from_addr, subject, blob_id)
                 VALUES (1, 1, 1, 0, 2, '', '', 1), (1, 2, 1, 0, 2, '', '', 1), (1, 3, 1, 0, 2, '', '', 2);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let counts = |conn: &Connection| -> Vec<(i64, i64)> {
            conn.prepare("SELECT b.id, r.refs FROM blobs b JOIN blob_refs r ON r.blob_id = b.id ORDER BY b.id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(counts(&conn), [(1, 2), (2, 1)]);
        conn.execute("DELETE FROM messages WHERE uid IN (1, 3)", [])
            .unwrap();
        assert_eq!(counts(&conn), [(1, 1)]);
        conn.execute("DELETE FROM messages WHERE uid = 2", [])
            .unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM blob_refs)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

    /// Another program's SQLite file is refused untouched, not taken for a new store.
    #[test]
    fn a_database_of_something_else_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE foo (x)").unwrap();
        let e = migrate(&mut conn).unwrap_err().to_string();
        assert!(e.contains("SQLite database of something else"), "{e}");
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1);
    }

    /// A database made by an older build keeps its data through the upgrade, and ids are no longer reused.
    #[test]
    fn upgrade_from_version_2_keeps_data_and_stops_id_reuse() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        migrate_to(&mut conn, 2).unwrap();
        conn.execute_batch(
            "INSERT INTO users (name, password_hash, created_micros) VALUES ('ann', 'h', 1), ('zed', 'h', 2);
             INSERT INTO mailboxes (user_id, name, uid_validity) VALUES (1, 'INBOX', 1), (2, 'INBOX', 1);
             INSERT INTO messages (mailbox_id, uid, modseq, internal_micros, size, from_addr, subject)
                 VALUES (2, 1, 1, 0, 3, 'a', 's');
             INSERT INTO bodies (message_id, raw) VALUES (1, x'616263');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, latest_version());
        let raw: Vec<u8> = conn
            .query_row("SELECT b.raw FROM blobs b JOIN messages m ON m.blob_id = b.id WHERE m.mailbox_id = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(raw, b"abc");
        // Deleting the newest account still cascades, and its ids are not handed out again.
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM users WHERE name = 'zed';")
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        let blobs: i64 = conn
            .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blobs, 0, "a message's bytes go with its last copy");
        conn.execute_batch(
            "INSERT INTO users (name, password_hash, created_micros) VALUES ('new', 'h', 3);
             INSERT INTO mailboxes (user_id, name, uid_validity) VALUES (3, 'INBOX', 1);",
        )
        .unwrap();
        let ids: (i64, i64) = conn
            .query_row("SELECT u.id, m.id FROM users u JOIN mailboxes m ON m.user_id = u.id WHERE u.name = 'new'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        // Two INBOXes, then five default mailboxes each from migration 5: 12 ids used before.
        assert_eq!(ids, (3, 13));
    }

    #[test]
    fn a_failing_migration_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO users (name, password_hash, created_micros) VALUES ('ann', 'h', 1)",
            [],
        )
        .unwrap();
        let broken: Vec<&str> = MIGRATIONS
            .iter()
            .copied()
            .chain(["CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);"])
            .collect();
        assert!(run_migrations(&mut conn, &broken).is_err());
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, latest_version());
        let half: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(half, 0, "rolled back whole");
        let name: String = conn
            .query_row("SELECT name FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "ann");
        assert!(migrate(&mut conn).is_ok(), "still usable");
    }

    #[test]
    fn a_store_from_a_newer_release_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        migrate(&mut conn).unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err().to_string();
        assert!(err.contains("written by a newer Jmail"), "{err}");
    }
}
