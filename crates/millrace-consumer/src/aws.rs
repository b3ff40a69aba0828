//! A small AWS JSON client (awsJson1.0 / 1.1 over HTTP/1.1) that signs with SigV4: enough for
//! the consumer's Kinesis and DynamoDB calls, against Millrace or any endpoint speaking them.

use std::time::SystemTime;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `20150830T123600Z` and `20150830` for an instant.
fn amz_dates(now: SystemTime) -> (String, String) {
    // httpdate gives "Sun, 30 Aug 2015 12:36:00 GMT"; rebuild the compact form from it.
    let text = httpdate::fmt_http_date(now);
    let parts: Vec<&str> = text.split_whitespace().collect();
    let month = match parts.get(2).copied().unwrap_or("Jan") {
        "Jan" => "01",
        "Feb" => "02",
        "Mar" => "03",
        "Apr" => "04",
        "May" => "05",
        "Jun" => "06",
        "Jul" => "07",
        "Aug" => "08",
        "Sep" => "09",
        "Oct" => "10",
        "Nov" => "11",
        _ => "12",
    };
    let date = format!(
        "{}{month}{}",
        parts.get(3).copied().unwrap_or("1970"),
        parts.get(1).copied().unwrap_or("01")
    );
    let time = parts.get(4).copied().unwrap_or("00:00:00").replace(':', "");
    (format!("{date}T{time}Z"), date)
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
        let (amz_date, date) = amz_dates(SystemTime::now());
        let content_type = format!("application/x-amz-json-{json_version}");
        let payload_hash = hex::encode(Sha256::digest(&payload));
        let signed_headers = "content-type;host;x-amz-date;x-amz-target";
        let canonical = format!(
            "POST\n/\n\ncontent-type:{content_type}\nhost:{}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n\n{signed_headers}\n{payload_hash}",
            self.host
        );
        let scope = format!("{date}/{}/{service}/aws4_request", self.endpoint.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = hmac(
            format!("AWS4{}", self.endpoint.secret_access_key).as_bytes(),
            &date,
        );
        let key = hmac(&key, &self.endpoint.region);
        let key = hmac(&key, service);
        let key = hmac(&key, "aws4_request");
        let signature = hex::encode(hmac(&key, &to_sign));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.endpoint.access_key_id
        );
        let request = http::Request::post(format!("{}/", self.endpoint.url.trim_end_matches('/')))
            .header("content-type", &content_type)
            .header("host", &self.host)
            .header("x-amz-date", &amz_date)
            .header("x-amz-target", target)
            .header("authorization", authorization)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_compact_utc() {
        let instant = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(
            amz_dates(instant),
            ("20150830T123600Z".to_owned(), "20150830".to_owned())
        );
    }
}
