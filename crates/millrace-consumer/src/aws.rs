//! A small AWS JSON client (awsJson1.0 / 1.1 over HTTP/1.1) that signs with SigV4: enough for
//! the consumer's Kinesis and DynamoDB calls, against Millrace or any endpoint speaking them.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
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
    fn transport(message: impl std::fmt::Display) -> AwsError {
        AwsError {
            code: String::new(),
            message: message.to_string(),
            status: 0,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// Static credentials and where to send requests.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://host:port`.
    pub url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Clone)]
pub struct AwsClient {
    endpoint: Endpoint,
    host: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl AwsClient {
    pub fn new(endpoint: Endpoint) -> AwsClient {
        let host = endpoint
            .url
            .split("://")
            .nth(1)
            .unwrap_or(&endpoint.url)
            .trim_end_matches('/')
            .to_owned();
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        AwsClient {
            endpoint,
            host,
            http,
        }
    }

    pub fn region(&self) -> &str {
        &self.endpoint.region
    }

    /// Calls `<prefix>.<operation>` of the service signed as `service`.
    pub async fn call(
        &self,
        service: &str,
        target: &str,
        json_version: &str,
        body: &Value,
    ) -> Result<Value, AwsError> {
        let response = self.send(service, target, json_version, body).await?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(AwsError::transport)?
            .to_bytes();
        parse_reply(status, &bytes)
    }

    /// Calls an operation whose reply is an event stream (SubscribeToShard): the body of a
    /// successful reply, or the error of a failed one.
    pub async fn call_stream(
        &self,
        target: &str,
        body: &Value,
    ) -> Result<hyper::body::Incoming, AwsError> {
        let response = self.send("kinesis", target, "1.1", body).await?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response.into_body());
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(AwsError::transport)?
            .to_bytes();
        Err(parse_reply(status, &bytes)
            .err()
            .unwrap_or_else(|| AwsError {
                code: String::new(),
                message: format!("unexpected status {status}"),
                status,
            }))
    }

    async fn send(
        &self,
        service: &str,
        target: &str,
        json_version: &str,
        body: &Value,
    ) -> Result<http::Response<hyper::body::Incoming>, AwsError> {
        let payload = serde_json::to_vec(body).map_err(AwsError::transport)?;
        let content_type = format!("application/x-amz-json-{json_version}");
        let headers = vec![
            ("content-type".to_owned(), content_type),
            ("host".to_owned(), self.host.clone()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ];
        let credentials = millrace_wire::sigv4::Credentials {
            access_key_id: self.endpoint.access_key_id.clone(),
            secret_access_key: self.endpoint.secret_access_key.clone(),
            session_token: None,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let added = millrace_wire::sigv4::sign_request(
            &credentials,
            &self.endpoint.region,
            service,
            now,
            &millrace_wire::sigv4::RequestToSign {
                method: "POST",
                path: "/",
                headers: &headers,
                body: &payload,
            },
        );
        let mut request =
            http::Request::post(format!("{}/", self.endpoint.url.trim_end_matches('/')));
        for (name, value) in headers.iter().chain(added.iter()) {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(AwsError::transport)?;
        self.http
            .request(request)
            .await
            .map_err(AwsError::transport)
    }
}

/// A JSON reply: the document for 200, else the error it names.
fn parse_reply(status: u16, bytes: &[u8]) -> Result<Value, AwsError> {
    {
        let json: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(bytes).map_err(AwsError::transport)?
        };
        if status == 200 {
            return Ok(json);
        }
        let code = json
            .get("__type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .rsplit('#')
            .next()
            .unwrap_or("")
            .to_owned();
        let message = json
            .get("message")
            .or_else(|| json.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Err(AwsError {
            code,
            message,
            status,
        })
    }
}

impl AwsClient {
    pub async fn kinesis(&self, operation: &str, body: &Value) -> Result<Value, AwsError> {
        self.call(
            "kinesis",
            &format!("Kinesis_20131202.{operation}"),
            "1.1",
            body,
        )
        .await
    }

    pub async fn dynamodb(&self, operation: &str, body: &Value) -> Result<Value, AwsError> {
        self.call(
            "dynamodb",
            &format!("DynamoDB_20120810.{operation}"),
            "1.0",
            body,
        )
        .await
    }
}
