//! On-demand capacity: shards of ON_DEMAND streams that stay hot are split.
//!
//! Policy: the scaler measures, per open shard and over each scaling window, the bytes producers
//! tried to write (accepted or throttled). A shard whose average demand over a whole window is
//! at or above half of a shard's write limit (512 KiB/s) is split at the middle of its
//! hash-key range, so the stream keeps about twice its recent peak as headroom, as the service
//! promises for on-demand streams. A stream grows to at most `MAX_ON_DEMAND_SHARDS` open shards.
//! On-demand streams never shrink by themselves.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use millrace_catalog::{StreamMode, StreamStatus};

use crate::clock::now_ms;
use crate::registry::Engine;

/// Demand per shard, in bytes per second, at which a shard counts as hot.
const HOT_BYTES_PER_SECOND: u64 = 512 * 1024;
/// Most open shards an on-demand stream grows to.
const MAX_ON_DEMAND_SHARDS: usize = 1024;

/// Runs the scaler until the engine is dropped.
pub fn spawn(engine: Arc<Engine>) {
    let window = engine.config.on_demand_scale_window_ms.max(40);
    let period = Duration::from_millis(window / 4);
    let engine = Arc::downgrade(&engine);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let pass = tokio::task::spawn_blocking(move || engine.autoscale_pass(window));
            if let Err(error) = pass.await {
                tracing::error!(%error, "on-demand scaling pass failed");
            }
        }
    });
}

impl Engine {
    /// One sampling pass; splits shards that have been hot for `window_ms`.
    fn autoscale_pass(&self, window_ms: u64) {
        let now = now_ms();
        for stream in self.all_streams() {
            let record = stream.snapshot();
            if record.mode != StreamMode::OnDemand
                || record.effective_status(now) != Some(StreamStatus::Active)
            {
                continue;
            }
            let shards: Vec<_> = stream
                .shards
                .read()
                .expect("shard lock")
                .iter()
                .filter(|s| !s.is_closed())
                .cloned()
                .collect();
            let mut hot = Vec::new();
            for shard in &shards {
                let demand = shard.demand_bytes.load(Ordering::Relaxed);
                let mut sample = shard.demand_sample.lock().expect("sample lock");
                let (window_start_bytes, window_start_ms) = *sample;
                let elapsed = now.saturating_sub(window_start_ms);
                if elapsed < window_ms {
                    continue;
                }
                let rate = (demand - window_start_bytes) * 1000 / elapsed.max(1);
                tracing::debug!(shard = shard.index, rate, "on-demand window");
                if rate >= HOT_BYTES_PER_SECOND {
                    hot.push(shard.index);
                }
                *sample = (demand, now);
            }
            for index in hot {
                if stream
                    .shards
                    .read()
                    .expect("shard lock")
                    .iter()
                    .filter(|s| !s.is_closed())
                    .count()
                    >= MAX_ON_DEMAND_SHARDS
                {
                    break;
                }
                match self.split_in_half(&record.region, &record.name, index) {
                    Ok(()) => tracing::info!(
                        stream = record.name,
                        shard = index,
                        "on-demand stream split a hot shard"
                    ),
                    Err(error) => {
                        tracing::warn!(stream = record.name, shard = index, %error, "on-demand split failed")
                    }
                }
            }
        }
    }
}
