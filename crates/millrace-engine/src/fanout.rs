//! Enhanced fan-out: registered consumers and SubscribeToShard subscriptions.
//!
//! A subscription is a position in one shard plus the shard's wake-up channel: it reads from
//! the log when records become visible and sleeps otherwise, so subscribers never poll and a
//! slow subscriber holds no records in memory (it simply reads later). At most one live
//! subscription exists per consumer and shard; a newer one replaces an older one after 5 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace_catalog::{ConsumerRecord, StreamStatus};
use millrace_types::{SequenceNumber, ShardId};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::data::{
    children_of, millis_behind, retained_records, ChildShard, IteratorRequest, ReadRecord,
};
use crate::error::Error;
use crate::registry::{Engine, Shard, Stream};
use crate::token::ListStreamsState;
use crate::view::status_name;

/// Consumers allowed per stream.
const MAX_CONSUMERS_PER_STREAM: usize = 20;
/// Consumers allowed in CREATING at once per stream.
const MAX_CREATING_CONSUMERS: usize = 5;
/// A newer subscription for the same consumer and shard replaces an older one after this long.
const SUBSCRIPTION_TAKEOVER_MS: u64 = 5_000;
/// Most bytes one SubscribeToShardEvent carries.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// A consumer as the Describe and List operations show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerView {
    pub name: String,
    pub arn: String,
    /// `CREATING`, `ACTIVE` or `DELETING`.
    pub status: &'static str,
    pub created_ms: u64,
    pub stream_arn: String,
}

/// How a request names a consumer.
#[derive(Clone, Copy, Debug)]
pub enum ConsumerTarget<'a> {
    Arn(&'a str),
    Name {
        region: &'a str,
        stream: &'a str,
        consumer: &'a str,
    },
}

/// The parts of a consumer ARN: `<stream ARN>/consumer/<name>:<creation seconds>`.
struct ConsumerArn<'a> {
    region: &'a str,
    account: &'a str,
    stream: &'a str,
    consumer: &'a str,
    created_secs: u64,
}

fn parse_consumer_arn(arn: &str) -> Option<ConsumerArn<'_>> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesis" {
        return None;
    }
    let resource = parts[5];
    let rest = resource.strip_prefix("stream/")?;
    let (stream, consumer_part) = rest.split_once("/consumer/")?;
    let (consumer, created) = consumer_part.rsplit_once(':')?;
    Some(ConsumerArn {
        region: parts[3],
        account: parts[4],
        stream,
        consumer,
        created_secs: created.parse().ok()?,
    })
}

/// Live subscriptions, keyed by consumer ARN and shard index.
pub(crate) struct Subscriptions {
    live: Mutex<HashMap<(String, u32), LiveSubscription>>,
    next_id: AtomicU64,
    /// Turns true when the server shuts down: every subscription then ends cleanly.
    stopping: watch::Sender<bool>,
}

impl Default for Subscriptions {
    fn default() -> Subscriptions {
        Subscriptions {
            live: Mutex::default(),
            next_id: AtomicU64::new(0),
            stopping: watch::channel(false).0,
        }
    }
}

struct LiveSubscription {
    id: u64,
    started_ms: u64,
    replaced: watch::Sender<bool>,
}

/// One event of a subscription.
#[derive(Clone, Debug)]
pub struct SubscriptionEvent {
    pub records: Vec<ReadRecord>,
    /// Where to resume with AFTER_SEQUENCE_NUMBER; absent in the shard-end event.
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: u64,
    /// The children of the shard, in the shard-end event only.
    pub child_shards: Vec<ChildShard>,
}

/// An open SubscribeToShard stream for one consumer and shard.
pub struct Subscription {
    engine: Arc<Engine>,
    key: (String, u32),
    id: u64,
    stream: Arc<Stream>,
    shard: Arc<Shard>,
    position: u64,
    /// Sequence number of the record just before `position`, once known.
    continuation: Option<SequenceNumber>,
    wake: watch::Receiver<u64>,
    replaced: watch::Receiver<bool>,
    stopping: watch::Receiver<bool>,
    deadline_ms: u64,
    last_event_ms: u64,
    finished: bool,
    /// Paces pushes at 2 MiB/s when throughput limits are on.
    budget: Option<crate::throughput::PushBudget>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut live = self
            .engine
            .subscriptions
            .live
            .lock()
            .expect("subscriptions lock");
        if live.get(&self.key).is_some_and(|l| l.id == self.id) {
            live.remove(&self.key);
        }
    }
}

fn consumer_view(consumer: &ConsumerRecord, stream_arn: String, now: u64) -> Option<ConsumerView> {
    let status = consumer.effective_status(now)?;
    Some(ConsumerView {
        name: consumer.name.clone(),
        arn: format!(
            "{stream_arn}/consumer/{}:{}",
            consumer.name,
            consumer.created_ms / 1000
        ),
        status: status_name(status),
        created_ms: consumer.created_ms,
        stream_arn,
    })
}

impl Engine {
    fn consumer_not_found(&self, what: &str) -> Error {
        Error::ResourceNotFound(format!(
            "Consumer {what} under account {} not found.",
            self.config.account_id
        ))
    }

    /// Resolves a consumer target to its stream and the consumer's current view.
    fn find_consumer(
        &self,
        target: ConsumerTarget<'_>,
    ) -> Result<(Arc<Stream>, ConsumerView), Error> {
        let now = now_ms();
        let (region, stream_name, consumer_name, created_secs) = match target {
            ConsumerTarget::Arn(arn) => {
                let parsed = parse_consumer_arn(arn).ok_or_else(|| self.consumer_not_found(arn))?;
                if parsed.account != self.config.account_id {
                    return Err(self.consumer_not_found(arn));
                }
                (
                    parsed.region,
                    parsed.stream,
                    parsed.consumer,
                    Some(parsed.created_secs),
                )
            }
            ConsumerTarget::Name {
                region,
                stream,
                consumer,
            } => (region, stream, consumer, None),
        };
        let stream = self
            .lookup(region, stream_name)
            .ok_or_else(|| self.stream_not_found(stream_name))?;
        let record = stream.snapshot();
        let stream_arn = self.stream_arn(region, stream_name);
        let view = record
            .consumers
            .iter()
            .filter(|c| c.name == consumer_name)
            .filter(|c| created_secs.is_none_or(|secs| c.created_ms / 1000 == secs))
            .find_map(|c| consumer_view(c, stream_arn.clone(), now))
            .ok_or_else(|| self.consumer_not_found(consumer_name))?;
        Ok((stream, view))
    }

    /// RegisterStreamConsumer.
    pub fn register_consumer(
        &self,
        region: &str,
        stream: &str,
        consumer: &str,
    ) -> Result<ConsumerView, Error> {
        let now = now_ms();
        let account = self.config.account_id.clone();
        let create_ms = self.config.register_consumer_ms;
        let stream_arn = self.stream_arn(region, stream);
        self.modify(region, stream, |record, status| {
            if matches!(status, StreamStatus::Creating | StreamStatus::Deleting) {
                return Err(crate::control::not_active(stream, &account, status));
            }
            record.consumers.retain(|c| c.effective_status(now).is_some());
            if record.consumers.iter().any(|c| c.name == consumer) {
                return Err(Error::ResourceInUse(format!(
                    "Consumer {consumer} under stream {stream} already exists for account {account}."
                )));
            }
            if record.consumers.len() >= MAX_CONSUMERS_PER_STREAM {
                return Err(Error::LimitExceeded(format!(
                    "Stream {stream} under account {account} already has \
                     {MAX_CONSUMERS_PER_STREAM} registered consumers."
                )));
            }
            let creating = record
                .consumers
                .iter()
                .filter(|c| c.effective_status(now) == Some(StreamStatus::Creating))
                .count();
            if creating >= MAX_CREATING_CONSUMERS {
                return Err(Error::LimitExceeded(format!(
                    "Stream {stream} under account {account} already has \
                     {MAX_CREATING_CONSUMERS} consumers in CREATING state."
                )));
            }
            let entry = ConsumerRecord {
                name: consumer.to_owned(),
                created_ms: now,
                status: if create_ms == 0 { StreamStatus::Active } else { StreamStatus::Creating },
                status_until_ms: now + create_ms,
            };
            let mut view = consumer_view(&entry, stream_arn.clone(), now).expect("a new consumer is alive");
            // The response shows the registration as it starts, as the service does.
            view.status = "CREATING";
            record.consumers.push(entry);
            Ok(view)
        })
    }

    /// DeregisterStreamConsumer.
    pub fn deregister_consumer(&self, target: ConsumerTarget<'_>) -> Result<(), Error> {
        let (stream, view) = self.find_consumer(target)?;
        let record = stream.snapshot();
        let delete_ms = self.config.deregister_consumer_ms;
        let created_ms = view.created_ms;
        self.modify(&record.region, &record.name, |record, _| {
            let now = now_ms();
            for consumer in record
                .consumers
                .iter_mut()
                .filter(|c| c.name == view.name && c.created_ms == created_ms)
            {
                if consumer.status != StreamStatus::Deleting {
                    consumer.status = StreamStatus::Deleting;
                    consumer.status_until_ms = now + delete_ms;
                }
            }
            record
                .consumers
                .retain(|c| c.effective_status(now).is_some());
            Ok(())
        })
    }

    /// DescribeStreamConsumer.
    pub fn describe_consumer(&self, target: ConsumerTarget<'_>) -> Result<ConsumerView, Error> {
        Ok(self.find_consumer(target)?.1)
    }

    /// ListStreamConsumers: consumers in registration order, paged.
    pub fn list_consumers(
        &self,
        region: &str,
        stream: &str,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<ConsumerView>, Option<String>), Error> {
        let now = now_ms();
        let found = self
            .lookup(region, stream)
            .ok_or_else(|| self.stream_not_found(stream))?;
        let record = found.snapshot();
        let after = next_token
            .map(|token| self.resume_after(token, now))
            .transpose()?;
        let stream_arn = self.stream_arn(region, stream);
        let mut consumers: Vec<ConsumerView> = record
            .consumers
            .iter()
            .filter_map(|c| consumer_view(c, stream_arn.clone(), now))
            .collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        consumers.retain(|c| after.as_deref().is_none_or(|a| c.name.as_str() > a));
        let limit = max_results.unwrap_or(100).clamp(1, 100) as usize;
        let more = consumers.len() > limit;
        consumers.truncate(limit);
        let token = match (more, consumers.last()) {
            (true, Some(last)) => Some(self.tokens.list_streams(&ListStreamsState {
                issued_ms: now,
                after_name: last.name.clone(),
            })),
            _ => None,
        };
        Ok((consumers, token))
    }

    /// Ends every subscription cleanly (at shutdown), so their responses finish instead of
    /// being cut off.
    pub fn stop_subscriptions(&self) {
        self.subscriptions.stopping.send_replace(true);
    }

    /// The number of live consumers of a stream (DescribeStreamSummary's ConsumerCount).
    pub fn consumer_count(&self, region: &str, stream: &str) -> u32 {
        let now = now_ms();
        self.lookup(region, stream).map_or(0, |s| {
            s.snapshot()
                .consumers
                .iter()
                .filter(|c| c.effective_status(now).is_some())
                .count() as u32
        })
    }

    /// SubscribeToShard: checks everything that fails before streaming starts, then registers
    /// the subscription (replacing an older one for the same consumer and shard after 5 s).
    pub async fn subscribe(
        self: &Arc<Self>,
        consumer_arn: &str,
        start: IteratorRequest<'_>,
    ) -> Result<Subscription, Error> {
        let (_, view) = self.find_consumer(ConsumerTarget::Arn(consumer_arn))?;
        if view.status != "ACTIVE" {
            return Err(Error::ResourceInUse(format!(
                "Consumer {} under account {} is not ACTIVE.",
                view.arn, self.config.account_id
            )));
        }
        let parsed = parse_consumer_arn(consumer_arn)
            .ok_or_else(|| self.consumer_not_found(consumer_arn))?;
        let (stream, shard, _, position) = self
            .resolve_position(parsed.region, parsed.stream, start)
            .await?;
        let now = now_ms();
        let key = (view.arn.clone(), shard.index);
        let id = self.subscriptions.next_id.fetch_add(1, Ordering::Relaxed);
        let (replaced_sender, replaced) = watch::channel(false);
        {
            let mut live = self.subscriptions.live.lock().expect("subscriptions lock");
            if let Some(existing) = live.get(&key) {
                if now.saturating_sub(existing.started_ms) < SUBSCRIPTION_TAKEOVER_MS {
                    return Err(Error::ResourceInUse(format!(
                        "Another active subscription exists for consumer {} on shard {}.",
                        view.arn,
                        ShardId(shard.index)
                    )));
                }
                existing.replaced.send_replace(true);
            }
            live.insert(
                key.clone(),
                LiveSubscription {
                    id,
                    started_ms: now,
                    replaced: replaced_sender,
                },
            );
        }
        let continuation = if position == 0 {
            None
        } else {
            let shard_for_read = shard.clone();
            let before = tokio::task::spawn_blocking(move || {
                shard_for_read
                    .log
                    .read(position - 1, position, 1, usize::MAX)
            })
            .await
            .map_err(|e| Error::Internal(format!("storage task failed: {e}")))??;
            Some(
                shard.sequence_number(position - 1, before.first().map_or(now, |r| r.timestamp_ms)),
            )
        };
        Ok(Subscription {
            engine: self.clone(),
            key,
            id,
            wake: shard.subscribe(),
            stream,
            shard,
            position,
            continuation,
            replaced,
            stopping: self.subscriptions.stopping.subscribe(),
            deadline_ms: now + self.config.subscription_ms,
            last_event_ms: 0,
            finished: false,
            budget: self
                .config
                .throughput_limits
                .then(|| crate::throughput::PushBudget::new(now)),
        })
    }
}

impl Subscription {
    fn continuation(&self) -> String {
        match self.continuation {
            Some(sequence) => sequence.to_string(),
            None => {
                SequenceNumber::shard_start(self.shard.created_secs, self.shard.index).to_string()
            }
        }
    }

    /// The next event: records as soon as they are visible, a heartbeat after `heartbeat` of
    /// silence, the shard-end event, or `None` once the subscription is over. An error means
    /// the subscription was replaced or failed and must end with that error.
    pub async fn next_event(
        &mut self,
        heartbeat: Duration,
    ) -> Result<Option<SubscriptionEvent>, Error> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if *self.replaced.borrow() {
                self.finished = true;
                return Err(Error::ResourceInUse(format!(
                    "Another subscription for consumer {} on shard {} replaced this one.",
                    self.key.0,
                    ShardId(self.key.1)
                )));
            }
            let now = now_ms();
            if now >= self.deadline_ms || *self.stopping.borrow() {
                self.finished = true;
                return Ok(None);
            }
            let end = self.shard.end_position();
            let until = end.map_or(self.shard.visible_end(), |e| {
                e.min(self.shard.visible_end())
            });
            self.position = self.position.max(self.shard.log.start_position());
            if self.position < until {
                let wait = self.budget.as_mut().map_or(0, |b| b.wait_ms(now));
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    continue;
                }
                return self.read_event(until, now).await.map(Some);
            }
            let ended = end.is_some_and(|end| self.position >= end);
            let child_shards = if ended {
                children_of(&self.stream.snapshot(), self.shard.index)
            } else {
                Vec::new()
            };
            // A parent closed whose new shape is not stored yet has no children to name: the
            // shard wakes its subscribers again once they are stored (waited for below).
            if !child_shards.is_empty() {
                self.finished = true;
                return Ok(Some(SubscriptionEvent {
                    records: Vec::new(),
                    continuation_sequence_number: None,
                    millis_behind_latest: 0,
                    child_shards,
                }));
            }
            let heartbeat_ms = heartbeat.as_millis() as u64;
            if now.saturating_sub(self.last_event_ms) >= heartbeat_ms {
                self.last_event_ms = now;
                return Ok(Some(SubscriptionEvent {
                    records: Vec::new(),
                    continuation_sequence_number: Some(self.continuation()),
                    millis_behind_latest: 0,
                    child_shards: Vec::new(),
                }));
            }
            let wait = (self.last_event_ms + heartbeat_ms)
                .min(self.deadline_ms)
                .saturating_sub(now)
                .max(1);
            tokio::select! {
                _ = self.wake.changed() => {}
                _ = self.replaced.changed() => {}
                _ = self.stopping.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
        }
    }

    async fn read_event(&mut self, until: u64, now: u64) -> Result<SubscriptionEvent, Error> {
        let shard = self.shard.clone();
        let from = self.position;
        let entries = tokio::task::spawn_blocking(move || {
            shard.log.read(from, until, 10_000, MAX_EVENT_BYTES)
        })
        .await
        .map_err(|e| Error::Internal(format!("storage task failed: {e}")))??;
        let record = self.stream.snapshot();
        let cutoff = now.saturating_sub(self.engine.retention_ms(&record));
        if let Some(budget) = self.budget.as_mut() {
            budget.charge(entries.iter().map(|e| e.payload.len()).sum());
        }
        let last = entries.last().map(|e| (e.position, e.timestamp_ms));
        let mut records = retained_records(&self.shard, entries, cutoff);
        // Decrypt before moving on, so a key that is disabled now fails this event and a later
        // subscription starts from the same records.
        self.engine.open_records(&record, &mut records)?;
        if let Some((position, timestamp_ms)) = last {
            self.position = position + 1;
            self.continuation = Some(self.shard.sequence_number(position, timestamp_ms));
        }
        let millis_behind_latest =
            millis_behind(&records, self.position, self.shard.visible_end(), now);
        self.last_event_ms = now;
        Ok(SubscriptionEvent {
            records,
            continuation_sequence_number: Some(self.continuation()),
            millis_behind_latest,
            child_shards: Vec::new(),
        })
    }
}
