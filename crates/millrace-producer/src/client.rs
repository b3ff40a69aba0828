//! A small Kinesis client: awsJson1.1 `POST /` requests, SigV4-signed with the core in
//! `millrace_wire::sigv4`, over hyper's pooled HTTP/1.1 client, in cleartext or over TLS
//! (rustls with ring; the platform's trusted roots plus the PEM file named by `AWS_CA_BUNDLE`,
//! as the AWS CLI reads it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use millrace_wire::sigv4::{self, Credentials};
use serde_json::Value;

use crate::credentials;

/// An error from a Kinesis call.
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
    /// The error code (`__type` without its namespace), or `Transport`.
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
                            | "InternalFailure"
                            | "ServiceUnavailable"
                    )
            }
            ApiError::Transport(_) => true,
            ApiError::Config(_) => false,
        }
    }
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
    /// Region and credentials as the AWS CLI finds them (environment, then `~/.aws/config` and
    /// `~/.aws/credentials` for `profile` or `AWS_PROFILE`), and the given endpoint or
    /// `AWS_ENDPOINT_URL_KINESIS` / `AWS_ENDPOINT_URL` / the regional AWS endpoint.
    pub fn from_environment(
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
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_KINESIS").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| format!("https://kinesis.{region}.amazonaws.com"));
        Ok(ClientConfig {
            endpoint,
            region,
            credentials: found.credentials,
            request_timeout: Duration::from_secs(30),
        })
    }
}

/// A cloneable Kinesis client; clones share the connection pool.
#[derive(Clone)]
pub struct KinesisClient {
    config: std::sync::Arc<ClientConfig>,
    host: String,
    uri: http::Uri,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl KinesisClient {
    pub fn new(config: ClientConfig, max_connections: usize) -> Result<KinesisClient, ApiError> {
        let uri: http::Uri = config
            .endpoint
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
            .enable_http1()
            .wrap_connector(http_connector);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_connections.max(1))
            .build(connector);
        Ok(KinesisClient {
            config: std::sync::Arc::new(config),
            host,
            uri,
            http,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Calls the Kinesis `operation` (`PutRecords`, `ListShards`, …) with a JSON document.
    pub async fn call(&self, operation: &str, input: &Value) -> Result<Value, ApiError> {
        self.call_service(
            "kinesis",
            &format!("Kinesis_20131202.{operation}"),
            "application/x-amz-json-1.1",
            input,
        )
        .await
    }

    /// Calls a CloudWatch `operation` (awsJson 1.0, signing name `monitoring`) on the same
    /// endpoint, as Millrace serves it (AWS's CloudWatch has its own endpoint).
    pub async fn call_cloudwatch(&self, operation: &str, input: &Value) -> Result<Value, ApiError> {
        self.call_service(
            "monitoring",
            &format!("GraniteServiceVersion20100801.{operation}"),
            "application/x-amz-json-1.0",
            input,
        )
        .await
    }

    async fn call_service(
        &self,
        service: &str,
        target: &str,
        content_type: &str,
        input: &Value,
    ) -> Result<Value, ApiError> {
        let body = serde_json::to_vec(input).map_err(|e| ApiError::Config(e.to_string()))?;
        let headers = vec![
            ("host".to_owned(), self.host.clone()),
            ("content-type".to_owned(), content_type.to_owned()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let added = sigv4::sign_request(
            &self.config.credentials,
            &self.config.region,
            service,
            now,
            &sigv4::RequestToSign {
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
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ApiError::Config(e.to_string()))?;
        let response = tokio::time::timeout(self.config.request_timeout, async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ApiError::Transport(e.to_string()))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ApiError::Transport(e.to_string()))?
                .to_bytes();
            Ok::<_, ApiError>((status, bytes))
        })
        .await
        .map_err(|_| ApiError::Transport("timed out".into()))??;
        let (status, bytes) = response;
        let value: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::Transport(format!("status {status}, unreadable reply: {e}"))
            })?
        };
        if status >= 300 {
            let code = value["__type"]
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = value["message"]
                .as_str()
                .or_else(|| value["Message"].as_str())
                .unwrap_or("")
                .to_owned();
            return Err(ApiError::Service {
                code,
                message,
                status,
            });
        }
        Ok(value)
    }

    /// Every shard of a stream (open and closed), through ListShards' pages.
    pub async fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, ApiError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let input = match &token {
                Some(t) => serde_json::json!({ "NextToken": t }),
                None => serde_json::json!({ "StreamName": stream }),
            };
            let reply = self.call("ListShards", &input).await?;
            for shard in reply["Shards"].as_array().into_iter().flatten() {
                shards.push(ShardInfo::from_json(shard)?);
            }
            match reply["NextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        Ok(shards)
    }
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
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
    pub open: bool,
}

impl ShardInfo {
    fn from_json(shard: &Value) -> Result<ShardInfo, ApiError> {
        let hash = |name: &str| -> Result<u128, ApiError> {
            shard["HashKeyRange"][name]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ApiError::Transport(format!("shard without {name}")))
        };
        Ok(ShardInfo {
            shard_id: shard["ShardId"].as_str().unwrap_or_default().to_owned(),
            parent_shard_id: shard["ParentShardId"].as_str().map(str::to_owned),
            adjacent_parent_shard_id: shard["AdjacentParentShardId"].as_str().map(str::to_owned),
            starting_hash_key: hash("StartingHashKey")?,
            ending_hash_key: hash("EndingHashKey")?,
            open: shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null(),
        })
    }
}
