//! Read-only views the engine hands to the protocol layer.

use millrace_catalog::{ShardRecord, StreamMode, StreamRecord, StreamStatus};
use millrace_types::sequence_number::ENDING_COUNTER;
use millrace_types::{SequenceNumber, ShardId};

/// One shard as DescribeStream and ListShards show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardView {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub starting_sequence_number: String,
    pub ending_sequence_number: Option<String>,
}

impl ShardView {
    pub(crate) fn of(shard: &ShardRecord) -> ShardView {
        let starting = SequenceNumber::shard_start(shard.created_secs, shard.index);
        let ending = shard.closed_ms.map(|closed_ms| {
            SequenceNumber {
                shard_created_secs: shard.created_secs,
                counter: ENDING_COUNTER,
                arrival_secs: closed_ms / 1000,
                shard_index: shard.index,
            }
            .to_string()
        });
        ShardView {
            shard_id: ShardId(shard.index).to_string(),
            parent_shard_id: shard.parent.map(|p| ShardId(p).to_string()),
            adjacent_parent_shard_id: shard.adjacent_parent.map(|p| ShardId(p).to_string()),
            starting_hash_key: shard.starting_hash_key.clone(),
            ending_hash_key: shard.ending_hash_key.clone(),
            starting_sequence_number: starting.to_string(),
            ending_sequence_number: ending,
        }
    }
}

/// A stream as the Describe and List operations show it.
#[derive(Clone, Debug)]
pub struct StreamView {
    pub name: String,
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    pub status: &'static str,
    /// `PROVISIONED` or `ON_DEMAND`.
    pub mode: &'static str,
    pub retention_hours: u32,
    pub created_ms: u64,
    pub shard_level_metrics: Vec<String>,
    pub encryption_type: String,
    pub key_id: Option<String>,
    pub open_shard_count: u32,
    pub max_record_size_kib: u32,
    pub warm_throughput_mibps: Option<u32>,
    pub record_distribution_strategy: Option<String>,
    /// Filled by DescribeStream only.
    pub shards: Vec<ShardView>,
    pub has_more_shards: bool,
}

pub(crate) fn status_name(status: StreamStatus) -> &'static str {
    match status {
        StreamStatus::Creating => "CREATING",
        StreamStatus::Active => "ACTIVE",
        StreamStatus::Updating => "UPDATING",
        StreamStatus::Deleting => "DELETING",
    }
}

pub(crate) fn mode_name(mode: StreamMode) -> &'static str {
    match mode {
        StreamMode::Provisioned => "PROVISIONED",
        StreamMode::OnDemand => "ON_DEMAND",
    }
}

impl StreamView {
    pub(crate) fn of(record: &StreamRecord, status: StreamStatus, arn: String) -> StreamView {
        StreamView {
            name: record.name.clone(),
            arn,
            status: status_name(status),
            mode: mode_name(record.mode),
            retention_hours: record.retention_hours,
            created_ms: record.created_ms,
            shard_level_metrics: record.shard_level_metrics.clone(),
            encryption_type: record.encryption.encryption_type.clone(),
            key_id: record.encryption.key_id.clone(),
            open_shard_count: record
                .shards
                .iter()
                .filter(|s| s.closed_ms.is_none())
                .count() as u32,
            max_record_size_kib: record.max_record_size_kib,
            warm_throughput_mibps: record.warm_throughput_mibps,
            record_distribution_strategy: record.record_distribution_strategy.clone(),
            shards: Vec::new(),
            has_more_shards: false,
        }
    }
}

/// DescribeLimits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsView {
    pub shard_limit: u32,
    pub open_shard_count: u32,
    pub on_demand_stream_count: u32,
    pub on_demand_stream_count_limit: u32,
}

/// DescribeAccountSettings / UpdateAccountSettings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettingsView {
    pub status: String,
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub earliest_allowed_end_at_ms: Option<u64>,
}
