//! TLS for the listener: certificates from PEM files or a generated self-signed one, with ALPN
//! offering HTTP/2 and HTTP/1.1. The listener tells TLS from cleartext by the first byte, so
//! one port serves both.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The first byte of a TLS handshake record.
pub const TLS_HANDSHAKE: u8 = 0x16;

fn server_config(
    certificates: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choose TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .context("use the TLS certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS configuration from a PEM certificate chain and a PEM private key.
pub fn from_pem_files(certificate: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certificates = CertificateDer::pem_file_iter(certificate)
        .with_context(|| format!("read certificate {}", certificate.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse certificate {}", certificate.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("read private key {}", key.display()))?;
    server_config(certificates, key)
}

/// A TLS configuration with a freshly generated self-signed certificate for `localhost` and
/// 127.0.0.1; returns the certificate in PEM so clients can be told to trust it.
pub fn self_signed() -> anyhow::Result<(Arc<ServerConfig>, String)> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).context("generate a self-signed certificate")?;
    let pem = generated.cert.pem();
    let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der())
        .map_err(|e| anyhow::anyhow!("encode the generated key: {e}"))?;
    let config = server_config(vec![generated.cert.der().clone()], key)?;
    Ok((config, pem))
}
