//! `CopyStore` on SQLite: reading the store out and writing one in exactly (see `store::copy`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::writer::backend;
use crate::store::{
    CopiedMailbox, CopiedMessage, CopiedTombstone, CopiedUser, CopyStore, IdCounters, MailboxId,
    Role, StoreError, StoreResult, UserId, flags,
};

/// The tables whose ids a copy keeps, with the counters that hand them out.
const COUNTED: [&str; 3] = ["users", "mailboxes", "blobs"];

#[async_trait]
impl CopyStore for SqliteStore {
    async fn copy_users(&self) -> StoreResult<Vec<CopiedUser>> {
        self.read(|c| {
            c.prepare(
                "SELECT id, name, password_hash, created_micros, modseq, quota_bytes, quota_messages \
                 FROM users ORDER BY id",
            )?
            .query_map([], |r| {
                Ok(CopiedUser {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    password_hash: r.get(2)?,
                    created_micros: r.get(3)?,
                    modseq: r.get(4)?,
                    quota_bytes: r.get(5)?,
                    quota_messages: r.get(6)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn copy_mailboxes(&self, user: &str) -> StoreResult<Vec<(MailboxId, CopiedMailbox)>> {
        let user = user.to_string();
        self.read(move |c| {
            c.prepare(
                "SELECT m.id, m.name, m.role, m.subscribed, m.uid_validity, m.uid_next, \
                 m.highest_modseq, m.account_modseq, m.first_recent_uid \
                 FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE u.name = ?1 ORDER BY m.id",
            )?
            .query_map(params![user], |r| {
                let role: Option<String> = r.get(2)?;
                Ok((
                    r.get(0)?,
                    CopiedMailbox {
                        name: r.get(1)?,
                        role: role.as_deref().and_then(Role::parse),
                        subscribed: r.get(3)?,
                        uid_validity: r.get(4)?,
                        uid_next: r.get(5)?,
                        highest_modseq: r.get(6)?,
                        account_modseq: r.get(7)?,
                        first_recent_uid: r.get(8)?,
                    },
                ))
            })?
            .collect()
        })
        .await
    }

    async fn copy_messages(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
        bytes_max: usize,
    ) -> StoreResult<Vec<CopiedMessage>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internal_micros, m.crlf_size, \
                 m.from_addr, m.subject, m.message_id, m.imported, m.blob_id, b.raw, \
                 s.summary, m.internal_zone FROM messages m JOIN blobs b ON b.id = m.blob_id \
                 LEFT JOIN summaries s ON s.blob_id = m.blob_id \
                 WHERE m.mailbox_id = ?1 AND m.uid > ?2 ORDER BY m.uid LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![mailbox, after, limit as i64])?;
            let mut out = Vec::new();
            let mut bytes = 0;
            while bytes < bytes_max.max(1)
                && let Some(r) = rows.next()?
            {
                let m = CopiedMessage {
                    uid: r.get(0)?,
                    modseq: r.get(1)?,
                    flags: r.get(2)?,
                    keywords: r.get(3)?,
                    internal_micros: r.get(4)?,
                    internal_zone: r.get(13)?,
                    crlf_size: r.get(5)?,
                    from: r.get(6)?,
                    subject: r.get(7)?,
                    message_id: r.get(8)?,
                    imported: r.get(9)?,
                    blob: r.get(10)?,
                    raw: r.get(11)?,
                    summary: r.get(12)?,
                };
                bytes += m.raw.len();
                out.push(m);
            }
            Ok(out)
        })
        .await
    }

    async fn copy_expunged(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
    ) -> StoreResult<Vec<CopiedTombstone>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT uid, modseq, blob_id FROM expunged WHERE mailbox_id = ?1 AND uid > ?2 \
                 ORDER BY uid LIMIT ?3",
            )?
            .query_map(params![mailbox, after, limit as i64], |r| {
                Ok(CopiedTombstone {
                    uid: r.get(0)?,
                    modseq: r.get(1)?,
                    blob: r.get(2)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn copy_counters(&self) -> StoreResult<IdCounters> {
        self.read(|c| {
            let mut seq =
                c.prepare("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = ?1")?;
            let mut of = |table: &str| seq.query_row(params![table], |r| r.get::<_, i64>(0));
            Ok(IdCounters {
                users: of(COUNTED[0])?,
                mailboxes: of(COUNTED[1])?,
                blobs: of(COUNTED[2])?,
            })
        })
        .await
    }

    async fn put_expunged(
        &self,
        mailbox: MailboxId,
        gone: Vec<CopiedTombstone>,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let run = || -> rusqlite::Result<()> {
                let mut insert = ctx.tx.prepare_cached(
                    "INSERT OR IGNORE INTO expunged (mailbox_id, uid, modseq, blob_id) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for t in &gone {
                    insert.execute(params![mailbox, t.uid, t.modseq, t.blob])?;
                }
                Ok(())
            };
            run().map_err(backend)
        })
        .await
    }

    async fn put_counters(&self, counters: IdCounters) -> StoreResult<()> {
        self.write(move |ctx| {
            let run = || -> rusqlite::Result<()> {
                let wanted = [counters.users, counters.mailboxes, counters.blobs];
                for (table, at_least) in COUNTED.into_iter().zip(wanted) {
                    // A table never written to has no row yet.
                    let moved = ctx.tx.execute(
                        "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                        params![table, at_least],
                    )?;
                    if moved == 0 {
                        ctx.tx.execute(
                            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                            params![table, at_least],
                        )?;
                    }
                }
                Ok(())
            };
            run().map_err(backend)
        })
        .await
    }

    async fn put_kept_subscriptions(&self, user: UserId, names: &[String]) -> StoreResult<()> {
        let names = names.to_vec();
        self.write(move |ctx| {
            let mut keep = ctx
                .tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO subscribed_names (user_id, name) VALUES (?1, ?2)",
                )
                .map_err(backend)?;
            for name in &names {
                keep.execute(rusqlite::params![user, name])
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn put_user(&self, user: &CopiedUser) -> StoreResult<()> {
        let u = user.clone();
        self.write(move |ctx| {
            let existing: Option<(UserId, String, i64, String)> = ctx
                .tx
                .query_row(
                    "SELECT id, name, created_micros, password_hash FROM users \
                     WHERE name = ?1 OR id = ?2",
                    params![u.name, u.id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(backend)?;
            if let Some(found) = existing {
                return match found == (u.id, u.name.clone(), u.created_micros, u.password_hash) {
                    true => Ok(()),
                    false => Err(StoreError::UserExists(u.name)),
                };
            }
            ctx.tx
                .execute(
                    "INSERT INTO users (id, name, password_hash, created_micros, modseq, quota_bytes, \
                     quota_messages) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        u.id,
                        u.name,
                        u.password_hash,
                        u.created_micros,
                        u.modseq,
                        u.quota_bytes,
                        u.quota_messages
                    ],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn put_mailbox(
        &self,
        user: UserId,
        id: MailboxId,
        m: &CopiedMailbox,
    ) -> StoreResult<u32> {
        let m = m.clone();
        self.write(move |ctx| {
            let existing: Option<(MailboxId, UserId, u32)> = ctx
                .tx
                .query_row(
                    "SELECT id, user_id, uid_validity FROM mailboxes \
                     WHERE (user_id = ?1 AND name = ?2) OR id = ?3",
                    params![user, m.name, id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            if let Some(found) = existing {
                if found != (id, user, m.uid_validity) {
                    return Err(StoreError::MailboxExists);
                }
                return ctx
                    .tx
                    .query_row(
                        "SELECT coalesce(max(uid), 0) FROM messages WHERE mailbox_id = ?1",
                        params![id],
                        |r| r.get(0),
                    )
                    .map_err(backend);
            }
            ctx.tx
                .execute(
                    "INSERT INTO mailboxes (id, user_id, name, role, subscribed, uid_validity, \
                     uid_next, highest_modseq, account_modseq, first_recent_uid) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        id,
                        user,
                        m.name,
                        m.role.map(Role::as_str),
                        m.subscribed,
                        m.uid_validity,
                        m.uid_next,
                        m.highest_modseq,
                        m.account_modseq,
                        m.first_recent_uid
                    ],
                )
                .map_err(backend)?;
            Ok(0)
        })
        .await
    }

    async fn put_messages(
        &self,
        user: UserId,
        mailbox: MailboxId,
        messages: Vec<CopiedMessage>,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let run = || -> rusqlite::Result<()> {
                let tx = ctx.tx;
                let (mut count, mut unseen, mut bytes) = (0i64, 0i64, 0i64);
                for m in &messages {
                    tx.prepare_cached(
                        "INSERT INTO blobs (id, raw) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                    )?
                    .execute(params![m.blob, m.raw])?;
                    tx.prepare_cached(
                        "INSERT INTO blob_refs (blob_id, refs) VALUES (?1, 1) \
                         ON CONFLICT (blob_id) DO UPDATE SET refs = refs + 1",
                    )?
                    .execute(params![m.blob])?;
                    // Without one, the message is summarized when the store next opens.
                    let summarized = match &m.summary {
                        Some(summary) => tx
                            .prepare_cached(
                                "INSERT INTO summaries (blob_id, summary) VALUES (?1, ?2) \
                                 ON CONFLICT (blob_id) DO NOTHING",
                            )?
                            .execute(params![m.blob, summary]),
                        None => tx
                            .prepare_cached(
                                "INSERT INTO summaries_missing (blob_id) VALUES (?1) \
                                 ON CONFLICT (blob_id) DO NOTHING",
                            )?
                            .execute(params![m.blob]),
                    };
                    summarized?;
                    tx.prepare_cached(
                        "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, \
                         internal_micros, size, crlf_size, from_addr, subject, message_id, imported, \
                         blob_id, internal_zone) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    )?
                    .execute(params![
                        mailbox,
                        m.uid,
                        m.modseq,
                        m.flags,
                        m.keywords,
                        m.internal_micros,
                        m.raw.len() as i64,
                        m.crlf_size,
                        m.from,
                        m.subject,
                        m.message_id,
                        m.imported,
                        m.blob,
                        m.internal_zone
                    ])?;
                    for k in m.keywords.split_whitespace() {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO mailbox_keywords (mailbox_id, keyword) VALUES (?1, ?2)",
                        )?
                        .execute(params![mailbox, k])?;
                    }
                    count += 1;
                    unseen += i64::from(m.flags & flags::SEEN == 0);
                    bytes += m.raw.len() as i64;
                }
                tx.prepare_cached(
                    "UPDATE mailboxes SET messages = messages + ?2, unseen = unseen + ?3, \
                     bytes = bytes + ?4 WHERE id = ?1",
                )?
                .execute(params![mailbox, count, unseen, bytes])?;
                tx.prepare_cached(
                    "UPDATE users SET used_messages = used_messages + ?2, used_bytes = used_bytes + ?3 \
                     WHERE id = ?1",
                )?
                .execute(params![user, count, bytes])?;
                Ok(())
            };
            run().map_err(backend)
        })
        .await
    }

    async fn put_done(&self, user: UserId, copied: &CopiedUser) -> StoreResult<()> {
        let modseq = copied.modseq;
        self.write(move |ctx| {
            let run = || -> rusqlite::Result<()> {
                ctx.tx.execute(
                    "UPDATE users SET modseq = max(modseq, ?2) WHERE id = ?1",
                    params![user, modseq],
                )?;
                ctx.tx.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, (SELECT max(uid_validity) FROM mailboxes)) \
                     WHERE name = 'mailboxes'",
                    [],
                )?;
                Ok(())
            };
            run().map_err(backend)
        })
        .await
    }
}
