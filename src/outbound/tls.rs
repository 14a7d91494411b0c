//! TLS for delivery to other servers: a verifying configuration (the system's roots and any extra ones
//! configured) for destinations that require it, and an opportunistic one that encrypts whatever
//! certificate the server shows, as RFC 7435 and every major MTA do by default.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::client::TlsPolicy;

/// Builds both configurations. `extra_roots`: a PEM file of more certificates to trust.
pub fn policy(extra_roots: Option<&Path>) -> Result<TlsPolicy, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verified = crate::client_tls::verifying_config(extra_roots, "outbound_tls_roots")?;
    let opportunistic = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
        .with_no_client_auth();
    Ok(TlsPolicy {
        verified: Arc::new(verified),
        opportunistic: Arc::new(opportunistic),
    })
}

/// Accepts any certificate (the handshake's signatures are still checked, so the session key is the
/// certificate holder's). Used only where the alternative is clear text.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    crate::client_tls::signature_checks_by_provider!();
}
