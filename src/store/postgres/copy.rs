//! `CopyStore` on PostgreSQL: reading the store out and writing one in exactly (see `store::copy`).

use async_trait::async_trait;

use super::PgStore;
use super::sql::{big, u32_of, u64_of};
use crate::store::{
    CopiedMailbox, CopiedMessage, CopiedTombstone, CopiedUser, CopyStore, IdCounters, MailboxId,
    Role, StoreError, StoreResult, UserId, flags,
};

/// What a sequence has handed out (0: nothing yet). Names are the ones BIGSERIAL gives.
fn handed_out(sequence: &str) -> String {
    format!("(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence})")
}

#[async_trait]
impl CopyStore for PgStore {
    async fn copy_users(&self) -> StoreResult<Vec<CopiedUser>> {
        let rows = read!(self, |ctx| {
            ctx.all(
                "SELECT id, name, password_hash, created_micros, modseq, quota_bytes, quota_messages \
                 FROM users ORDER BY id",
                &[],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| CopiedUser {
                id: r.get(0),
                name: r.get(1),
                password_hash: r.get(2),
                created_micros: r.get(3),
                modseq: u64_of(r, 4),
                quota_bytes: r.get(5),
                quota_messages: r.get(6),
            })
            .collect())
    }

    async fn copy_mailboxes(&self, user: &str) -> StoreResult<Vec<(MailboxId, CopiedMailbox)>> {
        let rows = read!(self, |ctx| {
            ctx.all(
                "SELECT m.id, m.name, m.role, m.subscribed, m.uid_validity, m.uid_next, \
                 m.highest_modseq, m.account_modseq, m.first_recent_uid \
                 FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE u.name = $1 ORDER BY m.id",
                &[&user],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                let role: Option<String> = r.get(2);
                (
                    r.get(0),
                    CopiedMailbox {
                        name: r.get(1),
                        role: role.as_deref().and_then(Role::parse),
                        subscribed: r.get(3),
                        uid_validity: u32_of(r, 4),
                        uid_next: u32_of(r, 5),
                        highest_modseq: u64_of(r, 6),
                        account_modseq: u64_of(r, 7),
                        first_recent_uid: u32_of(r, 8),
                    },
                )
            })
            .collect())
    }

    async fn copy_messages(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
        bytes_max: usize,
    ) -> StoreResult<Vec<CopiedMessage>> {
        // Sizes first, so that no more bytes than asked are read in one go.
        let sizes = read!(self, |ctx| {
            ctx.all(
                "SELECT uid, size FROM messages WHERE mailbox_id = $1 AND uid > $2 ORDER BY uid LIMIT $3",
                &[&mailbox, &i64::from(after), &(limit as i64)],
            )
            .await
        })?;
        let mut last = after;
        let mut bytes = 0u64;
        for r in &sizes {
            if bytes >= bytes_max.max(1) as u64 {
                break;
            }
            last = u32_of(r, 0);
            bytes += u64_of(r, 1);
        }
        let rows = read!(self, |ctx| {
            ctx.all(
                "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internal_micros, m.crlf_size, \
                 m.from_addr, m.subject, m.message_id, m.imported, m.blob_id, b.raw, \
                 b.summary, m.internal_zone FROM messages m JOIN blobs b ON b.id = m.blob_id \
                 WHERE m.mailbox_id = $1 AND m.uid > $2 AND m.uid <= $3 ORDER BY m.uid",
                &[&mailbox, &i64::from(after), &i64::from(last)],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| CopiedMessage {
                uid: u32_of(r, 0),
                modseq: u64_of(r, 1),
                flags: r.get(2),
                keywords: r.get(3),
                internal_micros: r.get(4),
                internal_zone: r.get(13),
                crlf_size: u64_of(r, 5),
                from: r.get(6),
                subject: r.get(7),
                message_id: r.get(8),
                imported: r.get(9),
                blob: r.get(10),
                raw: r.get(11),
                summary: r.get(12),
            })
            .collect())
    }

    async fn copy_expunged(
        &self,
        mailbox: MailboxId,
        after: u32,
        limit: usize,
    ) -> StoreResult<Vec<CopiedTombstone>> {
        let rows = point!(self, |ctx| {
            ctx.all(
                "SELECT uid, modseq, blob_id FROM expunged WHERE mailbox_id = $1 AND uid > $2 \
                 ORDER BY uid LIMIT $3",
                &[&mailbox, &i64::from(after), &(limit as i64)],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| CopiedTombstone {
                uid: u32_of(r, 0),
                modseq: u64_of(r, 1),
                blob: r.get(2),
            })
            .collect())
    }

    async fn copy_counters(&self) -> StoreResult<IdCounters> {
        let sql = format!(
            "SELECT {}, {}, {}",
            handed_out("users_id_seq"),
            handed_out("mailboxes_id_seq"),
            handed_out("blobs_id_seq")
        );
        let row = point!(self, |ctx| ctx.one(&sql, &[]).await)?;
        Ok(IdCounters {
            users: row.get(0),
            mailboxes: row.get(1),
            blobs: row.get(2),
        })
    }

    async fn put_expunged(
        &self,
        mailbox: MailboxId,
        gone: Vec<CopiedTombstone>,
    ) -> StoreResult<()> {
        let uids: Vec<i64> = gone.iter().map(|g| i64::from(g.uid)).collect();
        let modseqs: Vec<i64> = gone.iter().map(|g| big(g.modseq)).collect();
        let blobs: Vec<Option<i64>> = gone.iter().map(|g| g.blob).collect();
        write!(self, |ctx| {
            ctx.exec(
                "INSERT INTO expunged (mailbox_id, uid, modseq, blob_id) \
                 SELECT $1, v.uid, v.modseq, v.blob FROM \
                 unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS v(uid, modseq, blob) \
                 ON CONFLICT DO NOTHING",
                &[&mailbox, &uids, &modseqs, &blobs],
            )
            .await
            .map(drop)
        })
    }

    async fn put_counters(&self, counters: IdCounters) -> StoreResult<()> {
        let wanted = [
            ("users_id_seq", counters.users),
            ("mailboxes_id_seq", counters.mailboxes),
            ("blobs_id_seq", counters.blobs),
        ];
        write!(self, |ctx| {
            for (sequence, at_least) in wanted {
                // setval takes no 0: a counter that handed out nothing stays as it is.
                if at_least > 0 {
                    let sql = format!(
                        "SELECT setval('{sequence}', greatest($1, {}))",
                        handed_out(sequence)
                    );
                    ctx.exec(&sql, &[&at_least]).await?;
                }
            }
            Ok(())
        })
    }

    async fn put_kept_subscriptions(&self, user: UserId, names: &[String]) -> StoreResult<()> {
        write!(self, |ctx| {
            ctx.exec(
                "INSERT INTO subscribed_names (user_id, name) SELECT $1, unnest($2::text[]) \
                 ON CONFLICT DO NOTHING",
                &[&user, &names],
            )
            .await
            .map(|_| ())
        })
    }

    async fn put_user(&self, u: &CopiedUser) -> StoreResult<()> {
        write!(self, |ctx| {
            let row = ctx
                .opt(
                    "INSERT INTO users (id, name, password_hash, created_micros, modseq, quota_bytes, \
                     quota_messages) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING \
                     RETURNING id",
                    &[
                        &u.id,
                        &u.name,
                        &u.password_hash,
                        &u.created_micros,
                        &big(u.modseq),
                        &u.quota_bytes,
                        &u.quota_messages,
                    ],
                )
                .await?;
            if row.is_some() {
                return Ok(());
            }
            let same = ctx
                .opt(
                    "SELECT 1 FROM users WHERE id = $1 AND name = $2 AND created_micros = $3 \
                     AND password_hash = $4",
                    &[&u.id, &u.name, &u.created_micros, &u.password_hash],
                )
                .await?;
            match same {
                Some(_) => Ok(()),
                None => Err(StoreError::UserExists(u.name.clone())),
            }
        })
    }

    async fn put_mailbox(
        &self,
        user: UserId,
        id: MailboxId,
        m: &CopiedMailbox,
    ) -> StoreResult<u32> {
        write!(self, |ctx| {
            let existing = ctx
                .opt(
                    "SELECT id, user_id, uid_validity FROM mailboxes \
                     WHERE (user_id = $1 AND name = $2) OR id = $3",
                    &[&user, &m.name, &id],
                )
                .await?;
            if let Some(r) = existing {
                let found: (MailboxId, UserId, u32) = (r.get(0), r.get(1), u32_of(&r, 2));
                if found != (id, user, m.uid_validity) {
                    return Err(StoreError::MailboxExists);
                }
                let held = ctx
                    .one(
                        "SELECT coalesce(max(uid), 0) FROM messages WHERE mailbox_id = $1",
                        &[&id],
                    )
                    .await?;
                return Ok(u32_of(&held, 0));
            }
            ctx.exec(
                "INSERT INTO mailboxes (id, user_id, name, role, subscribed, uid_validity, uid_next, \
                 highest_modseq, account_modseq, first_recent_uid) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &id,
                    &user,
                    &m.name,
                    &m.role.map(Role::as_str),
                    &m.subscribed,
                    &i64::from(m.uid_validity),
                    &i64::from(m.uid_next),
                    &big(m.highest_modseq),
                    &big(m.account_modseq),
                    &i64::from(m.first_recent_uid),
                ],
            )
            .await?;
            Ok(0)
        })
    }

    async fn put_messages(
        &self,
        user: UserId,
        mailbox: MailboxId,
        messages: Vec<CopiedMessage>,
    ) -> StoreResult<()> {
        write!(self, |ctx| {
            let (mut count, mut unseen, mut bytes) = (0i64, 0i64, 0i64);
            for m in &messages {
                ctx.exec(
                    "INSERT INTO blobs (id, raw, summary) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET refs = blobs.refs + 1",
                    &[&m.blob, &m.raw, &m.summary],
                )
                .await?;
                let size = m.raw.len() as i64;
                ctx.exec(
                    "INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internal_micros, \
                     size, crlf_size, from_addr, subject, message_id, imported, blob_id, internal_zone) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                    &[
                        &mailbox,
                        &i64::from(m.uid),
                        &big(m.modseq),
                        &m.flags,
                        &m.keywords,
                        &m.internal_micros,
                        &size,
                        &big(m.crlf_size),
                        &m.from,
                        &m.subject,
                        &m.message_id,
                        &m.imported,
                        &m.blob,
                        &m.internal_zone,
                    ],
                )
                .await?;
                for k in m.keywords.split_whitespace() {
                    ctx.exec(
                        "INSERT INTO mailbox_keywords (mailbox_id, keyword) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                        &[&mailbox, &k],
                    )
                    .await?;
                }
                count += 1;
                unseen += i64::from(m.flags & flags::SEEN == 0);
                bytes += size;
            }
            ctx.exec(
                "UPDATE mailboxes SET messages = messages + $2, unseen = unseen + $3, \
                 bytes = bytes + $4 WHERE id = $1",
                &[&mailbox, &count, &unseen, &bytes],
            )
            .await?;
            ctx.exec(
                "UPDATE users SET used_messages = used_messages + $2, used_bytes = used_bytes + $3 \
                 WHERE id = $1",
                &[&user, &count, &bytes],
            )
            .await?;
            Ok(())
        })
    }

    async fn put_done(&self, user: UserId, copied: &CopiedUser) -> StoreResult<()> {
        write!(self, |ctx| {
            ctx.exec(
                "UPDATE users SET modseq = greatest(modseq, $2) WHERE id = $1",
                &[&user, &big(copied.modseq)],
            )
            .await?;
            ctx.exec(
                "SELECT setval(pg_get_serial_sequence('mailboxes', 'id'), \
                 greatest((SELECT max(id) FROM mailboxes), (SELECT max(uid_validity) FROM mailboxes), 1))",
                &[],
            )
            .await
            .map(drop)
        })
    }
}
