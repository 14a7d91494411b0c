//! The automatic reply's writes: its settings, and whom it answered when; and what else JMAP keeps per
//! account: the identity settings and the submissions sent.

use rusqlite::{OptionalExtension, params};

use super::writer::{Ctx, backend};
use crate::store::rules::{SUBMISSION_KEPT_MICROS, SUBMISSIONS_KEPT_MAX, VACATION_SENDERS_MAX};
use crate::store::{StoreResult, UserId, Vacation};

pub fn set(ctx: &mut Ctx<'_>, user: UserId, v: &Vacation) -> StoreResult<u64> {
    let run = || -> rusqlite::Result<u64> {
        let version: u64 = ctx
            .tx
            .prepare_cached(
                "INSERT INTO vacations \
                 (user_id, enabled, from_micros, to_micros, subject, text_body, html_body, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1) \
                 ON CONFLICT (user_id) DO UPDATE SET enabled = ?2, from_micros = ?3, to_micros = ?4, \
                 subject = ?5, text_body = ?6, html_body = ?7, version = version + 1 \
                 RETURNING version",
            )?
            .query_row(
                params![
                    user,
                    v.enabled,
                    v.from_micros,
                    v.to_micros,
                    v.subject,
                    v.text_body,
                    v.html_body
                ],
                |r| r.get(0),
            )?;
        ctx.tx
            .prepare_cached("DELETE FROM vacation_replies WHERE user_id = ?1")?
            .execute(params![user])?;
        Ok(version)
    };
    run().map_err(backend)
}

/// Identity settings replaced only at the version the caller read (`None` otherwise).
pub fn set_identity_settings(
    ctx: &mut Ctx<'_>,
    user: UserId,
    settings: &str,
    version: u64,
) -> StoreResult<Option<u64>> {
    ctx.tx
        .prepare_cached(
            "INSERT INTO identity_settings (user_id, settings, version) VALUES (?1, ?2, 1) \
             ON CONFLICT (user_id) DO UPDATE SET settings = ?2, version = version + 1 \
             WHERE version = ?3 RETURNING version",
        )
        .and_then(|mut s| {
            s.query_row(params![user, settings, version], |r| r.get(0))
                .optional()
        })
        .map_err(backend)
}

/// A submission kept, and those past the account's number or age dropped.
pub fn add_submission(
    ctx: &mut Ctx<'_>,
    user: UserId,
    object: &str,
    now_micros: i64,
) -> StoreResult<u64> {
    let run = || -> rusqlite::Result<u64> {
        let id: u64 = ctx
            .tx
            .prepare_cached(
                "INSERT INTO submissions (user_id, created_micros, object) VALUES (?1, ?2, ?3) \
                 RETURNING id",
            )?
            .query_row(params![user, now_micros, object], |r| r.get(0))?;
        ctx.tx
            .prepare_cached(
                "DELETE FROM submissions WHERE user_id = ?1 AND (created_micros < ?2 OR id <= \
                 (SELECT id FROM submissions WHERE user_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?3))",
            )?
            .execute(params![
                user,
                now_micros.saturating_sub(SUBMISSION_KEPT_MICROS),
                SUBMISSIONS_KEPT_MAX
            ])?;
        Ok(id)
    };
    run().map_err(backend)
}

pub fn destroy_submission(ctx: &mut Ctx<'_>, user: UserId, id: u64) -> StoreResult<bool> {
    ctx.tx
        .prepare_cached("DELETE FROM submissions WHERE user_id = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![user, id]))
        .map(|n| n > 0)
        .map_err(backend)
}

pub fn reply_due(
    ctx: &mut Ctx<'_>,
    user: UserId,
    sender: &str,
    now_micros: i64,
    interval_micros: i64,
) -> StoreResult<bool> {
    let run = || -> rusqlite::Result<bool> {
        let since = now_micros.saturating_sub(interval_micros);
        let last: Option<i64> = ctx
            .tx
            .prepare_cached(
                "SELECT replied_micros FROM vacation_replies WHERE user_id = ?1 AND sender = ?2",
            )?
            .query_row(params![user, sender], |r| r.get(0))
            .optional()?;
        if last.is_some_and(|at| at > since) {
            return Ok(false);
        }
        ctx.tx
            .prepare_cached(
                "DELETE FROM vacation_replies WHERE user_id = ?1 AND replied_micros <= ?2",
            )?
            .execute(params![user, since])?;
        let remembered: i64 = ctx
            .tx
            .prepare_cached("SELECT count(*) FROM vacation_replies WHERE user_id = ?1")?
            .query_row(params![user], |r| r.get(0))?;
        if remembered >= VACATION_SENDERS_MAX {
            return Ok(false);
        }
        ctx.tx
            .prepare_cached(
                "INSERT INTO vacation_replies (user_id, sender, replied_micros) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![user, sender, now_micros])?;
        Ok(true)
    };
    run().map_err(backend)
}
