//! The consumer's client: the shared signed-JSON client of `millrace-client` (HTTP or HTTPS,
//! HTTP/2 where the server offers it, the AWS CLI's credential chain) for the consumer's
//! Kinesis and DynamoDB calls, against Millrace or any endpoint speaking them.

use millrace_client::{ApiError, DYNAMODB, KINESIS};
pub use millrace_client::{ClientConfig, Credentials};
use serde_json::Value;

/// An error answer of the service, or a transport failure (`code` empty, status 0).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl AwsError {
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

impl From<ApiError> for AwsError {
    fn from(error: ApiError) -> AwsError {
        match error {
            ApiError::Service {
                code,
                message,
                status,
            } => AwsError {
                code,
                message,
                status,
            },
            other => AwsError {
                code: String::new(),
                message: other.to_string(),
                status: 0,
            },
        }
    }
}

/// Static credentials and where to send requests.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://host:port` or `https://host[:port]`.
    pub url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A cloneable client of one endpoint; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct AwsClient {
    inner: millrace_client::AwsClient,
}

impl AwsClient {
    /// A client with static credentials.
    pub fn new(endpoint: Endpoint) -> Result<AwsClient, AwsError> {
        AwsClient::from_config(ClientConfig {
            endpoint: endpoint.url,
            region: endpoint.region,
            credentials: Credentials {
                access_key_id: endpoint.access_key_id,
                secret_access_key: endpoint.secret_access_key,
                session_token: None,
            },
            request_timeout: std::time::Duration::from_secs(30),
        })
    }

    /// A client of any configuration (credentials from `ClientConfig::for_service`, for one).
    pub fn from_config(config: ClientConfig) -> Result<AwsClient, AwsError> {
        Ok(AwsClient {
            inner: millrace_client::AwsClient::new(config, 16)?,
        })
    }

    pub fn region(&self) -> &str {
        self.inner.region()
    }

    /// Calls an operation whose reply is an event stream (SubscribeToShard): the body of a
    /// successful reply, or the error of a failed one.
    pub async fn kinesis_stream(
        &self,
        operation: &str,
        body: &Value,
    ) -> Result<hyper::body::Incoming, AwsError> {
        Ok(self.inner.call_stream(&KINESIS, operation, body).await?)
    }

    pub async fn kinesis(&self, operation: &str, body: &Value) -> Result<Value, AwsError> {
        Ok(self.inner.call(&KINESIS, operation, body).await?)
    }

    pub async fn dynamodb(&self, operation: &str, body: &Value) -> Result<Value, AwsError> {
        Ok(self.inner.call(&DYNAMODB, operation, body).await?)
    }
}
