//! Who a JMAP request is from: HTTP Basic (the one login path every protocol uses: name rule, throttle,
//! argon2id), or a bearer token the web page obtains with a password (`POST /jmap/token`).
//!
//! A password is checked once, then remembered for a few minutes by a digest of it, so a client sending
//! Basic with every request does not pay argon2id each time (as Dovecot's auth cache). Every request
//! still asks the store whether the login stands ([`crate::accounts::still_valid`]): a deleted account
//! or a changed password takes effect at once, whether by Basic, cache or token.
//!
//! Tokens are signed (HMAC-SHA256) with a key kept in the data dir (`jmap-token.key`, 0600, made on first
//! use), name the password they were issued under, and expire. Nodes that share a PostgreSQL store must
//! share that file for a token from one to work on another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::conn::Shared;
use crate::store::Account;
use crate::throttle::LoginResult;

/// How long a checked password is remembered, and for how many logins at most (past it, all are
/// forgotten: a flood of good logins costs argon2id again, never memory).
const CACHE_SECS: u64 = 300;
const CACHE_ENTRIES_MAX: usize = 10_000;
/// How long a token lasts.
pub const TOKEN_SECS: u64 = 12 * 3600;
/// Longest `Authorization` value looked at.
const AUTHORIZATION_BYTES_MAX: usize = 4096;
const KEY_FILE: &str = "jmap-token.key";

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No credentials, or wrong ones: 401 with a challenge.
    Unauthorized,
    /// A password in clear off loopback: 403, use HTTPS.
    Plaintext,
    /// Too many failures from the address.
    Blocked,
    /// The store did not answer.
    Unavailable,
}

struct Remembered {
    account: Account,
    until: Instant,
}

fn cache() -> &'static Mutex<HashMap<[u8; 32], Remembered>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Remembered>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The cache key: the login name as typed and the password, digested together (the cache never holds
/// a password).
fn cache_key(name: &str, password: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(name.to_lowercase().as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .finalize()
        .into()
}

/// The account an `Authorization` header stands for.
pub async fn authenticate(
    ctx: &Shared,
    peer: IpAddr,
    tls: bool,
    authorization: Option<&str>,
) -> Result<Account, Refused> {
    let value = authorization
        .filter(|v| v.len() <= AUTHORIZATION_BYTES_MAX)
        .ok_or(Refused::Unauthorized)?;
    let (scheme, credentials) = value.split_once(' ').ok_or(Refused::Unauthorized)?;
    let account = if scheme.eq_ignore_ascii_case("basic") {
        if !crate::conn::plaintext_auth_allowed(peer, tls, ctx.config.allow_plaintext_auth) {
            return Err(Refused::Plaintext);
        }
        let decoded = STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(Refused::Unauthorized)?;
        let (name, password) = decoded.split_once(':').ok_or(Refused::Unauthorized)?;
        return password_login(ctx, peer, name, password).await;
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let key = token_key(&ctx.config.data_dir).ok_or(Refused::Unavailable)?;
        let (account, issued_micros) =
            verify_token(&key, credentials.trim(), now_secs()).ok_or(Refused::Unauthorized)?;
        // A sign-out ended the tokens issued before it.
        match ctx.store.tokens_from(account.id).await {
            Ok(Some(from)) if issued_micros >= from => account,
            Ok(_) => return Err(Refused::Unauthorized),
            Err(_) => return Err(Refused::Unavailable),
        }
    } else {
        return Err(Refused::Unauthorized);
    };
    match still_stands(ctx, &account).await? {
        true => Ok(account),
        false => Err(Refused::Unauthorized),
    }
}

async fn still_stands(ctx: &Shared, account: &Account) -> Result<bool, Refused> {
    crate::accounts::still_valid(&*ctx.store, account)
        .await
        .map_err(|_| Refused::Unavailable)
}

/// A name and password through the shared login (throttled), or from the cache when this very pair
/// was checked in the last few minutes.
pub async fn password_login(
    ctx: &Shared,
    peer: IpAddr,
    name: &str,
    password: &str,
) -> Result<Account, Refused> {
    let key = cache_key(name, password);
    let remembered = {
        let mut cache = cache().lock().expect("auth cache lock");
        match cache.get(&key) {
            Some(r) if r.until > Instant::now() => Some(r.account.clone()),
            Some(_) => {
                cache.remove(&key);
                None
            }
            None => None,
        }
    };
    if let Some(account) = remembered {
        if still_stands(ctx, &account).await? {
            return Ok(account);
        }
        // Remembered from before the account was deleted and made again (a new id) or its password
        // changed, or from another store in the same process: forget it, check the password afresh.
        cache().lock().expect("auth cache lock").remove(&key);
    }
    match crate::throttle::login(
        &*ctx.store,
        &ctx.config,
        &ctx.throttle,
        peer,
        name,
        password,
    )
    .await
    {
        LoginResult::Ok(account) => {
            let mut cache = cache().lock().expect("auth cache lock");
            if cache.len() >= CACHE_ENTRIES_MAX {
                cache.clear();
            }
            cache.insert(
                key,
                Remembered {
                    account: account.clone(),
                    until: Instant::now() + Duration::from_secs(CACHE_SECS),
                },
            );
            Ok(account)
        }
        LoginResult::Failed => Err(Refused::Unauthorized),
        LoginResult::Blocked => Err(Refused::Blocked),
        LoginResult::Unavailable(e) => {
            tracing::warn!(error = %e, "JMAP login: the store does not answer");
            Err(Refused::Unavailable)
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signing key, read from the data dir or made there the first time.
fn token_key(data_dir: &Path) -> Option<[u8; 32]> {
    static KEY: OnceLock<Mutex<HashMap<std::path::PathBuf, [u8; 32]>>> = OnceLock::new();
    let keys = KEY.get_or_init(|| Mutex::new(HashMap::new()));
    let mut keys = keys.lock().expect("token key lock");
    if let Some(k) = keys.get(data_dir) {
        return Some(*k);
    }
    let path = data_dir.join(KEY_FILE);
    let read = |path: &Path| -> Option<[u8; 32]> {
        let text = std::fs::read_to_string(path).ok()?;
        STANDARD.decode(text.trim()).ok()?.try_into().ok()
    };
    let key = match read(&path) {
        Some(k) => k,
        None => {
            let fresh: [u8; 32] = rand::random();
            if let Err(e) = crate::datadir::write_atomic(
                &path,
                STANDARD.encode(fresh).as_bytes(),
                crate::datadir::FILE_MODE,
            ) {
                tracing::error!(file = %path.display(), error = %e, "cannot write the JMAP token key");
                return None;
            }
            // Another process may have written its own at the same moment: whatever is there now wins.
            read(&path)?
        }
    };
    keys.insert(data_dir.to_path_buf(), key);
    Some(key)
}

fn mac(key: &[u8; 32], payload: &str) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, payload.as_bytes())
}

/// A token for `account`, issued at `issued_micros` (microseconds since the epoch, for a sign-out to
/// end), good until `expires` (seconds since the epoch).
fn sign_token(key: &[u8; 32], account: &Account, issued_micros: i64, expires: u64) -> String {
    let credential: String = account
        .credential
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let payload = format!(
        "{}:{}:{}:{}:{}:{}",
        account.id, account.inbox, credential, expires, issued_micros, account.name
    );
    let tag = mac(key, &payload);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

/// The account a token names and when it was issued, if its signature holds and it has not expired.
fn verify_token(key: &[u8; 32], token: &str, now: u64) -> Option<(Account, i64)> {
    let (payload, tag) = token.split_once('.')?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, payload.as_bytes(), &tag).ok()?;
    let mut fields = payload.splitn(6, ':');
    let id = fields.next()?.parse().ok()?;
    let inbox = fields.next()?.parse().ok()?;
    let credential_hex = fields.next()?;
    let expires: u64 = fields.next()?.parse().ok()?;
    let issued_micros: i64 = fields.next()?.parse().ok()?;
    let name = fields.next()?.to_string();
    if expires <= now || credential_hex.len() != 16 {
        return None;
    }
    let mut credential = [0u8; 8];
    for (i, byte) in credential.iter_mut().enumerate() {
        *byte = u8::from_str_radix(credential_hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((
        Account {
            id,
            name,
            inbox,
            credential,
        },
        issued_micros,
    ))
}

/// A fresh token for a logged-in account; `None` when the key cannot be had.
pub fn issue_token(ctx: &Shared, account: &Account) -> Option<String> {
    let key = token_key(&ctx.config.data_dir)?;
    Some(sign_token(
        &key,
        account,
        now_micros(),
        now_secs() + TOKEN_SECS,
    ))
}

/// Ends every token of `account` issued until now (a sign-out).
pub async fn end_tokens(ctx: &Shared, account: &Account) -> Result<(), Refused> {
    ctx.store
        .end_tokens(account.id, now_micros() + 1)
        .await
        .map_err(|_| Refused::Unavailable)
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account {
            id: 7,
            name: "alice".into(),
            inbox: 70,
            credential: [1, 2, 3, 4, 5, 6, 7, 0xff],
        }
    }

    #[test]
    fn tokens_hold_until_they_expire_and_cannot_be_forged() {
        let key = [9u8; 32];
        let token = sign_token(&key, &alice(), 5, 1000);
        assert_eq!(verify_token(&key, &token, 999), Some((alice(), 5)));
        assert_eq!(verify_token(&key, &token, 1000), None);
        assert_eq!(verify_token(&[8u8; 32], &token, 10), None);
        let (payload, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode("1:70:01020304050607ff:1000:5:root");
        assert_eq!(verify_token(&key, &format!("{forged}.{tag}"), 10), None);
        assert_eq!(verify_token(&key, payload, 10), None);
        assert_eq!(verify_token(&key, "", 10), None);
    }
}
