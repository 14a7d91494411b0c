//! Brute-force throttling of logins, shared by every protocol: failures are counted per client IP and per
//! account; each further failure is answered later (1 s, 2 s, 4 s ... up to `login_penalty_secs_max`, like
//! Dovecot's auth penalty), and an IP with `login_block_failures` failures is refused outright for
//! `login_block_secs`. An account is slowed but never locked, so nobody can lock a user out; one guessed
//! at from many addresses is guarded ([`guard`]): new addresses take turns at it.
//!
//! Time comes from a [`Clock`], so tests move it by hand instead of sleeping.

mod guard;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, Limits};
use crate::store::{Account, MailStore, StoreError};
use guard::AccountGuard;

/// Most IPs and accounts tracked at once. Each costs about 64 bytes; when full, stale entries are dropped
/// first and new ones are then not tracked (the per-connection failure limit still applies).
pub const THROTTLE_ENTRIES_MAX: usize = 100_000;

pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told (tests).
pub struct ManualClock(Mutex<Instant>);

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(Mutex::new(Instant::now()))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password; answer a failure no sooner than `penalty` after it came.
    Check { penalty: Duration },
    /// Wait and ask again: the account is guarded ([`guard`]) and this address, which it never logged
    /// in from, must take its turn.
    Guarded,
    /// Refuse without checking: the IP is blocked for this much longer.
    Blocked { remaining: Duration },
    /// Wait and ask again: this IP already has as many attempts in flight as it has failures left
    /// before a block. Parallel guesses therefore cannot all be checked before the count catches up,
    /// while parallel good logins just take turns (argon2 runs four at a time anyway).
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Failure counts kept where every node sees them (the PostgreSQL store), so that an attacker spreading
/// guesses over N nodes gets one budget, not N. Keys are an address (`ip:...`) or an account
/// (`user:...`); a count is forgotten `window_secs` after its last failure unless it is blocked.
#[async_trait::async_trait]
pub trait SharedFailures: Send + Sync {
    /// For each key: failures in force and seconds of block left (0: not blocked).
    async fn failures(
        &self,
        keys: &[String],
        window_secs: u64,
    ) -> Result<Vec<(u32, u64)>, StoreError>;
    /// Counts one failure against each key; an address (the first key) reaching `block_failures` is
    /// blocked for `block_secs`.
    async fn failed(
        &self,
        keys: &[String],
        window_secs: u64,
        block_failures: u32,
        block_secs: u64,
    ) -> Result<(), StoreError>;
    /// Forgets a key's failures (an account after a good login).
    async fn cleared(&self, key: &str) -> Result<(), StoreError>;
}

pub struct LoginThrottle {
    clock: Arc<dyn Clock>,
    /// Where failures are shared with other nodes, if anywhere; this node's own counts stay the fast
    /// path and the fallback when the shared ones cannot be read.
    shared: Option<Arc<dyn SharedFailures>>,
    ips: Mutex<HashMap<IpAddr, Record>>,
    accounts: Mutex<HashMap<String, Record>>,
    /// Attempts being checked now, per IP; an entry lives only while its count is above 0, so the map is
    /// bounded by the open connections.
    in_flight: Mutex<HashMap<IpAddr, u32>>,
    guard: AccountGuard,
    /// Addresses some account logged in from lately, and when: they may hold more connections (a
    /// household or office behind one address) than an address nobody has proven.
    proven: Mutex<HashMap<IpAddr, Instant>>,
}

/// The limits in force, read from [`Limits`] at each call so a config change applies at once.
struct Policy {
    penalty_max: Duration,
    block_failures: u32,
    block: Duration,
}

impl Policy {
    fn of(limits: &Limits) -> Policy {
        Policy {
            penalty_max: Duration::from_secs(limits.login_penalty_secs_max),
            block_failures: limits.login_block_failures,
            block: Duration::from_secs(limits.login_block_secs),
        }
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    /// A throttle on the system clock, ready to share.
    pub fn system() -> Arc<LoginThrottle> {
        Arc::new(LoginThrottle::new(Arc::new(SystemClock)))
    }

    /// A throttle on the system clock whose counts are also shared with other nodes through `shared`.
    pub fn system_shared(shared: Option<Arc<dyn SharedFailures>>) -> Arc<LoginThrottle> {
        let mut throttle = LoginThrottle::new(Arc::new(SystemClock));
        throttle.shared = shared;
        Arc::new(throttle)
    }

    pub fn new(clock: Arc<dyn Clock>) -> Self {
        LoginThrottle {
            clock,
            shared: None,
            ips: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            guard: AccountGuard::default(),
            proven: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an account logged in from `ip` (as [`crate::caps::address_key`] keys it) within
    /// [`guard::TRUSTED_SECS`].
    pub fn proven(&self, ip: IpAddr) -> bool {
        let ip = crate::caps::address_key(ip);
        let now = self.clock.now();
        let proven = self.proven.lock().unwrap_or_else(|e| e.into_inner());
        proven
            .get(&ip)
            .is_some_and(|at| now.saturating_duration_since(*at).as_secs() < guard::TRUSTED_SECS)
    }

    /// Remembers a good login from `ip`; past [`THROTTLE_ENTRIES_MAX`] addresses the stale ones go,
    /// and if none is stale the new one is not kept (it is then held to the stranger's cap).
    fn prove(&self, ip: IpAddr, now: Instant) {
        let mut proven = self.proven.lock().unwrap_or_else(|e| e.into_inner());
        if proven.len() >= THROTTLE_ENTRIES_MAX && !proven.contains_key(&ip) {
            proven
                .retain(|_, at| now.saturating_duration_since(*at).as_secs() < guard::TRUSTED_SECS);
            if proven.len() >= THROTTLE_ENTRIES_MAX {
                return;
            }
        }
        proven.insert(ip, now);
    }

    /// Before checking a password from `ip` for `account`. A `Check` must be followed by
    /// [`LoginThrottle::finish`].
    pub fn check(&self, ip: IpAddr, account: &str, limits: &Limits) -> Verdict {
        let p = Policy::of(limits);
        let now = self.clock.now();
        let ip = crate::caps::address_key(ip);
        let ip_record = self.current(&self.ips, &ip, now, &p);
        if let Some(until) = ip_record.and_then(|r| r.blocked_until)
            && until > now
        {
            return Verdict::Blocked {
                remaining: until - now,
            };
        }
        let ip_failures = ip_record.map_or(0, |r| r.failures);
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let n = in_flight.entry(ip).or_insert(0);
            if ip_failures + *n >= p.block_failures.max(1) {
                if *n == 0 {
                    in_flight.remove(&ip);
                }
                return Verdict::Busy;
            }
            *n += 1;
        }
        // An address the account logged in from is judged by its own failures alone.
        if self.guard.trusts(account, ip, now) {
            return Verdict::Check {
                penalty: penalty(ip_failures, p.penalty_max),
            };
        }
        let account_record = self.current(&self.accounts, &account.to_string(), now, &p);
        let account_failures = account_record.map_or(0, |r| r.failures);
        let penalty = penalty(ip_failures.max(account_failures), p.penalty_max);
        let due = account_record.is_none_or(|r| now.duration_since(r.last) >= penalty);
        let guard_at = p.block_failures.max(1);
        if !self
            .guard
            .begin(account, ip, account_failures, guard_at, due)
        {
            self.release(ip);
            return Verdict::Guarded;
        }
        Verdict::Check { penalty }
    }

    /// Ends an attempt that `check` allowed without counting it either way (abandoned, or the store
    /// could not answer): the address's place and any guarded account's turn are given back.
    pub fn abandon(&self, ip: IpAddr, account: &str) {
        let ip = crate::caps::address_key(ip);
        self.release(ip);
        self.guard.end(account, ip);
    }

    /// Gives back one of `ip`'s places in flight (`ip` already keyed).
    fn release(&self, ip: IpAddr) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = in_flight.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&ip);
            }
        }
    }

    /// After the password check that a `Check` allowed. A success from an address new to the account
    /// clears the account's failures (whoever knew the password came by a turn); one from an address it
    /// logged in from before does not, since a mail client that logs in every few minutes would
    /// otherwise reopen the gate to the guesses it holds back. Never the IP's: logging in to one's own
    /// account must not wash away guesses at another's. Returns whether the failures were cleared.
    pub fn finish(&self, ip: IpAddr, account: &str, success: bool, limits: &Limits) -> bool {
        let p = Policy::of(limits);
        let now = self.clock.now();
        let ip = crate::caps::address_key(ip);
        self.release(ip);
        if success {
            self.prove(ip, now);
            let known = self.guard.trusts(account, ip, now);
            if !known {
                self.accounts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(account);
            }
            self.guard.remember(account, ip, now, THROTTLE_ENTRIES_MAX);
            self.guard.end(account, ip);
            return !known;
        }
        let ip_failures = self.bump(&self.ips, ip, now, &p);
        // Counted before the account's turn is given back, so the next untrusted attempt waits from now.
        self.bump(&self.accounts, account.to_string(), now, &p);
        self.guard.end(account, ip);
        if ip_failures >= p.block_failures {
            let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = ips.get_mut(&ip)
                && r.blocked_until.is_none_or(|u| u <= now)
            {
                r.blocked_until = Some(now + p.block);
                tracing::warn!(%ip, failures = ip_failures, block_secs = p.block.as_secs(), "blocking logins from this address");
            }
        }
        false
    }

    /// The keys an attempt is counted under where counts are shared.
    fn shared_keys(ip: IpAddr, account: &str) -> Vec<String> {
        vec![
            format!("ip:{}", crate::caps::address_key(ip)),
            format!("user:{account}"),
        ]
    }

    /// Takes in the shared counts before a check: where another node has seen more failures (or blocked
    /// the address), this node's records say so too. Unreadable shared counts leave the local ones.
    /// Returns whether the account has shared failures (a good login then clears them).
    async fn absorb_shared(&self, ip: IpAddr, account: &str, limits: &Limits) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let keys = Self::shared_keys(ip, account);
        let counts = match shared.failures(&keys, limits.login_block_secs).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "reading shared login failures failed");
                return false;
            }
        };
        let now = self.clock.now();
        let ip = crate::caps::address_key(ip);
        let raise = |record: &mut Record, (failures, blocked_secs): (u32, u64)| {
            if failures > record.failures {
                record.failures = failures;
                record.last = now;
            }
            if blocked_secs > 0 {
                record.blocked_until = Some(now + Duration::from_secs(blocked_secs));
            }
        };
        let fresh = Record {
            failures: 0,
            last: now,
            blocked_until: None,
        };
        if let Some(&c) = counts.first()
            && (c.0 > 0 || c.1 > 0)
        {
            let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
            if ips.len() < THROTTLE_ENTRIES_MAX || ips.contains_key(&ip) {
                raise(ips.entry(ip).or_insert(fresh), c);
            }
        }
        if let Some(&c) = counts.get(1)
            && c.0 > 0
        {
            let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            if accounts.len() < THROTTLE_ENTRIES_MAX || accounts.contains_key(account) {
                raise(accounts.entry(account.to_string()).or_insert(fresh), c);
            }
        }
        counts.get(1).is_some_and(|c| c.0 > 0)
    }

    /// Counts a failure where other nodes see it.
    async fn share_failure(&self, ip: IpAddr, account: &str, limits: &Limits) {
        let Some(shared) = &self.shared else { return };
        let keys = Self::shared_keys(ip, account);
        let result = shared
            .failed(
                &keys,
                limits.login_block_secs,
                limits.login_block_failures,
                limits.login_block_secs,
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording a shared login failure failed");
        }
    }

    /// A good login clears the account's shared failures, as it clears the local ones.
    async fn share_success(&self, account: &str) {
        let Some(shared) = &self.shared else { return };
        if let Err(e) = shared.cleared(&format!("user:{account}")).await {
            tracing::warn!(error = %e, "clearing shared login failures failed");
        }
    }

    /// A record still in force: failures are forgotten `block` after the last one.
    fn current<K: std::hash::Hash + Eq>(
        &self,
        map: &Mutex<HashMap<K, Record>>,
        key: &K,
        now: Instant,
        p: &Policy,
    ) -> Option<Record> {
        let map = map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).copied().filter(|r| {
            now.duration_since(r.last) < p.block || r.blocked_until.is_some_and(|u| u > now)
        })
    }

    fn bump<K: std::hash::Hash + Eq>(
        &self,
        map: &Mutex<HashMap<K, Record>>,
        key: K,
        now: Instant,
        p: &Policy,
    ) -> u32 {
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= THROTTLE_ENTRIES_MAX && !map.contains_key(&key) {
            let block = p.block;
            map.retain(|_, r| {
                now.duration_since(r.last) < block || r.blocked_until.is_some_and(|u| u > now)
            });
            if map.len() >= THROTTLE_ENTRIES_MAX {
                return 0;
            }
        }
        let record = map.entry(key).or_insert(Record {
            failures: 0,
            last: now,
            blocked_until: None,
        });
        if now.duration_since(record.last) >= p.block
            && record.blocked_until.is_none_or(|u| u <= now)
        {
            *record = Record {
                failures: 0,
                last: now,
                blocked_until: None,
            };
        }
        record.failures += 1;
        record.last = now;
        record.failures
    }
}

/// 1 s after the first failure, doubling, at most `max`.
fn penalty(failures: u32, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(1u64 << (failures - 1).min(20)).min(max)
}

/// How a login attempt ended.
pub enum LoginResult {
    Ok(Account),
    /// Wrong password or unknown user (the same thing to the client); the penalty has been waited.
    Failed,
    /// The client's IP is blocked; nothing was checked.
    Blocked,
    /// The store could not answer.
    Unavailable(StoreError),
}

/// The one user-name rule of every protocol: `bob`, `Bob` and `bob@<a local domain>` all name user
/// `bob`. Anything else (another domain, a name no user can have) is the empty name, which fails after
/// the same work as a wrong password, so neither the reply nor its timing tells the two apart.
pub fn login_name(config: &Config, typed: &str) -> String {
    config
        .local_part(typed)
        .and_then(|local| crate::auth::normalize_name(local).ok())
        .unwrap_or_default()
}

/// Every protocol's login: the name as the client typed it ([`login_name`]), the throttle's verdict, the
/// password check (the same work for unknown users), the penalty wait on failure, and the bookkeeping.
pub async fn login(
    store: &dyn MailStore,
    config: &Config,
    throttle: &LoginThrottle,
    ip: IpAddr,
    typed_name: &str,
    password: &str,
) -> LoginResult {
    let name = login_name(config, typed_name);
    let name = name.as_str();
    let queued = tokio::time::Instant::now();
    let shared_failures = throttle.absorb_shared(ip, name, &config.limits).await;
    let penalty = loop {
        match throttle.check(ip, name, &config.limits) {
            Verdict::Blocked { .. } => {
                // Counted, not logged each time: the block itself was logged once, and an address
                // that keeps trying would otherwise write a line per attempt (26 GiB a day).
                tracing::debug!(%ip, "login refused: address blocked after too many failures");
                crate::metrics::METRICS.login(crate::metrics::Login::Blocked);
                return LoginResult::Blocked;
            }
            Verdict::Check { penalty } => break penalty,
            // Someone else from this address, or at this guarded account, is being checked; a long
            // wait means a flood: refuse.
            Verdict::Busy | Verdict::Guarded if queued.elapsed() >= BUSY_WAIT_MAX => {
                crate::metrics::METRICS.login(crate::metrics::Login::Blocked);
                return LoginResult::Blocked;
            }
            Verdict::Busy => tokio::time::sleep(BUSY_POLL).await,
            Verdict::Guarded => tokio::time::sleep(GUARD_POLL).await,
        }
    };
    let started = tokio::time::Instant::now();
    let mut in_flight = InFlight {
        throttle,
        ip,
        name,
        done: false,
    };
    // Failures behind this attempt (a penalty): its check waits in the lane floods of them fill.
    let suspect = !penalty.is_zero();
    let result = crate::accounts::authenticate_in_lane(store, name, password, suspect).await;
    in_flight.done = true;
    match result {
        Ok(Some(account)) => {
            let cleared = throttle.finish(ip, name, true, &config.limits);
            if shared_failures && cleared {
                throttle.share_success(name).await;
            }
            crate::metrics::METRICS.login(crate::metrics::Login::Ok);
            LoginResult::Ok(account)
        }
        Ok(None) => {
            throttle.finish(ip, name, false, &config.limits);
            throttle.share_failure(ip, name, &config.limits).await;
            tokio::time::sleep_until(started + penalty).await;
            crate::metrics::METRICS.login(crate::metrics::Login::Failed);
            LoginResult::Failed
        }
        Err(e) => {
            // Not the client's fault: not held against it.
            throttle.abandon(ip, name);
            crate::metrics::METRICS.login(crate::metrics::Login::Unavailable);
            LoginResult::Unavailable(e)
        }
    }
}

/// Ends an attempt's in-flight count even if the login is abandoned mid-check (its task cancelled), so
/// an address never loses its budget for good.
struct InFlight<'a> {
    throttle: &'a LoginThrottle,
    ip: IpAddr,
    name: &'a str,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.abandon(self.ip, self.name);
        }
    }
}

/// How often a login waiting behind others from its address looks again.
const BUSY_POLL: Duration = Duration::from_millis(20);
/// Longest a login waits behind others from its address before it is refused as part of a flood.
const BUSY_WAIT_MAX: Duration = Duration::from_secs(30);
/// How often a login waiting for its turn at a guarded account looks again: seldom, since the turns
/// come a penalty apart and a guessing flood may keep thousands of logins waiting.
const GUARD_POLL: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> (LoginThrottle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        (LoginThrottle::new(clock.clone()), clock)
    }

    fn limits() -> Limits {
        Limits {
            login_penalty_secs_max: 15,
            login_block_failures: 10,
            login_block_secs: 300,
            ..Limits::default()
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn penalty(v: Verdict) -> u64 {
        match v {
            Verdict::Check { penalty } => penalty.as_secs(),
            other => panic!("{other:?}"),
        }
    }

    fn fail(t: &LoginThrottle, ip: IpAddr, account: &str) -> Verdict {
        let v = t.check(ip, account, &limits());
        if matches!(v, Verdict::Check { .. }) {
            t.finish(ip, account, false, &limits());
        }
        v
    }

    #[test]
    fn each_failure_waits_longer_up_to_the_cap() {
        let (t, _) = throttle();
        let seen: Vec<u64> = (0..6).map(|_| penalty(fail(&t, A, "bob"))).collect();
        assert_eq!(seen, [0, 1, 2, 4, 8, 15]);
        // Another IP guessing the same account is slowed too (per-account count), but not blocked.
        assert_eq!(penalty(t.check(B, "bob", &limits())), 15);
        assert_eq!(penalty(t.check(B, "carol", &limits())), 0);
    }

    #[test]
    fn an_ip_is_blocked_past_the_threshold_then_released() {
        let (t, clock) = throttle();
        for i in 0..10 {
            assert!(matches!(
                fail(&t, A, &format!("user{i}")),
                Verdict::Check { .. }
            ));
        }
        assert!(
            matches!(t.check(A, "anyone", &limits()), Verdict::Blocked { remaining } if remaining.as_secs() == 300)
        );
        assert_eq!(
            penalty(t.check(B, "anyone", &limits())),
            0,
            "other addresses are not affected"
        );
        clock.advance(Duration::from_secs(299));
        assert!(matches!(
            t.check(A, "anyone", &limits()),
            Verdict::Blocked { .. }
        ));
        clock.advance(Duration::from_secs(2));
        assert!(matches!(
            t.check(A, "anyone", &limits()),
            Verdict::Check { .. }
        ));
    }

    #[test]
    fn parallel_attempts_wait_for_the_count_to_catch_up() {
        let (t, _) = throttle();
        for _ in 0..7 {
            fail(&t, A, "alice");
        }
        // Seven failures: three attempts may be checked at once, the fourth waits.
        for _ in 0..3 {
            assert!(matches!(
                t.check(A, "alice", &limits()),
                Verdict::Check { .. }
            ));
        }
        assert_eq!(t.check(A, "alice", &limits()), Verdict::Busy);
        // They all fail: the address is blocked, and no fourth guess was ever checked.
        for _ in 0..3 {
            t.finish(A, "alice", false, &limits());
        }
        assert!(matches!(
            t.check(A, "alice", &limits()),
            Verdict::Blocked { .. }
        ));
    }

    #[test]
    fn a_success_clears_the_account_but_not_the_ips_other_guesses() {
        let (t, clock) = throttle();
        // Nine guesses at alice, then a real login as mallory from the same address: the tenth guess
        // still blocks.
        for _ in 0..9 {
            fail(&t, A, "alice");
        }
        assert!(matches!(
            t.check(A, "mallory", &limits()),
            Verdict::Check { .. }
        ));
        t.finish(A, "mallory", true, &limits());
        assert!(matches!(fail(&t, A, "alice"), Verdict::Check { .. }));
        assert!(matches!(
            t.check(A, "alice", &limits()),
            Verdict::Blocked { .. }
        ));
        clock.advance(Duration::from_secs(601));
        assert_eq!(penalty(t.check(A, "alice", &limits())), 0);
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, n))
    }

    #[test]
    fn many_addresses_guessing_one_account_take_turns_a_penalty_apart() {
        let (t, clock) = throttle();
        // Ten addresses, one guess each: no address is near its block, but alice is now guarded.
        for n in 0..10 {
            assert!(matches!(fail(&t, ip(n), "alice"), Verdict::Check { .. }));
        }
        assert_eq!(t.check(ip(10), "alice", &limits()), Verdict::Guarded);
        assert_eq!(penalty(t.check(ip(10), "bob", &limits())), 0, "only alice");
        t.finish(ip(10), "bob", true, &limits());
        // Its turn comes 15 s (the penalty) after the last failure, for one address at a time.
        clock.advance(Duration::from_secs(15));
        assert_eq!(penalty(t.check(ip(10), "alice", &limits())), 15);
        assert_eq!(t.check(ip(11), "alice", &limits()), Verdict::Guarded);
        t.finish(ip(10), "alice", false, &limits());
        assert_eq!(t.check(ip(11), "alice", &limits()), Verdict::Guarded);
        clock.advance(Duration::from_secs(15));
        assert!(matches!(
            t.check(ip(11), "alice", &limits()),
            Verdict::Check { .. }
        ));
        // An attempt abandoned mid-check (or the store failing) gives the turn back uncounted.
        t.abandon(ip(11), "alice");
        assert!(matches!(
            t.check(ip(12), "alice", &limits()),
            Verdict::Check { .. }
        ));
        // A good login from a new address ends the guard.
        t.finish(ip(12), "alice", true, &limits());
        assert_eq!(penalty(t.check(ip(13), "alice", &limits())), 0);
    }

    #[test]
    fn guesses_sent_all_at_once_count_before_they_fail() {
        let (t, _) = throttle();
        // Ten in flight at once from ten addresses: the account's guard counts them as failures to come.
        for n in 0..10 {
            assert!(matches!(
                t.check(ip(n), "alice", &limits()),
                Verdict::Check { .. }
            ));
        }
        assert_eq!(t.check(ip(10), "alice", &limits()), Verdict::Guarded);
        // One ends well (its place is free again); the other nine still count.
        t.finish(ip(0), "alice", true, &limits());
        assert!(matches!(
            t.check(ip(11), "alice", &limits()),
            Verdict::Check { .. }
        ));
        assert_eq!(t.check(ip(12), "alice", &limits()), Verdict::Guarded);
        for n in (1..10).chain([11]) {
            t.finish(ip(n), "alice", false, &limits());
        }
        assert_eq!(
            t.check(ip(13), "alice", &limits()),
            Verdict::Guarded,
            "ten failures, not due"
        );
        // The address that logged in goes on.
        assert!(matches!(
            t.check(ip(0), "alice", &limits()),
            Verdict::Check { .. }
        ));
    }

    #[test]
    fn an_address_the_account_logged_in_from_is_never_held_back() {
        let (t, _) = throttle();
        assert!(matches!(
            t.check(A, "alice", &limits()),
            Verdict::Check { .. }
        ));
        t.finish(A, "alice", true, &limits());
        for n in 0..12 {
            fail(&t, ip(n), "alice");
        }
        assert_eq!(t.check(B, "alice", &limits()), Verdict::Guarded);
        // A is judged by its own failures: none, so no penalty and no turn to wait for.
        assert_eq!(penalty(t.check(A, "alice", &limits())), 0);
        assert_eq!(penalty(t.check(A, "alice", &limits())), 0);
        // Its good logins (a client checking mail every few minutes) do not reopen the gate.
        assert!(!t.finish(A, "alice", true, &limits()));
        assert!(!t.finish(A, "alice", true, &limits()));
        assert_eq!(t.check(B, "alice", &limits()), Verdict::Guarded);
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(crate::caps::address_key(a), crate::caps::address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(crate::caps::address_key(mapped), A);
    }
}
