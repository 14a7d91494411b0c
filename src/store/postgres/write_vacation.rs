//! The automatic reply's writes (SQLite's `write_vacation` says what each does).

use super::sql::{Ctx, u64_of};
use crate::store::rules::{SUBMISSION_KEPT_MICROS, SUBMISSIONS_KEPT_MAX, VACATION_SENDERS_MAX};
use crate::store::{StoreResult, UserId, Vacation};

pub async fn set(ctx: &mut Ctx<'_>, user: UserId, v: &Vacation) -> StoreResult<u64> {
    let row = ctx
        .one(
            "INSERT INTO vacations \
             (user_id, enabled, from_micros, to_micros, subject, text_body, html_body, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
             ON CONFLICT (user_id) DO UPDATE SET enabled = $2, from_micros = $3, to_micros = $4, \
             subject = $5, text_body = $6, html_body = $7, version = vacations.version + 1 \
             RETURNING version",
            &[
                &user,
                &v.enabled,
                &v.from_micros,
                &v.to_micros,
                &v.subject,
                &v.text_body,
                &v.html_body,
            ],
        )
        .await?;
    ctx.exec("DELETE FROM vacation_replies WHERE user_id = $1", &[&user])
        .await?;
    Ok(u64_of(&row, 0))
}

pub async fn set_identity_settings(
    ctx: &mut Ctx<'_>,
    user: UserId,
    settings: &str,
    version: u64,
) -> StoreResult<Option<u64>> {
    let version = i64::try_from(version).unwrap_or(i64::MAX);
    let row = ctx
        .opt(
            "INSERT INTO identity_settings (user_id, settings, version) VALUES ($1, $2, 1) \
             ON CONFLICT (user_id) DO UPDATE SET settings = $2, \
             version = identity_settings.version + 1 \
             WHERE identity_settings.version = $3 RETURNING version",
            &[&user, &settings, &version],
        )
        .await?;
    Ok(row.map(|r| u64_of(&r, 0)))
}

pub async fn add_submission(
    ctx: &mut Ctx<'_>,
    user: UserId,
    object: &str,
    now_micros: i64,
) -> StoreResult<u64> {
    let row = ctx
        .one(
            "INSERT INTO submissions (user_id, created_micros, object) VALUES ($1, $2, $3) \
             RETURNING id",
            &[&user, &now_micros, &object],
        )
        .await?;
    ctx.exec(
        "DELETE FROM submissions WHERE user_id = $1 AND (created_micros < $2 OR id <= \
         (SELECT id FROM submissions WHERE user_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $3))",
        &[
            &user,
            &now_micros.saturating_sub(SUBMISSION_KEPT_MICROS),
            &SUBMISSIONS_KEPT_MAX,
        ],
    )
    .await?;
    Ok(u64_of(&row, 0))
}

pub async fn destroy_submission(ctx: &mut Ctx<'_>, user: UserId, id: u64) -> StoreResult<bool> {
    let id = i64::try_from(id).unwrap_or(i64::MAX);
    let n = ctx
        .exec(
            "DELETE FROM submissions WHERE user_id = $1 AND id = $2",
            &[&user, &id],
        )
        .await?;
    Ok(n > 0)
}

pub async fn reply_due(
    ctx: &mut Ctx<'_>,
    user: UserId,
    sender: &str,
    now_micros: i64,
    interval_micros: i64,
) -> StoreResult<bool> {
    // The account's row lock orders two deliveries' checks for the same account.
    ctx.one("SELECT id FROM users WHERE id = $1 FOR UPDATE", &[&user])
        .await?;
    let since = now_micros.saturating_sub(interval_micros);
    let last = ctx
        .opt(
            "SELECT replied_micros FROM vacation_replies WHERE user_id = $1 AND sender = $2",
            &[&user, &sender],
        )
        .await?;
    if last.is_some_and(|r| r.get::<_, i64>(0) > since) {
        return Ok(false);
    }
    ctx.exec(
        "DELETE FROM vacation_replies WHERE user_id = $1 AND replied_micros <= $2",
        &[&user, &since],
    )
    .await?;
    let remembered = ctx
        .one(
            "SELECT count(*) FROM vacation_replies WHERE user_id = $1",
            &[&user],
        )
        .await?;
    if remembered.get::<_, i64>(0) >= VACATION_SENDERS_MAX {
        return Ok(false);
    }
    ctx.exec(
        "INSERT INTO vacation_replies (user_id, sender, replied_micros) VALUES ($1, $2, $3)",
        &[&user, &sender, &now_micros],
    )
    .await?;
    Ok(true)
}
