//! `queues`: fill an on-demand stream with a backlog (untimed) behind a queue that starts at
//! TRIM_HORIZON, report the server's RSS with the whole backlog unreceived, then drain it with N
//! competing consumers that each loop ReceiveQueueRecords (10 records) and
//! AcknowledgeQueueRecords.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{Connection, Endpoint, PreparedBody};
use crate::report::{progress, throughput_result, Latencies, ProgressTicker, RunMeters, Totals};
use crate::workloads::put::{drive_writes, StopRule, WriteShape};
use crate::workloads::{unique_stream_name, Common};

/// Options of the `queues` workload.
#[derive(Args, Clone, Debug)]
pub struct QueuesArgs {
    /// Records written before the drain (rounded up to whole batches).
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Competing consumers (one connection each).
    #[arg(long, default_value_t = 8)]
    pub consumers: usize,
    /// Records per PutRecords request during the fill.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Connections used for the fill.
    #[arg(long, default_value_t = 8)]
    pub fill_connections: usize,
    /// Stop draining after this many seconds (the result covers what was drained).
    #[arg(long, default_value_t = 120.0)]
    pub max_duration: f64,
}

fn rss_mb(pid: Option<u32>) -> Value {
    pid.and_then(|pid| crate::proc_stats::read(&pid.to_string()))
        .map_or(Value::Null, |s| {
            json!((s.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0)
        })
}

struct Drained {
    receive: Latencies,
    acknowledge: Latencies,
}

async fn consume(
    mut connection: Connection,
    queue: String,
    wanted: u64,
    deadline: Instant,
    totals: Arc<Totals>,
) -> anyhow::Result<Drained> {
    let mut drained = Drained {
        receive: Latencies::default(),
        acknowledge: Latencies::default(),
    };
    let receive = PreparedBody::new(
        serde_json::to_vec(&json!({"QueueARN": queue, "Limit": 10, "WaitTimeSeconds": 1}))
            .expect("JSON values serialize"),
    );
    let mut empty = 0;
    while Instant::now() < deadline && Totals::get(&totals.records) < wanted && empty < 3 {
        let sent = Instant::now();
        let reply = connection.call("ReceiveQueueRecords", &receive).await;
        drained.receive.record(sent.elapsed());
        Totals::add(&totals.requests, 1);
        let reply = match reply {
            Ok(reply) if reply.status == 200 => reply,
            _ => {
                Totals::add(&totals.errors, 1);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let parsed: Value = serde_json::from_slice(&reply.body).context("parse the receive")?;
        let records = parsed["QueueRecords"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if records.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let entries: Vec<Value> = records
            .iter()
            .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
            .collect();
        let bytes: u64 = records
            .iter()
            .map(|r| r["Data"].as_str().map_or(0, |d| d.len() as u64 * 3 / 4))
            .sum();
        let body = PreparedBody::new(
            serde_json::to_vec(&json!({"QueueARN": queue, "Entries": entries}))
                .expect("JSON values serialize"),
        );
        let sent = Instant::now();
        let reply = connection.call("AcknowledgeQueueRecords", &body).await;
        drained.acknowledge.record(sent.elapsed());
        Totals::add(&totals.requests, 1);
        match reply {
            Ok(reply) if reply.status == 200 => {
                let parsed: Value = serde_json::from_slice(&reply.body).context("parse the ack")?;
                let failed = parsed["Failed"].as_array().map_or(0, Vec::len) as u64;
                Totals::add(&totals.failed_records, failed);
                Totals::add(&totals.records, records.len() as u64 - failed);
                Totals::add(&totals.bytes, bytes);
            }
            _ => Totals::add(&totals.errors, 1),
        }
    }
    Ok(drained)
}

/// Runs `queues`.
pub async fn run(common: &Common, args: &QueuesArgs) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let mut control = Connection::new(Arc::clone(&endpoint));
    let stream = unique_stream_name("bench-queues");
    control
        .call_json(
            "CreateStream",
            &json!({"StreamName": stream, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        )
        .await
        .context("create the benchmark stream")?;
    control.wait_active(&stream).await?;
    let summary = control
        .call_json("DescribeStreamSummary", &json!({"StreamName": stream}))
        .await?;
    let stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rss_before = rss_mb(common.server_pid);
    let created = control
        .call_json(
            "CreateQueue",
            &json!({
                "QueueName": unique_stream_name("bench-queue"),
                "StreamConfigurationList": [{
                    "StreamARN": stream_arn,
                    "StartingPosition": {"Type": "TRIM_HORIZON"},
                }],
            }),
        )
        .await
        .context("create the queue")?;
    let queue = created["QueueDescription"]["QueueARN"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let shape = WriteShape {
        single: false,
        batch: args.batch,
        record_size: args.record_size,
    };
    let requests = args.records.div_ceil(args.batch.max(1) as u64);
    let fill_totals = Arc::new(Totals::default());
    let ticker = ProgressTicker::start("queues (fill)", Arc::clone(&fill_totals));
    let fill_started = Instant::now();
    let stop = StopRule::AfterRequests(Arc::new(AtomicU64::new(0)), requests);
    drive_writes(
        &endpoint,
        &stream,
        shape,
        args.fill_connections,
        stop,
        &fill_totals,
    )
    .await;
    drop(ticker);
    let stored = Totals::get(&fill_totals.records);
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    if stored == 0 {
        bail!("the fill stored no records");
    }
    let rss_backlog = rss_mb(common.server_pid);
    progress(&format!(
        "queues: filled {stored} records in {fill_seconds:.1} s (server RSS {rss_backlog} MB), \
         draining with {} consumers",
        args.consumers
    ));
    let totals = Arc::new(Totals::default());
    let meters = RunMeters::start(common.server_pid)?;
    let ticker = ProgressTicker::start("queues", Arc::clone(&totals));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.max_duration);
    let mut tasks = Vec::new();
    for _ in 0..args.consumers.max(1) {
        tasks.push(tokio::spawn(consume(
            Connection::new(Arc::clone(&endpoint)),
            queue.clone(),
            stored,
            deadline,
            Arc::clone(&totals),
        )));
    }
    let mut receive = Latencies::default();
    let mut acknowledge = Latencies::default();
    for task in tasks {
        let drained = task.await.context("consumer task")??;
        receive.merge(drained.receive);
        acknowledge.merge(drained.acknowledge);
    }
    let elapsed = started.elapsed();
    drop(ticker);
    let rss_drained = rss_mb(common.server_pid);
    let parameters = json!({
        "operation": "ReceiveQueueRecords+AcknowledgeQueueRecords",
        "record_size": args.record_size,
        "consumers": args.consumers,
        "filled_records": stored,
        "fill_seconds": (fill_seconds * 10.0).round() / 10.0,
        "server_rss_mb_empty_queue": rss_before,
        "server_rss_mb_with_backlog": rss_backlog,
        "server_rss_mb_after_drain": rss_drained,
    });
    let mut result = throughput_result(
        "queues",
        &endpoint.url,
        parameters,
        elapsed,
        &totals,
        acknowledge,
        meters,
    );
    result.insert("receive_latency".into(), receive.summary());
    let _ = control
        .call_json("DeleteQueue", &json!({"QueueARN": queue}))
        .await;
    control.delete_stream(&stream).await;
    Ok(result)
}
