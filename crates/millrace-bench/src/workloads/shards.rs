//! `shards`: create N streams of M shards each, and report the time it took and the server's memory afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{Connection, Endpoint};
use crate::proc_stats::{self, round3};
use crate::report::{progress, RunMeters};
use crate::workloads::{unique_stream_name, Common};

/// Options of the `shards` workload.
#[derive(Args, Clone, Debug)]
pub struct ShardsArgs {
    /// Number of streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Shards per stream.
    #[arg(long, default_value_t = 1000)]
    pub shards: u32,
    /// Concurrent CreateStream calls.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds to let the server settle before reading its idle RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Keep the streams afterwards.
    #[arg(long)]
    pub keep_streams: bool,
    /// After the idle reading, write one record to every shard (by ExplicitHashKey) and read the RSS again.
    #[arg(long)]
    pub touch: bool,
}

/// Writes one small record to every shard of every stream, 500 per PutRecords request.
async fn touch_every_shard(endpoint: &Arc<Endpoint>, names: &[String]) -> anyhow::Result<u64> {
    let mut connection = Connection::new(Arc::clone(endpoint));
    let mut written = 0;
    for name in names {
        let shards = connection.list_shards_with_start_keys(name).await?;
        for chunk in shards.chunks(500) {
            let records: Vec<Value> = chunk
                .iter()
                .map(|(_, start)| json!({"Data": "dG91Y2g=", "PartitionKey": "touch", "ExplicitHashKey": start}))
                .collect();
            let reply = connection
                .call_json(
                    "PutRecords",
                    &json!({"StreamName": name, "Records": records}),
                )
                .await?;
            let failed = reply["FailedRecordCount"].as_u64().unwrap_or(0);
            if failed > 0 {
                anyhow::bail!("{failed} records failed while touching the shards of {name}");
            }
            written += chunk.len() as u64;
        }
    }
    Ok(written)
}

/// Runs `shards`.
pub async fn run(common: &Common, args: &ShardsArgs) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let prefix = unique_stream_name("bench-shards");
    let names: Arc<Vec<String>> =
        Arc::new((0..args.streams).map(|i| format!("{prefix}-{i}")).collect());
    let rss_before = common
        .server_pid
        .and_then(|pid| proc_stats::read(&pid.to_string()));
    let meters = RunMeters::start(common.server_pid)?;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections.clamp(1, args.streams.max(1)) {
        let names = Arc::clone(&names);
        let next = Arc::clone(&next);
        let mut connection = Connection::new(Arc::clone(&endpoint));
        let shards = args.shards;
        tasks.push(tokio::spawn(async move {
            let mut latencies = crate::report::Latencies::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(index) else {
                    return anyhow::Ok(latencies);
                };
                let sent = Instant::now();
                connection.create_stream(name, shards).await?;
                latencies.record(sent.elapsed());
                progress(&format!(
                    "shards: stream {} of {} ACTIVE after {:.1} s",
                    index + 1,
                    names.len(),
                    sent.elapsed().as_secs_f64()
                ));
            }
        }));
    }
    let mut latencies = crate::report::Latencies::default();
    for task in tasks {
        latencies.merge(task.await??);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let total_shards = args.streams as u64 * u64::from(args.shards);
    let (server, client) = meters.finish(0);
    let rss_after = common
        .server_pid
        .and_then(|pid| proc_stats::read(&pid.to_string()));
    let mut result = Map::new();
    result.insert("workload".into(), "shards".into());
    result.insert("endpoint".into(), endpoint.url.clone().into());
    result.insert(
        "parameters".into(),
        json!({"streams": args.streams, "shards_per_stream": args.shards, "connections": args.connections}),
    );
    result.insert("total_shards".into(), total_shards.into());
    result.insert("duration_s".into(), round3(elapsed.as_secs_f64()).into());
    result.insert(
        "shards_per_s".into(),
        (total_shards as f64 / elapsed.as_secs_f64().max(1e-9))
            .round()
            .into(),
    );
    result.insert("create_stream_latency".into(), latencies.summary());
    result.insert(
        "server_rss_mb_before".into(),
        rss_before.map_or(Value::Null, |s| round3(s.rss_kib as f64 / 1024.0).into()),
    );
    result.insert(
        "server_rss_mb_idle_after".into(),
        rss_after.map_or(Value::Null, |s| round3(s.rss_kib as f64 / 1024.0).into()),
    );
    result.insert("server".into(), server);
    result.insert("client".into(), client);
    if args.touch {
        let touch_started = Instant::now();
        let touched = touch_every_shard(&endpoint, &names).await?;
        let touch_seconds = touch_started.elapsed().as_secs_f64();
        progress(&format!(
            "shards: wrote one record to each of {touched} shards in {touch_seconds:.1} s"
        ));
        tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
        let rss_touched = common
            .server_pid
            .and_then(|pid| proc_stats::read(&pid.to_string()));
        result.insert("touched_shards".into(), touched.into());
        result.insert("touch_seconds".into(), round3(touch_seconds).into());
        result.insert(
            "server_rss_mb_idle_after_touch".into(),
            rss_touched.map_or(Value::Null, |s| round3(s.rss_kib as f64 / 1024.0).into()),
        );
    }
    if !args.keep_streams {
        let mut connection = Connection::new(Arc::clone(&endpoint));
        for name in names.iter() {
            connection.delete_stream(name).await;
        }
    }
    Ok(result)
}
