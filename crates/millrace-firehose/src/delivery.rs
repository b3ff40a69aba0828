//! The delivery engine: one task per delivery stream.
//!
//! The task keeps the records after the delivered position in memory (read from the log, so
//! a restart rebuilds the same buffer), waits on the stream's append signal and on the
//! deadline of the oldest buffered record, and delivers when the buffer reaches the size hint
//! (bytes before compression) or the oldest record has waited the interval hint, whichever
//! comes first. A delivery is retried until it succeeds (or, for HTTP endpoints, until the
//! records went to the error prefix); only then is the new delivered position written to the
//! store and the log trimmed, so every record is delivered at least once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use millrace_log::ReadEntry;
use serde_json::Value;
use tokio::sync::watch;

use crate::doc::{compression, Kind, StreamDoc};
use crate::httpdest::Outcome;
use crate::prefix::{self, Civil, ErrorOutputType};
use crate::{delivered_key, now_ms, Inner, Stream};

/// Records read from the log per step.
const READ_RECORDS: usize = 10_000;
/// Delivered bytes between two trims of the log (about one segment).
const TRIM_EVERY_BYTES: usize = 16 << 20;

fn load_delivered(inner: &Inner, incarnation: u64) -> u64 {
    inner
        .store
        .get(&delivered_key(incarnation))
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

pub async fn run(inner: Arc<Inner>, stream: Arc<Stream>) {
    let incarnation = stream.snapshot().incarnation;
    let mut stop = stream.stop.subscribe();
    let mut appended = stream.appended.subscribe();
    let delivered = {
        let inner = inner.clone();
        tokio::task::spawn_blocking(move || load_delivered(&inner, incarnation))
            .await
            .unwrap_or(0)
    };
    let mut delivered = delivered.max(stream.log.start_position());
    let mut read_to = delivered;
    let mut batch: Vec<ReadEntry> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut since_trim = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        let doc = stream.snapshot();
        let (size_limit, interval_ms) = doc.hints();
        let end = *appended.borrow_and_update();
        if read_to < end && batch_bytes < size_limit {
            let reader = stream.clone();
            let budget = size_limit - batch_bytes;
            let from = read_to;
            let decoder = inner.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut entries = reader
                    .log
                    .read(from, end, READ_RECORDS, budget)
                    .map_err(|error| error.to_string())?;
                crate::frame::decode(&decoder, &reader.snapshot(), &mut entries)?;
                Ok::<_, String>(entries)
            })
            .await;
            match read {
                Ok(Ok(entries)) => {
                    for entry in entries {
                        if batch_bytes >= size_limit {
                            break;
                        }
                        read_to = entry.position + 1;
                        batch_bytes += entry.payload.len();
                        batch.push(entry);
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(stream = %doc.name, %error, "reading the delivery stream's log failed");
                    if wait_or_stop(&mut stop, Duration::from_secs(5)).await {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "log read task failed");
                }
            }
            continue;
        }
        if batch.is_empty() {
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
            continue;
        }
        let oldest = oldest_of(&batch);
        let deadline = oldest + interval_ms;
        let now = now_ms();
        if batch_bytes < size_limit && now < deadline {
            let wait = Duration::from_millis(deadline - now);
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        if !deliver(&inner, &stream, &batch, &mut stop).await || *stop.borrow() {
            return;
        }
        delivered = read_to;
        let newest_ms = batch.last().map_or(0, |r| r.timestamp_ms);
        since_trim += batch_bytes;
        batch.clear();
        batch_bytes = 0;
        let trim = since_trim >= TRIM_EVERY_BYTES;
        if trim {
            since_trim = 0;
        }
        let inner2 = inner.clone();
        let stream2 = stream.clone();
        let committed = tokio::task::spawn_blocking(move || {
            let text = delivered.to_string();
            inner2
                .store
                .write(&[(&delivered_key(incarnation), Some(text.as_bytes()))])
                .map_err(|error| error.to_string())?;
            if trim {
                // Whole segments older than the first undelivered record (or, with nothing
                // left, than the newest delivered one) can go.
                let keep_from = stream2
                    .log
                    .read(delivered, u64::MAX, 1, 1)
                    .ok()
                    .and_then(|entries| entries.first().map(|e| e.timestamp_ms))
                    .unwrap_or(newest_ms);
                if let Err(error) = stream2.log.trim_before_timestamp(keep_from) {
                    tracing::warn!(%error, "trimming a delivery stream's log failed");
                }
            }
            Ok::<(), String>(())
        })
        .await;
        if let Ok(Err(error)) | Err(error) = committed.map_err(|e| e.to_string()) {
            tracing::error!(%error, "recording the delivered position failed (the records will be delivered again)");
        }
    }
}

/// The arrival time of a batch's oldest record (records of several source shards interleave).
fn oldest_of(batch: &[ReadEntry]) -> u64 {
    batch.iter().map(|r| r.timestamp_ms).min().unwrap_or(0)
}

/// Waits `wait` unless the stream stops first (then `true`).
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Delivers one batch, retrying until it is stored; `false` if the stream stopped first.
async fn deliver(
    inner: &Inner,
    stream: &Stream,
    batch: &[ReadEntry],
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(500);
    loop {
        let doc = stream.snapshot();
        let result = match doc.kind {
            Kind::S3 => write_records(inner, &doc, doc.s3(), batch, None).await,
            Kind::Http => deliver_http(inner, &doc, batch, stop).await,
        };
        let scope = crate::metrics::Scope {
            account: &doc.account,
            region: &doc.region,
            stream: &doc.name,
        };
        match result {
            Ok(()) => {
                if doc.kind == Kind::S3 {
                    record_delivery(inner, &scope, "DeliveryToS3", batch, true);
                    inner
                        .meter
                        .record(&scope, "DeliveryToS3.ObjectCount", "Count", 1.0);
                }
                return true;
            }
            Err(error) if error == STOPPED => return false,
            Err(error) => {
                if doc.kind == Kind::S3 {
                    inner
                        .meter
                        .record(&scope, "DeliveryToS3.Success", "Count", 0.0);
                }
                tracing::warn!(stream = %doc.name, %error, "delivery failed; retrying");
                if wait_or_stop(stop, backoff).await {
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

const STOPPED: &str = "stopped";

/// `<prefix>.Success`, `.Records`, `.Bytes` and `.DataFreshness` (the age of the oldest record).
fn record_delivery(
    inner: &Inner,
    scope: &crate::metrics::Scope<'_>,
    prefix: &'static str,
    batch: &[ReadEntry],
    delivered: bool,
) {
    let meter = &inner.meter;
    let (success, records, bytes, freshness) = match prefix {
        "DeliveryToS3" => (
            "DeliveryToS3.Success",
            "DeliveryToS3.Records",
            "DeliveryToS3.Bytes",
            "DeliveryToS3.DataFreshness",
        ),
        _ => (
            "DeliveryToHttpEndpoint.Success",
            "DeliveryToHttpEndpoint.Records",
            "DeliveryToHttpEndpoint.Bytes",
            "DeliveryToHttpEndpoint.DataFreshness",
        ),
    };
    meter.record(scope, success, "Count", if delivered { 1.0 } else { 0.0 });
    if delivered {
        let total: usize = batch.iter().map(|r| r.payload.len()).sum();
        meter.record(scope, records, "Count", batch.len() as f64);
        meter.record(scope, bytes, "Bytes", total as f64);
        let oldest = oldest_of(batch);
        let age = now_ms().saturating_sub(oldest) as f64 / 1000.0;
        meter.record(scope, freshness, "Seconds", age);
    }
}

async fn deliver_http(
    inner: &Inner,
    doc: &StreamDoc,
    batch: &[ReadEntry],
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let all_data = doc.destination.get("S3BackupMode").and_then(Value::as_str) == Some("AllData");
    let scope = crate::metrics::Scope {
        account: &doc.account,
        region: &doc.region,
        stream: &doc.name,
    };
    match crate::httpdest::deliver(inner, doc, batch, stop).await {
        Outcome::Delivered => record_delivery(inner, &scope, "DeliveryToHttpEndpoint", batch, true),
        Outcome::Stopped => return Err(STOPPED.into()),
        Outcome::Failed {
            code,
            message,
            attempts,
        } => {
            record_delivery(inner, &scope, "DeliveryToHttpEndpoint", batch, false);
            let lines = crate::httpdest::error_records(batch, code, &message, attempts);
            write_object(
                inner,
                doc,
                doc.s3(),
                oldest_of(batch),
                lines,
                Some(ErrorOutputType::HttpEndpointFailed),
            )
            .await?;
        }
    }
    if all_data {
        write_records(inner, doc, doc.s3(), batch, None).await?;
    }
    Ok(())
}

/// Writes the batch's records, concatenated as sent, as one object.
async fn write_records(
    inner: &Inner,
    doc: &StreamDoc,
    s3: &Value,
    batch: &[ReadEntry],
    error_type: Option<ErrorOutputType>,
) -> Result<(), String> {
    let total: usize = batch.iter().map(|r| r.payload.len()).sum();
    let mut data = Vec::with_capacity(total);
    for record in batch {
        data.extend_from_slice(&record.payload);
    }
    write_object(inner, doc, s3, oldest_of(batch), data, error_type).await?;
    if s3.get("S3BackupMode").and_then(Value::as_str) == Some("Enabled") {
        if let Some(backup) = s3.get("S3BackupDescription") {
            let mut data = Vec::with_capacity(total);
            for record in batch {
                data.extend_from_slice(&record.payload);
            }
            write_object(inner, doc, backup, oldest_of(batch), data, None).await?;
        }
    }
    Ok(())
}

/// The key and body of one object.
fn object(
    doc: &StreamDoc,
    s3: &Value,
    oldest_ms: u64,
    data: Vec<u8>,
    error_type: Option<ErrorOutputType>,
) -> Result<(String, Vec<u8>, Option<&'static str>), String> {
    let text = |member: &str| s3.get(member).and_then(Value::as_str).unwrap_or("");
    let t = Civil::in_zone(oldest_ms, text("CustomTimeZone"));
    let compression = compression(s3);
    let (evaluated, compression) = match error_type {
        None => (prefix::evaluate(text("Prefix"), &t, None), compression),
        // Error records are JSON lines, stored uncompressed.
        Some(kind) => (
            prefix::evaluate(text("ErrorOutputPrefix"), &t, Some(kind)),
            crate::compress::Compression::Uncompressed,
        ),
    };
    let extension = match text("FileExtension") {
        "" => compression.extension(),
        given => given,
    };
    let name = prefix::suffix(&doc.name, doc.version, &t, extension);
    let body = compression
        .apply(&data, name.trim_end_matches(extension))
        .map_err(|error| format!("compress: {error}"))?;
    Ok((
        format!("{evaluated}{name}"),
        body,
        compression.content_encoding(),
    ))
}

async fn write_object(
    inner: &Inner,
    doc: &StreamDoc,
    s3: &Value,
    oldest_ms: u64,
    data: Vec<u8>,
    error_type: Option<ErrorOutputType>,
) -> Result<(), String> {
    let (key, body, encoding) = object(doc, s3, oldest_ms, data, error_type)?;
    let bucket =
        crate::s3::bucket_of_arn(s3.get("BucketARN").and_then(Value::as_str).unwrap_or(""));
    crate::s3::put_object_in_parts(
        &inner.client,
        inner.target(bucket),
        bucket,
        &key,
        Bytes::from(body),
        encoding,
        inner.part_bytes(),
    )
    .await?;
    tracing::debug!(stream = %doc.name, bucket, key, "delivered an object");
    Ok(())
}
