//! KinesisStreamAsSource: reading a Millrace stream into the delivery stream's own log.
//!
//! One reader task per shard, started once the shard's parents are read to their end (so
//! records of a key stay in order across a split or merge). A reader takes records through
//! the engine's GetRecords, de-aggregates KPL records into their user records, appends them to
//! the delivery stream's log (durably) and only then stores the shard's checkpoint (the last
//! sequence number read) in `firehose.redb`; when it has caught up it waits on the engine's
//! wake-on-append subscription (`Engine::subscribe_shard`), and at the end of a closed shard it
//! marks the shard done and starts the children. Reading starts at the delivery stream's
//! creation time (the service's `DeliveryStartTimestamp`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace_engine::{Engine, IteratorRequest, IteratorType, ListShardsRequest};
use millrace_service::ServiceError;
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::invalid_argument;
use crate::{Inner, Stream};

/// The Kinesis streams of each account, as the source reader sees them.
pub trait KinesisStreams: Send + Sync {
    fn engine(&self, account: &str) -> Option<Arc<Engine>>;
}

/// Records per GetRecords call.
const READ_LIMIT: i64 = 10_000;
/// Wait after a failed read (throttling, a vanished iterator) before trying again.
const RETRY_WAIT: Duration = Duration::from_millis(500);
const DONE: &str = "done";

/// `(region, account, stream name)` of a stream ARN.
fn parse_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "kinesis" {
        return None;
    }
    Some((region, account, resource.strip_prefix("stream/")?))
}

pub(crate) fn check_source(
    inner: &Inner,
    account: &str,
    source: &Value,
) -> Result<(), ServiceError> {
    let arn = source
        .get("KinesisStreamARN")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (region, stream_account, name) = parse_arn(arn)
        .ok_or_else(|| invalid_argument(format!("Invalid KinesisStreamARN: {arn}")))?;
    let missing = || {
        invalid_argument(format!(
            "Stream {name} under account {stream_account} not found."
        ))
    };
    if stream_account != account {
        return Err(invalid_argument(
            "Kinesis streams of other accounts are not supported as sources by Millrace yet.",
        ));
    }
    let engine = inner
        .kinesis
        .as_ref()
        .and_then(|k| k.engine(stream_account))
        .ok_or_else(missing)?;
    let request = ListShardsRequest {
        stream_name: Some(name.to_owned()),
        max_results: Some(1),
        ..ListShardsRequest::default()
    };
    engine
        .list_shards(region, &request)
        .map(|_| ())
        .map_err(|_| missing())
}

fn position_prefix(incarnation: u64) -> String {
    format!("fh/src/{incarnation}/")
}

/// The store keys of a stream's source positions.
pub(crate) fn position_keys(inner: &Inner, incarnation: u64) -> Vec<String> {
    inner
        .store
        .scan(&position_prefix(incarnation))
        .map(|rows| rows.into_iter().map(|(key, _)| key).collect())
        .unwrap_or_default()
}

fn shard_index(shard_id: &str) -> Option<u32> {
    shard_id.rsplit('-').next()?.parse().ok()
}

struct Shared {
    inner: Arc<Inner>,
    stream: Arc<Stream>,
    engine: Arc<Engine>,
    region: String,
    name: String,
    incarnation: u64,
    start_ms: u64,
    /// Checkpoints: shard id → last sequence number read, or `done`.
    checkpoints: Mutex<BTreeMap<String, String>>,
    /// Shards with a running reader.
    running: Mutex<BTreeSet<String>>,
    /// Wakes discovery when a shard was read to its end.
    finished: Notify,
}

pub(crate) async fn run(inner: Arc<Inner>, stream: Arc<Stream>) {
    let doc = stream.snapshot();
    let Some(arn) = doc
        .source
        .as_ref()
        .and_then(|s| s.get("KinesisStreamARN"))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let Some((region, account, name)) = parse_arn(&arn) else {
        return;
    };
    let Some(engine) = inner.kinesis.as_ref().and_then(|k| k.engine(account)) else {
        tracing::error!(%arn, "the source stream's account is not served");
        return;
    };
    let checkpoints: BTreeMap<String, String> = inner
        .store
        .scan(&position_prefix(doc.incarnation))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| {
            let shard = key.rsplit('/').next()?.to_owned();
            Some((shard, String::from_utf8(value).ok()?))
        })
        .collect();
    let shared = Arc::new(Shared {
        inner: inner.clone(),
        stream: stream.clone(),
        engine,
        region: region.to_owned(),
        name: name.to_owned(),
        incarnation: doc.incarnation,
        start_ms: doc.created_ms,
        checkpoints: Mutex::new(checkpoints),
        running: Mutex::new(BTreeSet::new()),
        finished: Notify::new(),
    });
    let mut stop = stream.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        discover(&shared);
        tokio::select! {
            _ = shared.finished.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Starts a reader for every shard whose parents are done.
fn discover(shared: &Arc<Shared>) {
    let mut shards = Vec::new();
    let mut request = ListShardsRequest {
        stream_name: Some(shared.name.clone()),
        ..ListShardsRequest::default()
    };
    loop {
        match shared.engine.list_shards(&shared.region, &request) {
            Ok((page, next)) => {
                shards.extend(page);
                match next {
                    Some(token) => {
                        request = ListShardsRequest {
                            next_token: Some(token),
                            ..ListShardsRequest::default()
                        }
                    }
                    None => break,
                }
            }
            Err(error) => {
                tracing::warn!(stream = %shared.name, %error, "listing the source stream's shards failed");
                return;
            }
        }
    }
    let known: BTreeSet<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
    tracing::debug!(stream = %shared.name, shards = ?known, "source shards");
    let checkpoints = shared.checkpoints.lock().expect("checkpoints").clone();
    let done = |id: &Option<String>| match id {
        None => true,
        // A parent no longer listed has expired: nothing left to read from it.
        Some(id) => !known.contains(id) || checkpoints.get(id).map(String::as_str) == Some(DONE),
    };
    for shard in shards {
        if checkpoints.get(&shard.shard_id).map(String::as_str) == Some(DONE) {
            continue;
        }
        if !done(&shard.parent_shard_id) || !done(&shard.adjacent_parent_shard_id) {
            continue;
        }
        if !shared
            .running
            .lock()
            .expect("running")
            .insert(shard.shard_id.clone())
        {
            continue;
        }
        tracing::debug!(stream = %shared.name, shard = %shard.shard_id, "reading a source shard");
        tokio::spawn(read_shard(shared.clone(), shard.shard_id));
    }
}

async fn save_checkpoint(shared: &Shared, shard: &str, value: String) -> bool {
    let key = format!("{}{shard}", position_prefix(shared.incarnation));
    let inner = shared.inner.clone();
    let stored = value.clone();
    let written = tokio::task::spawn_blocking(move || {
        inner
            .store
            .write(&[(&key, Some(stored.as_bytes()))])
            .map_err(|error| error.to_string())
    })
    .await;
    match written {
        Ok(Ok(())) => {
            shared
                .checkpoints
                .lock()
                .expect("checkpoints")
                .insert(shard.to_owned(), value);
            true
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "storing a source checkpoint failed");
            false
        }
        Err(error) => {
            tracing::error!(%error, "checkpoint task failed");
            false
        }
    }
}

async fn read_shard(shared: Arc<Shared>, shard_id: String) {
    let mut stop = shared.stream.stop.subscribe();
    let Some(index) = shard_index(&shard_id) else {
        return;
    };
    let Some(mut wake) = shared
        .engine
        .subscribe_shard(&shared.region, &shared.name, index)
    else {
        return;
    };
    let mut iterator: Option<String> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if iterator.is_none() {
            let checkpoint = shared
                .checkpoints
                .lock()
                .expect("checkpoints")
                .get(&shard_id)
                .cloned();
            let request = match &checkpoint {
                Some(sequence) => IteratorRequest {
                    shard_id: &shard_id,
                    iterator_type: IteratorType::AfterSequenceNumber,
                    starting_sequence_number: Some(sequence),
                    timestamp_ms: None,
                },
                None => IteratorRequest {
                    shard_id: &shard_id,
                    iterator_type: IteratorType::AtTimestamp,
                    starting_sequence_number: None,
                    timestamp_ms: Some(shared.start_ms),
                },
            };
            match shared
                .engine
                .get_shard_iterator(&shared.region, &shared.name, request)
                .await
            {
                Ok(token) => iterator = Some(token),
                Err(millrace_engine::Error::ResourceNotFound(_)) => return,
                Err(error) => {
                    tracing::debug!(shard = %shard_id, %error, "source iterator failed; retrying");
                    if wait(&mut stop, RETRY_WAIT).await {
                        return;
                    }
                    continue;
                }
            }
        }
        wake.borrow_and_update();
        let token = iterator.clone().unwrap_or_default();
        let output = match shared.engine.get_records(&token, Some(READ_LIMIT)).await {
            Ok(output) => output,
            Err(millrace_engine::Error::ResourceNotFound(_)) => return,
            Err(error) => {
                tracing::debug!(shard = %shard_id, %error, "source read failed; retrying");
                iterator = None;
                if wait(&mut stop, RETRY_WAIT).await {
                    return;
                }
                continue;
            }
        };
        if let Some(last) = output.records.last() {
            let last_sequence = last.sequence_number.to_string();
            let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(output.records.len());
            let mut arrivals: Vec<u64> = Vec::with_capacity(output.records.len());
            for record in &output.records {
                let sequence = record.sequence_number.to_string();
                match millrace_producer::aggregation::deaggregate(
                    record.partition_key(),
                    None,
                    &sequence,
                    record.data(),
                ) {
                    Ok(users) => {
                        // Every user record of an aggregate arrived with it.
                        arrivals.extend(users.iter().map(|_| record.arrival_ms));
                        payloads.extend(users.into_iter().map(|u| u.data));
                    }
                    Err(_) => {
                        arrivals.push(record.arrival_ms);
                        payloads.push(record.data().to_vec());
                    }
                }
            }
            let read_bytes: usize = output.records.iter().map(|r| r.data().len()).sum();
            let inner = shared.inner.clone();
            let stream = shared.stream.clone();
            let appended = tokio::task::spawn_blocking(move || {
                let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                inner
                    .append_framed(&stream, &slices, Some(&arrivals))
                    .map_err(|error| match error {
                        crate::AppendError::Kms(message) | crate::AppendError::Storage(message) => {
                            message
                        }
                    })
            })
            .await;
            match appended {
                Ok(Ok(_)) => {
                    let doc = shared.stream.snapshot();
                    let scope = crate::metrics::Scope {
                        account: &doc.account,
                        region: &doc.region,
                        stream: &doc.name,
                    };
                    let meter = &shared.inner.meter;
                    meter.record(
                        &scope,
                        "DataReadFromKinesisStream.Records",
                        "Count",
                        output.records.len() as f64,
                    );
                    meter.record(
                        &scope,
                        "DataReadFromKinesisStream.Bytes",
                        "Bytes",
                        read_bytes as f64,
                    );
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "appending source records failed; reading them again");
                    iterator = None;
                    if wait(&mut stop, RETRY_WAIT).await {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            if !save_checkpoint(&shared, &shard_id, last_sequence).await {
                iterator = None;
                if wait(&mut stop, RETRY_WAIT).await {
                    return;
                }
                continue;
            }
        }
        match output.next_shard_iterator {
            None => {
                tracing::debug!(stream = %shared.name, shard = %shard_id, "read a source shard to its end");
                // The end of a closed shard: its children may start.
                save_checkpoint(&shared, &shard_id, DONE.into()).await;
                shared.running.lock().expect("running").remove(&shard_id);
                shared.finished.notify_one();
                return;
            }
            Some(next) => iterator = Some(next),
        }
        let caught_up = output.records.is_empty() || output.millis_behind_latest == 0;
        // A shard closed by resharding ends for GetRecords once the new shape is stored; the
        // engine wakes its subscribers again then, so the wait below covers that case too.
        if caught_up && !wake.has_changed().unwrap_or(false) {
            tokio::select! {
                changed = wake.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }
}

async fn wait(stop: &mut tokio::sync::watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
