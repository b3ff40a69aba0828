//! The worker: shard discovery into leases, lease taking (expired first, then stealing toward
//! an even share), renewal, one shard consumer per held lease (polling GetRecords), parents
//! before children, and cleanup of finished parents.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::aws::{AwsClient, AwsError};
use crate::lease::{Lease, LeaseTable, Outcome, SHARD_END};
use crate::processor::{
    Checkpointer, InitializeInput, ProcessRecordsInput, ProcessorFactory, Record,
};

#[derive(Clone, Debug, PartialEq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
    /// Epoch seconds.
    AtTimestamp(f64),
}

impl InitialPosition {
    fn checkpoint(&self) -> &'static str {
        match self {
            InitialPosition::TrimHorizon => "TRIM_HORIZON",
            InitialPosition::Latest => "LATEST",
            InitialPosition::AtTimestamp(_) => "AT_TIMESTAMP",
        }
    }
}

/// How records are read.
#[derive(Clone, Debug, PartialEq)]
pub enum Retrieval {
    /// GetShardIterator and GetRecords.
    Polling,
    /// SubscribeToShard through a registered stream consumer of this name.
    FanOut { consumer_name: String },
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub retrieval: Retrieval,
    pub stream_name: String,
    pub table_name: String,
    pub worker_id: String,
    pub initial_position: InitialPosition,
    pub failover: Duration,
    pub shard_sync_interval: Duration,
    pub max_records: u32,
    pub idle_between_reads: Duration,
    pub max_leases_for_worker: usize,
    pub max_leases_to_steal: usize,
    pub call_process_records_even_for_empty: bool,
}

/// A lease this worker holds and the consumer working on it.
struct Held {
    lease: Arc<Mutex<Lease>>,
    lost: Arc<AtomicBool>,
    task: JoinHandle<ConsumerEnd>,
}

/// How a shard consumer stopped.
#[derive(Debug, PartialEq)]
enum ConsumerEnd {
    Finished,
    LeaseLost,
    Shutdown,
    Failed,
}

pub struct Worker {
    config: WorkerConfig,
    client: AwsClient,
    table: LeaseTable,
    factory: Arc<dyn ProcessorFactory>,
}

fn is_throttle(error: &AwsError) -> bool {
    error.is("ProvisionedThroughputExceededException")
        || error.is("LimitExceededException")
        || error.is("ThrottlingException")
}

impl Worker {
    /// `kinesis` reads the stream; `dynamodb` keeps the lease table (often the same endpoint).
    pub fn new(
        config: WorkerConfig,
        kinesis: AwsClient,
        dynamodb: AwsClient,
        factory: Arc<dyn ProcessorFactory>,
    ) -> Worker {
        let table = LeaseTable::new(dynamodb, &config.table_name);
        let client = kinesis;
        Worker {
            config,
            client,
            table,
            factory,
        }
    }

    /// Runs until `shutdown` turns true, then asks every processor to shut down and gives
    /// the leases up.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), AwsError> {
        self.table.ensure().await?;
        let consumer_arn: Option<Arc<str>> = match &self.config.retrieval {
            Retrieval::Polling => None,
            Retrieval::FanOut { consumer_name } => Some(
                crate::fanout::register_consumer(
                    &self.client,
                    &self.config.stream_name,
                    consumer_name,
                )
                .await?
                .into(),
            ),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let mut held: BTreeMap<String, Held> = BTreeMap::new();
        let mut observed: HashMap<String, (u64, Instant)> = HashMap::new();
        let tick = (self.config.failover / 3).max(Duration::from_millis(100));
        let mut last_sync: Option<Instant> = None;
        let mut last_take: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_sync.is_none_or(|t| t.elapsed() >= self.config.shard_sync_interval) {
                if let Err(error) = self.sync_shards().await {
                    tracing::warn!(%error, "shard sync failed");
                }
                last_sync = Some(Instant::now());
            }
            self.renew(&mut held).await;
            self.reap(&mut held).await;
            if last_take.is_none_or(|t| t.elapsed() >= self.config.failover / 2) {
                if let Err(error) = self
                    .take(&mut held, &mut observed, &stopping, consumer_arn.as_ref())
                    .await
                {
                    tracing::warn!(%error, "lease taking failed");
                }
                last_take = Some(Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => {}
            }
        }
        stopping.store(true, Ordering::SeqCst);
        for (key, entry) in held {
            let end = entry.task.await.unwrap_or(ConsumerEnd::Failed);
            let mut lease = entry.lease.lock().await;
            if end != ConsumerEnd::LeaseLost && !lease.is_finished() {
                let _ = self.table.evict(&mut lease).await;
            }
            tracing::info!(lease = %key, ?end, "released lease at shutdown");
        }
        Ok(())
    }

    async fn list_shards(&self) -> Result<Vec<Value>, AwsError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match &token {
                Some(token) => json!({"NextToken": token}),
                None => json!({"StreamName": self.config.stream_name}),
            };
            let page = self.client.kinesis("ListShards", &request).await?;
            shards.extend(
                page.get("Shards")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            match page.get("NextToken").and_then(Value::as_str) {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(shards),
            }
        }
    }

    /// New leases for new shards; children recorded on parents; finished parents removed once
    /// every child has checkpointed.
    async fn sync_shards(&self) -> Result<(), AwsError> {
        let shards = self.list_shards().await?;
        let leases: BTreeMap<String, Lease> = self
            .table
            .list()
            .await?
            .into_iter()
            .map(|l| (l.key.clone(), l))
            .collect();
        let ids: BTreeSet<String> = shards
            .iter()
            .filter_map(|s| s.get("ShardId").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut parents_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut children_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for shard in &shards {
            let id = shard["ShardId"].as_str().unwrap_or_default().to_owned();
            let parents: Vec<String> = ["ParentShardId", "AdjacentParentShardId"]
                .iter()
                .filter_map(|k| shard.get(*k).and_then(Value::as_str).map(str::to_owned))
                .collect();
            for parent in &parents {
                children_of
                    .entry(parent.clone())
                    .or_default()
                    .push(id.clone());
            }
            parents_of.insert(id, parents);
        }
        for shard in &shards {
            let id = shard["ShardId"].as_str().unwrap_or_default().to_owned();
            if leases.contains_key(&id) {
                continue;
            }
            // A shard whose child already has a lease was finished and cleaned up.
            let descendant_leased = children_of
                .get(&id)
                .is_some_and(|c| c.iter().any(|c| leases.contains_key(c)));
            if descendant_leased {
                continue;
            }
            let parents = parents_of.get(&id).cloned().unwrap_or_default();
            let has_known_parent = parents
                .iter()
                .any(|p| ids.contains(p) || leases.contains_key(p));
            let checkpoint = if has_known_parent {
                "TRIM_HORIZON"
            } else {
                self.config.initial_position.checkpoint()
            };
            let lease = Lease {
                key: id.clone(),
                owner: None,
                counter: 0,
                checkpoint: checkpoint.to_owned(),
                checkpoint_sub_sequence: 0,
                owner_switches: 0,
                parents,
                children: Vec::new(),
                hash_range: shard.get("HashKeyRange").map(|r| {
                    (
                        r["StartingHashKey"].as_str().unwrap_or_default().to_owned(),
                        r["EndingHashKey"].as_str().unwrap_or_default().to_owned(),
                    )
                }),
                pending_checkpoint: None,
                pending_checkpoint_state: None,
            };
            if let Outcome::Done = self.table.create(&lease).await? {
                tracing::info!(lease = %id, checkpoint, "created lease for new shard");
            }
        }
        for (key, lease) in &leases {
            let Some(children) = children_of.get(key) else {
                continue;
            };
            if lease.children.is_empty() {
                self.table.set_children(key, children).await?;
            }
            let children_started = children.iter().all(|c| {
                leases.get(c).is_some_and(|l| {
                    !matches!(
                        l.checkpoint.as_str(),
                        "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP"
                    )
                })
            });
            if lease.is_finished() && children_started {
                self.table.delete(key).await?;
                tracing::info!(lease = %key, "removed finished parent lease");
            }
        }
        Ok(())
    }

    async fn renew(&self, held: &mut BTreeMap<String, Held>) {
        for (key, entry) in held.iter() {
            if entry.lost.load(Ordering::SeqCst) {
                continue;
            }
            let mut lease = entry.lease.lock().await;
            match self.table.renew(&mut lease).await {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Lost) => {
                    tracing::info!(lease = %key, "lease lost");
                    entry.lost.store(true, Ordering::SeqCst);
                }
                Err(error) => tracing::warn!(%error, lease = %key, "lease renewal failed"),
            }
        }
    }

    /// Drops finished consumers; a failed one gives its lease up.
    async fn reap(&self, held: &mut BTreeMap<String, Held>) {
        let done: Vec<String> = held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            let Some(entry) = held.remove(&key) else {
                continue;
            };
            let end = entry.task.await.unwrap_or(ConsumerEnd::Failed);
            tracing::info!(lease = %key, ?end, "shard consumer stopped");
            if end == ConsumerEnd::Failed {
                let mut lease = entry.lease.lock().await;
                let _ = self.table.evict(&mut lease).await;
            }
        }
    }

    async fn take(
        &self,
        held: &mut BTreeMap<String, Held>,
        observed: &mut HashMap<String, (u64, Instant)>,
        stopping: &Arc<AtomicBool>,
        consumer_arn: Option<&Arc<str>>,
    ) -> Result<(), AwsError> {
        let now = Instant::now();
        let leases = self.table.list().await?;
        let me = self.config.worker_id.as_str();
        let mut expired = Vec::new();
        let mut counts: BTreeMap<String, Vec<Lease>> = BTreeMap::new();
        let mut active = 0usize;
        for lease in &leases {
            let seen = observed
                .entry(lease.key.clone())
                .or_insert((lease.counter, now));
            if seen.0 != lease.counter {
                *seen = (lease.counter, now);
            }
            if lease.is_finished() {
                continue;
            }
            active += 1;
            let stale = now.duration_since(seen.1) > self.config.failover;
            match &lease.owner {
                None => expired.push(lease.clone()),
                Some(owner) if owner != me && stale => expired.push(lease.clone()),
                Some(owner) => counts.entry(owner.clone()).or_default().push(lease.clone()),
            }
        }
        observed.retain(|k, _| leases.iter().any(|l| &l.key == k));
        counts.entry(me.to_owned()).or_default();
        let workers = counts.len().max(1);
        let target = active
            .div_ceil(workers)
            .min(self.config.max_leases_for_worker.max(1));
        let mine = held.len();
        if mine >= target {
            return Ok(());
        }
        let mut wanted = target - mine;
        let mut candidates: Vec<Lease> = expired;
        if candidates.is_empty() {
            // Steal from the most loaded worker, toward an even share.
            let most = counts
                .iter()
                .filter(|(owner, _)| owner.as_str() != me)
                .max_by_key(|(_, l)| l.len());
            if let Some((_, theirs)) = most {
                if theirs.len() > target {
                    let spare = (theirs.len() - target).min(self.config.max_leases_to_steal.max(1));
                    wanted = wanted.min(spare);
                    candidates = theirs.clone();
                }
            }
        }
        for mut lease in candidates.into_iter().take(wanted) {
            if held.contains_key(&lease.key) {
                continue;
            }
            match self.table.take(&mut lease, me).await? {
                Outcome::Done => {
                    tracing::info!(lease = %lease.key, "took lease");
                    let key = lease.key.clone();
                    let shared = Arc::new(Mutex::new(lease));
                    let lost = Arc::new(AtomicBool::new(false));
                    let task = tokio::spawn(consume(
                        self.config.clone(),
                        self.client.clone(),
                        self.table.clone(),
                        self.factory.clone(),
                        shared.clone(),
                        lost.clone(),
                        stopping.clone(),
                        consumer_arn.cloned(),
                    ));
                    held.insert(
                        key,
                        Held {
                            lease: shared,
                            lost,
                            task,
                        },
                    );
                }
                Outcome::Lost => {}
            }
        }
        Ok(())
    }
}

fn iterator_request(
    stream: &str,
    shard: &str,
    checkpoint: &str,
    inside_aggregate: bool,
    position: &InitialPosition,
) -> Value {
    let mut request = json!({"StreamName": stream, "ShardId": shard});
    match checkpoint {
        "TRIM_HORIZON" | "LATEST" => request["ShardIteratorType"] = json!(checkpoint),
        "AT_TIMESTAMP" => {
            request["ShardIteratorType"] = json!("AT_TIMESTAMP");
            if let InitialPosition::AtTimestamp(at) = position {
                request["Timestamp"] = json!(at);
            }
        }
        sequence => {
            // A checkpoint inside an aggregate resumes at its record; the delivered part is skipped.
            let kind = if inside_aggregate {
                "AT_SEQUENCE_NUMBER"
            } else {
                "AFTER_SEQUENCE_NUMBER"
            };
            request["ShardIteratorType"] = json!(kind);
            request["StartingSequenceNumber"] = json!(sequence);
        }
    }
    request
}

/// The user records of a GetRecords reply: KPL aggregates are split (sub-sequence numbers
/// count from 0 within each), and user records whose hash key lies outside the lease's range
/// (possible for aggregates written before a reshard) are dropped, as the KCL does.
fn records_of(response: &Value, range: Option<(u128, u128)>) -> Vec<Record> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for r in response
        .get("Records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let data = engine
            .decode(r.get("Data").and_then(Value::as_str).unwrap_or_default())
            .unwrap_or_default();
        let partition_key = r["PartitionKey"].as_str().unwrap_or_default().to_owned();
        let sequence_number = r["SequenceNumber"].as_str().unwrap_or_default().to_owned();
        let arrival = r
            .get("ApproximateArrivalTimestamp")
            .and_then(Value::as_f64)
            .map(|s| (s * 1000.0) as i64)
            .unwrap_or(0);
        // KPL aggregates (the producer library's format) become their user records; anything
        // else, a corrupt aggregate included, is one record.
        let parts = match millrace_producer::deaggregate(
            &partition_key,
            None,
            &sequence_number,
            &data,
        ) {
            Ok(parts) => parts,
            Err(error) => {
                tracing::warn!(%error, sequence = %sequence_number, "bad KPL aggregate delivered as one record");
                out.push(Record {
                    data,
                    partition_key,
                    sequence_number,
                    sub_sequence_number: 0,
                    approximate_arrival_millis: arrival,
                });
                continue;
            }
        };
        for part in parts {
            // A user record outside the lease's hash range belongs to another shard (written
            // before a reshard): dropped, as the KCL does.
            let hash =
                millrace_producer::hash_key(&part.partition_key, part.explicit_hash_key.as_deref())
                    .ok();
            let inside = match (range, hash) {
                (Some((low, high)), Some(hash)) if part.aggregated => low <= hash && hash <= high,
                _ => true,
            };
            if !inside {
                continue;
            }
            out.push(Record {
                data: part.data,
                partition_key: part.partition_key,
                sequence_number: sequence_number.clone(),
                sub_sequence_number: part.sub_sequence_number,
                approximate_arrival_millis: arrival,
            });
        }
    }
    out
}

/// One shard's consumer: waits for its parents, then reads and hands records over until the
/// shard ends, the lease is lost or the worker stops.
// Each argument is an owned handle the spawned task keeps; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn consume(
    config: WorkerConfig,
    client: AwsClient,
    table: LeaseTable,
    factory: Arc<dyn ProcessorFactory>,
    lease: Arc<Mutex<Lease>>,
    lost: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    consumer_arn: Option<Arc<str>>,
) -> ConsumerEnd {
    let (shard, parents, checkpoint, sub, range, pending, pending_state) = {
        let l = lease.lock().await;
        let range = l
            .hash_range
            .as_ref()
            .and_then(|(a, b)| Some((a.parse::<u128>().ok()?, b.parse::<u128>().ok()?)));
        (
            l.key.clone(),
            l.parents.clone(),
            l.checkpoint.clone(),
            l.checkpoint_sub_sequence,
            range,
            l.pending_checkpoint.clone(),
            l.pending_checkpoint_state.clone(),
        )
    };
    if checkpoint == SHARD_END {
        return ConsumerEnd::Finished;
    }
    // Parents first: every parent lease is gone or checkpointed at SHARD_END.
    loop {
        if lost.load(Ordering::SeqCst) {
            return ConsumerEnd::LeaseLost;
        }
        if stopping.load(Ordering::SeqCst) {
            return ConsumerEnd::Shutdown;
        }
        let mut ready = true;
        for parent in &parents {
            match table.get(parent).await {
                Ok(None) => {}
                Ok(Some(p)) if p.is_finished() => {}
                _ => ready = false,
            }
        }
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::info!(%shard, ?parents, "shard consumer started");
    let mut processor = match factory.create(&shard) {
        Ok(p) => p,
        Err(error) => {
            tracing::warn!(%error, %shard, "could not start a record processor");
            return ConsumerEnd::Failed;
        }
    };
    let mut checkpointer = Checkpointer::new(table.clone(), lease.clone());
    let initialized = processor
        .initialize(InitializeInput {
            shard_id: shard.clone(),
            sequence_number: checkpoint.clone(),
            sub_sequence_number: sub,
            pending_checkpoint: pending,
            pending_checkpoint_state: pending_state,
        })
        .await;
    if let Err(error) = initialized {
        tracing::warn!(%error, %shard, "initialize failed");
        return ConsumerEnd::Failed;
    }
    if let Some(arn) = consumer_arn.as_deref() {
        let reading = FanOutRead {
            config: &config,
            client: &client,
            consumer_arn: arn,
            shard: &shard,
            checkpoint: &checkpoint,
            sub,
            range,
            lost: &lost,
            stopping: &stopping,
        };
        if let Err(end) = reading.run(processor.as_mut(), &mut checkpointer).await {
            return end;
        }
    } else {
        let mut iterator: Option<String> = None;
        // GetRecords calls throttled in a row.
        let mut throttled: u32 = 0;
        let mut last_sequence: Option<String> = None;
        loop {
            if lost.load(Ordering::SeqCst) {
                let _ = processor.lease_lost().await;
                return ConsumerEnd::LeaseLost;
            }
            if stopping.load(Ordering::SeqCst) {
                if let Err(error) = processor.shutdown_requested(&mut checkpointer).await {
                    tracing::warn!(%error, %shard, "shutdown_requested failed");
                }
                return ConsumerEnd::Shutdown;
            }
            let current = match iterator.take() {
                Some(it) => it,
                None => {
                    let (from, inside) = match &last_sequence {
                        Some(last) => (last.clone(), false),
                        None => (checkpoint.clone(), sub > 0),
                    };
                    let request = iterator_request(
                        &config.stream_name,
                        &shard,
                        &from,
                        inside,
                        &config.initial_position,
                    );
                    match client.kinesis("GetShardIterator", &request).await {
                        Ok(response) => match response.get("ShardIterator").and_then(Value::as_str)
                        {
                            Some(it) => it.to_owned(),
                            None => break,
                        },
                        Err(error) => {
                            tracing::warn!(%error, %shard, "GetShardIterator failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            };
            let response = client
                .kinesis(
                    "GetRecords",
                    &json!({"ShardIterator": current, "Limit": config.max_records}),
                )
                .await;
            let response = match response {
                Ok(r) => r,
                Err(error) if is_throttle(&error) => {
                    // Backing off: 500 ms, doubled per throttled read in a row up to 8 s.
                    iterator = Some(current);
                    let pause = Duration::from_millis(500) * (1 << throttled.min(4));
                    throttled += 1;
                    tracing::debug!(%shard, ?pause, "GetRecords throttled");
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, %shard, "GetRecords failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            throttled = 0;
            let mut records = records_of(&response, range);
            if last_sequence.is_none() && sub > 0 {
                records
                    .retain(|r| !(r.sequence_number == checkpoint && r.sub_sequence_number <= sub));
            }
            let millis_behind = response
                .get("MillisBehindLatest")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let empty = records.is_empty();
            for record in &records {
                checkpointer.delivered(&record.sequence_number, record.sub_sequence_number);
            }
            if let Some(last) = records.last() {
                last_sequence = Some(last.sequence_number.clone());
            }
            if !empty || config.call_process_records_even_for_empty {
                let input = ProcessRecordsInput {
                    records,
                    millis_behind_latest: millis_behind,
                };
                if let Err(error) = processor.process_records(input, &mut checkpointer).await {
                    tracing::warn!(%error, %shard, "process_records failed");
                    return ConsumerEnd::Failed;
                }
            }
            match response.get("NextShardIterator").and_then(Value::as_str) {
                Some(next) => iterator = Some(next.to_owned()),
                None => break,
            }
            if empty {
                tokio::time::sleep(config.idle_between_reads).await;
            }
        }
    }
    // The shard has ended: the processor must checkpoint at SHARD_END.
    checkpointer.set_shard_ended();
    if let Err(error) = processor.shard_ended(&mut checkpointer).await {
        tracing::warn!(%error, %shard, "shard_ended failed");
        return ConsumerEnd::Failed;
    }
    let finished = lease.lock().await.is_finished();
    if !finished {
        tracing::warn!(%shard, "the record processor did not checkpoint at SHARD_END; the shard will be retried");
        return ConsumerEnd::Failed;
    }
    tracing::info!(%shard, "shard finished at SHARD_END");
    ConsumerEnd::Finished
}

/// One shard read by enhanced fan-out.
struct FanOutRead<'a> {
    config: &'a WorkerConfig,
    client: &'a AwsClient,
    consumer_arn: &'a str,
    shard: &'a str,
    checkpoint: &'a str,
    sub: u64,
    range: Option<(u128, u128)>,
    lost: &'a AtomicBool,
    stopping: &'a AtomicBool,
}

impl FanOutRead<'_> {
    fn starting_position(&self) -> Value {
        match self.checkpoint {
            "TRIM_HORIZON" | "LATEST" => json!({"Type": self.checkpoint}),
            "AT_TIMESTAMP" => match self.config.initial_position {
                InitialPosition::AtTimestamp(at) => {
                    json!({"Type": "AT_TIMESTAMP", "Timestamp": at})
                }
                _ => json!({"Type": "TRIM_HORIZON"}),
            },
            sequence if self.sub > 0 => {
                json!({"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": sequence})
            }
            sequence => json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sequence}),
        }
    }

    /// Reads until the shard ends (`Ok`), or returns how the consumer stopped.
    async fn run(
        &self,
        processor: &mut dyn crate::processor::RecordProcessor,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ConsumerEnd> {
        let mut position = self.starting_position();
        let mut delivered_any = false;
        loop {
            if self.lost.load(Ordering::SeqCst) {
                let _ = processor.lease_lost().await;
                return Err(ConsumerEnd::LeaseLost);
            }
            if self.stopping.load(Ordering::SeqCst) {
                let _ = processor.shutdown_requested(checkpointer).await;
                return Err(ConsumerEnd::Shutdown);
            }
            let subscribed = crate::fanout::subscribe(
                self.client,
                self.consumer_arn,
                self.shard,
                position.clone(),
            )
            .await;
            let mut subscription = match subscribed {
                Ok(subscription) => subscription,
                Err(error) => {
                    // The previous holder's subscription lingers briefly after a handover.
                    if error.is("ResourceInUseException") {
                        tracing::info!(%error, shard = %self.shard, "SubscribeToShard refused; retrying");
                    } else {
                        tracing::warn!(%error, shard = %self.shard, "SubscribeToShard failed");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            loop {
                if self.lost.load(Ordering::SeqCst) || self.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let event = tokio::select! {
                    event = subscription.next() => event,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                };
                let json = match event {
                    Ok(crate::fanout::Event::Records(json)) => json,
                    Ok(crate::fanout::Event::Ended) => break,
                    Err(error) => {
                        tracing::warn!(%error, shard = %self.shard, "subscription failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                };
                let mut records = records_of(&json, self.range);
                if !delivered_any && self.sub > 0 {
                    records.retain(|r| {
                        !(r.sequence_number == self.checkpoint && r.sub_sequence_number <= self.sub)
                    });
                }
                for record in &records {
                    checkpointer.delivered(&record.sequence_number, record.sub_sequence_number);
                }
                if !records.is_empty() {
                    delivered_any = true;
                }
                if !records.is_empty() || self.config.call_process_records_even_for_empty {
                    let input = ProcessRecordsInput {
                        millis_behind_latest: json["MillisBehindLatest"].as_i64().unwrap_or(0),
                        records,
                    };
                    if let Err(error) = processor.process_records(input, checkpointer).await {
                        tracing::warn!(%error, shard = %self.shard, "process_records failed");
                        return Err(ConsumerEnd::Failed);
                    }
                }
                match json["ContinuationSequenceNumber"].as_str() {
                    Some(continuation) => {
                        position = json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation});
                    }
                    None => {
                        let children = json["ChildShards"]
                            .as_array()
                            .is_some_and(|c| !c.is_empty());
                        if children {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}
