//! Passwords and account names: argon2id hashing and the rules names follow.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use rand::rngs::OsRng;

/// Longest account name, in bytes. Names become the local part of addresses and SQL keys.
pub const NAME_BYTES_MAX: usize = 64;
/// Longest password accepted, in bytes. Bounds the argon2 work a peer can ask for.
pub const PASSWORD_BYTES_MAX: usize = 1024;

/// Why a name was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a user name is 1 to {NAME_BYTES_MAX} characters")]
    Length,
    #[error("a user name uses only a-z, 0-9, '.', '_' and '-', and starts with a letter or digit")]
    Characters,
}

/// Checks and normalizes a user name: lower-case ASCII letters, digits, `.`, `_`, `-`; starts with a letter
/// or digit; 1 to [`NAME_BYTES_MAX`] bytes. Upper case is folded, so `Bob` and `bob` are one user.
pub fn normalize_name(name: &str) -> Result<String, NameError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(NameError::Length);
    }
    let name = name.to_ascii_lowercase();
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !name.chars().all(ok_char) {
        return Err(NameError::Characters);
    }
    Ok(name)
}

/// Hashes a password with argon2id and a random salt (PHC string). CPU- and memory-heavy: call it off the
/// async runtime.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail on a bounded password")
        .to_string()
}

/// Verifies `password` against a stored hash; with no hash (unknown user) it verifies against a dummy hash
/// so the answer takes the same time either way. Blocking: call it off the async runtime.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    if password.len() > PASSWORD_BYTES_MAX {
        return false;
    }
    let dummy = dummy_hash();
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (dummy, false),
    };
    let ok = PasswordHash::new(hash)
        .map(|parsed| verify_in_own_memory(password.as_bytes(), &parsed))
        .unwrap_or(false);
    ok && real
}

/// Most memory one stored hash may ask a check for, in KiB (argon2's `m`). Hashes Jmail writes ask for
/// 19 MiB; this bounds what a hash written by something else can cost.
pub const VERIFY_KIB_MAX: u32 = 256 * 1024;

/// argon2's check with its working memory (19 MiB for Jmail's hashes) mapped for this one check and
/// unmapped after it, so the pages go back to the system at once. Allocated by the general allocator,
/// those blocks stayed resident after the check (glibc raised its mmap threshold after each large free;
/// freed on the blocking pool's threads they sat in per-thread caches): a few hundred failed logins held
/// over a gigabyte. Same computation as `PasswordVerifier::verify_password`, same constant-time compare.
fn verify_in_own_memory(password: &[u8], hash: &PasswordHash<'_>) -> bool {
    use argon2::{Algorithm, Block, Params, Version};
    let (Some(expected), Some(salt)) = (&hash.hash, &hash.salt) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(hash))
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    if params.m_cost() > VERIFY_KIB_MAX {
        return false;
    }
    let mut salt_bytes = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks_len = params.block_count();
    // MAP_POPULATE: the kernel maps all 19 MiB in one go instead of taking ~4,900 page faults while
    // argon2 first touches them (measured: a check takes 23-24 ms instead of 28-29 ms).
    let Ok(mut map) = memmap2::MmapOptions::new()
        .len(blocks_len * Block::SIZE)
        .populate()
        .map_anon()
    else {
        return false;
    };
    // SAFETY: the mapping is page-aligned (Block needs 64), exactly `blocks_len` blocks long, zeroed by the
    // kernel (all-zero words are a valid Block), and borrowed only while `map` lives.
    let blocks: &mut [Block] =
        unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<Block>(), blocks_len) };
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, blocks);
    drop(map);
    // Output's equality is constant-time.
    computed.is_ok()
        && argon2::password_hash::Output::new(&out).is_ok_and(|output| output == *expected)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("jmail dummy password for unknown users"))
}

/// A short fingerprint of a stored password hash: what a session remembers of the password it logged in
/// with, so a changed password (a new hash, with a new salt) is noticed without keeping the hash itself.
pub fn credential_tag(stored_hash: &str) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(stored_hash.as_bytes());
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest[..8]);
    tag
}

/// Password checks running at once. Each argon2 verification holds about 19 MiB and a core for tens of
/// milliseconds; more than this queue instead of exhausting memory and starving other work. They run in
/// two lanes: logins with no failures behind them (of their address or their account), and the rest. A
/// flood of wrong passwords fills only the second, so the users it does not aim at still log in at once
/// (bad logins from 200 addresses made an unrelated user's login wait 3.5 s in one shared queue).
pub const VERIFY_CONCURRENCY_MAX: usize = 4;
const VERIFY_SUSPECT_MAX: usize = 2;

static CLEAN_LANE: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(VERIFY_CONCURRENCY_MAX - VERIFY_SUSPECT_MAX);
static SUSPECT_LANE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(VERIFY_SUSPECT_MAX);

/// [`verify_password`] on the blocking pool, at most [`VERIFY_CONCURRENCY_MAX`] at once; `suspect`: the
/// address or account has failed logins to its name (the throttle says so).
pub async fn verify_off_runtime(stored: Option<String>, password: String, suspect: bool) -> bool {
    let lane = match suspect {
        true => &SUSPECT_LANE,
        false => &CLEAN_LANE,
    };
    let Ok(_permit) = lane.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_password(stored.as_deref(), &password))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("Bob.Smith-2"), Ok("bob.smith-2".into()));
        assert_eq!(normalize_name(""), Err(NameError::Length));
        assert_eq!(normalize_name(&"a".repeat(65)), Err(NameError::Length));
        assert_eq!(normalize_name(".bob"), Err(NameError::Characters));
        assert_eq!(normalize_name("bob smith"), Err(NameError::Characters));
        assert_eq!(normalize_name("bob@x"), Err(NameError::Characters));
        assert_eq!(normalize_name("bøb"), Err(NameError::Characters));
    }

    #[tokio::test]
    async fn a_flood_of_suspect_logins_does_not_hold_up_clean_ones() {
        let stored = hash_password("right");
        // Every suspect place taken (a flood of wrong passwords in progress).
        let _held = SUSPECT_LANE
            .acquire_many(VERIFY_SUSPECT_MAX as u32)
            .await
            .unwrap();
        assert!(verify_off_runtime(Some(stored.clone()), "right".into(), false).await);
        let waiting = verify_off_runtime(Some(stored), "right".into(), true);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(200), waiting)
                .await
                .is_err(),
            "a suspect login waits for its own lane"
        );
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret pass");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Some(&h), "s3cret pass"));
        assert!(!verify_password(Some(&h), "s3cret pasS"));
        assert!(!verify_password(None, "s3cret pass"));
        assert!(!verify_password(Some("not a hash"), "x"));
        let costly = h.replace("m=19456", &format!("m={}", VERIFY_KIB_MAX + 1));
        assert!(
            !verify_password(Some(&costly), "s3cret pass"),
            "refused, not computed"
        );
    }

    #[test]
    fn own_memory_verification_agrees_with_the_crates() {
        use argon2::password_hash::PasswordVerifier;
        for password in ["", "x", "s3cret pass", "ünïcødé"] {
            let h = hash_password(password);
            let parsed = PasswordHash::new(&h).unwrap();
            for attempt in [password, "other"] {
                assert_eq!(
                    verify_in_own_memory(attempt.as_bytes(), &parsed),
                    Argon2::default()
                        .verify_password(attempt.as_bytes(), &parsed)
                        .is_ok(),
                    "{password:?} / {attempt:?}"
                );
            }
        }
    }
}
