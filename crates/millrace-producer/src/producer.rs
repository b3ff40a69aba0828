//! The producer: user records are buffered per shard, aggregated, collected into PutRecords
//! calls, rate-limited per shard and retried, by one worker task.
//!
//! Order: at most one PutRecords request per shard is in flight, and a failed record goes back
//! to the front of its shard's queue, so records of one partition key reach the stream in the
//! order they were put (as long as none of them fails for good). When a reply shows a record
//! landed in a shard the map did not predict (the stream was resharded), the stream's sends
//! pause, the map is read again with ListShards, and every record not yet sent is routed anew.
//!
//! The one window no client of the public API can close: an aggregate sent in the request that
//! was in flight (or about to be) when the shard split lands in the child that holds its first
//! record's hash key, and may hold records whose keys belong to the other child. The producer
//! detects that case when the new map arrives and counts it
//! (`MetricsSnapshot::aggregates_spanning_shards`, with a warning in the log); the KPL has the
//! same window. At most the first request per shard after each reshard is affected.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use md5::{Digest, Md5};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::aggregation::Aggregator;
use crate::client::{ApiError, KinesisClient, ShardInfo};
use crate::config::{MetricsGranularity, MetricsLevel, ProducerConfig, WhenFull};

/// One try at putting a record that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub error_code: String,
    pub error_message: String,
}

/// Where a user record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub shard_id: String,
    pub sequence_number: String,
    /// Position in the aggregate; 0 for a record sent alone.
    pub sub_sequence_number: u64,
    pub aggregated: bool,
    /// The failed tries before the one that succeeded.
    pub attempts: Vec<Attempt>,
}

/// Why a user record was not put.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PutError {
    #[error("the producer's buffer is full")]
    BufferFull,
    #[error("record expired after RecordTtl ({} tries failed)", attempts.len())]
    Expired { attempts: Vec<Attempt> },
    #[error("record failed: {}", attempts.last().map(|a| a.error_code.as_str()).unwrap_or("?"))]
    Failed { attempts: Vec<Attempt> },
    #[error("invalid record: {0}")]
    Invalid(String),
    #[error("the producer has shut down")]
    Closed,
}

/// Counters with the KPL's metric names.
#[derive(Debug, Default)]
pub struct Metrics {
    pub user_records_received: AtomicU64,
    pub user_records_put: AtomicU64,
    pub user_records_failed: AtomicU64,
    pub user_records_expired: AtomicU64,
    pub kinesis_records_put: AtomicU64,
    pub kinesis_records_data_put: AtomicU64,
    pub all_errors: AtomicU64,
    pub retries: AtomicU64,
    pub buffering_time_ms: AtomicU64,
    pub requests: AtomicU64,
    pub request_time_ms: AtomicU64,
    pub aggregates_spanning_shards: AtomicU64,
    /// Counts per (stream, shard), for `Detailed` metrics with dimensions.
    pub by_shard: std::sync::Mutex<HashMap<(String, String), ShardCounts>>,
}

/// What one shard of one stream received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardCounts {
    pub user_records_put: u64,
    pub kinesis_records_put: u64,
    pub kinesis_records_data_put: u64,
    pub errors: u64,
}

impl ShardCounts {
    fn add(&mut self, other: &ShardCounts) {
        self.user_records_put += other.user_records_put;
        self.kinesis_records_put += other.kinesis_records_put;
        self.kinesis_records_data_put += other.kinesis_records_data_put;
        self.errors += other.errors;
    }

    fn since(&self, before: &ShardCounts) -> ShardCounts {
        ShardCounts {
            user_records_put: self.user_records_put - before.user_records_put,
            kinesis_records_put: self.kinesis_records_put - before.kinesis_records_put,
            kinesis_records_data_put: self.kinesis_records_data_put
                - before.kinesis_records_data_put,
            errors: self.errors - before.errors,
        }
    }
}

/// A snapshot of [`Metrics`] with derived values.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    pub user_records_received: u64,
    pub user_records_put: u64,
    pub user_records_failed: u64,
    pub user_record_expired: u64,
    pub kinesis_records_put: u64,
    pub kinesis_records_data_put: u64,
    pub all_errors: u64,
    pub user_records_per_kinesis_record: f64,
    pub retries_per_record: f64,
    pub buffering_time_ms_avg: f64,
    pub request_time_ms_avg: f64,
    /// Aggregates built against a shard map that a reshard had made stale, which landed in a
    /// shard whose range does not hold all of their user records (see the module docs).
    pub aggregates_spanning_shards: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let put = get(&self.user_records_put);
        MetricsSnapshot {
            user_records_received: get(&self.user_records_received),
            user_records_put: put,
            user_records_failed: get(&self.user_records_failed),
            user_record_expired: get(&self.user_records_expired),
            kinesis_records_put: get(&self.kinesis_records_put),
            kinesis_records_data_put: get(&self.kinesis_records_data_put),
            all_errors: get(&self.all_errors),
            user_records_per_kinesis_record: ratio(put, get(&self.kinesis_records_put)),
            retries_per_record: ratio(get(&self.retries), put + get(&self.user_records_failed)),
            buffering_time_ms_avg: ratio(get(&self.buffering_time_ms), put),
            request_time_ms_avg: ratio(get(&self.request_time_ms), get(&self.requests)),
            aggregates_spanning_shards: get(&self.aggregates_spanning_shards),
        }
    }
}

type Reply = oneshot::Sender<Result<PutOutcome, PutError>>;

struct UserRecord {
    partition_key: String,
    explicit_hash_key: Option<String>,
    hash: u128,
    data: Vec<u8>,
    arrival: Instant,
    attempts: Vec<Attempt>,
    reply: Reply,
    _permit: OwnedSemaphorePermit,
}

/// One Kinesis record about to be sent: one user record, or an aggregate of several bound for
/// the same shard.
struct KinesisRecord {
    shard_id: String,
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
    aggregated: bool,
    members: Vec<UserRecord>,
    not_before: Instant,
}

impl KinesisRecord {
    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

enum Command {
    Put(String, UserRecord),
    Flush(oneshot::Sender<()>),
    Shutdown,
}

enum Event {
    ShardMap(String, Result<Vec<ShardInfo>, ApiError>),
    Sent {
        stream: String,
        records: Vec<KinesisRecord>,
        result: Result<Value, ApiError>,
        took: Duration,
    },
}

/// A token bucket refilled continuously.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: rate,
            rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
    }
}

struct Limiter {
    bytes: Bucket,
    records: Bucket,
}

impl Limiter {
    /// Takes the tokens for one record if there are enough (a record larger than a whole
    /// second's budget goes through when the bucket is full).
    fn try_take(&mut self, bytes: usize, now: Instant) -> bool {
        self.bytes.refill(now);
        self.records.refill(now);
        let need = (bytes as f64).min(self.bytes.rate);
        if self.bytes.tokens >= need && self.records.tokens >= 1.0 {
            self.bytes.tokens -= bytes as f64;
            self.records.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct ShardBuffer {
    aggregator: Aggregator,
    members: Vec<UserRecord>,
}

#[derive(Default)]
struct StreamState {
    /// Open shards by starting hash key; empty until the first ListShards answers.
    shards: Vec<(u128, u128, String)>,
    loading: bool,
    /// Records waiting for a shard map.
    unrouted: Vec<UserRecord>,
    buffers: HashMap<String, ShardBuffer>,
    queues: HashMap<String, VecDeque<KinesisRecord>>,
    limiters: HashMap<String, Limiter>,
    in_flight_shards: HashSet<String>,
    in_flight_requests: usize,
    /// Sends wait for in-flight requests to finish and a new map to load.
    stale: bool,
    map_retry_at: Option<Instant>,
    /// Aggregates that landed in a shard the map did not predict: (shard, member hash keys),
    /// checked against the next map.
    landed_elsewhere: Vec<(String, Vec<u128>)>,
}

impl StreamState {
    fn shard_for(&self, hash: u128) -> Option<&str> {
        let i = self.shards.partition_point(|(start, _, _)| *start <= hash);
        let (start, end, id) = self.shards.get(i.checked_sub(1)?)?;
        (*start <= hash && hash <= *end).then_some(id.as_str())
    }
}

/// The producer handle; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    commands: mpsc::UnboundedSender<Command>,
    permits: Arc<Semaphore>,
    config: Arc<ProducerConfig>,
    metrics: Arc<Metrics>,
    worker: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// The hash key a record routes by: its explicit hash key, or the MD5 of its partition key.
pub fn hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> Result<u128, PutError> {
    match explicit_hash_key {
        Some(ehk) => ehk
            .parse::<u128>()
            .map_err(|_| PutError::Invalid(format!("explicit hash key {ehk:?} is not a number"))),
        None => Ok(u128::from_be_bytes(
            Md5::digest(partition_key.as_bytes()).into(),
        )),
    }
}

impl Producer {
    /// Starts a producer on the current tokio runtime.
    pub fn new(client: KinesisClient, config: ProducerConfig) -> Producer {
        let (commands, receiver) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(config.max_outstanding_records.max(1)));
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let stopped = Arc::new(tokio::sync::Notify::new());
        if config.metrics_level != MetricsLevel::None {
            tokio::spawn(publish_metrics(
                client.clone(),
                config.clone(),
                metrics.clone(),
                stopped.clone(),
            ));
        }
        let worker = Worker {
            stopped,
            client,
            config: config.clone(),
            metrics: metrics.clone(),
            streams: HashMap::new(),
            outstanding: 0,
            flush_waiters: Vec::new(),
            flushing: false,
        };
        let handle = tokio::spawn(worker.run(receiver));
        Producer {
            commands,
            permits,
            config,
            metrics,
            worker: Arc::new(std::sync::Mutex::new(Some(handle))),
        }
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Puts a user record; the future completes when the record is in the stream (or failed).
    /// It waits for buffer space first (or fails with `BufferFull`, per `when_full`).
    pub async fn put(
        &self,
        stream: &str,
        partition_key: &str,
        data: &[u8],
        explicit_hash_key: Option<&str>,
    ) -> Result<PutOutcome, PutError> {
        let receiver = self
            .submit(stream, partition_key, data, explicit_hash_key)
            .await?;
        receiver.await.map_err(|_| PutError::Closed)?
    }

    /// Hands a user record to the producer and returns, once it is buffered, the receiver of
    /// its outcome: many records can be outstanding while the caller goes on.
    pub async fn submit(
        &self,
        stream: &str,
        partition_key: &str,
        data: &[u8],
        explicit_hash_key: Option<&str>,
    ) -> Result<oneshot::Receiver<Result<PutOutcome, PutError>>, PutError> {
        if partition_key.is_empty() || partition_key.chars().count() > 256 {
            return Err(PutError::Invalid(
                "partition key must have 1 to 256 characters".into(),
            ));
        }
        if data.len() + partition_key.len() > 1024 * 1024 {
            return Err(PutError::Invalid(
                "record larger than 1 MiB with its partition key".into(),
            ));
        }
        let hash = hash_key(partition_key, explicit_hash_key)?;
        let permit = match self.config.when_full {
            WhenFull::Wait => self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| PutError::Closed)?,
            WhenFull::Fail => self
                .permits
                .clone()
                .try_acquire_owned()
                .map_err(|_| PutError::BufferFull)?,
        };
        let (reply, receiver) = oneshot::channel();
        let record = UserRecord {
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
            hash,
            data: data.to_vec(),
            arrival: Instant::now(),
            attempts: Vec::new(),
            reply,
            _permit: permit,
        };
        self.metrics
            .user_records_received
            .fetch_add(1, Ordering::Relaxed);
        self.commands
            .send(Command::Put(stream.to_owned(), record))
            .map_err(|_| PutError::Closed)?;
        Ok(receiver)
    }

    /// Sends everything buffered now and waits until every record put before is delivered or
    /// has failed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes, then stops the worker (for every clone of this handle). Every record put
    /// before has its outcome; later puts fail with `Closed`.
    pub async fn shutdown(self) {
        self.flush().await;
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.commands.send(Command::Shutdown);
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

struct Worker {
    /// Told when the worker ends (the metrics publisher's last upload).
    stopped: Arc<tokio::sync::Notify>,
    client: KinesisClient,
    config: Arc<ProducerConfig>,
    metrics: Arc<Metrics>,
    streams: HashMap<String, StreamState>,
    /// User records buffered or in flight.
    outstanding: usize,
    flush_waiters: Vec<oneshot::Sender<()>>,
    flushing: bool,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
        let tick_every = (self.config.record_max_buffered_time / 4)
            .clamp(Duration::from_millis(1), Duration::from_millis(25));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        loop {
            tokio::select! {
                command = commands.recv(), if open => match command {
                    Some(Command::Put(stream, record)) => {
                        self.outstanding += 1;
                        self.route(&stream, vec![record]);
                        // Take whatever else is waiting without a select round per record.
                        while let Ok(command) = commands.try_recv() {
                            match command {
                                Command::Put(stream, record) => {
                                    self.outstanding += 1;
                                    self.route(&stream, vec![record]);
                                }
                                Command::Flush(waiter) => {
                                    self.flush_waiters.push(waiter);
                                    self.flushing = true;
                                }
                                Command::Shutdown => {
                                    open = false;
                                    self.flushing = true;
                                }
                            }
                        }
                    }
                    Some(Command::Flush(waiter)) => {
                        self.flush_waiters.push(waiter);
                        self.flushing = true;
                    }
                    Some(Command::Shutdown) | None => {
                        open = false;
                        self.flushing = true;
                    }
                },
                event = events.recv() => {
                    if let Some(event) = event {
                        self.handle(event);
                    }
                }
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            self.seal_due(now);
            self.expire_unrouted(now);
            self.expire_queued(now);
            self.load_maps(&events_tx, now);
            self.send(&events_tx, now);
            if self.outstanding == 0 {
                self.flushing = false;
                for waiter in self.flush_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if !open {
                    self.stopped.notify_one();
                    return;
                }
            }
        }
    }

    /// Puts records into their shard's aggregation buffer (or the stream's waiting list when
    /// it has no shard map yet).
    fn route(&mut self, stream: &str, records: Vec<UserRecord>) {
        let config = self.config.clone();
        let state = self.streams.entry(stream.to_owned()).or_default();
        for record in records {
            let shard = if state.stale {
                None
            } else {
                state.shard_for(record.hash).map(str::to_owned)
            };
            let Some(shard) = shard else {
                state.unrouted.push(record);
                continue;
            };
            let buffer = state.buffers.entry(shard.clone()).or_default();
            if !config.aggregation_enabled {
                let sealed = seal(&shard, vec![record], false);
                state.queues.entry(shard).or_default().push_back(sealed);
                continue;
            }
            let size = buffer.aggregator.size_with(
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
                record.data.len(),
            );
            if !buffer.members.is_empty()
                && (size > config.aggregation_max_size
                    || buffer.members.len() as u64 >= config.aggregation_max_count)
            {
                let members = std::mem::take(&mut buffer.members);
                buffer.aggregator = Aggregator::new();
                let sealed = seal(&shard, members, true);
                state
                    .queues
                    .entry(shard.clone())
                    .or_default()
                    .push_back(sealed);
            }
            let buffer = state.buffers.entry(shard).or_default();
            buffer.aggregator.add(
                &record.partition_key,
                record.explicit_hash_key.as_deref(),
                &record.data,
            );
            buffer.members.push(record);
        }
    }

    /// Seals buffers whose oldest record has waited RecordMaxBufferedTime (all when flushing).
    fn seal_due(&mut self, now: Instant) {
        let max = self.config.record_max_buffered_time;
        for state in self.streams.values_mut() {
            for (shard, buffer) in state.buffers.iter_mut() {
                let due = buffer.members.first().is_some_and(|first| {
                    self.flushing || now.saturating_duration_since(first.arrival) >= max
                });
                if due {
                    let members = std::mem::take(&mut buffer.members);
                    buffer.aggregator = Aggregator::new();
                    let sealed = seal(shard, members, true);
                    state
                        .queues
                        .entry(shard.clone())
                        .or_default()
                        .push_back(sealed);
                }
            }
        }
    }

    fn expire_unrouted(&mut self, now: Instant) {
        let ttl = self.config.record_ttl;
        let mut expired = Vec::new();
        for state in self.streams.values_mut() {
            let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut state.unrouted)
                .into_iter()
                .partition(|r| now.saturating_duration_since(r.arrival) >= ttl);
            state.unrouted = keep;
            expired.extend(old);
        }
        for record in expired {
            self.fail(record, true);
        }
    }

    /// Fails queued user records older than RecordTtl (a shard held back by its rate limit or
    /// by retries can keep records waiting that long).
    fn expire_queued(&mut self, now: Instant) {
        let ttl = self.config.record_ttl;
        let aggregate = self.config.aggregation_enabled;
        let mut expired = Vec::new();
        for state in self.streams.values_mut() {
            for (shard, queue) in state.queues.iter_mut() {
                let mut kept_front = Vec::new();
                while let Some(front) = queue.front() {
                    let oldest = front.members.first().map(|m| m.arrival);
                    if oldest.is_none_or(|t| now.saturating_duration_since(t) < ttl) {
                        break;
                    }
                    let record = queue.pop_front().expect("front");
                    let not_before = record.not_before;
                    let (old, keep): (Vec<_>, Vec<_>) = record
                        .members
                        .into_iter()
                        .partition(|m| now.saturating_duration_since(m.arrival) >= ttl);
                    expired.extend(old);
                    if !keep.is_empty() {
                        let mut sealed = seal(shard, keep, aggregate);
                        sealed.not_before = not_before;
                        kept_front.push(sealed);
                    }
                }
                for record in kept_front.into_iter().rev() {
                    queue.push_front(record);
                }
            }
        }
        for record in expired {
            self.fail(record, true);
        }
    }

    fn fail(&mut self, record: UserRecord, expired: bool) {
        self.outstanding -= 1;
        let counter = if expired {
            &self.metrics.user_records_expired
        } else {
            &self.metrics.user_records_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let attempts = record.attempts;
        let _ = record.reply.send(Err(if expired {
            PutError::Expired { attempts }
        } else {
            PutError::Failed { attempts }
        }));
    }

    /// Starts ListShards for streams that need a map and have nothing in flight.
    fn load_maps(&mut self, events: &mpsc::UnboundedSender<Event>, now: Instant) {
        for (name, state) in self.streams.iter_mut() {
            let needs = state.shards.is_empty() || state.stale;
            if !needs || state.loading || state.in_flight_requests > 0 {
                continue;
            }
            if state.map_retry_at.is_some_and(|t| t > now) {
                continue;
            }
            state.loading = true;
            let client = self.client.clone();
            let events = events.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let result = client.list_shards(&name).await;
                let _ = events.send(Event::ShardMap(name, result));
            });
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::ShardMap(stream, result) => self.map_loaded(&stream, result),
            Event::Sent {
                stream,
                records,
                result,
                took,
            } => self.sent(&stream, records, result, took),
        }
    }

    fn map_loaded(&mut self, stream: &str, result: Result<Vec<ShardInfo>, ApiError>) {
        let Some(state) = self.streams.get_mut(stream) else {
            return;
        };
        state.loading = false;
        let shards = match result {
            Ok(shards) if shards.iter().any(|s| s.open) => shards,
            Ok(_) | Err(_) => {
                if let Err(e) = &result {
                    tracing::warn!(stream, error = %e, "ListShards failed; retrying");
                    if !e.is_retryable() {
                        // A stream that does not exist: fail what waits for it.
                        let attempt = Attempt {
                            error_code: e.code().to_owned(),
                            error_message: e.to_string(),
                        };
                        let waiting = std::mem::take(&mut state.unrouted);
                        for mut record in waiting {
                            record.attempts.push(attempt.clone());
                            self.fail(record, false);
                        }
                    }
                }
                let state = self.streams.get_mut(stream).expect("stream state");
                state.map_retry_at = Some(Instant::now() + Duration::from_millis(500));
                return;
            }
        };
        for (landed, hashes) in std::mem::take(&mut state.landed_elsewhere) {
            let Some(shard) = shards.iter().find(|s| s.shard_id == landed) else {
                continue;
            };
            let outside = hashes
                .iter()
                .filter(|h| **h < shard.starting_hash_key || **h > shard.ending_hash_key)
                .count();
            if outside > 0 {
                self.metrics
                    .aggregates_spanning_shards
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    stream,
                    shard = %landed,
                    outside,
                    "an aggregate built before a reshard landed in a shard that does not hold all of its records"
                );
            }
        }
        let mut open: Vec<(u128, u128, String)> = shards
            .into_iter()
            .filter(|s| s.open)
            .map(|s| (s.starting_hash_key, s.ending_hash_key, s.shard_id))
            .collect();
        open.sort();
        state.shards = open;
        state.stale = false;
        state.map_retry_at = None;
        // Route everything not in flight again, oldest first per shard.
        let mut again = Vec::new();
        let mut queues: Vec<_> = state.queues.drain().collect();
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        let mut buffers: HashMap<String, ShardBuffer> = state.buffers.drain().collect();
        for (shard, queue) in queues {
            for record in queue {
                again.extend(record.members);
            }
            if let Some(buffer) = buffers.remove(&shard) {
                again.extend(buffer.members);
            }
        }
        for (_, buffer) in buffers {
            again.extend(buffer.members);
        }
        again.append(&mut state.unrouted);
        let live: HashSet<String> = state.shards.iter().map(|s| s.2.clone()).collect();
        state.limiters.retain(|k, _| live.contains(k));
        self.route(stream, again);
    }

    /// Starts PutRecords calls for queued records, respecting connections, per-shard order
    /// and per-shard rate limits.
    fn send(&mut self, events: &mpsc::UnboundedSender<Event>, now: Instant) {
        let config = self.config.clone();
        let mut in_flight: usize = self.streams.values().map(|s| s.in_flight_requests).sum();
        let rate_records = 1000.0 * config.rate_limit as f64 / 100.0;
        let rate_bytes = 1024.0 * 1024.0 * config.rate_limit as f64 / 100.0;
        for (name, state) in self.streams.iter_mut() {
            if state.stale {
                continue;
            }
            loop {
                if in_flight >= config.max_connections {
                    return;
                }
                let mut batch: Vec<KinesisRecord> = Vec::new();
                let mut batch_size = 0;
                let mut shards: Vec<String> = state
                    .queues
                    .iter()
                    .filter(|(shard, q)| !q.is_empty() && !state.in_flight_shards.contains(*shard))
                    .map(|(shard, _)| shard.clone())
                    .collect();
                shards.sort();
                let mut taken_shards = Vec::new();
                for shard in shards {
                    let queue = state.queues.get_mut(&shard).expect("queue");
                    let limiter = state
                        .limiters
                        .entry(shard.clone())
                        .or_insert_with(|| Limiter {
                            bytes: Bucket::new(rate_bytes, now),
                            records: Bucket::new(rate_records, now),
                        });
                    let mut took = false;
                    while let Some(front) = queue.front() {
                        if batch.len() >= config.collection_max_count
                            || batch_size + front.size() > config.collection_max_size
                            || front.not_before > now
                            || !limiter.try_take(front.size(), now)
                        {
                            break;
                        }
                        let record = queue.pop_front().expect("front");
                        batch_size += record.size();
                        batch.push(record);
                        took = true;
                    }
                    if took {
                        taken_shards.push(shard);
                    }
                }
                if batch.is_empty() {
                    break;
                }
                for shard in taken_shards {
                    state.in_flight_shards.insert(shard);
                }
                state.in_flight_requests += 1;
                in_flight += 1;
                let client = self.client.clone();
                let events = events.clone();
                let stream = name.clone();
                tokio::spawn(async move {
                    let entries: Vec<Value> = batch
                        .iter()
                        .map(|r| {
                            let mut entry = json!({
                                "Data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                                "PartitionKey": r.partition_key,
                            });
                            if let Some(ehk) = &r.explicit_hash_key {
                                entry["ExplicitHashKey"] = json!(ehk);
                            }
                            entry
                        })
                        .collect();
                    let started = Instant::now();
                    let result = client
                        .call(
                            "PutRecords",
                            &json!({ "StreamName": stream, "Records": entries }),
                        )
                        .await;
                    let _ = events.send(Event::Sent {
                        stream,
                        records: batch,
                        result,
                        took: started.elapsed(),
                    });
                });
            }
        }
    }

    fn sent(
        &mut self,
        stream: &str,
        records: Vec<KinesisRecord>,
        result: Result<Value, ApiError>,
        took: Duration,
    ) {
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .request_time_ms
            .fetch_add(took.as_millis() as u64, Ordering::Relaxed);
        let config = self.config.clone();
        let now = Instant::now();
        let mut retry: Vec<KinesisRecord> = Vec::new();
        let mut resharded = false;
        let mut landed_elsewhere = Vec::new();
        {
            let state = self.streams.get_mut(stream).expect("stream state");
            state.in_flight_requests -= 1;
            for record in &records {
                state.in_flight_shards.remove(&record.shard_id);
            }
        }
        let entries: Vec<Result<(String, String), Attempt>> = match &result {
            Ok(reply) => {
                let list = reply["Records"].as_array().cloned().unwrap_or_default();
                (0..records.len())
                    .map(|i| {
                        let entry = list.get(i).cloned().unwrap_or(Value::Null);
                        match (entry["ShardId"].as_str(), entry["SequenceNumber"].as_str()) {
                            (Some(shard), Some(seq)) => Ok((shard.to_owned(), seq.to_owned())),
                            _ => Err(Attempt {
                                error_code: entry["ErrorCode"]
                                    .as_str()
                                    .unwrap_or("InternalFailure")
                                    .to_owned(),
                                error_message: entry["ErrorMessage"]
                                    .as_str()
                                    .unwrap_or("no result for the record")
                                    .to_owned(),
                            }),
                        }
                    })
                    .collect()
            }
            Err(e) => (0..records.len())
                .map(|_| {
                    Err(Attempt {
                        error_code: e.code().to_owned(),
                        error_message: e.to_string(),
                    })
                })
                .collect(),
        };
        let request_retryable = match &result {
            Ok(_) => true,
            Err(e) => e.is_retryable(),
        };
        let mut by_shard: HashMap<String, ShardCounts> = HashMap::new();
        for (record, entry) in records.into_iter().zip(entries) {
            match entry {
                Ok((shard, sequence)) => {
                    let counts = by_shard.entry(shard.clone()).or_default();
                    counts.kinesis_records_put += 1;
                    counts.kinesis_records_data_put += record.data.len() as u64;
                    counts.user_records_put += record.members.len() as u64;
                    if shard != record.shard_id {
                        resharded = true;
                        if record.aggregated {
                            landed_elsewhere.push((
                                shard.clone(),
                                record.members.iter().map(|m| m.hash).collect(),
                            ));
                        }
                    }
                    self.metrics
                        .kinesis_records_put
                        .fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .kinesis_records_data_put
                        .fetch_add(record.data.len() as u64, Ordering::Relaxed);
                    for (i, member) in record.members.into_iter().enumerate() {
                        self.outstanding -= 1;
                        self.metrics
                            .user_records_put
                            .fetch_add(1, Ordering::Relaxed);
                        self.metrics.buffering_time_ms.fetch_add(
                            now.saturating_duration_since(member.arrival).as_millis() as u64,
                            Ordering::Relaxed,
                        );
                        let _ = member.reply.send(Ok(PutOutcome {
                            shard_id: shard.clone(),
                            sequence_number: sequence.clone(),
                            sub_sequence_number: if record.aggregated { i as u64 } else { 0 },
                            aggregated: record.aggregated,
                            attempts: member.attempts,
                        }));
                    }
                }
                Err(attempt) => {
                    self.metrics.all_errors.fetch_add(1, Ordering::Relaxed);
                    by_shard.entry(record.shard_id.clone()).or_default().errors += 1;
                    let throttled = attempt.error_code == "ProvisionedThroughputExceededException";
                    let retryable = if result.is_err() {
                        request_retryable
                    } else {
                        matches!(
                            attempt.error_code.as_str(),
                            "ProvisionedThroughputExceededException"
                                | "InternalFailure"
                                | "ServiceUnavailable"
                                | "KMSThrottlingException"
                        )
                    };
                    let retryable = retryable && !(throttled && config.fail_if_throttled);
                    let mut keep = Vec::new();
                    for mut member in record.members {
                        member.attempts.push(attempt.clone());
                        let expired =
                            now.saturating_duration_since(member.arrival) >= config.record_ttl;
                        if !retryable || expired {
                            self.fail(member, expired);
                        } else {
                            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                            keep.push(member);
                        }
                    }
                    if !keep.is_empty() {
                        let tries = keep[0].attempts.len() as u32;
                        let cap = config
                            .min_backoff
                            .saturating_mul(1u32 << tries.min(16))
                            .min(config.max_backoff);
                        let delay = rand::thread_rng().gen_range(0..=cap.as_millis() as u64);
                        let mut sealed = seal(&record.shard_id, keep, config.aggregation_enabled);
                        sealed.not_before =
                            now + config.min_backoff / 2 + Duration::from_millis(delay);
                        retry.push(sealed);
                    }
                }
            }
        }
        if self.config.metrics_level == MetricsLevel::Detailed {
            let mut totals = self
                .metrics
                .by_shard
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (shard, counts) in by_shard {
                totals
                    .entry((stream.to_owned(), shard))
                    .or_default()
                    .add(&counts);
            }
        }
        let state = self.streams.get_mut(stream).expect("stream state");
        // Failed records go back to the front of their shard's queue, in their order.
        for record in retry.into_iter().rev() {
            state
                .queues
                .entry(record.shard_id.clone())
                .or_default()
                .push_front(record);
        }
        state.landed_elsewhere.extend(landed_elsewhere);
        if resharded {
            tracing::debug!(
                stream,
                "records landed in unexpected shards; reloading the shard map"
            );
            state.stale = true;
        }
    }
}

/// Publishes the counters' growth every `MetricsUploadDelay` (and once more when the producer
/// stops) with PutMetricData: the KPL's producer-wide metrics and, at `Detailed`, per stream and
/// shard as `MetricsGranularity` allows.
async fn publish_metrics(
    client: KinesisClient,
    config: Arc<ProducerConfig>,
    metrics: Arc<Metrics>,
    stopped: Arc<tokio::sync::Notify>,
) {
    let mut previous = metrics.snapshot();
    let mut previous_buffering = 0u64;
    let mut previous_request_time = 0u64;
    let mut previous_requests = 0u64;
    let mut previous_retries = 0u64;
    let mut previous_by_shard: HashMap<(String, String), ShardCounts> = HashMap::new();
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep(config.metrics_upload_delay) => false,
            _ = stopped.notified() => true,
        };
        let now = metrics.snapshot();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (buffering, request_time, requests, retries) = (
            get(&metrics.buffering_time_ms),
            get(&metrics.request_time_ms),
            get(&metrics.requests),
            get(&metrics.retries),
        );
        let put = now.user_records_put - previous.user_records_put;
        let kinesis = now.kinesis_records_put - previous.kinesis_records_put;
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let count =
            |name: &str, value: u64| json!({"MetricName": name, "Value": value, "Unit": "Count"});
        let data = vec![
            count(
                "UserRecordsReceived",
                now.user_records_received - previous.user_records_received,
            ),
            count("UserRecordsPut", put),
            count("KinesisRecordsPut", kinesis),
            json!({"MetricName": "KinesisRecordsDataPut", "Unit": "Bytes",
                "Value": now.kinesis_records_data_put - previous.kinesis_records_data_put}),
            count("AllErrors", now.all_errors - previous.all_errors),
            count(
                "UserRecordExpired",
                now.user_record_expired - previous.user_record_expired,
            ),
            json!({"MetricName": "UserRecordsPerKinesisRecord", "Unit": "Count",
                "Value": ratio(put, kinesis)}),
            json!({"MetricName": "RetriesPerRecord", "Unit": "Count",
                "Value": ratio(retries - previous_retries, put.max(1))}),
            json!({"MetricName": "BufferingTime", "Unit": "Milliseconds",
                "Value": ratio(buffering - previous_buffering, put)}),
            json!({"MetricName": "RequestTime", "Unit": "Milliseconds",
                "Value": ratio(request_time - previous_request_time, requests - previous_requests)}),
        ];
        let mut data = data;
        if config.metrics_level == MetricsLevel::Detailed
            && config.metrics_granularity > MetricsGranularity::Global
        {
            let current = metrics
                .by_shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            data.extend(dimensioned(
                &current,
                &previous_by_shard,
                config.metrics_granularity,
            ));
            previous_by_shard = current;
        }
        // PutMetricData takes up to 1,000 metrics a call.
        for chunk in data.chunks(1000) {
            let input = json!({ "Namespace": config.metrics_namespace, "MetricData": chunk });
            if let Err(e) = client.call_cloudwatch("PutMetricData", &input).await {
                tracing::warn!(error = %e, "PutMetricData failed");
            }
        }
        previous = now;
        previous_buffering = buffering;
        previous_request_time = request_time;
        previous_requests = requests;
        previous_retries = retries;
        if last {
            return;
        }
    }
}

/// The per-stream (`StreamName`) and, for `Shard` granularity, per-shard (`StreamName`,
/// `ShardId`) metrics of the counts' growth since `before`.
fn dimensioned(
    now: &HashMap<(String, String), ShardCounts>,
    before: &HashMap<(String, String), ShardCounts>,
    granularity: MetricsGranularity,
) -> Vec<Value> {
    let datums = |counts: &ShardCounts, dimensions: Value| {
        [
            ("UserRecordsPut", counts.user_records_put, "Count"),
            ("KinesisRecordsPut", counts.kinesis_records_put, "Count"),
            ("KinesisRecordsDataPut", counts.kinesis_records_data_put, "Bytes"),
            ("AllErrors", counts.errors, "Count"),
        ]
        .map(|(name, value, unit)| {
            json!({"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dimensions})
        })
    };
    let mut per_stream: std::collections::BTreeMap<&str, ShardCounts> = Default::default();
    let mut out = Vec::new();
    let mut keys: Vec<&(String, String)> = now.keys().collect();
    keys.sort();
    for key in keys {
        let grown = now[key].since(&before.get(key).copied().unwrap_or_default());
        per_stream.entry(&key.0).or_default().add(&grown);
        if granularity == MetricsGranularity::Shard {
            out.extend(datums(
                &grown,
                json!([{"Name": "StreamName", "Value": key.0}, {"Name": "ShardId", "Value": key.1}]),
            ));
        }
    }
    for (stream, grown) in per_stream {
        out.extend(datums(
            &grown,
            json!([{"Name": "StreamName", "Value": stream}]),
        ));
    }
    out
}

/// Turns user records bound for one shard into a Kinesis record: one alone is sent as it was
/// put; several are aggregated, with the first one's hash key as the explicit hash key so the
/// aggregate lands in that shard.
fn seal(shard: &str, members: Vec<UserRecord>, aggregate: bool) -> KinesisRecord {
    if members.len() == 1 || !aggregate {
        let first = &members[0];
        return KinesisRecord {
            shard_id: shard.to_owned(),
            partition_key: first.partition_key.clone(),
            explicit_hash_key: first.explicit_hash_key.clone(),
            data: first.data.clone(),
            aggregated: false,
            members,
            not_before: Instant::now(),
        };
    }
    let mut aggregator = Aggregator::new();
    for member in &members {
        aggregator.add(
            &member.partition_key,
            member.explicit_hash_key.as_deref(),
            &member.data,
        );
    }
    KinesisRecord {
        shard_id: shard.to_owned(),
        partition_key: members[0].partition_key.clone(),
        explicit_hash_key: Some(members[0].hash.to_string()),
        data: aggregator.finish(),
        aggregated: true,
        members,
        not_before: Instant::now(),
    }
}
