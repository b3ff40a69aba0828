//! `get`: fill a stream (untimed), then drain every shard from TRIM_HORIZON with GetRecords, one connection per shard.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{Connection, Endpoint, PreparedBody};
use crate::report::{progress, throughput_result, Latencies, ProgressTicker, RunMeters, Totals};
use crate::workloads::put::{drive_writes, StopRule, WriteShape};
use crate::workloads::{unique_stream_name, Common, GetRecordsReply};

/// Options of the `get` workload.
#[derive(Args, Clone, Debug)]
pub struct GetArgs {
    /// Records written before the drain (rounded up to whole batches).
    #[arg(long, default_value_t = 500_000)]
    pub records: u64,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Shards of the stream; the drain uses one connection per shard.
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// Records per PutRecords request during the fill.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Connections used for the fill.
    #[arg(long, default_value_t = 8)]
    pub fill_connections: usize,
    /// The GetRecords `Limit`.
    #[arg(long, default_value_t = 10_000)]
    pub limit: u32,
    /// Give up draining after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub max_duration: f64,
    /// Drain this existing stream instead of creating and filling one.
    #[arg(long)]
    pub stream: Option<String>,
}

async fn drain_shard(
    mut connection: Connection,
    stream: String,
    shard: String,
    limit: u32,
    deadline: Instant,
    totals: Arc<Totals>,
) -> anyhow::Result<Latencies> {
    let mut latencies = Latencies::default();
    let mut iterator = connection
        .shard_iterator(&stream, &shard, "TRIM_HORIZON")
        .await?;
    let request_for = |iterator: &str| {
        PreparedBody::new(
            serde_json::to_vec(&json!({"ShardIterator": iterator, "Limit": limit}))
                .expect("JSON values serialize"),
        )
    };
    while Instant::now() < deadline {
        let body = request_for(&iterator);
        let sent = Instant::now();
        let reply = connection.call("GetRecords", &body).await;
        latencies.record(sent.elapsed());
        Totals::add(&totals.requests, 1);
        let reply = match reply {
            Ok(reply) if reply.status == 200 => reply,
            Ok(reply) => {
                Totals::add(&totals.errors, 1);
                tracing::debug!(error = ?reply.error_type(), %shard, "GetRecords failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(error) => {
                Totals::add(&totals.errors, 1);
                tracing::debug!(%error, %shard, "GetRecords failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let parsed: GetRecordsReply<'_> =
            serde_json::from_slice(&reply.body).context("parse the GetRecords reply")?;
        let bytes: u64 = parsed.records.iter().map(|r| r.data_len()).sum();
        Totals::add(&totals.records, parsed.records.len() as u64);
        Totals::add(&totals.bytes, bytes);
        let caught_up = parsed.records.is_empty() && parsed.millis_behind_latest.unwrap_or(0) == 0;
        match parsed.next_shard_iterator {
            Some(next) if !caught_up => iterator = next,
            _ => break,
        }
    }
    Ok(latencies)
}

/// Runs `get`.
pub async fn run(common: &Common, args: &GetArgs) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let mut control = Connection::new(Arc::clone(&endpoint));
    let (stream, created, filled) = match &args.stream {
        Some(name) => (name.clone(), false, None),
        None => {
            let name = unique_stream_name("bench-get");
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
            let shape = WriteShape {
                single: false,
                batch: args.batch,
                record_size: args.record_size,
            };
            let requests = args.records.div_ceil(args.batch.max(1) as u64);
            let fill_totals = Arc::new(Totals::default());
            let ticker = ProgressTicker::start("get (fill)", Arc::clone(&fill_totals));
            let fill_started = Instant::now();
            let stop = StopRule::AfterRequests(Arc::new(AtomicU64::new(0)), requests);
            drive_writes(
                &endpoint,
                &name,
                shape,
                args.fill_connections,
                stop,
                &fill_totals,
            )
            .await;
            drop(ticker);
            let stored = Totals::get(&fill_totals.records);
            let fill_seconds = fill_started.elapsed().as_secs_f64();
            progress(&format!(
                "get: filled {stored} records in {fill_seconds:.1} s, draining"
            ));
            if stored == 0 {
                bail!("the fill stored no records");
            }
            (name, true, Some((stored, fill_seconds)))
        }
    };
    let shards = control.list_shards(&stream).await?;
    let totals = Arc::new(Totals::default());
    let meters = RunMeters::start(common.server_pid)?;
    let ticker = ProgressTicker::start("get", Arc::clone(&totals));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.max_duration);
    let mut tasks = Vec::new();
    for shard in &shards {
        tasks.push(tokio::spawn(drain_shard(
            Connection::new(Arc::clone(&endpoint)),
            stream.clone(),
            shard.clone(),
            args.limit,
            deadline,
            Arc::clone(&totals),
        )));
    }
    let mut latencies = Latencies::default();
    for task in tasks {
        latencies.merge(task.await.context("drain task")??);
    }
    let elapsed = started.elapsed();
    drop(ticker);
    let read = Totals::get(&totals.records);
    if let Some((stored, _)) = filled {
        if read != stored {
            tracing::warn!(read, stored, "the drain did not read every stored record");
        }
    }
    let parameters = json!({
        "operation": "GetRecords",
        "record_size": args.record_size,
        "shards": shards.len(),
        "limit": args.limit,
        "stream": stream,
        "filled_records": filled.map(|(stored, _)| stored),
        "fill_seconds": filled.map(|(_, seconds)| seconds),
    });
    let result = throughput_result(
        "get",
        &endpoint.url,
        parameters,
        elapsed,
        &totals,
        latencies,
        meters,
    );
    if created {
        control.delete_stream(&stream).await;
    }
    Ok(result)
}
