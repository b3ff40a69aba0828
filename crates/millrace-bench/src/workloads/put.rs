//! `put` (PutRecords batches) and `put-single` (PutRecord): write throughput over keep-alive connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::bodies;
use crate::client::{Connection, Endpoint, PreparedBody};
use crate::report::{throughput_result, Latencies, ProgressTicker, RunMeters, Totals};
use crate::workloads::{unique_stream_name, Common};

/// Options of the `put` and `put-single` workloads.
#[derive(Args, Clone, Debug)]
pub struct PutArgs {
    /// Records per PutRecords request (ignored by put-single).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Concurrent keep-alive connections, one task each.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Shards of the benchmark stream.
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Use this existing stream instead of creating (and afterwards deleting) a fresh one.
    #[arg(long)]
    pub stream: Option<String>,
    /// Keep the created stream after the run.
    #[arg(long)]
    pub keep_stream: bool,
}

/// When the senders stop.
#[derive(Clone)]
pub enum StopRule {
    /// Stop sending at this instant.
    At(Instant),
    /// Stop once this many requests have been started in total.
    AfterRequests(Arc<AtomicU64>, u64),
}

impl StopRule {
    fn claim_next(&self) -> bool {
        match self {
            StopRule::At(deadline) => Instant::now() < *deadline,
            StopRule::AfterRequests(started, limit) => {
                started.fetch_add(1, Ordering::Relaxed) < *limit
            }
        }
    }
}

/// What one kind of write request looks like.
#[derive(Clone, Copy)]
pub struct WriteShape {
    /// `true` for PutRecord, `false` for PutRecords.
    pub single: bool,
    pub batch: usize,
    pub record_size: usize,
}

impl WriteShape {
    fn operation(self) -> &'static str {
        if self.single {
            "PutRecord"
        } else {
            "PutRecords"
        }
    }

    fn records_per_request(self) -> usize {
        if self.single {
            1
        } else {
            self.batch
        }
    }

    /// A few distinct bodies per connection, each hashed once for SigV4 and then reused.
    fn bodies(self, stream: &str, count: usize) -> Vec<PreparedBody> {
        let mut rng = rand::thread_rng();
        (0..count)
            .map(|_| {
                let data = bodies::random_data_base64(&mut rng, self.record_size);
                let raw = if self.single {
                    bodies::put_record(stream, &bodies::partition_key(&mut rng), &data)
                } else {
                    let mut keys = rand::thread_rng();
                    bodies::put_records(stream, self.batch, &data, |_| {
                        bodies::partition_key(&mut keys)
                    })
                };
                PreparedBody::new(raw)
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct PutRecordsReply {
    #[serde(rename = "FailedRecordCount", default)]
    failed_record_count: u64,
}

/// Sends writes on `connections` connections until `stop` says so; returns the merged request latencies.
pub async fn drive_writes(
    endpoint: &Arc<Endpoint>,
    stream: &str,
    shape: WriteShape,
    connections: usize,
    stop: StopRule,
    totals: &Arc<Totals>,
) -> Latencies {
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let bodies = shape.bodies(stream, 4);
        let mut connection = Connection::new(Arc::clone(endpoint));
        let stop = stop.clone();
        let totals = Arc::clone(totals);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let per_request = shape.records_per_request() as u64;
            let mut next = 0;
            while stop.claim_next() {
                let body = &bodies[next % bodies.len()];
                next += 1;
                let sent = Instant::now();
                let reply = connection.call(shape.operation(), body).await;
                latencies.record(sent.elapsed());
                Totals::add(&totals.requests, 1);
                let reply = match reply {
                    Ok(reply) if reply.status == 200 => reply,
                    Ok(reply) => {
                        Totals::add(&totals.errors, 1);
                        Totals::add(&totals.failed_records, per_request);
                        tracing::debug!(error = ?reply.error_type(), "write failed");
                        continue;
                    }
                    Err(error) => {
                        Totals::add(&totals.errors, 1);
                        Totals::add(&totals.failed_records, per_request);
                        tracing::debug!(%error, "write failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let failed = if shape.single {
                    0
                } else {
                    serde_json::from_slice::<PutRecordsReply>(&reply.body)
                        .map(|r| r.failed_record_count.min(per_request))
                        .unwrap_or(per_request)
                };
                let stored = per_request - failed;
                Totals::add(&totals.records, stored);
                Totals::add(&totals.bytes, stored * shape.record_size as u64);
                Totals::add(&totals.failed_records, failed);
            }
            latencies
        }));
    }
    let mut merged = Latencies::default();
    for task in tasks {
        if let Ok(latencies) = task.await {
            merged.merge(latencies);
        }
    }
    merged
}

/// Runs `put` (or `put-single` when `single`).
pub async fn run(
    common: &Common,
    args: &PutArgs,
    single: bool,
) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let mut control = Connection::new(Arc::clone(&endpoint));
    let (stream, created) = match &args.stream {
        Some(name) => (name.clone(), false),
        None => {
            let name = unique_stream_name("bench-put");
            control
                .create_stream(&name, args.shards)
                .await
                .context("create the benchmark stream")?;
            if let Some(key) = &common.encrypt_key {
                control
                    .encrypt_stream(&name, key)
                    .await
                    .context("encrypt the benchmark stream")?;
            }
            (name, true)
        }
    };
    let shape = WriteShape {
        single,
        batch: args.batch,
        record_size: args.record_size,
    };
    let label = if single { "put-single" } else { "put" };
    let totals = Arc::new(Totals::default());
    let meters = RunMeters::start(common.server_pid)?;
    let ticker = ProgressTicker::start(label, Arc::clone(&totals));
    let started = Instant::now();
    let stop = StopRule::At(started + Duration::from_secs_f64(args.duration));
    let latencies = drive_writes(&endpoint, &stream, shape, args.connections, stop, &totals).await;
    let elapsed = started.elapsed();
    drop(ticker);
    let parameters = json!({
        "operation": shape.operation(),
        "records_per_request": shape.records_per_request(),
        "record_size": args.record_size,
        "connections": args.connections,
        "shards": args.shards,
        "duration_s": args.duration,
        "stream": stream,
    });
    let result = throughput_result(
        label,
        &endpoint.url,
        parameters,
        elapsed,
        &totals,
        latencies,
        meters,
    );
    if created && !args.keep_stream {
        control.delete_stream(&stream).await;
    }
    Ok(result)
}
