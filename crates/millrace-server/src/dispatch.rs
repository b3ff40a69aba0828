//! The order of request checks and the single dispatch table keyed by `X-Amz-Target`.

use std::sync::Arc;

use millrace_engine::Engine;

use crate::auth;
use crate::error::ApiError;
use crate::handlers::{self, Context};
use crate::server::ServerConfig;

/// The Kinesis target prefix.
const KINESIS_PREFIX: &str = "Kinesis_20131202";

/// The body format of a request, which its response uses too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    /// The format named by a Content-Type header (parameters and spaces ignored); requests
    /// with any other content type are answered in JSON.
    pub fn of(headers: &http::HeaderMap) -> (Format, bool) {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/x-amz-json-1.1" => (Format::Json, true),
            "application/x-amz-cbor-1.1" => (Format::Cbor, true),
            _ => (Format::Json, false),
        }
    }
}

/// A successful reply: a complete body, or an event stream fed by a task.
pub enum Reply {
    Body(Vec<u8>),
    EventStream(tokio::sync::mpsc::Receiver<bytes::Bytes>),
}

/// Runs the service's checks in its order, then the operation; returns the reply.
pub async fn route(
    engine: &Arc<Engine>,
    config: &ServerConfig,
    rate_limiter: &crate::rate_limit::RateLimiter,
    parts: &http::request::Parts,
    target: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    if parts.method != http::Method::POST {
        return Err(ApiError::new(
            "AccessDeniedException",
            "Unable to determine service/operation name to be authorized",
        )
        .with_status(403));
    }
    let (prefix, operation) = target.split_once('.').unwrap_or(("", ""));
    let known = prefix == KINESIS_PREFIX && millrace_wire::validate::operation_exists(operation);
    if body.is_empty() {
        return Err(if known {
            ApiError::serialization(None)
        } else {
            ApiError::bare("UnknownOperationException")
        });
    }
    let (format, recognised) = Format::of(&parts.headers);
    if !recognised {
        return Err(ApiError::bare("UnknownOperationException").with_status(404));
    }
    // CBOR requests are transcoded to the JSON document the JSON protocol would carry; the
    // reply is transcoded back by the caller.
    let transcoded;
    let body = match format {
        Format::Json => body,
        Format::Cbor => {
            let document = millrace_wire::cbor::request_to_json(operation, body)
                .map_err(|_| ApiError::serialization(None))?;
            transcoded = serde_json::to_vec(&document).expect("json values serialize");
            &transcoded[..]
        }
    };
    // An unparseable body is reported before an unknown operation or missing authentication;
    // the body is parsed up front only on those error paths, so good requests parse once.
    let parses = || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    if !known {
        return Err(if parses() {
            ApiError::bare("UnknownOperationException")
        } else {
            ApiError::serialization(None)
        });
    }
    let caller = match auth::check(&parts.headers, parts.uri.query()) {
        Ok(caller) => caller,
        Err(error) if parses() => return Err(error),
        Err(_) => return Err(ApiError::serialization(None)),
    };
    let region = caller
        .region
        .unwrap_or_else(|| config.default_region.clone());
    if config.rate_limits {
        rate_limiter.admit(&region, operation)?;
    }
    let context = Context {
        engine,
        region,
        format,
    };
    if operation == "SubscribeToShard" {
        return handlers::fanout::subscribe_to_shard(&context, body)
            .await
            .map(Reply::EventStream);
    }
    handlers::call(&context, operation, body)
        .await
        .map(Reply::Body)
}
