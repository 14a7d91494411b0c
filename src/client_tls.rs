//! TLS for the `jmail` client commands: the server's certificate is checked against the system's roots (or
//! `--ca-file`); a certificate no root vouches for (the server's self-signed one) is pinned on first use in
//! `~/.config/jmail/known_servers`, like ssh's known_hosts, and a changed one is refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;

use crate::tls::fingerprint;

/// Longest known_servers file read, in bytes: a few thousand servers.
const KNOWN_SERVERS_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("cannot read the CA file {0}: {1}")]
    CaFile(PathBuf, String),
    #[error("cannot use the pinned certificates in {0}: {1}")]
    KnownServers(PathBuf, std::io::Error),
}

/// How the client decides whom to trust.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// Trust only this CA (PEM) instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The pin file.
    pub known_servers: PathBuf,
}

impl TrustSettings {
    /// `JMAIL_KNOWN_SERVERS`, else `$XDG_CONFIG_HOME/jmail/known_servers`, else `~/.config/jmail/known_servers`.
    pub fn default_known_servers() -> PathBuf {
        if let Some(p) = std::env::var_os("JMAIL_KNOWN_SERVERS") {
            return PathBuf::from(p);
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("jmail").join("known_servers")
    }
}

/// What the verifier decided about a certificate no root vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Vouched for by a root: nothing to pin.
    Verified,
    /// Matches the pinned fingerprint.
    Known,
    /// First sight: to be recorded once the handshake completes.
    New(String),
    /// Differs from the pinned one: refused.
    Changed { pinned: String, presented: String },
}

/// The handshake-signature half of a `ServerCertVerifier`, by `self.provider`'s algorithms: the same
/// for every verifier here, whatever each decides about the certificate itself.
macro_rules! signature_checks_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use signature_checks_by_provider;

/// Checks the server's certificate by the roots, else by the pin for `server` (the `host:port` asked for).
#[derive(Debug)]
pub struct PinningVerifier {
    /// With `--ca-file` the named CA must vouch for the certificate: no trust on first use.
    strict: bool,
    /// `None` when no root could be loaded: then only pins decide.
    roots: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    server: String,
    pinned: Option<String>,
    /// What happened in the last handshake.
    pub outcome: Mutex<Option<Pin>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let by_roots = self.roots.as_ref().is_some_and(|roots| {
            roots
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .is_ok()
        });
        let presented = fingerprint(end_entity.as_ref());
        let outcome = match (by_roots, &self.pinned) {
            (true, _) => Pin::Verified,
            (false, Some(pinned)) if *pinned == presented => Pin::Known,
            (false, Some(pinned)) => Pin::Changed {
                pinned: pinned.clone(),
                presented: presented.clone(),
            },
            (false, _) if self.strict => Pin::Changed {
                pinned: "a certificate signed by the CA given with --ca-file".into(),
                presented: presented.clone(),
            },
            (false, None) => Pin::New(presented.clone()),
        };
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome.clone());
        match outcome {
            Pin::Changed { .. } => Err(rustls::Error::General(format!(
                "the certificate of {} changed",
                self.server
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    signature_checks_by_provider!();
}

/// A client configuration that verifies servers against the system's roots and, from `extra_roots` (a PEM
/// file; `setting` names it in errors), more: outbound delivery that requires TLS, and the PostgreSQL
/// store's connections.
pub fn verifying_config(
    extra_roots: Option<&std::path::Path>,
    setting: &str,
) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_roots {
        let bad = |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", path.display());
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    }
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client TLS configuration for `server`, and its verifier (to read the outcome after the handshake).
pub fn client_config(
    trust: &TrustSettings,
    server: &str,
) -> Result<(Arc<ClientConfig>, Arc<PinningVerifier>), ClientTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &trust.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ClientTlsError::CaFile(path.clone(), e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| ClientTlsError::CaFile(path.clone(), e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientTlsError::CaFile(path.clone(), e.to_string()))?;
            }
        }
        None => {
            // Unreadable system certificates leave the pins to decide, as for a self-signed server.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let roots = (!roots.is_empty())
        .then(|| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        })
        .flatten();
    let verifier = Arc::new(PinningVerifier {
        strict: trust.ca_file.is_some(),
        roots,
        provider: provider.clone(),
        server: server.to_string(),
        pinned: pinned(&trust.known_servers, server)?,
        outcome: Mutex::new(None),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientTlsError::CaFile(PathBuf::new(), e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), verifier))
}

/// The pinned fingerprint for `server` (`host:port`), if any. Only a missing file means "no pins": a file
/// that cannot be read whole is an error, never a first use (which would accept any certificate).
pub fn pinned(known_servers: &Path, server: &str) -> Result<Option<String>, ClientTlsError> {
    let fail = |e| ClientTlsError::KnownServers(known_servers.to_path_buf(), e);
    let bytes = match std::fs::metadata(known_servers) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
        Ok(m) if m.len() > KNOWN_SERVERS_BYTES_MAX => {
            return Err(fail(std::io::Error::other("file too large")));
        }
        Ok(_) => std::fs::read(known_servers).map_err(fail)?,
    };
    // Lines are compared as bytes: a damaged line elsewhere cannot hide this server's pin.
    Ok(bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            let (name, fp) = line.split_once(' ')?;
            (name == server).then(|| fp.trim().to_string())
        })
        .next())
}

/// Records `fingerprint` for `server`.
pub fn pin(known_servers: &Path, server: &str, fingerprint: &str) -> Result<(), ClientTlsError> {
    use std::io::Write;
    let fail = |e| ClientTlsError::KnownServers(known_servers.to_path_buf(), e);
    if let Some(dir) = known_servers.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(known_servers)
        .map_err(fail)?;
    writeln!(file, "{server} {fingerprint}").map_err(fail)
}
