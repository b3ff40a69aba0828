//! The live counters of the current minute, written where the work happens (the server's
//! Kinesis handlers) at the cost of a few relaxed atomic additions per request.
//!
//! A [`Handle`] is one set of dimensions (a stream, a stream's shard, a stream's consumer) with
//! one [`Counter`] per Kinesis metric; the server looks it up once per request and records the
//! request's values. Once a minute [`Recorder::drain`] swaps every counter to zero and hands the
//! minute's statistics to the store; queries [`Recorder::peek`] at the minute still running, so
//! an answer never waits for the flush.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::series::SeriesKey;
use crate::stat::{bucket_of, Stat, BUCKETS};

/// The namespace of the Kinesis metrics.
pub const KINESIS_NAMESPACE: &str = "AWS/Kinesis";

macro_rules! kinesis_metrics {
    ($($variant:ident = $name:literal, $unit:literal;)*) => {
        /// The AWS/Kinesis metrics, with AWS's names and units.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum KinesisMetric { $($variant),* }

        impl KinesisMetric {
            pub const ALL: &'static [KinesisMetric] = &[$(KinesisMetric::$variant),*];
            pub fn name(self) -> &'static str {
                match self { $(KinesisMetric::$variant => $name),* }
            }
            pub fn unit(self) -> &'static str {
                match self { $(KinesisMetric::$variant => $unit),* }
            }
        }
    };
}

kinesis_metrics! {
    IncomingBytes = "IncomingBytes", "Bytes";
    IncomingRecords = "IncomingRecords", "Count";
    PutRecordBytes = "PutRecord.Bytes", "Bytes";
    PutRecordLatency = "PutRecord.Latency", "Milliseconds";
    PutRecordSuccess = "PutRecord.Success", "Count";
    PutRecordsBytes = "PutRecords.Bytes", "Bytes";
    PutRecordsLatency = "PutRecords.Latency", "Milliseconds";
    PutRecordsSuccess = "PutRecords.Success", "Count";
    PutRecordsTotalRecords = "PutRecords.TotalRecords", "Count";
    PutRecordsSuccessfulRecords = "PutRecords.SuccessfulRecords", "Count";
    PutRecordsFailedRecords = "PutRecords.FailedRecords", "Count";
    PutRecordsThrottledRecords = "PutRecords.ThrottledRecords", "Count";
    GetRecordsBytes = "GetRecords.Bytes", "Bytes";
    GetRecordsIteratorAge = "GetRecords.IteratorAgeMilliseconds", "Milliseconds";
    GetRecordsLatency = "GetRecords.Latency", "Milliseconds";
    GetRecordsRecords = "GetRecords.Records", "Count";
    GetRecordsSuccess = "GetRecords.Success", "Count";
    WriteProvisionedThroughputExceeded = "WriteProvisionedThroughputExceeded", "Count";
    ReadProvisionedThroughputExceeded = "ReadProvisionedThroughputExceeded", "Count";
    SubscribeToShardRateExceeded = "SubscribeToShard.RateExceeded", "Count";
    SubscribeToShardSuccess = "SubscribeToShard.Success", "Count";
    SubscribeToShardEventBytes = "SubscribeToShardEvent.Bytes", "Bytes";
    SubscribeToShardEventMillisBehindLatest = "SubscribeToShardEvent.MillisBehindLatest", "Milliseconds";
    SubscribeToShardEventRecords = "SubscribeToShardEvent.Records", "Count";
    SubscribeToShardEventSuccess = "SubscribeToShardEvent.Success", "Count";
    OutgoingBytes = "OutgoingBytes", "Bytes";
    OutgoingRecords = "OutgoingRecords", "Count";
    IteratorAgeMilliseconds = "IteratorAgeMilliseconds", "Milliseconds";
    ReceivedQueueRecords = "ReceivedQueueRecords", "Count";
    AcknowledgedQueueRecords = "AcknowledgedQueueRecords", "Count";
    EmptyReceives = "EmptyReceives", "Count";
    VisibleQueueRecords = "VisibleQueueRecords", "Count";
    InFlightQueueRecords = "InFlightQueueRecords", "Count";
    VisibleDeadLetterQueueRecords = "VisibleDeadLetterQueueRecords", "Count";
}

/// The shard-level metrics EnableEnhancedMonitoring names, as bits of [`Handle::shard_level`].
pub const SHARD_LEVEL_METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

/// The bit of a shard-level metric name, if it is one.
pub fn shard_level_bit(name: &str) -> Option<u32> {
    SHARD_LEVEL_METRICS
        .iter()
        .position(|m| *m == name)
        .map(|i| 1 << i)
}

/// One metric of one handle in the current minute: integers only (bytes, counts, milliseconds).
#[derive(Default)]
pub struct Counter {
    count: AtomicU64,
    sum: AtomicU64,
    /// `u64::MAX - min`, so that zero means "none yet" and `fetch_max` keeps the minimum.
    min_inverted: AtomicU64,
    max: AtomicU64,
    histogram: OnceLock<Box<[AtomicU32]>>,
}

impl Counter {
    pub fn record(&self, value: u64) {
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
        self.min_inverted.fetch_max(u64::MAX - value, Relaxed);
        self.max.fetch_max(value, Relaxed);
        let histogram = self
            .histogram
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU32::new(0)).collect());
        histogram[bucket_of(value as f64)].fetch_add(1, Relaxed);
    }

    fn read(&self, take: bool) -> Option<Stat> {
        let load = |atomic: &AtomicU64| {
            if take {
                atomic.swap(0, Relaxed)
            } else {
                atomic.load(Relaxed)
            }
        };
        let count = load(&self.count);
        if count == 0 {
            return None;
        }
        let sum = load(&self.sum);
        let min = u64::MAX - load(&self.min_inverted);
        let max = load(&self.max);
        let mut stat = Stat::set(count as f64, sum as f64, min as f64, max.max(min) as f64);
        if let Some(histogram) = self.histogram.get() {
            for (index, bucket) in histogram.iter().enumerate() {
                let n = if take {
                    bucket.swap(0, Relaxed)
                } else {
                    bucket.load(Relaxed)
                };
                if n > 0 {
                    stat.histogram.insert(index as u16, f64::from(n));
                }
            }
        }
        Some(stat)
    }
}

/// One set of dimensions in AWS/Kinesis and its counters.
pub struct Handle {
    pub account: String,
    pub region: String,
    pub dimensions: Vec<(String, String)>,
    counters: Box<[Counter]>,
    /// For a stream's handle: which shard-level metrics are enabled (bits of
    /// [`SHARD_LEVEL_METRICS`]), once `shard_level_known`.
    shard_level: AtomicU32,
    shard_level_known: AtomicBool,
}

impl Handle {
    pub fn record(&self, metric: KinesisMetric, value: u64) {
        self.counters[metric as usize].record(value);
    }

    /// Whether the stream's shard-level metric is enabled; `None` until the server told.
    pub fn shard_level(&self) -> Option<u32> {
        self.shard_level_known
            .load(Relaxed)
            .then(|| self.shard_level.load(Relaxed))
    }

    /// Sets the enabled shard-level metrics (names as EnableEnhancedMonitoring takes them).
    pub fn set_shard_level<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let bits = names
            .into_iter()
            .filter_map(|n| {
                if n == "ALL" {
                    Some((1 << SHARD_LEVEL_METRICS.len()) - 1)
                } else {
                    shard_level_bit(n)
                }
            })
            .fold(0, |a, b| a | b);
        self.shard_level.store(bits, Relaxed);
        self.shard_level_known.store(true, Relaxed);
    }
}

fn handle_key(account: &str, region: &str, dimensions: &[(&str, &str)]) -> String {
    let mut key = format!("{account}\u{1f}{region}");
    for (name, value) in dimensions {
        key.push('\u{1f}');
        key.push_str(name);
        key.push('\u{1d}');
        key.push_str(value);
    }
    key
}

/// Every handle, and the totals since start (for Prometheus).
#[derive(Default)]
pub struct Recorder {
    handles: RwLock<HashMap<String, Arc<Handle>>>,
    totals: Mutex<HashMap<SeriesKey, (String, Stat)>>,
}

impl Recorder {
    fn handle(&self, account: &str, region: &str, dimensions: &[(&str, &str)]) -> Arc<Handle> {
        let key = handle_key(account, region, dimensions);
        if let Some(handle) = self
            .handles
            .read()
            .expect("handle map is never poisoned")
            .get(&key)
        {
            return handle.clone();
        }
        let mut handles = self.handles.write().expect("handle map is never poisoned");
        handles
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Handle {
                    account: account.to_owned(),
                    region: region.to_owned(),
                    dimensions: dimensions
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect(),
                    counters: KinesisMetric::ALL
                        .iter()
                        .map(|_| Counter::default())
                        .collect(),
                    shard_level: AtomicU32::new(0),
                    shard_level_known: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// The stream-level handle (dimension `StreamName`).
    pub fn stream(&self, account: &str, region: &str, stream: &str) -> Arc<Handle> {
        self.handle(account, region, &[("StreamName", stream)])
    }

    /// A shard-level handle (`StreamName`, `ShardId`).
    pub fn shard(&self, account: &str, region: &str, stream: &str, shard: &str) -> Arc<Handle> {
        self.handle(
            account,
            region,
            &[("StreamName", stream), ("ShardId", shard)],
        )
    }

    /// A consumer-level handle (`StreamName`, `ConsumerName`).
    pub fn consumer(
        &self,
        account: &str,
        region: &str,
        stream: &str,
        consumer: &str,
    ) -> Arc<Handle> {
        self.handle(
            account,
            region,
            &[("StreamName", stream), ("ConsumerName", consumer)],
        )
    }

    /// A queue's handle (`QueueId`, `QueueName`).
    pub fn queue(&self, account: &str, region: &str, queue_id: &str, queue: &str) -> Arc<Handle> {
        self.handle(
            account,
            region,
            &[("QueueId", queue_id), ("QueueName", queue)],
        )
    }

    fn read(&self, take: bool) -> Vec<(SeriesKey, &'static str, Stat)> {
        let handles: Vec<Arc<Handle>> = self
            .handles
            .read()
            .expect("handle map is never poisoned")
            .values()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            for metric in KinesisMetric::ALL {
                if let Some(stat) = handle.counters[*metric as usize].read(take) {
                    let key = SeriesKey::new(
                        &handle.account,
                        &handle.region,
                        KINESIS_NAMESPACE,
                        metric.name(),
                        handle.dimensions.clone(),
                    );
                    out.push((key, metric.unit(), stat));
                }
            }
        }
        if take {
            let mut totals = self.totals.lock().expect("totals are never poisoned");
            for (key, unit, stat) in &out {
                totals
                    .entry(key.clone())
                    .or_insert_with(|| ((*unit).to_owned(), Stat::set(0.0, 0.0, 0.0, 0.0)))
                    .1
                    .merge(stat);
            }
        }
        out
    }

    /// Takes the minute's statistics, leaving every counter at zero.
    pub fn drain(&self) -> Vec<(SeriesKey, &'static str, Stat)> {
        self.read(true)
    }

    /// The statistics of the minute still running.
    pub fn peek(&self) -> Vec<(SeriesKey, &'static str, Stat)> {
        self.read(false)
    }

    /// The running minute of one series, without copying the others.
    pub fn peek_series(&self, key: &SeriesKey) -> Option<(&'static str, Stat)> {
        if key.namespace != KINESIS_NAMESPACE {
            return None;
        }
        let metric = KinesisMetric::ALL.iter().find(|m| m.name() == key.metric)?;
        let handles = self.handles.read().expect("handle map is never poisoned");
        let handle = handles.values().find(|h| {
            h.account == key.account
                && h.region == key.region
                && h.dimensions.len() == key.dimensions.len()
                && h.dimensions.iter().all(|d| key.dimensions.contains(d))
        })?;
        let stat = handle.counters[*metric as usize].read(false)?;
        Some((metric.unit(), stat))
    }

    /// Totals since the start, the running minute included.
    pub fn totals(&self) -> Vec<(SeriesKey, String, Stat)> {
        let mut totals: HashMap<SeriesKey, (String, Stat)> = self
            .totals
            .lock()
            .expect("totals are never poisoned")
            .clone();
        for (key, unit, stat) in self.peek() {
            totals
                .entry(key)
                .or_insert_with(|| (unit.to_owned(), Stat::set(0.0, 0.0, 0.0, 0.0)))
                .1
                .merge(&stat);
        }
        let mut list: Vec<_> = totals.into_iter().map(|(k, (u, s))| (k, u, s)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_takes_the_minute_and_totals_keep_it() {
        let recorder = Recorder::default();
        let stream = recorder.stream("1", "r", "s");
        stream.record(KinesisMetric::IncomingRecords, 5);
        stream.record(KinesisMetric::IncomingRecords, 7);
        let peeked = recorder.peek();
        assert_eq!(peeked.len(), 1);
        assert_eq!(peeked[0].2.sum, 12.0);
        assert_eq!(peeked[0].2.min, 5.0);
        assert_eq!(peeked[0].2.max, 7.0);
        let drained = recorder.drain();
        assert_eq!(drained[0].2.count, 2.0);
        assert!(recorder.peek().is_empty());
        stream.record(KinesisMetric::IncomingRecords, 1);
        let totals = recorder.totals();
        assert_eq!(totals[0].2.sum, 13.0);
        assert_eq!(totals[0].0.dimension("StreamName"), Some("s"));
    }

    #[test]
    fn shard_level_bits() {
        let recorder = Recorder::default();
        let stream = recorder.stream("1", "r", "s");
        assert_eq!(stream.shard_level(), None);
        stream.set_shard_level(["IncomingBytes", "IteratorAgeMilliseconds"]);
        assert_eq!(stream.shard_level(), Some(1 | 64));
        stream.set_shard_level(["ALL"]);
        assert_eq!(stream.shard_level(), Some(127));
    }
}
