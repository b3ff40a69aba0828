//! The hook that hands the Kinesis Channel operations (CreateChannel, DescribeChannel,
//! ListChannels, UpdateChannel, DeleteChannel) to the channel service (`millrace-channels`,
//! wired by `millrace serve`). They arrive on the Kinesis route like every Kinesis operation:
//! `handlers/channels.rs` validates them against the model and authorizes
//! `kinesis:<Operation>` on the channel ARN before calling in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use millrace_engine::{Engine, Error};
use serde_json::Value;

/// The channel service as the server sees it.
pub trait ChannelsFront: Send + Sync {
    /// Runs one channel operation for the account of `engine`; `Value::Null` for no output.
    fn call<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        region: &'a str,
        operation: &'a str,
        input: &'a Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, Error>> + Send + 'a>>;

    /// Whether a stream has channels that are not being deleted (DeleteStream is refused).
    fn stream_has_channels(&self, account: &str, region: &str, stream: &str) -> bool;
}
