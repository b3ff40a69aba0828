//! Wiring of Kinesis Channels (`millrace-channels`) into `millrace serve`: the channel
//! service behind the server's `ChannelsFront` hook, delivering through Firehose's engine.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use millrace_server::channels_route::ChannelsFront;
use millrace_server::Engine;
use serde_json::Value;

struct Front(millrace_channels::Channels);

impl ChannelsFront for Front {
    fn call<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        region: &'a str,
        operation: &'a str,
        input: &'a Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, millrace_engine::Error>> + Send + 'a>> {
        Box::pin(self.0.call(engine, region, operation, input))
    }

    fn stream_has_channels(&self, account: &str, region: &str, stream: &str) -> bool {
        self.0.stream_has_channels(account, region, stream)
    }
}

/// Opens the channels and starts their deliveries (after Firehose started).
pub async fn open(
    data_dir: &Path,
    firehose: millrace_firehose::Firehose,
    create_ms: u64,
    update_ms: u64,
    delete_ms: u64,
) -> anyhow::Result<Arc<dyn ChannelsFront>> {
    let config = millrace_channels::ChannelsConfig {
        data_dir: data_dir.to_path_buf(),
        create_ms,
        update_ms,
        delete_ms,
    };
    let channels =
        tokio::task::spawn_blocking(move || millrace_channels::Channels::open(config, firehose))
            .await
            .context("open the channels")?
            .context("open the channels")?;
    channels.start();
    Ok(Arc::new(Front(channels)))
}
