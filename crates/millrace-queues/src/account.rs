//! One account's queues: their configuration, delivery state and the operations on them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use millrace_engine::{Engine, Error, PositionedRecord, StreamPositions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::log::{DeliveryLog, Durability, EntryState, Event};
use crate::receipt::Receipt;
use crate::QueueSettings;

/// Records one receive returns at most, and entries one acknowledge takes.
const MAX_LIMIT: usize = 10;
/// Due entries one receive examines for the dead-letter transition at most.
const PROMOTION_SCAN: usize = 10_000;
const MAX_TAGS: usize = 50;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn millis(value: &Value) -> Option<u64> {
    let seconds = value.as_f64()?;
    Some(if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    })
}

/// A queue's configuration, stored as JSON in the delivery log.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct QueueConfig {
    number: u32,
    id: String,
    name: String,
    region: String,
    stream: String,
    stream_incarnation: u64,
    stream_created_ms: u64,
    start_type: String,
    start_timestamp_ms: Option<u64>,
    effective_start_ms: u64,
    visibility_timeout_secs: u32,
    /// `None`: dead-letter handling is off (TargetType NONE).
    max_receive_count: Option<u32>,
    created_ms: u64,
    /// `CREATING`, `UPDATING` or `ACTIVE`; a transitional status ends at `status_until_ms`.
    status: String,
    status_until_ms: u64,
    tags: BTreeMap<String, String>,
}

impl QueueConfig {
    fn status(&self, now: u64) -> &str {
        if now >= self.status_until_ms {
            "ACTIVE"
        } else {
            &self.status
        }
    }
}

#[derive(Default)]
struct ShardState {
    /// Every position below has been taken; `None`: nothing taken yet (start at retention).
    cursor: Option<u64>,
    /// Taken records not yet acknowledged, by position.
    outstanding: BTreeMap<u64, EntryState>,
}

/// Timeline keys: (visible at, shard, position).
type Due = (u64, u32, u64);

struct Queue {
    config: QueueConfig,
    shards: BTreeMap<u32, ShardState>,
    /// Outstanding records on the normal path, by when they are visible.
    normal: BTreeSet<Due>,
    /// Dead-letter records, by when they are visible to the dead-letter path.
    dead: BTreeSet<Due>,
    /// Bumped when a record becomes visible other than by time or append (wakes long polls).
    changed: Arc<watch::Sender<u64>>,
    /// The shard the next fresh take starts at, so receivers share the shards.
    rotation: usize,
    /// Records of the stream not taken yet, as of the last receive (for the metrics).
    backlog: u64,
    /// When the gauges were last sampled.
    gauges_sampled_ms: u64,
}

impl Queue {
    fn new(config: QueueConfig) -> Queue {
        Queue {
            config,
            shards: BTreeMap::new(),
            normal: BTreeSet::new(),
            dead: BTreeSet::new(),
            changed: Arc::new(watch::channel(0).0),
            rotation: 0,
            backlog: 0,
            gauges_sampled_ms: 0,
        }
    }

    /// Stores an entry's new state, keeping the timelines in step.
    fn set_entry(&mut self, shard: u32, position: u64, entry: EntryState) {
        let state = self.shards.entry(shard).or_default();
        if let Some(old) = state.outstanding.insert(position, entry) {
            timeline(&mut self.normal, &mut self.dead, old.dead_letter).remove(&(
                old.visible_at_ms,
                shard,
                position,
            ));
        }
        timeline(&mut self.normal, &mut self.dead, entry.dead_letter).insert((
            entry.visible_at_ms,
            shard,
            position,
        ));
    }

    fn remove_entry(&mut self, shard: u32, position: u64) -> Option<EntryState> {
        let old = self.shards.get_mut(&shard)?.outstanding.remove(&position)?;
        timeline(&mut self.normal, &mut self.dead, old.dead_letter).remove(&(
            old.visible_at_ms,
            shard,
            position,
        ));
        Some(old)
    }

    fn entry(&self, shard: u32, position: u64) -> Option<EntryState> {
        self.shards.get(&shard)?.outstanding.get(&position).copied()
    }

    fn wake(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Turns due normal-path records that reached MaxReceiveCount into dead-letter records.
    fn promote_due(&mut self, now: u64, events: &mut Vec<Event>) {
        let Some(max) = self.config.max_receive_count else {
            return;
        };
        let due: Vec<Due> = self
            .normal
            .range(..(now + 1, 0, 0))
            .take(PROMOTION_SCAN)
            .copied()
            .collect();
        for (_, shard, position) in due {
            let Some(mut entry) = self.entry(shard, position) else {
                continue;
            };
            if entry.receive_count < max {
                continue;
            }
            entry.dead_letter = true;
            entry.visible_at_ms = now;
            self.set_entry(shard, position, entry);
            events.push(upsert(self.config.number, shard, position, entry));
        }
    }

    /// Forgets records the stream no longer retains and moves cursors up to retention.
    fn expire(&mut self, positions: &StreamPositions, events: &mut Vec<Event>) {
        for shard in &positions.shards {
            let gone: Vec<u64> = match self.shards.get(&shard.index) {
                Some(state) => state
                    .outstanding
                    .range(..shard.start)
                    .map(|(p, _)| *p)
                    .collect(),
                None => Vec::new(),
            };
            for position in gone {
                self.remove_entry(shard.index, position);
                events.push(Event::Remove {
                    queue: self.config.number,
                    shard: shard.index,
                    position,
                });
            }
        }
    }

    /// When the next record on the path becomes visible (or, for the dead-letter path, when
    /// the next record in flight falls due and may become a dead-letter record).
    fn next_due(&self, dead_letter: bool, now: u64) -> Option<u64> {
        if dead_letter {
            let dead = self.dead.first().map(|d| d.0);
            let falling_due = self
                .config
                .max_receive_count
                .and_then(|_| self.normal.range((now + 1, 0, 0)..).next())
                .map(|d| d.0);
            match (dead, falling_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            self.normal.first().map(|d| d.0)
        }
    }
}

fn timeline<'a>(
    normal: &'a mut BTreeSet<Due>,
    dead: &'a mut BTreeSet<Due>,
    dead_letter: bool,
) -> &'a mut BTreeSet<Due> {
    if dead_letter {
        dead
    } else {
        normal
    }
}

fn upsert(queue: u32, shard: u32, position: u64, entry: EntryState) -> Event {
    Event::Upsert {
        queue,
        shard,
        position,
        entry,
    }
}

struct Inner {
    queues: BTreeMap<u32, Queue>,
    next_number: u32,
    log: DeliveryLog,
}

/// One account's queues.
pub struct AccountQueues {
    account: String,
    inner: Mutex<Inner>,
    durability: Arc<Durability>,
    key: [u8; 32],
    settings: QueueSettings,
    /// Per stream incarnation: when the retained ranges were looked up, and their starts.
    retention_starts: Mutex<HashMap<u64, RetentionStarts>>,
}

/// When a stream's retained ranges were looked up, and each shard's start.
type RetentionStarts = (u64, HashMap<u32, u64>);

/// How long a looked-up start of retention is used before it is looked up again.
const RETENTION_LOOKUP_MS: u64 = 1000;

/// A queue's record counts at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueGauges {
    /// Records ready to be received: not taken yet, or visible again.
    pub visible: u64,
    /// Records received and neither acknowledged nor visible again yet.
    pub in_flight: u64,
    /// Dead-letter records ready to be received.
    pub visible_dead_letter: u64,
}

/// One delivery chosen under the lock, read from the stream after it.
struct Taken {
    shard: u32,
    position: u64,
    entry: EntryState,
}

/// Which of the two receive paths an operation works on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Normal,
    DeadLetter,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

fn validation(message: impl Into<String>) -> Error {
    Error::Validation(message.into())
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("delivery log: {error}"))
}

fn read_key(dir: &Path) -> std::io::Result<[u8; 32]> {
    let path = dir.join("receipt.key");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let key: [u8; 32] = rand::random();
    let temporary = dir.join("receipt.key.tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&key)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(key)
}

impl AccountQueues {
    /// Opens (creating or recovering) the queues kept in `dir`.
    pub fn open(
        dir: &Path,
        account: &str,
        settings: QueueSettings,
    ) -> Result<AccountQueues, Error> {
        let (log, events) = DeliveryLog::open(dir).map_err(internal)?;
        let key = read_key(dir).map_err(internal)?;
        let mut queues: BTreeMap<u32, Queue> = BTreeMap::new();
        let mut next_number = 1;
        for event in events {
            match event {
                Event::Config(json) => {
                    let config: QueueConfig = serde_json::from_slice(&json)
                        .map_err(|e| internal(format!("queue configuration: {e}")))?;
                    next_number = next_number.max(config.number + 1);
                    match queues.get_mut(&config.number) {
                        Some(queue) => queue.config = config,
                        None => {
                            queues.insert(config.number, Queue::new(config));
                        }
                    }
                }
                Event::Deleted { queue } => {
                    // Numbers are never reused, so a deleted queue's receipt handles stay void.
                    next_number = next_number.max(queue + 1);
                    queues.remove(&queue);
                }
                Event::Cursor {
                    queue,
                    shard,
                    cursor,
                } => {
                    if let Some(queue) = queues.get_mut(&queue) {
                        queue.shards.entry(shard).or_default().cursor = Some(cursor);
                    }
                }
                Event::Upsert {
                    queue,
                    shard,
                    position,
                    entry,
                } => {
                    if let Some(queue) = queues.get_mut(&queue) {
                        queue.set_entry(shard, position, entry);
                    }
                }
                Event::Remove {
                    queue,
                    shard,
                    position,
                } => {
                    if let Some(queue) = queues.get_mut(&queue) {
                        queue.remove_entry(shard, position);
                    }
                }
            }
        }
        let durability = log.durability();
        durability.set_forcing(settings.sync);
        Ok(AccountQueues {
            account: account.to_owned(),
            inner: Mutex::new(Inner {
                queues,
                next_number,
                log,
            }),
            durability,
            key,
            settings,
            retention_starts: Mutex::new(HashMap::new()),
        })
    }

    /// The resource id and name of the queue an ARN names (for its metrics' dimensions).
    pub fn identity(&self, arn: &str) -> Option<(String, String)> {
        let inner = self.inner.lock().expect("queues lock");
        let number = self.find(&inner, arn).ok()?;
        let config = &inner.queues[&number].config;
        Some((config.id.clone(), config.name.clone()))
    }

    /// The (region, stream) the queue an ARN names reads.
    pub fn stream_of(&self, arn: &str) -> Option<(String, String)> {
        let inner = self.inner.lock().expect("queues lock");
        let number = self.find(&inner, arn).ok()?;
        let config = &inner.queues[&number].config;
        Some((config.region.clone(), config.stream.clone()))
    }

    /// The queue's gauges (records visible, in flight, visible dead-letter records), at most
    /// once a second per queue; `None` in between. Counts stop at 1,000,000, as the service's do.
    pub fn sample_gauges(&self, arn: &str) -> Option<QueueGauges> {
        const CAP: u64 = 1_000_000;
        let mut inner = self.inner.lock().expect("queues lock");
        let number = self.find(&inner, arn).ok()?;
        let queue = inner.queues.get_mut(&number)?;
        let now = now_ms();
        if now.saturating_sub(queue.gauges_sampled_ms) < 1000 {
            return None;
        }
        queue.gauges_sampled_ms = now;
        let visible_again = queue
            .normal
            .range(..(now + 1, 0, 0))
            .take(CAP as usize)
            .count() as u64;
        let in_flight = queue.normal.len() as u64 - visible_again.min(queue.normal.len() as u64);
        let dead = queue
            .dead
            .range(..(now + 1, 0, 0))
            .take(CAP as usize)
            .count() as u64;
        Some(QueueGauges {
            visible: (queue.backlog + visible_again).min(CAP),
            in_flight,
            visible_dead_letter: dead,
        })
    }

    /// How many queues read the stream.
    pub fn queues_on_stream(&self, region: &str, stream: &str) -> usize {
        let inner = self.inner.lock().expect("queues lock");
        inner
            .queues
            .values()
            .filter(|q| q.config.region == region && q.config.stream == stream)
            .count()
    }

    fn queue_arn(&self, config: &QueueConfig) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:queue/{}",
            config.region, self.account, config.id
        )
    }

    fn stream_arn(&self, config: &QueueConfig) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            config.region, self.account, config.stream
        )
    }

    fn not_found(arn: &str) -> Error {
        Error::ResourceNotFound(format!("Queue {arn} not found."))
    }

    /// The queue number an ARN names.
    fn find(&self, inner: &Inner, arn: &str) -> Result<u32, Error> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[4] != self.account {
            return Err(Self::not_found(arn));
        }
        let id = parts[5].strip_prefix("queue/").unwrap_or("");
        inner
            .queues
            .values()
            .find(|q| q.config.id == id && q.config.region == parts[3])
            .map(|q| q.config.number)
            .ok_or_else(|| Self::not_found(arn))
    }

    /// Appends events under the lock; returns what to commit to.
    fn append(inner: &mut Inner, events: &[Event]) -> Result<u64, Error> {
        inner.log.append(events).map_err(internal)
    }

    /// Waits until the log is durable up to `upto`, then compacts it if it has grown.
    async fn commit(self: &Arc<Self>, upto: u64) -> Result<(), Error> {
        let account = self.clone();
        tokio::task::spawn_blocking(move || {
            account.durability.commit(upto).map_err(internal)?;
            let mut inner = account.inner.lock().expect("queues lock");
            if inner
                .log
                .wants_compaction(account.settings.compact_after_bytes)
            {
                let snapshot = snapshot(&inner);
                inner.log.compact(&snapshot).map_err(internal)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("delivery log task failed: {e}")))?
    }

    fn description(&self, config: &QueueConfig, now: u64) -> Value {
        let status = config.status(now);
        let mut position = json!({ "Type": config.start_type });
        if status != "CREATING" || config.start_type == "AT_TIMESTAMP" {
            let shown = if status == "CREATING" {
                config
                    .start_timestamp_ms
                    .unwrap_or(config.effective_start_ms)
            } else {
                config.effective_start_ms
            };
            position["Timestamp"] = json!(seconds(shown));
        }
        let mut dead_letter = json!({
            "TargetType": if config.max_receive_count.is_some() { "BUILT_IN" } else { "NONE" }
        });
        if let Some(max) = config.max_receive_count {
            dead_letter["MaxReceiveCount"] = json!(max);
        }
        json!({
            "QueueName": config.name,
            "QueueARN": self.queue_arn(config),
            "QueueStatus": status,
            "QueueCreationTimestamp": seconds(config.created_ms),
            "StreamConfigurationList": [{
                "StreamARN": self.stream_arn(config),
                "StartingPosition": position,
            }],
            "QueueAttributes": {
                "VisibilityTimeoutSeconds": config.visibility_timeout_secs,
                "DeadLetterConfiguration": dead_letter,
            },
        })
    }

    /// Runs one queue operation on its validated input document; `None` is an empty reply.
    pub async fn call(
        self: &Arc<Self>,
        engine: &Engine,
        region: &str,
        operation: &str,
        input: &Value,
    ) -> Result<Option<Value>, Error> {
        match operation {
            "CreateQueue" => self.create_queue(engine, input).await.map(Some),
            "DescribeQueue" => self.describe_queue(input).map(Some),
            "ListQueues" => self.list_queues(region, input).map(Some),
            "UpdateQueue" => self.update_queue(input).await.map(Some),
            "DeleteQueue" => self.delete_queue(input).await.map(|()| None),
            "ReceiveQueueRecords" => self.receive(engine, input, Lane::Normal).await.map(Some),
            "ReceiveDeadLetterQueueRecords" => self
                .receive(engine, input, Lane::DeadLetter)
                .await
                .map(Some),
            "AcknowledgeQueueRecords" => self.settle(input, Settle::Ack, Lane::Normal).await,
            "AcknowledgeDeadLetterQueueRecords" => {
                self.settle(input, Settle::Ack, Lane::DeadLetter).await
            }
            "UpdateQueueRecordsVisibility" => {
                self.settle(input, Settle::Visibility, Lane::Normal).await
            }
            "UpdateDeadLetterQueueRecordsVisibility" => {
                self.settle(input, Settle::Visibility, Lane::DeadLetter)
                    .await
            }
            "RestoreDeadLetterQueueRecords" => {
                self.settle(input, Settle::Restore, Lane::DeadLetter).await
            }
            other => Err(invalid(format!("{other} is not a queue operation."))),
        }
    }

    async fn create_queue(
        self: &Arc<Self>,
        engine: &Engine,
        input: &Value,
    ) -> Result<Value, Error> {
        let name = input["QueueName"].as_str().unwrap_or_default().to_owned();
        let configurations = input["StreamConfigurationList"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if configurations.len() != 1 {
            return Err(invalid(
                "StreamConfigurationList must contain exactly one entry, because a queue delivers \
                 records from a single data stream.",
            ));
        }
        let configuration = &configurations[0];
        let stream_arn = configuration["StreamARN"].as_str().unwrap_or_default();
        let parts: Vec<&str> = stream_arn.splitn(6, ':').collect();
        let stream = parts
            .get(5)
            .and_then(|p| p.strip_prefix("stream/"))
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .ok_or_else(|| {
                invalid(format!(
                    "Invalid ARN {stream_arn}: expected a Kinesis stream ARN."
                ))
            })?
            .to_owned();
        let region = parts[3].to_owned();
        if parts[4] != self.account {
            return Err(Error::ResourceNotFound(format!(
                "Stream {stream} under account {} not found.",
                parts[4]
            )));
        }
        let position = &configuration["StartingPosition"];
        let start_type = position["Type"].as_str().unwrap_or("LATEST").to_owned();
        let start_timestamp_ms = millis(&position["Timestamp"]);
        match (start_type.as_str(), start_timestamp_ms) {
            ("AT_TIMESTAMP", None) => {
                return Err(validation(
                    "Timestamp is required when the StartingPosition Type is AT_TIMESTAMP.",
                ))
            }
            ("LATEST" | "TRIM_HORIZON", Some(_)) => {
                return Err(validation(format!(
                    "Timestamp must not be specified when the StartingPosition Type is \
                     {start_type}."
                )))
            }
            _ => {}
        }
        let attributes = &input["QueueAttributes"];
        let visibility_timeout_secs = attributes["VisibilityTimeoutSeconds"]
            .as_u64()
            .unwrap_or(30) as u32;
        let max_receive_count =
            dead_letter_setting(&attributes["DeadLetterConfiguration"])?.unwrap_or(Some(6));
        let tags: BTreeMap<String, String> = input["Tags"]
            .as_object()
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        if tags.len() > MAX_TAGS {
            return Err(invalid(format!(
                "Failed to create queue {name}: a queue can have at most {MAX_TAGS} tags."
            )));
        }
        let positions = engine.stream_positions(&region, &stream, true).await?;
        if !positions.on_demand {
            return Err(invalid(format!(
                "Queues are supported only on data streams in on-demand capacity mode. Stream \
                 {stream} under account {} is in provisioned mode.",
                self.account
            )));
        }
        if positions.status == "CREATING" || positions.status == "DELETING" {
            return Err(Error::ResourceInUse(format!(
                "Stream {stream} under account {} is not ACTIVE.",
                self.account
            )));
        }
        let now = now_ms();
        let mut cursors = Vec::with_capacity(positions.shards.len());
        for shard in &positions.shards {
            let cursor = match (start_type.as_str(), start_timestamp_ms) {
                ("TRIM_HORIZON", _) => shard.start,
                ("AT_TIMESTAMP", Some(at)) => engine
                    .shard_position_at(&region, &stream, shard.index, at)
                    .await?
                    .clamp(shard.start, shard.end.max(shard.start)),
                _ => shard.end,
            };
            cursors.push((shard.index, cursor));
        }
        let effective_start_ms = match (start_type.as_str(), start_timestamp_ms) {
            ("AT_TIMESTAMP", Some(at)) => at.max(positions.created_ms),
            ("TRIM_HORIZON", _) => positions.created_ms,
            _ => now,
        };
        let consumers = engine.consumer_count(&region, &stream);
        let (upto, description) = {
            let mut inner = self.inner.lock().expect("queues lock");
            if inner
                .queues
                .values()
                .any(|q| q.config.name == name && q.config.region == region)
            {
                return Err(Error::ResourceInUse(format!(
                    "Queue {name} under account {} already exists.",
                    self.account
                )));
            }
            let on_stream = inner
                .queues
                .values()
                .filter(|q| q.config.region == region && q.config.stream == stream)
                .count() as u32;
            if consumers + on_stream >= self.settings.max_consumers_per_stream {
                // The text RegisterStreamConsumer gives at the shared limit.
                return Err(Error::LimitExceeded(format!(
                    "Stream {stream} under account {} already has {} registered consumers.",
                    self.account, self.settings.max_consumers_per_stream
                )));
            }
            let number = inner.next_number;
            let id: String = {
                let bytes: [u8; 12] = rand::random();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            };
            let config = QueueConfig {
                number,
                id,
                name,
                region: region.clone(),
                stream: stream.clone(),
                stream_incarnation: positions.incarnation,
                stream_created_ms: positions.created_ms,
                start_type,
                start_timestamp_ms,
                effective_start_ms,
                visibility_timeout_secs,
                max_receive_count,
                created_ms: now,
                status: "CREATING".into(),
                status_until_ms: now + self.settings.create_ms,
                tags,
            };
            let mut events = vec![Event::Config(
                serde_json::to_vec(&config).expect("configurations serialize"),
            )];
            let mut queue = Queue::new(config.clone());
            for (shard, cursor) in cursors {
                queue.shards.entry(shard).or_default().cursor = Some(cursor);
                events.push(Event::Cursor {
                    queue: number,
                    shard,
                    cursor,
                });
            }
            let upto = Self::append(&mut inner, &events)?;
            inner.next_number += 1;
            inner.queues.insert(number, queue);
            // The reply shows the queue as it was created: CREATING.
            let mut shown = config;
            shown.status_until_ms = u64::MAX;
            (upto, self.description(&shown, now))
        };
        self.commit(upto).await?;
        Ok(json!({ "QueueDescription": description }))
    }

    fn describe_queue(&self, input: &Value) -> Result<Value, Error> {
        let arn = input["QueueARN"].as_str().unwrap_or_default();
        let inner = self.inner.lock().expect("queues lock");
        let number = self.find(&inner, arn)?;
        let description = self.description(&inner.queues[&number].config, now_ms());
        Ok(json!({ "QueueDescription": description }))
    }

    fn list_queues(&self, region: &str, input: &Value) -> Result<Value, Error> {
        let max = input["MaxResults"].as_u64().unwrap_or(100) as usize;
        let after = match input["NextToken"].as_str() {
            None => None,
            Some(token) => Some(
                STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.strip_prefix("queues:").map(str::to_owned))
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| invalid("Invalid NextToken."))?,
            ),
        };
        let filters: Vec<(String, Option<u64>)> = input["StreamFilter"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|f| {
                        (
                            f["StreamARN"].as_str().unwrap_or_default().to_owned(),
                            millis(&f["StreamCreationTimestamp"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = now_ms();
        let inner = self.inner.lock().expect("queues lock");
        let mut summaries = Vec::new();
        let mut next_token = None;
        for queue in inner.queues.values() {
            let config = &queue.config;
            if config.region != region || after.is_some_and(|a| config.number <= a) {
                continue;
            }
            let stream_arn = self.stream_arn(config);
            let matches = filters.is_empty()
                || filters.iter().any(|(arn, created)| {
                    *arn == stream_arn
                        && created.is_none_or(|c| c / 1000 == config.stream_created_ms / 1000)
                });
            if !matches {
                continue;
            }
            if summaries.len() == max {
                next_token =
                    Some(STANDARD.encode(format!("queues:{}", config.number.saturating_sub(1))));
                break;
            }
            summaries.push(json!({
                "QueueName": config.name,
                "QueueARN": self.queue_arn(config),
                "QueueStatus": config.status(now),
                "QueueCreationTimestamp": seconds(config.created_ms),
                "Streams": [{
                    "StreamARN": stream_arn,
                    "StreamCreationTimestamp": seconds(config.stream_created_ms),
                }],
            }));
        }
        let mut output = json!({ "QueueSummaries": summaries });
        if let Some(token) = next_token {
            output["NextToken"] = json!(token);
        }
        Ok(output)
    }

    async fn update_queue(self: &Arc<Self>, input: &Value) -> Result<Value, Error> {
        let arn = input["QueueARN"].as_str().unwrap_or_default();
        let attributes = &input["QueueAttributes"];
        let dead_letter = dead_letter_setting(&attributes["DeadLetterConfiguration"])?;
        let now = now_ms();
        let (upto, description) = {
            let mut inner = self.inner.lock().expect("queues lock");
            let number = self.find(&inner, arn)?;
            let queue = inner.queues.get_mut(&number).expect("found");
            if queue.config.status(now) != "ACTIVE" {
                return Err(Error::ResourceInUse(format!(
                    "Queue {arn} is {}; it can be updated only when ACTIVE.",
                    queue.config.status(now)
                )));
            }
            let mut config = queue.config.clone();
            if let Some(timeout) = attributes["VisibilityTimeoutSeconds"].as_u64() {
                config.visibility_timeout_secs = timeout as u32;
            }
            if let Some(setting) = dead_letter {
                config.max_receive_count = setting;
            }
            if self.settings.update_ms > 0 {
                config.status = "UPDATING".into();
                config.status_until_ms = now + self.settings.update_ms;
            }
            let event = Event::Config(serde_json::to_vec(&config).expect("serializes"));
            let upto = Self::append(&mut inner, &[event])?;
            let queue = inner.queues.get_mut(&number).expect("found");
            queue.config = config;
            queue.wake();
            let mut shown = queue.config.clone();
            if self.settings.update_ms == 0 {
                // The reply shows the update under way, as the service's asynchronous update does.
                shown.status = "UPDATING".into();
                shown.status_until_ms = u64::MAX;
            }
            (upto, self.description(&shown, now))
        };
        self.commit(upto).await?;
        Ok(json!({ "QueueDescription": description }))
    }

    async fn delete_queue(self: &Arc<Self>, input: &Value) -> Result<(), Error> {
        let arn = input["QueueARN"].as_str().unwrap_or_default();
        let upto = {
            let mut inner = self.inner.lock().expect("queues lock");
            let number = self.find(&inner, arn)?;
            let upto = Self::append(&mut inner, &[Event::Deleted { queue: number }])?;
            if let Some(queue) = inner.queues.remove(&number) {
                queue.wake();
            }
            upto
        };
        self.commit(upto).await
    }

    /// TagResource, UntagResource and ListTagsForResource on a queue ARN: `add` merges tags,
    /// `remove` drops keys; returns the tags afterwards.
    pub async fn change_tags(
        self: &Arc<Self>,
        arn: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<BTreeMap<String, String>, Error> {
        let allowed = |c: char| c.is_alphanumeric() || " _./=+-@:".contains(c);
        let text = add
            .iter()
            .flat_map(|(k, v)| k.chars().chain(v.chars()))
            .chain(remove.iter().flat_map(|k| k.chars()));
        if !text.clone().all(allowed) {
            return Err(invalid(
                "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
                 white space, _ . / = + - % @.",
            ));
        }
        let (upto, tags) = {
            let mut inner = self.inner.lock().expect("queues lock");
            let number = self.find(&inner, arn)?;
            let mut config = inner.queues[&number].config.clone();
            if add.is_empty() && remove.is_empty() {
                return Ok(config.tags);
            }
            config
                .tags
                .extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
            for key in remove {
                config.tags.remove(key);
            }
            if config.tags.len() > MAX_TAGS {
                return Err(invalid(format!(
                    "Failed to add tags to queue {arn} because a queue cannot have more than \
                     {MAX_TAGS} tags associated with it."
                )));
            }
            let event = Event::Config(serde_json::to_vec(&config).expect("serializes"));
            let upto = Self::append(&mut inner, &[event])?;
            let tags = config.tags.clone();
            inner.queues.get_mut(&number).expect("found").config = config;
            (upto, tags)
        };
        self.commit(upto).await?;
        Ok(tags)
    }

    /// ReceiveQueueRecords and ReceiveDeadLetterQueueRecords.
    async fn receive(
        self: &Arc<Self>,
        engine: &Engine,
        input: &Value,
        lane: Lane,
    ) -> Result<Value, Error> {
        let arn = input["QueueARN"].as_str().unwrap_or_default().to_owned();
        let limit = input["Limit"].as_u64().unwrap_or(MAX_LIMIT as u64) as usize;
        let wait_ms = input["WaitTimeSeconds"].as_u64().unwrap_or(9) * 1000;
        let timeout_override = input["VisibilityTimeoutSeconds"].as_u64();
        let deadline = now_ms() + wait_ms;
        loop {
            let (config, mut changed) = {
                let inner = self.inner.lock().expect("queues lock");
                let number = self.find(&inner, &arn)?;
                let queue = &inner.queues[&number];
                (queue.config.clone(), queue.changed.subscribe())
            };
            let positions = match self.positions(engine, &config).await {
                Ok(p) if p.incarnation == config.stream_incarnation => p,
                _ => {
                    return Err(Error::ResourceNotFound(format!(
                        "The stream of queue {arn} no longer exists."
                    )))
                }
            };
            // Subscribed before the look; a record that arrived between reading the ends and
            // subscribing shows in the receiver's value and sends the loop round again.
            let mut appended_meanwhile = false;
            let mut appends: Vec<watch::Receiver<u64>> = positions
                .shards
                .iter()
                .filter(|s| !s.closed)
                .filter_map(|s| {
                    let receiver =
                        engine.subscribe_shard(&config.region, &config.stream, s.index)?;
                    appended_meanwhile |= *receiver.borrow() > s.end;
                    Some(receiver)
                })
                .collect();
            let now = now_ms();
            let status = config.status(now);
            let (taken, upto, next_due) = if status == "CREATING" {
                (Vec::new(), None, None)
            } else {
                let mut inner = self.inner.lock().expect("queues lock");
                let number = self.find(&inner, &arn)?;
                let max_in_flight = self.settings.max_in_flight;
                let queue = inner.queues.get_mut(&number).expect("found");
                let timeout_ms = timeout_override
                    .unwrap_or(u64::from(queue.config.visibility_timeout_secs))
                    * 1000;
                let mut events = Vec::new();
                queue.expire(&positions, &mut events);
                queue.promote_due(now, &mut events);
                let taken = take(
                    queue,
                    &positions,
                    now,
                    limit,
                    timeout_ms,
                    lane,
                    max_in_flight,
                    &mut events,
                );
                queue.backlog = positions
                    .shards
                    .iter()
                    .map(|s| {
                        let cursor = queue
                            .shards
                            .get(&s.index)
                            .and_then(|state| state.cursor)
                            .unwrap_or(s.start)
                            .max(s.start);
                        s.end.saturating_sub(cursor)
                    })
                    .sum();
                let next_due = queue.next_due(lane == Lane::DeadLetter, now);
                let upto = if events.is_empty() {
                    None
                } else {
                    Some(Self::append(&mut inner, &events)?)
                };
                (taken, upto, next_due)
            };
            if !taken.is_empty() {
                let records = self.read_taken(engine, &config, taken, lane).await?;
                if let Some(upto) = upto {
                    self.commit(upto).await?;
                }
                // Records expired meanwhile were dropped; an empty answer is still an answer.
                if !records.is_empty() || now_ms() >= deadline {
                    return Ok(json!({ "QueueRecords": records }));
                }
                continue;
            }
            if let Some(upto) = upto {
                self.commit(upto).await?;
            }
            let now = now_ms();
            if now >= deadline {
                return Ok(json!({ "QueueRecords": [] }));
            }
            if appended_meanwhile {
                continue;
            }
            let until = next_due.map_or(deadline, |due| due.clamp(now + 1, deadline));
            let sleep = tokio::time::sleep(Duration::from_millis(until - now));
            let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = appends
                .iter_mut()
                .map(|r| {
                    Box::pin(async move {
                        if r.changed().await.is_err() {
                            // The shard is gone: wake once, the next look reports it.
                        }
                    }) as Pin<Box<dyn Future<Output = ()> + Send>>
                })
                .collect();
            let any_append = std::future::poll_fn(|cx| {
                for wait in waits.iter_mut() {
                    if wait.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                _ = any_append => {}
                _ = changed.changed() => {}
                _ = sleep => {}
            }
        }
    }

    /// The stream's shards; the start of retention (an index lookup per shard) is looked up
    /// at most once a second per stream, the records' own age being checked on every read.
    async fn positions(
        &self,
        engine: &Engine,
        config: &QueueConfig,
    ) -> Result<StreamPositions, Error> {
        let now = now_ms();
        let cached = self
            .retention_starts
            .lock()
            .expect("retention cache lock")
            .get(&config.stream_incarnation)
            .filter(|(at, _)| now.saturating_sub(*at) < RETENTION_LOOKUP_MS)
            .map(|(_, starts)| starts.clone());
        let fresh = cached.is_none();
        let mut positions = engine
            .stream_positions(&config.region, &config.stream, fresh)
            .await?;
        match cached {
            Some(starts) => {
                for shard in &mut positions.shards {
                    if let Some(start) = starts.get(&shard.index) {
                        shard.start = shard.start.max(*start).min(shard.end);
                    }
                }
            }
            None => {
                let starts = positions
                    .shards
                    .iter()
                    .map(|s| (s.index, s.start))
                    .collect();
                let mut cache = self.retention_starts.lock().expect("retention cache lock");
                if cache.len() > 1024 {
                    cache.clear();
                }
                cache.insert(positions.incarnation, (now, starts));
            }
        }
        Ok(positions)
    }

    /// Reads the chosen deliveries from the stream; records the stream no longer has leave
    /// the queue.
    async fn read_taken(
        self: &Arc<Self>,
        engine: &Engine,
        config: &QueueConfig,
        mut taken: Vec<Taken>,
        lane: Lane,
    ) -> Result<Vec<Value>, Error> {
        taken.sort_by_key(|t| (t.shard, t.position));
        let mut found: Vec<(usize, PositionedRecord)> = Vec::with_capacity(taken.len());
        let mut run_start = 0;
        while run_start < taken.len() {
            let mut run_end = run_start + 1;
            while run_end < taken.len()
                && taken[run_end].shard == taken[run_start].shard
                && taken[run_end].position == taken[run_end - 1].position + 1
            {
                run_end += 1;
            }
            let first = taken[run_start].position;
            let last = taken[run_end - 1].position;
            let mut from = first;
            while from <= last {
                let (records, next) = engine
                    .read_positions(
                        config.stream_incarnation,
                        taken[run_start].shard,
                        from,
                        last + 1,
                        (last + 1 - from) as usize,
                    )
                    .await?;
                for record in records {
                    let index = run_start + (record.position - first) as usize;
                    found.push((index, record));
                }
                if next <= from {
                    // Nothing readable there: the records left the stream.
                    break;
                }
                from = next;
            }
            run_start = run_end;
        }
        let mut present = vec![false; taken.len()];
        for (index, _) in &found {
            present[*index] = true;
        }
        let missing: Vec<Event> = taken
            .iter()
            .zip(&present)
            .filter(|(_, p)| !**p)
            .map(|(t, _)| Event::Remove {
                queue: config.number,
                shard: t.shard,
                position: t.position,
            })
            .collect();
        if !missing.is_empty() {
            let upto = {
                let mut inner = self.inner.lock().expect("queues lock");
                if let Some(queue) = inner.queues.get_mut(&config.number) {
                    for event in &missing {
                        if let Event::Remove {
                            shard, position, ..
                        } = event
                        {
                            queue.remove_entry(*shard, *position);
                        }
                    }
                }
                Self::append(&mut inner, &missing)?
            };
            self.commit(upto).await?;
        }
        Ok(found
            .into_iter()
            .map(|(index, record)| {
                let t = &taken[index];
                let handle = Receipt {
                    queue: config.number,
                    shard: t.shard,
                    position: t.position,
                    serial: t.entry.serial,
                    dead_letter: lane == Lane::DeadLetter,
                }
                .encode(&self.key);
                json!({
                    "ReceiptHandle": handle,
                    "RecordId": record.sequence_number,
                    "PartitionKey": record.partition_key,
                    "Data": STANDARD.encode(&record.data),
                    "ApproximateArrivalTimestamp": seconds(record.arrival_ms),
                    "FirstReceiveTimestamp": seconds(t.entry.first_receive_ms),
                    "ReceiveCount": t.entry.receive_count,
                })
            })
            .collect())
    }

    /// The per-entry operations: acknowledge, change visibility, restore.
    async fn settle(
        self: &Arc<Self>,
        input: &Value,
        action: Settle,
        lane: Lane,
    ) -> Result<Option<Value>, Error> {
        let arn = input["QueueARN"].as_str().unwrap_or_default();
        let entries = input["Entries"].as_array().cloned().unwrap_or_default();
        let now = now_ms();
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        let upto = {
            let mut inner = self.inner.lock().expect("queues lock");
            let number = self.find(&inner, arn)?;
            let queue = inner.queues.get_mut(&number).expect("found");
            let mut events = Vec::new();
            let mut woke = false;
            for item in &entries {
                let handle = item["ReceiptHandle"].as_str().unwrap_or_default();
                match settle_one(
                    queue,
                    &self.key,
                    handle,
                    item,
                    action,
                    lane,
                    now,
                    &mut events,
                ) {
                    Ok(wake) => {
                        woke |= wake;
                        successful.push(json!({ "ReceiptHandle": handle }));
                    }
                    Err((code, message)) => failed.push(json!({
                        "ReceiptHandle": handle,
                        "ErrorCode": code,
                        "ErrorMessage": message,
                    })),
                }
            }
            if woke {
                queue.wake();
            }
            if events.is_empty() {
                None
            } else {
                Some(Self::append(&mut inner, &events)?)
            }
        };
        if let Some(upto) = upto {
            self.commit(upto).await?;
        }
        Ok(Some(json!({ "Successful": successful, "Failed": failed })))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Visibility,
    Restore,
}

/// Applies one entry of a per-entry operation; `Ok(true)` when a record became visible.
#[allow(clippy::too_many_arguments)]
fn settle_one(
    queue: &mut Queue,
    key: &[u8; 32],
    handle: &str,
    item: &Value,
    action: Settle,
    lane: Lane,
    now: u64,
    events: &mut Vec<Event>,
) -> Result<bool, (&'static str, String)> {
    let invalid_handle = || {
        (
            "InvalidArgumentException",
            format!("The receipt handle {handle} is not valid for this queue."),
        )
    };
    let receipt = Receipt::decode(handle, key).ok_or_else(invalid_handle)?;
    if receipt.queue != queue.config.number || receipt.dead_letter != (lane == Lane::DeadLetter) {
        return Err(invalid_handle());
    }
    let number = queue.config.number;
    let Some(mut entry) = queue.entry(receipt.shard, receipt.position) else {
        let taken = queue
            .shards
            .get(&receipt.shard)
            .and_then(|s| s.cursor)
            .is_some_and(|cursor| receipt.position < cursor);
        // A record that already left the queue: acknowledging it again changes nothing.
        return if action == Settle::Ack && taken {
            Ok(false)
        } else {
            Err((
                "InvalidArgumentException",
                format!(
                    "The receipt handle {handle} has expired: the record is no longer in the \
                     queue."
                ),
            ))
        };
    };
    if entry.serial != receipt.serial {
        return Err((
            "InvalidArgumentException",
            format!(
                "The receipt handle {handle} has expired: the record was received again since."
            ),
        ));
    }
    match action {
        Settle::Ack => {
            queue.remove_entry(receipt.shard, receipt.position);
            events.push(Event::Remove {
                queue: number,
                shard: receipt.shard,
                position: receipt.position,
            });
            Ok(false)
        }
        Settle::Visibility => {
            if entry.dead_letter != (lane == Lane::DeadLetter) {
                return Err((
                    "InvalidArgumentException",
                    format!(
                        "The record of receipt handle {handle} became a dead-letter record; use \
                         UpdateDeadLetterQueueRecordsVisibility."
                    ),
                ));
            }
            let seconds = item["VisibilityTimeoutSeconds"].as_u64().unwrap_or(0);
            entry.visible_at_ms = now + seconds * 1000;
            queue.set_entry(receipt.shard, receipt.position, entry);
            events.push(upsert(number, receipt.shard, receipt.position, entry));
            Ok(seconds == 0)
        }
        Settle::Restore => {
            if !entry.dead_letter {
                return Err((
                    "InvalidArgumentException",
                    format!("The record of receipt handle {handle} is not a dead-letter record."),
                ));
            }
            entry.dead_letter = false;
            entry.receive_count = 0;
            entry.visible_at_ms = now;
            // Its dead-letter receipt handles are spent: the record is back on the normal path.
            entry.serial = entry.serial.wrapping_add(1);
            queue.set_entry(receipt.shard, receipt.position, entry);
            events.push(upsert(number, receipt.shard, receipt.position, entry));
            Ok(true)
        }
    }
}

/// Chooses up to `limit` deliveries: visible records first, then (on the normal path) records
/// the queue has not taken yet, shard by shard in rotation.
#[allow(clippy::too_many_arguments)]
fn take(
    queue: &mut Queue,
    positions: &StreamPositions,
    now: u64,
    limit: usize,
    timeout_ms: u64,
    lane: Lane,
    max_in_flight: usize,
    events: &mut Vec<Event>,
) -> Vec<Taken> {
    let number = queue.config.number;
    let mut taken = Vec::new();
    let dead_letter = lane == Lane::DeadLetter;
    // Chosen before any is changed, so a record made visible at once (timeout 0) is not
    // delivered twice in one answer.
    let set = if dead_letter {
        &queue.dead
    } else {
        &queue.normal
    };
    let due: Vec<Due> = set.range(..(now + 1, 0, 0)).take(limit).copied().collect();
    for (_, shard, position) in due {
        let Some(mut entry) = queue.entry(shard, position) else {
            continue;
        };
        if !dead_letter
            && queue
                .config
                .max_receive_count
                .is_some_and(|max| entry.receive_count >= max)
        {
            // Due at MaxReceiveCount: it becomes a dead-letter record instead.
            entry.dead_letter = true;
            entry.visible_at_ms = now;
            queue.set_entry(shard, position, entry);
            events.push(upsert(number, shard, position, entry));
            continue;
        }
        entry.receive_count += 1;
        entry.serial = entry.serial.wrapping_add(1);
        if entry.first_receive_ms == 0 {
            entry.first_receive_ms = now;
        }
        entry.visible_at_ms = now + timeout_ms;
        queue.set_entry(shard, position, entry);
        events.push(upsert(number, shard, position, entry));
        if !dead_letter
            && queue
                .config
                .max_receive_count
                .is_some_and(|max| entry.receive_count >= max)
        {
            // It becomes a dead-letter record when this timeout runs out: waiters on the
            // dead-letter path look again and set their timers by it.
            queue.wake();
        }
        taken.push(Taken {
            shard,
            position,
            entry,
        });
    }
    if dead_letter || taken.len() >= limit || queue.normal.len() >= max_in_flight {
        return taken;
    }
    let count = positions.shards.len();
    if count == 0 {
        return taken;
    }
    let first = queue.rotation % count;
    queue.rotation = queue.rotation.wrapping_add(1);
    for offset in 0..count {
        if taken.len() >= limit {
            break;
        }
        let shard = &positions.shards[(first + offset) % count];
        let cursor = queue
            .shards
            .get(&shard.index)
            .and_then(|s| s.cursor)
            .unwrap_or(shard.start)
            .max(shard.start);
        if cursor >= shard.end {
            continue;
        }
        let room = (limit - taken.len()).min(max_in_flight.saturating_sub(queue.normal.len()));
        let n = ((shard.end - cursor) as usize).min(room);
        if n == 0 {
            break;
        }
        for position in cursor..cursor + n as u64 {
            let entry = EntryState {
                receive_count: 1,
                serial: 1,
                first_receive_ms: now,
                visible_at_ms: now + timeout_ms,
                dead_letter: false,
            };
            queue.set_entry(shard.index, position, entry);
            events.push(upsert(number, shard.index, position, entry));
            taken.push(Taken {
                shard: shard.index,
                position,
                entry,
            });
        }
        let cursor = cursor + n as u64;
        queue.shards.entry(shard.index).or_default().cursor = Some(cursor);
        events.push(Event::Cursor {
            queue: number,
            shard: shard.index,
            cursor,
        });
    }
    taken
}

/// The dead-letter configuration of a request: `None` when absent, `Some(None)` for NONE.
fn dead_letter_setting(value: &Value) -> Result<Option<Option<u32>>, Error> {
    if value.is_null() {
        return Ok(None);
    }
    match value["TargetType"].as_str() {
        Some("NONE") => Ok(Some(None)),
        _ => match value["MaxReceiveCount"].as_u64() {
            Some(max) => Ok(Some(Some(max as u32))),
            None => Err(validation(
                "MaxReceiveCount is required when the DeadLetterConfiguration TargetType is \
                 BUILT_IN.",
            )),
        },
    }
}

/// The whole state as events, for a compaction.
fn snapshot(inner: &Inner) -> Vec<Event> {
    // First the highest number ever given out (as a deletion, which a live queue's
    // configuration that follows undoes), so numbers stay unique after a compaction.
    let mut events = vec![Event::Deleted {
        queue: inner.next_number.saturating_sub(1),
    }];
    for queue in inner.queues.values() {
        let number = queue.config.number;
        events.push(Event::Config(
            serde_json::to_vec(&queue.config).expect("configurations serialize"),
        ));
        for (&shard, state) in &queue.shards {
            if let Some(cursor) = state.cursor {
                events.push(Event::Cursor {
                    queue: number,
                    shard,
                    cursor,
                });
            }
            for (&position, &entry) in &state.outstanding {
                events.push(upsert(number, shard, position, entry));
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_engine::{CreateStreamRequest, EngineConfig, PutEntry};

    const REGION: &str = "us-east-1";

    async fn engine_with_records(dir: &Path, count: usize) -> Arc<Engine> {
        let mut config = EngineConfig::new(dir.join("engine"));
        config.throughput_limits = false;
        let engine = Engine::open(config).expect("engine");
        engine
            .create_stream(
                REGION,
                CreateStreamRequest {
                    name: "s".into(),
                    mode: Some("ON_DEMAND".into()),
                    ..Default::default()
                },
            )
            .expect("stream");
        for i in 0..count {
            let key = format!("k{i}");
            engine
                .put_record(
                    REGION,
                    "s",
                    PutEntry {
                        partition_key: Some(&key),
                        explicit_hash_key: None,
                        data: key.as_bytes(),
                    },
                    None,
                )
                .await
                .expect("put");
        }
        engine
    }

    fn settings() -> QueueSettings {
        QueueSettings {
            // Compact after every few changes, so reopening reads a snapshot.
            compact_after_bytes: 256,
            ..QueueSettings::default()
        }
    }

    async fn receive(
        queues: &Arc<AccountQueues>,
        engine: &Engine,
        arn: &str,
        timeout: u64,
    ) -> Vec<Value> {
        let input =
            json!({"QueueARN": arn, "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": timeout});
        let output = queues
            .call(engine, REGION, "ReceiveQueueRecords", &input)
            .await
            .expect("receive")
            .expect("output");
        output["QueueRecords"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivery_state_survives_reopening_and_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine_with_records(dir.path(), 25).await;
        let queues_dir = dir.path().join("queues");
        let queues =
            Arc::new(AccountQueues::open(&queues_dir, "000000000000", settings()).expect("open"));
        let created = queues
            .call(
                &engine,
                REGION,
                "CreateQueue",
                &json!({
                    "QueueName": "q",
                    "StreamConfigurationList": [{
                        "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
                        "StartingPosition": {"Type": "TRIM_HORIZON"},
                    }],
                }),
            )
            .await
            .expect("create")
            .expect("output");
        let arn = created["QueueDescription"]["QueueARN"]
            .as_str()
            .expect("arn")
            .to_owned();
        // A second queue, deleted, so the snapshot must keep queue numbers unique.
        let doomed = queues
            .call(&engine, REGION, "CreateQueue", &json!({
                "QueueName": "doomed",
                "StreamConfigurationList": [{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}],
            }))
            .await
            .expect("create")
            .expect("output");
        let doomed_arn = doomed["QueueDescription"]["QueueARN"]
            .as_str()
            .expect("arn")
            .to_owned();
        queues
            .call(
                &engine,
                REGION,
                "DeleteQueue",
                &json!({"QueueARN": doomed_arn}),
            )
            .await
            .expect("delete");
        let mut acked = Vec::new();
        let mut held = Vec::new();
        for round in 0..2 {
            let records = receive(&queues, &engine, &arn, 600).await;
            assert_eq!(records.len(), 10);
            let entries: Vec<Value> = records
                .iter()
                .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
                .collect();
            if round == 0 {
                let result = queues
                    .call(
                        &engine,
                        REGION,
                        "AcknowledgeQueueRecords",
                        &json!({"QueueARN": arn, "Entries": entries}),
                    )
                    .await
                    .expect("ack")
                    .expect("output");
                assert_eq!(result["Successful"].as_array().map(Vec::len), Some(10));
                acked.extend(records.iter().map(|r| r["RecordId"].clone()));
            } else {
                held = records;
            }
        }
        let log_files = || {
            std::fs::read_dir(&queues_dir)
                .expect("dir")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".log"))
                .collect::<Vec<_>>()
        };
        assert!(
            !log_files().contains(&"state-00000000000000000001.log".to_owned()),
            "the log was compacted: {:?}",
            log_files()
        );
        drop(queues);
        let queues =
            Arc::new(AccountQueues::open(&queues_dir, "000000000000", settings()).expect("reopen"));
        // The doomed queue's number is not given out again.
        let third = queues
            .call(&engine, REGION, "CreateQueue", &json!({
                "QueueName": "third",
                "StreamConfigurationList": [{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}],
            }))
            .await
            .expect("create")
            .expect("output");
        assert_ne!(
            third["QueueDescription"]["QueueARN"],
            doomed["QueueDescription"]["QueueARN"]
        );
        {
            let inner = queues.inner.lock().expect("lock");
            assert_eq!(inner.next_number, 4);
        }
        // What was acknowledged stays gone; the 10 in flight are still in flight; 5 are left.
        let rest = receive(&queues, &engine, &arn, 600).await;
        assert_eq!(rest.len(), 5);
        let mut seen: Vec<Value> = rest.iter().map(|r| r["RecordId"].clone()).collect();
        assert!(seen.iter().all(|id| !acked.contains(id)));
        // The held records' handles still work after the reopen.
        let entries: Vec<Value> = held
            .iter()
            .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}))
            .collect();
        let result = queues
            .call(
                &engine,
                REGION,
                "UpdateQueueRecordsVisibility",
                &json!({"QueueARN": arn, "Entries": entries}),
            )
            .await
            .expect("visibility")
            .expect("output");
        assert_eq!(result["Failed"], json!([]));
        let again = receive(&queues, &engine, &arn, 600).await;
        assert_eq!(again.len(), 10);
        assert!(again.iter().all(|r| r["ReceiveCount"] == json!(2)));
        seen.extend(again.iter().map(|r| r["RecordId"].clone()));
        seen.extend(acked);
        seen.sort_by_key(|v| v.to_string());
        seen.dedup();
        assert_eq!(seen.len(), 25);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_in_flight_are_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine_with_records(dir.path(), 12).await;
        let settings = QueueSettings {
            max_in_flight: 5,
            ..QueueSettings::default()
        };
        let queues = Arc::new(
            AccountQueues::open(&dir.path().join("queues"), "000000000000", settings)
                .expect("open"),
        );
        let created = queues
            .call(
                &engine,
                REGION,
                "CreateQueue",
                &json!({
                    "QueueName": "capped",
                    "StreamConfigurationList": [{
                        "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
                        "StartingPosition": {"Type": "TRIM_HORIZON"},
                    }],
                }),
            )
            .await
            .expect("create")
            .expect("output");
        let arn = created["QueueDescription"]["QueueARN"]
            .as_str()
            .expect("arn")
            .to_owned();
        let first = receive(&queues, &engine, &arn, 600).await;
        assert_eq!(first.len(), 5);
        assert!(receive(&queues, &engine, &arn, 600).await.is_empty());
        let entries: Vec<Value> = first
            .iter()
            .take(3)
            .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
            .collect();
        queues
            .call(
                &engine,
                REGION,
                "AcknowledgeQueueRecords",
                &json!({"QueueARN": arn, "Entries": entries}),
            )
            .await
            .expect("ack");
        assert_eq!(receive(&queues, &engine, &arn, 600).await.len(), 3);
    }
}
