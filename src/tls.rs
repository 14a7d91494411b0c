//! TLS for every listener (rustls; TLS 1.2 and 1.3 only): the certificate from `--tls-cert`/`--tls-key`, or
//! a self-signed one made on first start in the data dir; its SHA-256 fingerprint; and reloading it (SIGHUP)
//! without touching open connections.

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

fn load_config(
    source: &CertSource,
    names: &[String],
) -> Result<(Arc<ServerConfig>, String), TlsError> {
    if source.self_signed && !source.cert.exists() {
        generate(source, names)?;
    }
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

fn generate(source: &CertSource, names: &[String]) -> Result<(), TlsError> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let dir = source.cert.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Write(dir.into(), e))?;
    write_private(
        &source.key,
        certified.signing_key.serialize_pem().as_bytes(),
    )?;
    std::fs::write(&source.cert, certified.cert.pem())
        .map_err(|e| TlsError::Write(source.cert.clone(), e))
}

/// Writes a key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TlsError::Write(path.into(), e))?;
    file.write_all(bytes)
        .map_err(|e| TlsError::Write(path.into(), e))
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
