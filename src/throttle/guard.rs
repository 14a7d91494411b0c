//! Guessing at one account from many addresses. Per-address blocks stop one address; an attacker with
//! hundreds of them gets hundreds of budgets for the same account. Once an account has
//! `login_block_failures` failures in force (its untrusted attempts still being checked counting) it
//! is guarded: attempts from addresses it has logged in
//! from before go on as usual, and the others are checked one at a time, each no sooner than the
//! account's penalty after its last failure (with the defaults, one guess per 15 s however many
//! addresses guess). Nothing is ever locked: a known address is never held back, and a good login
//! from a new address ends the guard by clearing the account's failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// How long an address an account logged in from is trusted for that account.
pub const TRUSTED_SECS: u64 = 30 * 24 * 3600;
/// Addresses remembered per account: the most recent ones (home, work, phone, a laptop on the road).
pub const TRUSTED_PER_ACCOUNT_MAX: usize = 8;

#[derive(Default)]
pub struct AccountGuard {
    /// Per account, the addresses (keyed as [`crate::caps::address_key`]) it logged in from and when.
    trusted: Mutex<HashMap<String, Vec<(IpAddr, Instant)>>>,
    /// Per account, the untrusted addresses whose attempts are being checked now (one entry per
    /// attempt). They count as failures to come: without them, hundreds of guesses sent at once, all
    /// checked before the first failed, would pass a guard not yet in force. An entry lives only while
    /// its attempt runs, so the map is bounded by the open connections.
    pending: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl AccountGuard {
    /// Whether `account` logged in from `ip` within [`TRUSTED_SECS`].
    pub fn trusts(&self, account: &str, ip: IpAddr, now: Instant) -> bool {
        let trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        trusted.get(account).is_some_and(|known| {
            known
                .iter()
                .any(|(a, at)| *a == ip && now.duration_since(*at).as_secs() < TRUSTED_SECS)
        })
    }

    /// Remembers a good login of `account` from `ip`, dropping its oldest address past the limit. With
    /// `entries_max` accounts remembered, a new one is remembered only once stale ones are dropped.
    pub fn remember(&self, account: &str, ip: IpAddr, now: Instant, entries_max: usize) {
        let mut trusted = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        if trusted.len() >= entries_max && !trusted.contains_key(account) {
            let fresh = |at: &Instant| now.duration_since(*at).as_secs() < TRUSTED_SECS;
            trusted.retain(|_, known| {
                known.retain(|(_, at)| fresh(at));
                !known.is_empty()
            });
            if trusted.len() >= entries_max {
                return;
            }
        }
        let known = trusted.entry(account.to_string()).or_default();
        known.retain(|(a, _)| *a != ip);
        if known.len() >= TRUSTED_PER_ACCOUNT_MAX {
            known.remove(0);
        }
        known.push((ip, now));
    }

    /// Lets an untrusted attempt from `ip` at `account` begin, or not. With its attempts in flight
    /// counted as failures to come, an account short of `guard_at` failures takes any; one at or past
    /// it is guarded and takes one at a time, and only when `due` (its penalty since the last failure
    /// has passed).
    pub fn begin(
        &self,
        account: &str,
        ip: IpAddr,
        failures: u32,
        guard_at: u32,
        due: bool,
    ) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let running = pending.get(account).map_or(0, Vec::len);
        let guarded = failures.saturating_add(running as u32) >= guard_at;
        if guarded && (running > 0 || !due) {
            return false;
        }
        pending.entry(account.to_string()).or_default().push(ip);
        true
    }

    /// Ends an attempt [`Self::begin`] let in (nothing for one it did not).
    pub fn end(&self, account: &str, ip: IpAddr) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = pending.get_mut(account) {
            if let Some(at) = running.iter().position(|a| *a == ip) {
                running.swap_remove(at);
            }
            if running.is_empty() {
                pending.remove(account);
            }
        }
    }
}
