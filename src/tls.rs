//! TLS for every listener (rustls; TLS 1.2 and 1.3 only): the certificate from `--tls-cert`/`--tls-key`, or
//! a self-signed one made on first start in the data dir; its SHA-256 fingerprint; and reloading it (SIGHUP)
//! without touching open connections.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("no private key in {0}")]
    NoKey(PathBuf),
    #[error("cannot write the self-signed certificate to {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("the certificate and key do not work together: {0}")]
    Config(String),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub struct CertSource {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True when Jmail made it (and may make it again if the files vanish).
    pub self_signed: bool,
}

impl CertSource {
    /// The operator's files, or the self-signed pair's place in the data dir.
    pub fn new(cert: Option<PathBuf>, key: Option<PathBuf>, data_dir: &Path) -> CertSource {
        match (cert, key) {
            (Some(cert), Some(key)) => CertSource {
                cert,
                key,
                self_signed: false,
            },
            _ => CertSource {
                cert: data_dir.join("tls").join("cert.pem"),
                key: data_dir.join("tls").join("key.pem"),
                self_signed: true,
            },
        }
    }
}

/// The server's TLS settings, swappable while connections use the old ones.
pub struct Tls {
    source: CertSource,
    names: Vec<String>,
    handshake_timeout: std::time::Duration,
    current: RwLock<(Arc<ServerConfig>, String)>,
}

impl Tls {
    /// Loads the certificate, first making a self-signed one for `names` if it is Jmail's and missing.
    pub fn load(
        source: CertSource,
        names: Vec<String>,
        handshake_secs_max: u64,
    ) -> Result<Tls, TlsError> {
        let loaded = load_config(&source, &names)?;
        Ok(Tls {
            source,
            names,
            handshake_timeout: std::time::Duration::from_secs(handshake_secs_max),
            current: RwLock::new(loaded),
        })
    }

    /// Reads the certificate again (SIGHUP). On error the old one stays in use.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load_config(&self.source, &self.names)?;
        let fingerprint = loaded.1.clone();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(fingerprint)
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(current.0.clone())
    }

    /// SHA-256 of the current certificate, as `AB:CD:...`.
    pub fn fingerprint(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// How long a handshake may take.
    pub fn handshake_timeout(&self) -> std::time::Duration {
        self.handshake_timeout
    }

    pub fn source(&self) -> &CertSource {
        &self.source
    }
}

/// SHA-256 of a DER certificate as upper-case hex pairs joined by colons (as `openssl x509 -fingerprint
/// -sha256` prints it).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Days a self-signed certificate is valid: 397, the longest that browsers and Apple's clients accept.
pub const SELF_SIGNED_VALID_DAYS: i64 = 397;
/// A self-signed certificate is made anew once it is this old (a month before it expires): at start, and
/// by the server's daily check, which then reloads it.
pub const SELF_SIGNED_RENEW_AFTER_DAYS: u64 = 367;
/// The subject earlier releases wrote (valid 1975 to 4096): such a certificate is made anew too.
const OLD_SUBJECT: &[u8] = b"rcgen self signed cert";

/// Whether Jmail's own certificate is missing, old, or of the kind earlier releases made.
pub fn renewal_due(source: &CertSource) -> bool {
    if !source.self_signed {
        return false;
    }
    let Ok(meta) = std::fs::metadata(&source.cert) else {
        return true;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default();
    age.as_secs() > SELF_SIGNED_RENEW_AFTER_DAYS * 86_400
        || std::fs::read(&source.cert).is_ok_and(|pem| {
            CertificateDer::pem_slice_iter(&pem)
                .flatten()
                .any(|der| der.windows(OLD_SUBJECT.len()).any(|w| w == OLD_SUBJECT))
        })
}

/// How often a running server checks whether its own certificate is due for renewal.
pub const RENEWAL_CHECK_SECS: u64 = 86_400;

/// The server's daily check: a self-signed certificate that is due ([`renewal_due`]) is made anew and
/// loaded, so a server that runs for years never serves an expired one. Ends at `shutdown`; does
/// nothing for the operator's own certificate.
pub async fn renew_while_running(tls: Arc<Tls>, shutdown: tokio_util::sync::CancellationToken) {
    if !tls.source().self_signed {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(RENEWAL_CHECK_SECS)) => {}
        }
        if renewal_due(tls.source()) {
            match tls.reload() {
                Ok(fingerprint) => {
                    tracing::info!(%fingerprint, "self-signed TLS certificate renewed (SHA-256)")
                }
                Err(e) => {
                    tracing::error!(error = %e, "renewing the self-signed TLS certificate failed")
                }
            }
        }
    }
}

fn load_config(
    source: &CertSource,
    names: &[String],
) -> Result<(Arc<ServerConfig>, String), TlsError> {
    if renewal_due(source) {
        generate(source, names)?;
    }
    match read_config(source) {
        // Jmail's own pair whose key is not its certificate's is made anew; the operator's files are
        // never touched, and an unreadable file is an error (a reload keeps the old certificate).
        Err(TlsError::Config(_)) if source.self_signed => {
            tracing::warn!(
                "the self-signed certificate in the data dir is unusable; making a new one"
            );
            generate(source, names)?;
            read_config(source)
        }
        other => other,
    }
}

fn read_config(source: &CertSource) -> Result<(Arc<ServerConfig>, String), TlsError> {
    let cert_pem =
        std::fs::read(&source.cert).map_err(|e| TlsError::Read(source.cert.clone(), e))?;
    let key_pem = std::fs::read(&source.key).map_err(|e| TlsError::Read(source.key.clone(), e))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(source.cert.clone()))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate(source.cert.clone()));
    };
    let fingerprint = fingerprint(leaf.as_ref());
    crate::cert_validity::warn_if_due(&source.cert, leaf.as_ref());
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey(source.key.clone()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok((Arc::new(config), fingerprint))
}

/// Makes a self-signed certificate for `names`, its subject the first of them (the primary mail domain),
/// valid from yesterday (clocks differ) for [`SELF_SIGNED_VALID_DAYS`]. Key, then certificate, each
/// written whole by a rename, under the data dir's lock (only one server makes it).
fn generate(source: &CertSource, names: &[String]) -> Result<(), TlsError> {
    let generate_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(generate_err)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(generate_err)?;
    let host = names.first().map_or("localhost", String::as_str);
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, host);
    subject.push(rcgen::DnType::OrganizationName, "Jmail self-signed");
    params.distinguished_name = subject;
    let day = |d: chrono::DateTime<chrono::Utc>| {
        use chrono::Datelike;
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let now = chrono::Utc::now();
    params.not_before = day(now - chrono::Duration::days(1));
    params.not_after = day(now + chrono::Duration::days(SELF_SIGNED_VALID_DAYS));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(generate_err)?;
    let dir = source.cert.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::datadir::DIR_MODE)
        .create(dir)
        .map_err(|e| TlsError::Write(dir.into(), e))?;
    let write = |path: &Path, bytes: &[u8]| {
        crate::datadir::write_atomic(path, bytes, crate::datadir::FILE_MODE)
            .map_err(|e| TlsError::Write(path.into(), e))
    };
    write(&source.key, key.serialize_pem().as_bytes())?;
    write(&source.cert, cert.pem().as_bytes())?;
    tracing::info!(
        subject = host,
        days = SELF_SIGNED_VALID_DAYS,
        "made a self-signed TLS certificate"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::new(None, None, dir.path());
        let tls = Tls::load(source.clone(), vec!["localhost".into()], 15).unwrap();
        let first = tls.fingerprint();
        assert_eq!(first.len(), 32 * 3 - 1);
        // Loading again keeps the same certificate.
        assert_eq!(
            Tls::load(source.clone(), vec!["localhost".into()], 15)
                .unwrap()
                .fingerprint(),
            first
        );
        // A new certificate in place is picked up by reload.
        std::fs::remove_file(&source.cert).unwrap();
        let second = tls.reload().unwrap();
        assert_ne!(second, first);
        assert_eq!(tls.fingerprint(), second);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&source.key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn self_signed_names_the_host_and_is_valid_about_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::new(None, None, dir.path());
        Tls::load(
            source.clone(),
            vec!["mail.example.org".into(), "localhost".into()],
            15,
        )
        .unwrap();
        let pem = std::fs::read_to_string(&source.cert).unwrap();
        let text = std::process::Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-startdate",
                "-enddate",
                "-ext",
                "subjectAltName",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(pem.as_bytes())?;
                child.wait_with_output()
            })
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap();
        assert!(
            text.contains("CN = mail.example.org") || text.contains("CN=mail.example.org"),
            "{text}"
        );
        assert!(
            text.contains("DNS:mail.example.org, DNS:localhost"),
            "{text}"
        );
        let year = |label: &str| -> i32 {
            let line = text.lines().find(|l| l.starts_with(label)).unwrap();
            line.split_whitespace()
                .rev()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap()
        };
        let this_year = chrono::Datelike::year(&chrono::Utc::now());
        assert!(
            (this_year - 1..=this_year).contains(&year("notBefore")),
            "{text}"
        );
        assert!(
            (this_year..=this_year + 2).contains(&year("notAfter")),
            "{text}"
        );
        assert!(!renewal_due(&source));
    }

    #[test]
    fn an_old_style_or_mismatched_self_signed_pair_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::new(None, None, dir.path());
        // What earlier releases wrote.
        let old = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(&source.cert, old.cert.pem()).unwrap();
        std::fs::write(&source.key, old.signing_key.serialize_pem()).unwrap();
        assert!(renewal_due(&source));
        let tls = Tls::load(source.clone(), vec!["localhost".into()], 15).unwrap();
        assert_ne!(tls.fingerprint(), fingerprint(old.cert.der()));
        // A key that is not the certificate's (two first starts racing, before the lock).
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&source.key, other.serialize_pem()).unwrap();
        let again = Tls::load(source.clone(), vec!["localhost".into()], 15).unwrap();
        assert_ne!(
            again.fingerprint(),
            tls.fingerprint(),
            "made anew, and it loads"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_server_renews_its_certificate_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::new(None, None, dir.path());
        let tls = Arc::new(Tls::load(source.clone(), vec!["localhost".into()], 15).unwrap());
        let first = tls.fingerprint();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(renew_while_running(tls.clone(), shutdown.clone()));
        let day = std::time::Duration::from_secs(RENEWAL_CHECK_SECS);
        tokio::time::sleep(day + std::time::Duration::from_secs(1)).await;
        assert_eq!(tls.fingerprint(), first, "not due yet: kept");
        let aged = std::time::SystemTime::now()
            - std::time::Duration::from_secs((SELF_SIGNED_RENEW_AFTER_DAYS + 1) * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&source.cert)
            .unwrap()
            .set_modified(aged)
            .unwrap();
        tokio::time::sleep(day).await;
        assert_ne!(tls.fingerprint(), first, "due: made anew and loaded");
        assert!(!renewal_due(&source));
        shutdown.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_broken_certificate_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::new(None, None, dir.path());
        let tls = Tls::load(source.clone(), vec!["localhost".into()], 15).unwrap();
        let before = tls.fingerprint();
        std::fs::write(&source.cert, "not a certificate").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.fingerprint(), before);
    }
}
