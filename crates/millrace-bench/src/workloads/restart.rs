//! `restart`: start a server, fill it with N GB, kill it with SIGKILL, start it again on the same data, and time
//! how long until it answers at all and until it serves the stored records.
//!
//! The server command follows `--` and must listen on the address of `--endpoint`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{Connection, Endpoint, PreparedBody};
use crate::proc_stats::{self, round3};
use crate::report::{progress, ProgressTicker, Totals};
use crate::workloads::put::{drive_writes, StopRule, WriteShape};
use crate::workloads::{unique_stream_name, Common, GetRecordsReply};

/// Options of the `restart` workload.
#[derive(Args, Clone, Debug)]
pub struct RestartArgs {
    /// Payload to store before the kill, in GB (10^9 bytes).
    #[arg(long, default_value_t = 1.0)]
    pub data_gb: f64,
    /// Payload bytes per record during the fill.
    #[arg(long, default_value_t = 50_000)]
    pub record_size: usize,
    /// Records per PutRecords request during the fill.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Fill connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Shards of the stream.
    #[arg(long, default_value_t = 8)]
    pub shards: u32,
    /// Append the server's stderr to this file (otherwise it is discarded).
    #[arg(long)]
    pub server_log: Option<PathBuf>,
    /// Give up waiting for the restarted server after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// The server command line.
    #[arg(last = true, required = true)]
    pub server_command: Vec<String>,
}

fn spawn_server(args: &RestartArgs) -> anyhow::Result<tokio::process::Child> {
    let (program, rest) = args
        .server_command
        .split_first()
        .context("empty server command")?;
    let stderr = match &args.server_log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    tokio::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {program}"))
}

/// Polls until any HTTP answer arrives; returns when it did.
async fn wait_for_answer(endpoint: &Arc<Endpoint>, timeout: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    let probe = PreparedBody::new(b"{}".to_vec());
    loop {
        let mut connection = Connection::new(Arc::clone(endpoint));
        if connection.call("ListStreams", &probe).await.is_ok() {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("the server did not answer within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Returns true once the stream is described and its first shard returns a stored record.
async fn serves_records(connection: &mut Connection, stream: &str, shard: &str) -> bool {
    let attempt = async {
        connection
            .call_json("DescribeStreamSummary", &json!({"StreamName": stream}))
            .await?;
        let iterator = connection
            .shard_iterator(stream, shard, "TRIM_HORIZON")
            .await?;
        let body = PreparedBody::new(serde_json::to_vec(
            &json!({"ShardIterator": iterator, "Limit": 1}),
        )?);
        let reply = connection.call("GetRecords", &body).await?;
        let parsed: GetRecordsReply<'_> = serde_json::from_slice(&reply.body)?;
        anyhow::Ok(!parsed.records.is_empty())
    };
    attempt.await.unwrap_or(false)
}

/// Runs `restart`.
pub async fn run(common: &Common, args: &RestartArgs) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut server = spawn_server(args)?;
    wait_for_answer(&endpoint, timeout).await?;
    let mut control = Connection::new(Arc::clone(&endpoint));
    let stream = unique_stream_name("bench-restart");
    control.create_stream(&stream, args.shards).await?;
    let shards = control.list_shards(&stream).await?;
    let first_shard = shards.first().context("stream without shards")?.clone();

    let per_request = (args.batch * args.record_size) as f64;
    let requests = ((args.data_gb * 1e9) / per_request).ceil().max(1.0) as u64;
    let totals = Arc::new(Totals::default());
    let ticker = ProgressTicker::start("restart (fill)", Arc::clone(&totals));
    let fill_started = Instant::now();
    let shape = WriteShape {
        single: false,
        batch: args.batch,
        record_size: args.record_size,
    };
    let stop = StopRule::AfterRequests(Arc::new(AtomicU64::new(0)), requests);
    drive_writes(&endpoint, &stream, shape, args.connections, stop, &totals).await;
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    drop(ticker);
    let stored_bytes = Totals::get(&totals.bytes);
    let stored_records = Totals::get(&totals.records);
    progress(&format!(
        "restart: stored {:.2} GB in {fill_seconds:.1} s; killing the server with SIGKILL",
        stored_bytes as f64 / 1e9
    ));
    let before_kill = server
        .id()
        .and_then(|pid| proc_stats::read(&pid.to_string()));
    server.start_kill().context("kill the server")?;
    server.wait().await.context("reap the killed server")?;

    let restarted_at = Instant::now();
    let mut server = spawn_server(args)?;
    let first_answer = wait_for_answer(&endpoint, timeout).await?;
    let deadline = restarted_at + timeout;
    let mut connection = Connection::new(Arc::clone(&endpoint));
    while !serves_records(&mut connection, &stream, &first_shard).await {
        if Instant::now() > deadline {
            bail!("the restarted server did not serve records within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let serving = restarted_at.elapsed();
    progress(&format!(
        "restart: answering after {:.3} s, serving records after {:.3} s",
        (first_answer - restarted_at).as_secs_f64(),
        serving.as_secs_f64()
    ));
    let after_restart = server
        .id()
        .and_then(|pid| proc_stats::read(&pid.to_string()));
    let _ = server.start_kill();
    let _ = server.wait().await;

    let mut result = Map::new();
    result.insert("workload".into(), "restart".into());
    result.insert("endpoint".into(), endpoint.url.clone().into());
    result.insert(
        "parameters".into(),
        json!({
            "data_gb": args.data_gb,
            "record_size": args.record_size,
            "records_per_request": args.batch,
            "connections": args.connections,
            "shards": args.shards,
            "server_command": args.server_command.join(" "),
        }),
    );
    result.insert("stored_bytes".into(), stored_bytes.into());
    result.insert("stored_records".into(), stored_records.into());
    result.insert("fill_seconds".into(), round3(fill_seconds).into());
    result.insert(
        "records_per_s".into(),
        (stored_records as f64 / fill_seconds.max(1e-9))
            .round()
            .into(),
    );
    result.insert(
        "mb_per_s".into(),
        round3(stored_bytes as f64 / fill_seconds.max(1e-9) / 1e6).into(),
    );
    result.insert(
        "time_to_first_answer_s".into(),
        round3((first_answer - restarted_at).as_secs_f64()).into(),
    );
    result.insert(
        "time_to_serving_s".into(),
        round3(serving.as_secs_f64()).into(),
    );
    result.insert(
        "server_rss_mb_before_kill".into(),
        before_kill.map_or(Value::Null, |s| round3(s.rss_kib as f64 / 1024.0).into()),
    );
    result.insert(
        "server_after_restart".into(),
        after_restart.map_or(Value::Null, |s| {
            json!({
                "cpu_seconds": round3(s.cpu_seconds),
                "rss_mb": round3(s.rss_kib as f64 / 1024.0),
                "peak_rss_mb_lifetime": round3(s.peak_rss_kib as f64 / 1024.0),
            })
        }),
    );
    Ok(result)
}
