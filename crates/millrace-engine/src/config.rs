//! Engine configuration.

use std::path::PathBuf;
use std::time::Duration;

/// When appended records are forced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// No acknowledgement before the record is on stable storage (group commit).
    Always,
    /// Never force; the operating system writes back when it likes.
    Never,
    /// Acknowledge at once and force in the background at this interval.
    Interval(Duration),
}

/// Everything the engine needs to know about its environment.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub account_id: String,
    pub fsync: FsyncPolicy,
    pub create_stream_ms: u64,
    pub delete_stream_ms: u64,
    pub update_stream_ms: u64,
    /// Open provisioned shards allowed per account and region.
    pub shard_limit: u32,
    /// On-demand streams allowed per account and region.
    pub on_demand_stream_limit: u32,
    /// How many real milliseconds one hour of retention lasts (3 600 000 except in tests).
    pub retention_hour_ms: u64,
    /// How often the background retention pass runs.
    pub retention_check_ms: u64,
    /// Size at which a shard's active log segment is rolled.
    pub segment_bytes: u64,
    /// Size at which the shared journal starts a new file (and checkpoints the old one).
    pub journal_file_bytes: u64,
    /// UpdateShardCount calls allowed per stream in a rolling 24 hours.
    pub max_scaling_per_day: u32,
    /// Whether per-shard throughput limits apply (on by default, as on the service).
    pub throughput_limits: bool,
    /// How long an on-demand stream's shard must run hot before it is split.
    pub on_demand_scale_window_ms: u64,
    /// How long a registered consumer stays CREATING, and a deregistered one DELETING.
    pub register_consumer_ms: u64,
    pub deregister_consumer_ms: u64,
    /// How long one SubscribeToShard call streams before it ends (five minutes on the service).
    pub subscription_ms: u64,
    /// The KMS that stream encryption takes data keys from (`None`: encryption unavailable).
    pub record_keys: Option<crate::encryption::KeyProvider>,
}

impl EngineConfig {
    /// A configuration with the service's defaults, storing data under `data_dir`.
    pub fn new(data_dir: PathBuf) -> EngineConfig {
        EngineConfig {
            data_dir,
            account_id: "000000000000".to_owned(),
            fsync: FsyncPolicy::Always,
            create_stream_ms: 0,
            delete_stream_ms: 0,
            update_stream_ms: 0,
            shard_limit: 500,
            on_demand_stream_limit: 50,
            retention_hour_ms: 3_600_000,
            retention_check_ms: 60_000,
            segment_bytes: 64 * 1024 * 1024,
            journal_file_bytes: 64 * 1024 * 1024,
            max_scaling_per_day: 10,
            throughput_limits: true,
            on_demand_scale_window_ms: 60_000,
            register_consumer_ms: 0,
            deregister_consumer_ms: 0,
            subscription_ms: 300_000,
            record_keys: None,
        }
    }
}
