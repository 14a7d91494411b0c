//! Login failure counts shared by every node on the database (see [`crate::throttle::SharedFailures`]).

use std::sync::Arc;

use async_trait::async_trait;

use super::PgStore;
use super::sql::Ctx;
use crate::store::{StoreError, StoreResult};
use crate::throttle::SharedFailures;

/// One in this many recorded failures also deletes the counts that have run out, so the table holds
/// about what the last window's failures made.
const SWEEP_EVERY: u64 = 64;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn micros(secs: u64) -> i64 {
    secs.min(i64::MAX as u64 / 1_000_000) as i64 * 1_000_000
}

/// Counts one failure under `key`; a count whose last failure is older than `forgotten` (and that blocks
/// nothing) starts again at one.
async fn record(ctx: &Ctx<'_>, key: &str, now: i64, forgotten: i64) -> StoreResult<i64> {
    let row = ctx
        .one(
            "INSERT INTO login_failures (key, failures, last_micros) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET last_micros = $2, failures = CASE \
                 WHEN login_failures.last_micros <= $3 \
                      AND coalesce(login_failures.blocked_until_micros, 0) <= $2 THEN 1 \
                 ELSE login_failures.failures + 1 END \
             RETURNING failures",
            &[&key, &now, &forgotten],
        )
        .await?;
    Ok(row.get(0))
}

/// The time before which a failure no longer counts, `window_secs` before `now`.
fn forgotten(now: i64, window_secs: u64) -> i64 {
    now.saturating_sub(micros(window_secs))
}

#[async_trait]
impl SharedFailures for PgStore {
    async fn failures(
        &self,
        keys: &[String],
        window_secs: u64,
    ) -> Result<Vec<(u32, u64)>, StoreError> {
        let now = now_micros();
        let window = micros(window_secs);
        let rows = point!(self, |ctx| {
            ctx.all(
                "SELECT key, failures, last_micros, coalesce(blocked_until_micros, 0) \
                 FROM login_failures WHERE key = ANY($1)",
                &[&keys],
            )
            .await
        })?;
        Ok(keys
            .iter()
            .map(|key| {
                let Some(r) = rows.iter().find(|r| r.get::<_, &str>(0) == key) else {
                    return (0, 0);
                };
                let (failures, last, blocked): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
                let left = (blocked - now).max(0) as u64;
                let blocked_secs = left.div_ceil(1_000_000);
                match now - last < window || blocked_secs > 0 {
                    true => (failures.clamp(0, u32::MAX as i64) as u32, blocked_secs),
                    false => (0, 0),
                }
            })
            .collect())
    }

    async fn failed(
        &self,
        keys: &[String],
        window_secs: u64,
        block_failures: u32,
        block_secs: u64,
    ) -> Result<(), StoreError> {
        let now = now_micros();
        let forgotten = forgotten(now, window_secs);
        let until = now.saturating_add(micros(block_secs));
        write!(self, |ctx| {
            for (i, key) in keys.iter().enumerate() {
                let failures = record(&ctx, key, now, forgotten).await?;
                // Only an address is blocked: an account is slowed, never locked out.
                if i == 0 && failures >= i64::from(block_failures) {
                    ctx.exec(
                        "UPDATE login_failures SET blocked_until_micros = $2 WHERE key = $1 \
                         AND coalesce(blocked_until_micros, 0) <= $3",
                        &[key, &until, &now],
                    )
                    .await?;
                }
            }
            Ok(())
        })?;
        // Apart from the count, so that a sweep that fails never loses the failure just recorded.
        if rand::random::<u64>().is_multiple_of(SWEEP_EVERY)
            && let Err(e) = self.forget_login_failures(window_secs).await
        {
            tracing::warn!(error = %e, "sweeping old shared login failures failed");
        }
        Ok(())
    }

    async fn cleared(&self, key: &str) -> Result<(), StoreError> {
        write!(self, |ctx| {
            ctx.exec("DELETE FROM login_failures WHERE key = $1", &[&key])
                .await
                .map(drop)
        })
    }
}

impl PgStore {
    /// Deletes the shared login failure counts older than `window_secs` that block nothing; returns how
    /// many. Done now and then as failures are recorded, so the table holds about one window's failures.
    /// Every bound is a typed parameter: `$1 - $2` of two parameters has no type PostgreSQL can infer
    /// (42725), and such a sweep once failed the whole write it was part of.
    pub async fn forget_login_failures(&self, window_secs: u64) -> StoreResult<u64> {
        let now = now_micros();
        let forgotten = forgotten(now, window_secs);
        write!(self, |ctx| ctx
            .exec(
                "DELETE FROM login_failures WHERE last_micros <= $1 \
                 AND coalesce(blocked_until_micros, 0) <= $2",
                &[&forgotten, &now],
            )
            .await)
    }

    /// This store as the login throttle's shared counts.
    pub fn shared_failures(self: &Arc<Self>) -> Arc<dyn SharedFailures> {
        self.clone()
    }
}
