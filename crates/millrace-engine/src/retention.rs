//! The background retention pass: finishes deletions and removes expired log segments.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::registry::Engine;

/// Runs the retention pass every `retention_check_ms` until the engine is dropped.
pub fn spawn(engine: Arc<Engine>) {
    let period = Duration::from_millis(engine.config.retention_check_ms.max(10));
    let engine = Arc::downgrade(&engine);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let pass = tokio::task::spawn_blocking(move || engine.retention_pass());
            if let Err(error) = pass.await {
                tracing::error!(%error, "retention pass failed");
            }
        }
    });
}

impl Engine {
    /// One pass: reap finished deletions, then trim every shard to its stream's retention.
    pub fn retention_pass(&self) {
        let _span = tracing::info_span!("retention").entered();
        self.reap();
        let now = now_ms();
        for stream in self.all_streams() {
            let record = stream.snapshot();
            let cutoff = now.saturating_sub(self.retention_ms(&record));
            for shard in stream.shards.read().expect("shard lock").iter() {
                match shard.log.trim_before_timestamp(cutoff) {
                    Ok(0) => {}
                    Ok(removed) => tracing::debug!(
                        stream = record.name,
                        shard = shard.index,
                        removed,
                        "removed expired segments"
                    ),
                    Err(error) => tracing::error!(
                        stream = record.name,
                        shard = shard.index,
                        %error,
                        "failed to remove expired segments"
                    ),
                }
            }
        }
    }
}
