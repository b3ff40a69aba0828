//! KinesisStreamAsSource: reading a Millrace stream into the delivery stream's log.

use std::sync::Arc;

use millrace_service::ServiceError;
use serde_json::Value;

use crate::error::invalid_argument;
use crate::{Inner, Stream};

/// The Kinesis streams of each account, as the source reader sees them.
pub trait KinesisStreams: Send + Sync {
    fn engine(&self, account: &str) -> Option<Arc<millrace_engine::Engine>>;
}

pub(crate) fn check_source(
    inner: &Inner,
    _account: &str,
    _source: &Value,
) -> Result<(), ServiceError> {
    if inner.kinesis.is_none() {
        return Err(invalid_argument(
            "KinesisStreamAsSource is not available on this server.",
        ));
    }
    Ok(())
}

/// The store keys of a stream's source positions.
pub(crate) fn position_keys(inner: &Inner, incarnation: u64) -> Vec<String> {
    inner
        .store
        .scan(&format!("fh/src/{incarnation}/"))
        .map(|rows| rows.into_iter().map(|(key, _)| key).collect())
        .unwrap_or_default()
}

pub(crate) async fn run(_inner: Arc<Inner>, _stream: Arc<Stream>) {}
