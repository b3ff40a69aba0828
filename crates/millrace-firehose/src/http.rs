//! The outgoing HTTP client the destinations share (hyper, pooled, cleartext or TLS with the
//! platform's roots plus `AWS_CA_BUNDLE`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A finished response: status, headers and the whole body (bounded).
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Largest reply body read (destinations answer with small documents).
const MAX_REPLY_BYTES: usize = 1 << 20;

pub fn client() -> std::io::Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config()?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(8)
        .build(connector))
}

fn tls_config() -> std::io::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(bundle) = std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty()) {
        let pem = std::fs::read(&bundle)?;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(std::io::Error::other)?;
            roots.add(cert).map_err(std::io::Error::other)?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Sends `request` and reads the reply within `timeout`.
pub async fn send(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
    timeout: std::time::Duration,
) -> Result<Reply, String> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http_body_util::Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|error| format!("reading the reply failed: {error}"))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no reply within {} s", timeout.as_secs())),
    }
}
