//! The order of request checks and the single dispatch table keyed by `X-Amz-Target`.

use std::sync::Arc;

use millrace_engine::Engine;

use crate::auth;
use crate::error::ApiError;
use crate::handlers::{self, Context};
use crate::server::ServerConfig;

/// The Kinesis target prefix.
const KINESIS_PREFIX: &str = "Kinesis_20131202";

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
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = content_type.split(';').next().unwrap_or("").trim();
    if content_type != "application/x-amz-json-1.1" {
        return Err(ApiError::bare("UnknownOperationException").with_status(404));
    }
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
    let context = Context { engine, region };
    if operation == "SubscribeToShard" {
        return handlers::fanout::subscribe_to_shard(&context, body)
            .await
            .map(Reply::EventStream);
    }
    handlers::call(&context, operation, body)
        .await
        .map(Reply::Body)
}
