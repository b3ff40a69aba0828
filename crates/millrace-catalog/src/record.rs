//! The stored shape of a stream and its shards (format version 1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version written into every stream record.
pub const STREAM_RECORD_VERSION: u32 = 1;

/// Lifecycle state as stored; transitional states end at `StreamRecord::status_until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

/// Capacity mode of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

/// Server-side encryption settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionRecord {
    /// `NONE` or `KMS`.
    pub encryption_type: String,
    pub key_id: Option<String>,
    /// When Start- or StopStreamEncryption last succeeded (the last 24 hours), for the
    /// service's limit on such calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes_ms: Vec<u64>,
}

/// One shard of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub index: u32,
    /// Inclusive hash-key range, as decimal strings (JSON has no 128-bit integers).
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    /// Creation time in epoch seconds, embedded in the shard's sequence numbers.
    pub created_secs: u64,
    /// When the shard was closed by resharding, epoch milliseconds.
    pub closed_ms: Option<u64>,
    /// Log position just after the shard's last record, once it is closed.
    #[serde(default)]
    pub end_position: Option<u64>,
}

/// An enhanced fan-out consumer registered on a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    pub name: String,
    /// Registration time, epoch milliseconds; its seconds are part of the consumer's ARN.
    pub created_ms: u64,
    /// `Creating`, `Active` or `Deleting` (reusing the stream statuses).
    pub status: StreamStatus,
    /// When a transitional status ends, epoch milliseconds.
    pub status_until_ms: u64,
}

impl ConsumerRecord {
    /// The status in force at `now_ms`, or `None` once deregistration has completed.
    pub fn effective_status(&self, now_ms: u64) -> Option<StreamStatus> {
        let settled = now_ms >= self.status_until_ms;
        match self.status {
            StreamStatus::Deleting if settled => None,
            StreamStatus::Creating if settled => Some(StreamStatus::Active),
            status => Some(status),
        }
    }
}

/// A stream as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub version: u32,
    /// Unique for the life of the data directory; names the stream's log directory, so that a
    /// re-created stream of the same name never sees an older stream's records.
    pub incarnation: u64,
    pub region: String,
    pub name: String,
    pub status: StreamStatus,
    /// When a transitional status (CREATING, UPDATING, DELETING) ends, epoch milliseconds.
    pub status_until_ms: u64,
    pub created_ms: u64,
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub shards: Vec<ShardRecord>,
    pub next_shard_index: u32,
    pub tags: BTreeMap<String, String>,
    pub encryption: EncryptionRecord,
    pub shard_level_metrics: Vec<String>,
    pub max_record_size_kib: u32,
    pub warm_throughput_mibps: Option<u32>,
    pub record_distribution_strategy: Option<String>,
    /// When UpdateShardCount ran, epoch milliseconds (for the calls-per-24-hours limit).
    #[serde(default)]
    pub scaling_history_ms: Vec<u64>,
    /// Registered enhanced fan-out consumers.
    #[serde(default)]
    pub consumers: Vec<ConsumerRecord>,
    /// A reshard accepted but not yet applied: until it is, the stream is UPDATING and keeps
    /// its current shards (absent from records written before resharding was deferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reshard: Option<PendingReshard>,
}

/// SplitShard, MergeShards or UpdateShardCount as accepted, applied when UPDATING ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReshard {
    /// When the reshard is applied, epoch milliseconds (the stream's `status_until_ms`).
    pub apply_at_ms: u64,
    /// Applied in order; the shards they create take the stream's next shard indexes in order.
    pub steps: Vec<ReshardStep>,
}

/// One step of a reshard: closes shards and creates their children.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshardStep {
    /// Indexes of the shards closed (one for a split, two for a merge).
    pub close: Vec<u32>,
    pub create: Vec<NewShardRecord>,
}

/// A shard a reshard step creates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShardRecord {
    /// Inclusive hash-key range, as decimal strings.
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub parent: u32,
    pub adjacent_parent: Option<u32>,
}

impl StreamRecord {
    /// The status in force at `now_ms`, or `None` once a deletion has completed.
    pub fn effective_status(&self, now_ms: u64) -> Option<StreamStatus> {
        let settled = now_ms >= self.status_until_ms;
        match self.status {
            StreamStatus::Deleting if settled => None,
            // A pending reshard ends UPDATING when it is applied, not by the clock alone.
            StreamStatus::Updating if self.pending_reshard.is_some() => {
                Some(StreamStatus::Updating)
            }
            StreamStatus::Creating | StreamStatus::Updating if settled => {
                Some(StreamStatus::Active)
            }
            status => Some(status),
        }
    }
}
