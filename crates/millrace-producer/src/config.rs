//! Producer settings, with the KPL's names (as fields in snake case) and defaults.

use std::time::Duration;

/// What `put` does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait until records leave the buffer.
    Wait,
    /// Fail the put at once with [`crate::PutError::BufferFull`].
    Fail,
}

/// `MetricsLevel`: which metrics are published through CloudWatch's PutMetricData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsLevel {
    /// Nothing is published (our default; the KPL's is `detailed`).
    None,
    /// The producer-wide metrics, without dimensions.
    Summary,
    /// As `Summary`, and per stream (`StreamName`) and per shard (`StreamName`, `ShardId`) as
    /// `MetricsGranularity` allows.
    Detailed,
}

/// `MetricsGranularity`: the dimensions `Detailed` metrics are also published with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricsGranularity {
    /// Producer-wide only.
    Global,
    /// Also per stream.
    Stream,
    /// Also per stream and per shard (the KPL's default).
    Shard,
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `AggregationEnabled` (true).
    pub aggregation_enabled: bool,
    /// `AggregationMaxCount` (4294967295): user records in one aggregated record.
    pub aggregation_max_count: u64,
    /// `AggregationMaxSize` (51200): bytes of one aggregated record's data.
    pub aggregation_max_size: usize,
    /// `CollectionMaxCount` (500): Kinesis records in one PutRecords.
    pub collection_max_count: usize,
    /// `CollectionMaxSize` (5242880): bytes (data and partition keys) in one PutRecords.
    pub collection_max_size: usize,
    /// `RecordMaxBufferedTime` (100 ms): the longest a user record waits to be sent.
    pub record_max_buffered_time: Duration,
    /// `RecordTtl` (30000 ms): a user record not put by then fails as expired.
    pub record_ttl: Duration,
    /// `RateLimit` (150): percent of a shard's 1 MiB/s and 1,000 records/s the producer sends.
    pub rate_limit: u64,
    /// `MaxConnections` (24): concurrent PutRecords requests.
    pub max_connections: usize,
    /// `RequestTimeout` (6000 ms).
    pub request_timeout: Duration,
    /// `FailIfThrottled` (false): a throttled record fails instead of being retried.
    pub fail_if_throttled: bool,
    /// `MetricsLevel` (the KPL's default is `detailed`; ours is `None`, so that nothing is sent
    /// to a CloudWatch the caller did not ask for).
    pub metrics_level: MetricsLevel,
    /// `MetricsGranularity` (`shard`).
    pub metrics_granularity: MetricsGranularity,
    /// `MetricsNamespace` (`KinesisProducerLibrary`).
    pub metrics_namespace: String,
    /// `MetricsUploadDelay` (60000 ms).
    pub metrics_upload_delay: Duration,
    /// Not a KPL setting: the most user records buffered or in flight at once (the KPL's buffer
    /// is unbounded); 100,000 by default.
    pub max_outstanding_records: usize,
    /// Not a KPL setting: what `put` does when `max_outstanding_records` are outstanding.
    pub when_full: WhenFull,
    /// First retry delay (100 ms), doubled per attempt up to `max_backoff`, with full jitter.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            aggregation_enabled: true,
            aggregation_max_count: u32::MAX as u64,
            aggregation_max_size: 51_200,
            collection_max_count: 500,
            collection_max_size: 5 * 1024 * 1024,
            record_max_buffered_time: Duration::from_millis(100),
            record_ttl: Duration::from_millis(30_000),
            rate_limit: 150,
            max_connections: 24,
            request_timeout: Duration::from_millis(6_000),
            fail_if_throttled: false,
            metrics_level: MetricsLevel::None,
            metrics_granularity: MetricsGranularity::Shard,
            metrics_namespace: "KinesisProducerLibrary".to_owned(),
            metrics_upload_delay: Duration::from_millis(60_000),
            max_outstanding_records: 100_000,
            when_full: WhenFull::Wait,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(5_000),
        }
    }
}
