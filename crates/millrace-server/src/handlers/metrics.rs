//! Counting the AWS/Kinesis metrics where the work happens: each data-plane handler measures its
//! request and records it here, once per request (never per record), into the live counters of
//! `millrace-cloudwatch` (a few relaxed atomic additions).

use std::sync::Arc;
use std::time::Instant;

use millrace_cloudwatch::recorder::{shard_level_bit, Handle};
use millrace_cloudwatch::KinesisMetric as M;
use millrace_engine::{PutFailure, PutOutcome, ReadRecord};

use super::Context;

/// The stream's handle, its enabled shard-level metrics read from the stream on first use.
fn stream_handle(context: &Context<'_>, region: &str, name: &str) -> Option<Arc<Handle>> {
    let metrics = context.metrics?;
    let handle = metrics
        .recorder()
        .stream(context.engine.account_id(), region, name);
    if handle.shard_level().is_none() {
        let enabled = context
            .engine
            .describe_stream_summary(region, name)
            .map(|view| view.shard_level_metrics)
            .unwrap_or_default();
        handle.set_shard_level(enabled.iter().map(String::as_str));
    }
    Some(handle)
}

/// A shard's handle when the stream has any of `metrics` enabled at shard level.
fn shard_handle(
    context: &Context<'_>,
    stream: &Handle,
    region: &str,
    name: &str,
    shard: &str,
    wanted: &[&str],
) -> Option<Arc<Handle>> {
    let enabled = stream.shard_level().unwrap_or(0);
    let any = wanted
        .iter()
        .filter_map(|m| shard_level_bit(m))
        .any(|bit| enabled & bit != 0);
    if !any {
        return None;
    }
    Some(
        context
            .metrics?
            .recorder()
            .shard(context.engine.account_id(), region, name, shard),
    )
}

fn shard_enabled(stream: &Handle, metric: &str) -> bool {
    shard_level_bit(metric).is_some_and(|bit| stream.shard_level().unwrap_or(0) & bit != 0)
}

/// Records a shard-level metric when EnableEnhancedMonitoring turned that metric on.
fn record_shard(stream: &Handle, shard: &Handle, metric: M, value: u64) {
    if shard_enabled(stream, metric.name()) {
        shard.record(metric, value);
    }
}

fn millis_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// After EnableEnhancedMonitoring / DisableEnhancedMonitoring.
pub fn shard_level_changed(context: &Context<'_>, region: &str, name: &str, enabled: &[String]) {
    if let Some(handle) = stream_handle(context, region, name) {
        handle.set_shard_level(enabled.iter().map(String::as_str));
    }
}

/// One PutRecords request: `sizes` are each entry's bytes (data and partition key).
pub fn put_records(
    context: &Context<'_>,
    region: &str,
    name: &str,
    started: Instant,
    sizes: &[u64],
    outcomes: &[Result<PutOutcome, PutFailure>],
) {
    let Some(stream) = stream_handle(context, region, name) else {
        return;
    };
    let mut bytes = 0;
    let mut succeeded = 0;
    let mut throttled = 0;
    let mut failed = 0;
    let per_shard =
        shard_enabled(&stream, "IncomingBytes") || shard_enabled(&stream, "IncomingRecords");
    let throttles_per_shard = shard_enabled(&stream, "WriteProvisionedThroughputExceeded");
    let mut shards: Vec<(String, u64, u64)> = Vec::new();
    let mut throttled_shards: Vec<(String, u64)> = Vec::new();
    for (outcome, size) in outcomes.iter().zip(sizes) {
        match outcome {
            Ok(outcome) => {
                bytes += size;
                succeeded += 1;
                if per_shard {
                    let shard = outcome.shard_id.to_string();
                    match shards.iter_mut().find(|(s, _, _)| *s == shard) {
                        Some(entry) => {
                            entry.1 += size;
                            entry.2 += 1;
                        }
                        None => shards.push((shard, *size, 1)),
                    }
                }
            }
            Err(failure) if failure.error_code == "ProvisionedThroughputExceededException" => {
                throttled += 1;
                if throttles_per_shard {
                    if let Some(shard) = throttled_shard(&failure.error_message) {
                        match throttled_shards.iter_mut().find(|(s, _)| s == shard) {
                            Some(entry) => entry.1 += 1,
                            None => throttled_shards.push((shard.to_owned(), 1)),
                        }
                    }
                }
            }
            Err(_) => failed += 1,
        }
    }
    let latency = millis_since(started);
    if succeeded > 0 {
        stream.record(M::IncomingBytes, bytes);
        stream.record(M::IncomingRecords, succeeded);
        stream.record(M::PutRecordsBytes, bytes);
    }
    stream.record(M::PutRecordsLatency, latency);
    stream.record(M::PutRecordsSuccess, u64::from(succeeded > 0));
    stream.record(M::PutRecordsTotalRecords, outcomes.len() as u64);
    stream.record(M::PutRecordsSuccessfulRecords, succeeded);
    stream.record(M::PutRecordsFailedRecords, failed);
    stream.record(M::PutRecordsThrottledRecords, throttled);
    stream.record(M::WriteProvisionedThroughputExceeded, throttled);
    for (shard, count) in throttled_shards {
        if let Some(handle) = shard_handle(
            context,
            &stream,
            region,
            name,
            &shard,
            &["WriteProvisionedThroughputExceeded"],
        ) {
            handle.record(M::WriteProvisionedThroughputExceeded, count);
        }
    }
    for (shard, bytes, records) in shards {
        if let Some(handle) = shard_handle(
            context,
            &stream,
            region,
            name,
            &shard,
            &["IncomingBytes", "IncomingRecords"],
        ) {
            record_shard(&stream, &handle, M::IncomingBytes, bytes);
            record_shard(&stream, &handle, M::IncomingRecords, records);
        }
    }
}

/// The shard a throttling message names (`Rate exceeded for shard <id> in stream …`).
pub fn throttled_shard(message: &str) -> Option<&str> {
    let rest = message.split_once("for shard ")?.1;
    let shard = rest.split(' ').next()?;
    shard.starts_with("shardId-").then_some(shard)
}

/// One PutRecord request: `Ok(shard)` when written, `Err(Some(shard))` when throttled (with the
/// shard when the message names it), `Err(None)` for other failures.
pub fn put_record(
    context: &Context<'_>,
    region: &str,
    name: &str,
    started: Instant,
    size: u64,
    outcome: Result<&str, Option<Option<&str>>>,
) {
    let Some(stream) = stream_handle(context, region, name) else {
        return;
    };
    stream.record(M::PutRecordLatency, millis_since(started));
    match outcome {
        Ok(shard) => {
            stream.record(M::IncomingBytes, size);
            stream.record(M::IncomingRecords, 1);
            stream.record(M::PutRecordBytes, size);
            stream.record(M::PutRecordSuccess, 1);
            stream.record(M::WriteProvisionedThroughputExceeded, 0);
            if let Some(handle) = shard_handle(
                context,
                &stream,
                region,
                name,
                shard,
                &["IncomingBytes", "IncomingRecords"],
            ) {
                record_shard(&stream, &handle, M::IncomingBytes, size);
                record_shard(&stream, &handle, M::IncomingRecords, 1);
            }
        }
        Err(throttled) => {
            stream.record(M::PutRecordSuccess, 0);
            if let Some(shard) = throttled {
                stream.record(M::WriteProvisionedThroughputExceeded, 1);
                let handle = shard.and_then(|shard| {
                    shard_handle(
                        context,
                        &stream,
                        region,
                        name,
                        shard,
                        &["WriteProvisionedThroughputExceeded"],
                    )
                });
                if let Some(handle) = handle {
                    handle.record(M::WriteProvisionedThroughputExceeded, 1);
                }
            }
        }
    }
}

/// The shard a GetRecords iterator reads, as `shardId-…`.
fn iterator_shard(context: &Context<'_>, iterator: &str) -> Option<(String, String)> {
    let (stream, index) = context.engine.iterator_shard(iterator)?;
    Some((stream, millrace_types::ShardId(index).to_string()))
}

/// One GetRecords request: `Ok(records, millis behind)`, or `Err(throttled)`.
pub fn get_records(
    context: &Context<'_>,
    region: &str,
    iterator: &str,
    started: Instant,
    outcome: Result<(&[ReadRecord], u64), bool>,
) {
    if context.metrics.is_none() {
        return;
    }
    let Some((name, shard)) = iterator_shard(context, iterator) else {
        return;
    };
    let Some(stream) = stream_handle(context, region, &name) else {
        return;
    };
    let shard_handle = shard_handle(
        context,
        &stream,
        region,
        &name,
        &shard,
        &[
            "OutgoingBytes",
            "OutgoingRecords",
            "IteratorAgeMilliseconds",
            "ReadProvisionedThroughputExceeded",
        ],
    );
    match outcome {
        Ok((records, millis_behind)) => {
            let bytes: u64 = records
                .iter()
                .map(|r| (r.data().len() + r.partition_key().len()) as u64)
                .sum();
            let now = millrace_cloudwatch::now_ms().max(0) as u64;
            // The age of the last record returned, or how far the iterator is behind the tip.
            let age = records
                .last()
                .map(|r| now.saturating_sub(r.arrival_ms))
                .unwrap_or(millis_behind);
            stream.record(M::GetRecordsLatency, millis_since(started));
            stream.record(M::GetRecordsBytes, bytes);
            stream.record(M::GetRecordsRecords, records.len() as u64);
            stream.record(M::GetRecordsSuccess, 1);
            stream.record(M::GetRecordsIteratorAge, age);
            stream.record(M::ReadProvisionedThroughputExceeded, 0);
            if let Some(handle) = shard_handle {
                record_shard(&stream, &handle, M::OutgoingBytes, bytes);
                record_shard(&stream, &handle, M::OutgoingRecords, records.len() as u64);
                record_shard(&stream, &handle, M::IteratorAgeMilliseconds, age);
            }
        }
        Err(throttled) => {
            stream.record(M::GetRecordsSuccess, 0);
            if throttled {
                stream.record(M::ReadProvisionedThroughputExceeded, 1);
                if let Some(handle) = shard_handle {
                    record_shard(&stream, &handle, M::ReadProvisionedThroughputExceeded, 1);
                }
            }
        }
    }
}

/// A SubscribeToShard call: `Ok(())` when the subscription started, `Err(true)` when refused
/// for its rate.
pub fn subscribe(
    context: &Context<'_>,
    region: &str,
    stream: &str,
    consumer: &str,
    outcome: Result<(), bool>,
) -> Option<Arc<Handle>> {
    let metrics = context.metrics?;
    let handle = metrics
        .recorder()
        .consumer(context.engine.account_id(), region, stream, consumer);
    match outcome {
        Ok(()) => handle.record(M::SubscribeToShardSuccess, 1),
        Err(rate) => {
            handle.record(M::SubscribeToShardSuccess, 0);
            if rate {
                handle.record(M::SubscribeToShardRateExceeded, 1);
            }
        }
    }
    Some(handle)
}

/// One event sent to a subscriber.
pub fn subscription_event(handle: &Handle, records: &[ReadRecord], millis_behind: u64) {
    let bytes: u64 = records
        .iter()
        .map(|r| (r.data().len() + r.partition_key().len()) as u64)
        .sum();
    handle.record(M::SubscribeToShardEventBytes, bytes);
    handle.record(M::SubscribeToShardEventRecords, records.len() as u64);
    handle.record(M::SubscribeToShardEventMillisBehindLatest, millis_behind);
    handle.record(M::SubscribeToShardEventSuccess, 1);
}
