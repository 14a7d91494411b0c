//! Guessing at one account from many addresses. Per-address blocks stop one address; an attacker with
//! hundreds of them gets hundreds of budgets for the same account. Once an account has
//! `login_block_failures` failures in force it is guarded: attempts from addresses it has logged in
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
    /// Guarded accounts with an attempt from an untrusted address being checked now, and that address.
    checking: Mutex<HashMap<String, IpAddr>>,
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

    /// Takes the guarded account's one place for an untrusted attempt from `ip`; false when another
    /// attempt holds it.
    pub fn enter(&self, account: &str, ip: IpAddr) -> bool {
        let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
        if checking.contains_key(account) {
            return false;
        }
        checking.insert(account.to_string(), ip);
        true
    }

    /// Gives the place back if `ip`'s attempt holds it.
    pub fn leave(&self, account: &str, ip: IpAddr) {
        let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
        if checking.get(account) == Some(&ip) {
            checking.remove(account);
        }
    }
}
