//! The client side every Millrace library shares: AWS JSON requests (`POST /` with an
//! `X-Amz-Target`, awsJson 1.0 or 1.1) signed with SigV4 (`millrace_wire::sigv4`) over hyper's
//! pooled client, in cleartext or over TLS (rustls with ring; the platform's trusted roots plus
//! the PEM file named by `AWS_CA_BUNDLE`, as the AWS CLI reads it; HTTP/2 when the server offers
//! it through ALPN, else HTTP/1.1), and credentials and region as the AWS CLI finds them
//! ([`credentials`]). The producer, the consumer and the agent are clients of the public APIs
//! through it, so they work against AWS itself as well as Millrace.
#![deny(clippy::unwrap_used)]

pub mod credentials;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
pub use millrace_wire::sigv4::Credentials;
use serde_json::Value;

/// An error from an AWS call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error document.
    #[error("{code}: {message}")]
    Service {
        code: String,
        message: String,
        status: u16,
    },
    /// The request did not get an answer.
    #[error("request failed: {0}")]
    Transport(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// The error code (`__type` without its namespace), or `Transport` / `Config`.
    pub fn code(&self) -> &str {
        match self {
            ApiError::Service { code, .. } => code,
            ApiError::Transport(_) => "Transport",
            ApiError::Config(_) => "Config",
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Service { code, status, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "ProvisionedThroughputExceededException"
                            | "LimitExceededException"
                            | "ThrottlingException"
                            | "KMSThrottlingException"
                            | "ServiceUnavailableException"
                            | "InternalFailure"
                            | "ServiceUnavailable"
                    )
            }
            ApiError::Transport(_) => true,
            ApiError::Config(_) => false,
        }
    }
}

/// One AWS service as a client addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The SigV4 signing name.
    pub signing_name: &'static str,
    /// The first label of the regional endpoint's host.
    pub endpoint_prefix: &'static str,
    /// The service's `AWS_ENDPOINT_URL_<NAME>` suffix, as the AWS SDKs read it.
    pub env_name: &'static str,
    /// `X-Amz-Target` prefix (without the dot).
    pub target_prefix: &'static str,
    /// `application/x-amz-json-<version>`.
    pub json_version: &'static str,
}

pub const KINESIS: Service = Service {
    signing_name: "kinesis",
    endpoint_prefix: "kinesis",
    env_name: "KINESIS",
    target_prefix: "Kinesis_20131202",
    json_version: "1.1",
};

pub const DYNAMODB: Service = Service {
    signing_name: "dynamodb",
    endpoint_prefix: "dynamodb",
    env_name: "DYNAMODB",
    target_prefix: "DynamoDB_20120810",
    json_version: "1.0",
};

pub const FIREHOSE: Service = Service {
    signing_name: "firehose",
    endpoint_prefix: "firehose",
    env_name: "FIREHOSE",
    target_prefix: "Firehose_20150804",
    json_version: "1.1",
};

pub const CLOUDWATCH: Service = Service {
    signing_name: "monitoring",
    endpoint_prefix: "monitoring",
    env_name: "CLOUDWATCH",
    target_prefix: "GraniteServiceVersion20100801",
    json_version: "1.0",
};

/// AWS's regional endpoint of a service: `https://<prefix>.<region>.amazonaws.com`
/// (`.amazonaws.com.cn` in the China regions).
pub fn default_endpoint(service: &Service, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{}.{region}.{suffix}", service.endpoint_prefix)
}

/// Where a client sends requests and how it signs them.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port` or `https://host[:port]`.
    pub endpoint: String,
    pub region: String,
    pub credentials: Credentials,
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// A Kinesis client's configuration: see [`ClientConfig::for_service`].
    pub fn from_environment(
        endpoint: Option<&str>,
        region: Option<&str>,
        profile: Option<&str>,
    ) -> Result<ClientConfig, ApiError> {
        ClientConfig::for_service(&KINESIS, endpoint, region, profile)
    }

    /// Region and credentials as the AWS CLI finds them (environment, then `~/.aws/config` and
    /// `~/.aws/credentials` for `profile` or `AWS_PROFILE`), and the given endpoint or
    /// `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL` / the regional AWS endpoint.
    pub fn for_service(
        service: &Service,
        endpoint: Option<&str>,
        region: Option<&str>,
        profile: Option<&str>,
    ) -> Result<ClientConfig, ApiError> {
        let found = credentials::resolve(profile).map_err(ApiError::Config)?;
        let region = region
            .map(str::to_owned)
            .or(found.region)
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = endpoint
            .map(str::to_owned)
            .or_else(|| env_endpoint(service))
            .unwrap_or_else(|| default_endpoint(service, &region));
        Ok(ClientConfig {
            endpoint,
            region,
            credentials: found.credentials,
            request_timeout: Duration::from_secs(30),
        })
    }
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`.
pub fn env_endpoint(service: &Service) -> Option<String> {
    std::env::var(format!("AWS_ENDPOINT_URL_{}", service.env_name))
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|v| !v.is_empty())
}

type Http = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A cloneable signed-JSON client of one endpoint; clones share the connection pool.
#[derive(Clone)]
pub struct AwsClient {
    config: Arc<ClientConfig>,
    host: String,
    uri: http::Uri,
    http: Http,
}

impl std::fmt::Debug for AwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("AwsClient")
            .field("endpoint", &self.config.endpoint)
            .field("region", &self.config.region)
            .finish()
    }
}

impl AwsClient {
    /// A client keeping up to `max_connections` idle connections to the endpoint.
    pub fn new(config: ClientConfig, max_connections: usize) -> Result<AwsClient, ApiError> {
        let uri: http::Uri = config
            .endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| ApiError::Config(format!("endpoint {:?}: {e}", config.endpoint)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(ApiError::Config(format!(
                "endpoint {:?}: must start with http:// or https://",
                config.endpoint
            )));
        }
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| ApiError::Config("endpoint has no host".into()))?;
        let mut http_connector = HttpConnector::new();
        http_connector.set_nodelay(true);
        http_connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config()?)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http_connector);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_connections.max(1))
            .build(connector);
        Ok(AwsClient {
            config: Arc::new(config),
            host,
            uri,
            http,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// Calls `operation` of `service` with a JSON document and returns the reply document.
    pub async fn call(
        &self,
        service: &Service,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let exchange = async {
            let response = self.send(service, operation, input).await?;
            let status = response.status().as_u16();
            Ok::<_, ApiError>((status, body_bytes(response).await?))
        };
        let (status, bytes) = tokio::time::timeout(self.config.request_timeout, exchange)
            .await
            .map_err(|_| ApiError::Transport("timed out".into()))??;
        parse_reply(status, &bytes)
    }

    /// Calls an operation whose reply is an event stream (SubscribeToShard): the body of a
    /// successful reply, or the error of a failed one. The timeout covers the reply's head.
    pub async fn call_stream(
        &self,
        service: &Service,
        operation: &str,
        input: &Value,
    ) -> Result<hyper::body::Incoming, ApiError> {
        let response = tokio::time::timeout(
            self.config.request_timeout,
            self.send(service, operation, input),
        )
        .await
        .map_err(|_| ApiError::Transport("timed out".into()))??;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response.into_body());
        }
        let bytes = body_bytes(response).await?;
        Err(parse_reply(status, &bytes)
            .err()
            .unwrap_or_else(|| ApiError::Transport(format!("unexpected status {status}"))))
    }

    async fn send(
        &self,
        service: &Service,
        operation: &str,
        input: &Value,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        let body = serde_json::to_vec(input).map_err(|e| ApiError::Config(e.to_string()))?;
        let headers = vec![
            ("host".to_owned(), self.host.clone()),
            (
                "content-type".to_owned(),
                format!("application/x-amz-json-{}", service.json_version),
            ),
            (
                "x-amz-target".to_owned(),
                format!("{}.{operation}", service.target_prefix),
            ),
        ];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let added = millrace_wire::sigv4::sign_request(
            &self.config.credentials,
            &self.config.region,
            service.signing_name,
            now,
            &millrace_wire::sigv4::RequestToSign {
                method: "POST",
                path: "/",
                headers: &headers,
                body: &body,
            },
        );
        let mut request = http::Request::builder()
            .method("POST")
            .uri(self.uri.clone());
        for (name, value) in headers.iter().chain(added.iter()) {
            // HTTP/2 carries the host as `:authority`, which hyper fills from the URI.
            if name == "host" && self.uri.scheme_str() == Some("https") {
                continue;
            }
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ApiError::Config(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ApiError::Transport(error_chain(&e)))?;
        tracing::debug!(operation, version = ?response.version(), status = response.status().as_u16(), "answered");
        Ok(response)
    }
}

async fn body_bytes(response: http::Response<hyper::body::Incoming>) -> Result<Bytes, ApiError> {
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::Transport(e.to_string()))?
        .to_bytes())
}

/// An error with its causes, so that a TLS refusal says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A JSON reply: the document for a 2xx status, else the error it names.
fn parse_reply(status: u16, bytes: &[u8]) -> Result<Value, ApiError> {
    let value: Value = if bytes.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::Transport(format!("status {status}, unreadable reply: {e}")))?
    };
    if (200..300).contains(&status) {
        return Ok(value);
    }
    let code = value["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = value["message"]
        .as_str()
        .or_else(|| value["Message"].as_str())
        .unwrap_or("")
        .to_owned();
    Err(ApiError::Service {
        code,
        message,
        status,
    })
}

/// TLS settings: the platform's roots and, if set, the certificates in `AWS_CA_BUNDLE`.
fn tls_config() -> Result<rustls::ClientConfig, ApiError> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(bundle) = std::env::var_os("AWS_CA_BUNDLE").filter(|v| !v.is_empty()) {
        let pem = std::fs::read(&bundle).map_err(|e| {
            ApiError::Config(format!(
                "read AWS_CA_BUNDLE {}: {e}",
                bundle.to_string_lossy()
            ))
        })?;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ApiError::Config(format!("AWS_CA_BUNDLE: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ApiError::Config(format!("AWS_CA_BUNDLE: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_endpoints() {
        assert_eq!(
            default_endpoint(&KINESIS, "eu-west-1"),
            "https://kinesis.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            default_endpoint(&DYNAMODB, "cn-north-1"),
            "https://dynamodb.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn error_replies_name_their_code() {
        let error = parse_reply(
            400,
            br#"{"__type":"com.amazonaws#ResourceNotFoundException","message":"gone"}"#,
        )
        .expect_err("an error");
        assert_eq!(error.code(), "ResourceNotFoundException");
        assert!(!error.is_retryable());
        let throttled = parse_reply(400, br#"{"__type":"ThrottlingException"}"#).expect_err("e");
        assert!(throttled.is_retryable());
        assert_eq!(parse_reply(200, b"").expect("ok"), serde_json::json!({}));
    }
}
