//! The HTTP endpoint destination: the service's delivery protocol.
//!
//! Each delivery is one POST with `X-Amz-Firehose-Protocol-Version: 1.0`, a request id kept on
//! every retry, the source ARN, the access key and common attributes when configured, and the
//! JSON body `{"requestId", "timestamp", "records": [{"data": <base64>}]}` (gzip-encoded when
//! `ContentEncoding` is GZIP). A 200 whose JSON names the same request id is success; 413 is
//! permanent; anything else (another status, a timeout, a malformed reply) is retried with
//! exponential backoff and jitter for `RetryOptions.DurationInSeconds`, after which the
//! records go to the backup bucket's error prefix.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use millrace_service::ServiceError;
use rand::Rng;
use serde_json::{json, Value};

use crate::error::invalid_argument;
use crate::{FirehoseConfig, Inner, StreamDoc};

/// The member that marks an `http://` loopback URL accepted behind the operator's flag (the
/// model allows only `https://`).
const CLEARTEXT_MARK: &str = "MillraceCleartextHttp";

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// With `--firehose-allow-http-loopback`, turns an `http://` loopback URL into the `https://`
/// form the model checks, marking it so that [`check_url`] knows it was cleartext.
pub fn mark_loopback_url(operation: &str, input: &mut Value) {
    let member = match operation {
        "CreateDeliveryStream" => "HttpEndpointDestinationConfiguration",
        "UpdateDestination" => "HttpEndpointDestinationUpdate",
        _ => return,
    };
    let Some(endpoint) = input
        .get_mut(member)
        .and_then(|d| d.get_mut("EndpointConfiguration"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(url) = endpoint.get("Url").and_then(Value::as_str) else {
        return;
    };
    if is_loopback_http(url) {
        let https = format!("https://{}", &url["http://".len()..]);
        endpoint.insert("Url".into(), json!(https));
        endpoint.insert(CLEARTEXT_MARK.into(), json!(true));
    }
}

/// Refuses a cleartext endpoint (marked by [`mark_loopback_url`]) unless the server allows them.
pub fn check_url(config: &FirehoseConfig, http: &Value) -> Result<(), ServiceError> {
    let marked = http
        .get("EndpointConfiguration")
        .and_then(|e| e.get(CLEARTEXT_MARK))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if marked && !config.allow_http_loopback {
        return Err(invalid_argument("Only https endpoints are supported."));
    }
    Ok(())
}

/// The `http://` URL a marked endpoint configuration was given with.
pub fn given_url(endpoint: &Value) -> Option<String> {
    let marked = endpoint
        .get(CLEARTEXT_MARK)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let url = endpoint.get("Url").and_then(Value::as_str)?;
    let rest = url.strip_prefix("https://")?;
    marked.then(|| format!("http://{rest}"))
}

/// The URL requests go to (a cleartext one only while the server allows it).
fn target_url(inner: &Inner, doc: &StreamDoc) -> Result<String, String> {
    let url = doc
        .destination
        .get("EndpointConfiguration")
        .and_then(|e| e.get("Url"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if url.starts_with("http://") && !(inner.config.allow_http_loopback && is_loopback_http(url)) {
        return Err("cleartext endpoints need --firehose-allow-http-loopback".into());
    }
    Ok(url.to_owned())
}

/// How a delivery ended.
pub enum Outcome {
    Delivered,
    /// Given up (413, or retries exhausted): the records go to the error prefix.
    Failed {
        code: &'static str,
        message: String,
        attempts: u32,
    },
    /// The stream was stopped while retrying.
    Stopped,
}

fn request(
    inner: &Inner,
    doc: &StreamDoc,
    request_id: &str,
    records: &[millrace_log::ReadEntry],
) -> Result<http::Request<Full<Bytes>>, String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let body = json!({
        "requestId": request_id,
        "timestamp": crate::now_ms(),
        "records": records.iter().map(|r| json!({"data": b64.encode(&r.payload)})).collect::<Vec<_>>(),
    });
    let mut bytes = serde_json::to_vec(&body).map_err(|error| error.to_string())?;
    let request_config = doc.destination.get("RequestConfiguration");
    let gzip = request_config
        .and_then(|r| r.get("ContentEncoding"))
        .and_then(Value::as_str)
        == Some("GZIP");
    if gzip {
        bytes = crate::compress::Compression::Gzip
            .apply(&bytes, "")
            .map_err(|error| error.to_string())?;
    }
    let mut builder = http::Request::post(target_url(inner, doc)?)
        .header("content-type", "application/json")
        .header("X-Amz-Firehose-Protocol-Version", "1.0")
        .header("X-Amz-Firehose-Request-Id", request_id)
        .header("X-Amz-Firehose-Source-Arn", doc.arn());
    if gzip {
        builder = builder.header("content-encoding", "gzip");
    }
    if let Some(key) = &doc.access_key {
        builder = builder.header("X-Amz-Firehose-Access-Key", key);
    }
    let attributes: serde_json::Map<String, Value> = request_config
        .and_then(|r| r.get("CommonAttributes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a.get("AttributeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                a.get("AttributeValue").cloned().unwrap_or(json!("")),
            )
        })
        .collect();
    if !attributes.is_empty() {
        builder = builder.header(
            "X-Amz-Firehose-Common-Attributes",
            json!({"commonAttributes": attributes}).to_string(),
        );
    }
    builder
        .header("content-length", bytes.len())
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|error| format!("build request: {error}"))
}

/// Delivers `records` with retries; `stopped` ends the retries early.
pub async fn deliver(
    inner: &Inner,
    doc: &StreamDoc,
    records: &[millrace_log::ReadEntry],
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Outcome {
    let request_id = uuid::Uuid::new_v4().to_string();
    let retry_for = Duration::from_secs(
        doc.destination
            .get("RetryOptions")
            .and_then(|r| r.get("DurationInSeconds"))
            .and_then(Value::as_u64)
            .unwrap_or(300),
    );
    let mut attempts = 0u32;
    let mut backoff = Duration::from_millis(500);
    let mut first_failure: Option<Instant> = None;
    loop {
        attempts += 1;
        let failure = match request(inner, doc, &request_id, records) {
            Err(message) => Some(("HttpEndpoint.RequestFailed", message)),
            Ok(request) => match crate::http::send(&inner.client, request, ATTEMPT_TIMEOUT).await {
                Err(message) => Some(("HttpEndpoint.RequestTimeout", message)),
                Ok(reply) if reply.status == 413 => {
                    return Outcome::Failed {
                        code: "HttpEndpoint.PayloadTooLarge",
                        message: "The endpoint answered 413 (payload too large).".into(),
                        attempts,
                    }
                }
                Ok(reply) if reply.status == 200 => {
                    let echoed = serde_json::from_slice::<Value>(&reply.body)
                        .ok()
                        .and_then(|v| {
                            v.get("requestId")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                        });
                    if echoed.as_deref() == Some(request_id.as_str()) {
                        return Outcome::Delivered;
                    }
                    Some((
                        "HttpEndpoint.InvalidResponseFromDestination",
                        "The response did not carry the request id.".into(),
                    ))
                }
                Ok(reply) => Some((
                    "HttpEndpoint.ResponseReceivedWithError",
                    format!("The endpoint answered HTTP {}.", reply.status),
                )),
            },
        };
        let Some((code, message)) = failure else {
            continue;
        };
        tracing::warn!(stream = %doc.name, attempts, code, %message, "HTTP endpoint delivery failed");
        let since = *first_failure.get_or_insert_with(Instant::now);
        if since.elapsed() >= retry_for {
            return Outcome::Failed {
                code,
                message,
                attempts,
            };
        }
        let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
        let wait = backoff + Duration::from_millis(jitter);
        backoff = (backoff * 2).min(Duration::from_secs(30));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return Outcome::Stopped,
        }
    }
}

/// The error records of a failed delivery, one JSON document per line.
pub fn error_records(
    records: &[millrace_log::ReadEntry],
    code: &str,
    message: &str,
    attempts: u32,
) -> Vec<u8> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let ended = crate::now_ms();
    let mut out = Vec::new();
    for record in records {
        let line = json!({
            "attemptsMade": attempts,
            "arrivalTimestamp": record.timestamp_ms,
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": ended,
            "rawData": b64.encode(&record.payload),
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_only() {
        assert!(is_loopback_http("http://127.0.0.1:8080/x"));
        assert!(is_loopback_http("http://localhost/x"));
        assert!(!is_loopback_http("http://example.com/x"));
        assert!(!is_loopback_http("https://127.0.0.1/x"));
        assert!(!is_loopback_http("http://127.0.0.1.example.com/x"));
    }
}
