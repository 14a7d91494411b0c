//! DKIM signing keys (RFC 6376, RFC 8463): an Ed25519 and an RSA-2048 key per domain, made on first
//! start into `<data dir>/dkim/` (mode 0600), and the signing of outbound mail with both, so that
//! receivers that know Ed25519 and those that know only RSA each find a signature they can check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Algorithm, CryptoError, Ed25519Key, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::common::headers::Writable;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;

use crate::datadir::{FILE_MODE, write_atomic};

/// Selectors of the two keys: `<selector>._domainkey.<domain>` holds each public key.
pub const SELECTOR_ED25519: &str = "jmail-ed25519";
pub const SELECTOR_RSA: &str = "jmail-rsa";
/// RSA key size: RFC 8301 requires at least 1024 bits and recommends 2048.
const RSA_BITS: usize = 2048;

/// The header fields signed, when present (RFC 6376 §5.4.1's list of those that matter to readers).
const SIGNED_HEADERS: [&str; 13] = [
    "From",
    "Sender",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// [`SIGNED_HEADERS`], each named twice in the signature: once for each field present and once more,
/// for one that is not (RFC 6376 §8.15, "oversigning"), so a field added on the way (a second From or
/// Subject above the signed ones) breaks the signature instead of being shown to the reader.
fn oversigned() -> impl Iterator<Item = &'static str> {
    SIGNED_HEADERS.iter().flat_map(|name| [*name, *name])
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("DKIM key file {0} is not a key Jmail wrote: {1}")]
    BadKey(PathBuf, String),
    #[error("DKIM signing failed: {0}")]
    Sign(String),
}

/// One domain's two keys, as loaded.
struct DomainKeys {
    ed25519_pkcs8: Vec<u8>,
    rsa_pkcs1: Vec<u8>,
}

/// The public halves, for `jmail dns records`.
pub struct PublicKeys {
    /// Raw 32-byte key, base64 (the `p=` of a `k=ed25519` record).
    pub ed25519: String,
    /// SubjectPublicKeyInfo DER, base64 (the `p=` of a `k=rsa` record).
    pub rsa: String,
}

/// Every domain's keys, loaded (or made) on first use.
pub struct Dkim {
    dir: PathBuf,
    keys: Mutex<HashMap<String, Arc<DomainKeys>>>,
}

impl Dkim {
    pub fn new(data_dir: &Path) -> Dkim {
        Dkim {
            dir: data_dir.join("dkim"),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The domain's keys, read from the data dir or, the first time, made and written there. Making an
    /// RSA key takes a moment of CPU: call it off the async workers (or at start).
    fn keys(&self, domain: &str) -> Result<Arc<DomainKeys>, DkimError> {
        let domain = domain.to_ascii_lowercase();
        if let Some(keys) = self.keys.lock().expect("dkim keys lock").get(&domain) {
            return Ok(keys.clone());
        }
        let ed_path = self.dir.join(format!("{domain}.ed25519.pem"));
        let rsa_path = self.dir.join(format!("{domain}.rsa.pem"));
        let ed25519_pkcs8 = load_or_make(&ed_path, "PRIVATE KEY", || {
            DkimKeyPair::generate_ed25519().map(|k| k.private_key().to_vec())
        })?;
        let rsa_pkcs1 = load_or_make(&rsa_path, "RSA PRIVATE KEY", || {
            DkimKeyPair::generate_rsa(RSA_BITS).map(|k| k.private_key().to_vec())
        })?;
        Ed25519Key::from_pkcs8_der(&ed25519_pkcs8)
            .map_err(|e| DkimError::BadKey(ed_path.clone(), e.to_string()))?;
        rsa_key(&rsa_pkcs1).map_err(|e| DkimError::BadKey(rsa_path.clone(), e))?;
        let keys = Arc::new(DomainKeys {
            ed25519_pkcs8,
            rsa_pkcs1,
        });
        self.keys
            .lock()
            .expect("dkim keys lock")
            .insert(domain, keys.clone());
        Ok(keys)
    }

    /// Makes sure every domain has its keys (at start, so the first message does not wait for them).
    pub fn prepare(&self, domains: &[String]) -> Result<(), DkimError> {
        for domain in domains {
            self.keys(domain)?;
        }
        Ok(())
    }

    pub fn public_keys(&self, domain: &str) -> Result<PublicKeys, DkimError> {
        let keys = self.keys(domain)?;
        let ed = Ed25519Key::from_pkcs8_der(&keys.ed25519_pkcs8)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        let rsa = rsa::RsaPrivateKey::from_pkcs1_der(&keys.rsa_pkcs1)
            .map_err(|e| DkimError::Sign(e.to_string()))?
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(PublicKeys {
            ed25519: STANDARD.encode(ed.public_key()),
            rsa: STANDARD.encode(rsa.as_bytes()),
        })
    }

    /// The two `DKIM-Signature` header fields (Ed25519 first) for `message` signed as `domain`, to
    /// put in front of it.
    pub fn sign(&self, domain: &str, message: &[u8]) -> Result<String, DkimError> {
        let keys = self.keys(domain)?;
        let sign_err = |e: mail_auth::Error| DkimError::Sign(e.to_string());
        let ed = Ed25519Key::from_pkcs8_der(&keys.ed25519_pkcs8).map_err(sign_err)?;
        let ed = DkimSigner::from_key(ed)
            .domain(domain)
            .selector(SELECTOR_ED25519)
            .headers(oversigned())
            .sign(message)
            .map_err(sign_err)?;
        let rsa = rsa_key(&keys.rsa_pkcs1).map_err(DkimError::Sign)?;
        let rsa = DkimSigner::from_key(rsa)
            .domain(domain)
            .selector(SELECTOR_RSA)
            .headers(oversigned())
            .sign(message)
            .map_err(sign_err)?;
        Ok(format!("{}{}", ed.to_header(), rsa.to_header()))
    }
}

/// An RSA signing key on ring, which signs about five times faster than mail-auth's pure-Rust `rsa`
/// backend (RSA is most of what signing a message costs).
struct RingRsa(ring::signature::RsaKeyPair);

impl SigningKey for RingRsa {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(1024);
        input.write(&mut data);
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                &data,
                &mut signature,
            )
            .map_err(|_| {
                mail_auth::Error::Crypto(CryptoError::Library("RSA signing failed".into()))
            })?;
        Ok(signature)
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::RsaSha256
    }
}

fn rsa_key(pkcs1: &[u8]) -> Result<RingRsa, String> {
    ring::signature::RsaKeyPair::from_der(pkcs1)
        .map(RingRsa)
        .map_err(|e| e.to_string())
}

/// The DER of the PEM file at `path`, or a new key from `make` written there first (0600).
fn load_or_make(
    path: &Path,
    label: &str,
    make: impl FnOnce() -> mail_auth::Result<Vec<u8>>,
) -> Result<Vec<u8>, DkimError> {
    let io = |e| DkimError::Io(path.to_path_buf(), e);
    match std::fs::read_to_string(path) {
        Ok(text) => from_pem(&text, label)
            .ok_or_else(|| DkimError::BadKey(path.to_path_buf(), format!("no {label} PEM block"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let der = make().map_err(|e| DkimError::Sign(e.to_string()))?;
            if let Some(dir) = path.parent() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(crate::datadir::DIR_MODE)
                    .create(dir)
                    .map_err(io)?;
            }
            write_atomic(path, to_pem(&der, label).as_bytes(), FILE_MODE).map_err(io)?;
            tracing::info!(file = %path.display(), "made a DKIM signing key");
            Ok(der)
        }
        Err(e) => Err(io(e)),
    }
}

fn to_pem(der: &[u8], label: &str) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn from_pem(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].split_whitespace().collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_private_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let dkim = Dkim::new(dir.path());
        let message = b"From: a@a.test\r\nTo: b@b.test\r\nSubject: hi\r\n\r\nhello\r\n";
        let headers = dkim.sign("a.test", message).unwrap();
        assert!(
            headers.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{headers}"
        );
        assert!(headers.contains("a=rsa-sha256") && headers.contains("s=jmail-rsa"));
        assert!(headers.contains("d=a.test"));
        // From, To and Subject are signed once more than they appear.
        let ed = headers
            .split("DKIM-Signature:")
            .nth(1)
            .unwrap()
            .replace(['\r', '\n', '\t', ' '], "");
        let h = ed
            .split(';')
            .find_map(|t| t.strip_prefix("h="))
            .unwrap()
            .to_ascii_lowercase();
        for name in ["from", "to", "subject"] {
            assert_eq!(h.split(':').filter(|n| *n == name).count(), 2, "{h}");
        }
        let file = dir.path().join("dkim/a.test.rsa.pem");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = dkim.public_keys("a.test").unwrap();
        let again = Dkim::new(dir.path()).public_keys("A.test").unwrap();
        assert_eq!(first.rsa, again.rsa, "read back, not made again");
        assert_eq!(STANDARD.decode(&first.ed25519).unwrap().len(), 32);
    }
}
