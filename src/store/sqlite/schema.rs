//! Numbered schema migrations. `PRAGMA user_version` records how many have run. Only ever append: an applied
//! migration is never edited, so an upgrade never breaks existing data.

use rusqlite::Connection;

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
];

/// Brings the schema up to date, one migration per transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > index {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
        tracing::info!(migration = index + 1, "applied schema migration");
    }
    Ok(())
}

/// The schema version this build writes.
pub fn latest_version() -> usize {
    MIGRATIONS.len()
}
