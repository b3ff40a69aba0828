//! The commands for people: `put`, `tail` and `streams`, clients of any Kinesis endpoint
//! through `millrace-producer` (credentials and region as the AWS CLI finds them).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use millrace_producer::{
    deaggregate, ClientConfig, KinesisClient, Producer, ProducerConfig, ShardInfo,
};
use serde_json::{json, Value};

/// Where to send requests: the AWS CLI's flags.
#[derive(Args, Clone)]
pub struct Endpoint {
    /// The endpoint, e.g. `http://127.0.0.1:4567` (default: `AWS_ENDPOINT_URL_KINESIS`,
    /// `AWS_ENDPOINT_URL`, then AWS's regional endpoint).
    #[arg(long, global = true)]
    endpoint_url: Option<String>,
    #[arg(long, global = true)]
    region: Option<String>,
    /// A profile of `~/.aws/credentials` and `~/.aws/config`.
    #[arg(long, global = true)]
    profile: Option<String>,
}

impl Endpoint {
    fn client(&self) -> anyhow::Result<KinesisClient> {
        let config = ClientConfig::from_environment(
            self.endpoint_url.as_deref(),
            self.region.as_deref(),
            self.profile.as_deref(),
        )?;
        Ok(KinesisClient::new(config, 24)?)
    }
}

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The stream to write to.
    #[arg(long)]
    stream: String,
    /// Partition key of every record (default: a random key per record).
    #[arg(long, conflicts_with = "key_field")]
    partition_key: Option<String>,
    /// Lines are JSON objects; this field's value is the partition key.
    #[arg(long)]
    key_field: Option<String>,
    /// Send each record alone instead of aggregating (KPL format) per shard.
    #[arg(long)]
    no_aggregation: bool,
    /// Read the records from this file, one per line (with a progress bar on a terminal).
    #[arg(long, conflicts_with = "records")]
    file: Option<std::path::PathBuf>,
    /// Records; without any, one record per line of standard input (or of `--file`).
    records: Vec<String>,
}

/// A one-line progress bar on standard error: bytes of the input read, and records.
fn progress_bar(done: u64, total: u64, records: u64) -> String {
    const WIDTH: u64 = 30;
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((fraction * WIDTH as f64) as u64).min(WIDTH);
    format!(
        "\r[{}{}] {:3.0}% {:.1}/{:.1} MB, {records} records",
        "#".repeat(filled as usize),
        ".".repeat((WIDTH - filled) as usize),
        fraction * 100.0,
        done as f64 / 1e6,
        total as f64 / 1e6,
    )
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Hex,
}

#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// The stream to read.
    stream: String,
    /// `latest`, `trim-horizon`, `at-sequence:N`, `after-sequence:N` or `at-timestamp:SECONDS`.
    #[arg(long, default_value = "latest")]
    from: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Keep reading for new records (otherwise stop when every shard is caught up).
    #[arg(long)]
    follow: bool,
}

#[derive(Subcommand)]
pub enum StreamsCommand {
    /// Stream names.
    List,
    /// A stream's summary and shards.
    Describe {
        stream: String,
    },
    /// Create a provisioned stream.
    Create {
        stream: String,
        #[arg(long, default_value_t = 1)]
        shards: u32,
    },
    Delete {
        stream: String,
    },
    /// UpdateShardCount with uniform scaling.
    Scale {
        stream: String,
        shards: u32,
    },
}

#[derive(Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: StreamsCommand,
}

pub async fn put(args: PutArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    let config = ProducerConfig {
        aggregation_enabled: !args.no_aggregation,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    let (lines, total): (
        Box<dyn Iterator<Item = std::io::Result<String>>>,
        Option<u64>,
    ) = match &args.file {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            (Box::new(std::io::BufReader::new(file).lines()), Some(size))
        }
        None if args.records.is_empty() => (Box::new(std::io::stdin().lock().lines()), None),
        None => (Box::new(args.records.clone().into_iter().map(Ok)), None),
    };
    let mut receivers = Vec::new();
    let mut counter = 0u64;
    let mut bytes_read = 0u64;
    let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for line in lines {
        let line = line.context("read the records")?;
        bytes_read += line.len() as u64 + 1;
        let key = match (&args.partition_key, &args.key_field) {
            (Some(key), _) => key.clone(),
            (None, Some(field)) => {
                let value: Value = serde_json::from_str(&line)
                    .with_context(|| format!("line {} is not a JSON object", counter + 1))?;
                match &value[field.as_str()] {
                    Value::String(s) => s.clone(),
                    Value::Null => bail!("line {} has no field {field:?}", counter + 1),
                    other => other.to_string(),
                }
            }
            (None, None) => format!("{:032x}", rand::random::<u128>()),
        };
        receivers.push(
            producer
                .submit(&args.stream, &key, line.as_bytes(), None)
                .await?,
        );
        counter += 1;
        if show_progress && counter.is_multiple_of(10_000) {
            match total {
                Some(total) => eprint!("{}", progress_bar(bytes_read.min(total), total, counter)),
                None => eprint!("\rput {counter} records…"),
            }
        }
    }
    producer.flush().await;
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut first_error = None;
    for receiver in receivers {
        match receiver.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(_) => failed += 1,
        }
    }
    let metrics = producer.metrics();
    producer.shutdown().await;
    if show_progress {
        match total {
            Some(total) => eprintln!("{}", progress_bar(total, total, counter)),
            None => eprint!("\r"),
        }
    }
    eprintln!(
        "put {ok} records in {} Kinesis records{}",
        metrics.kinesis_records_put,
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    if let Some(error) = first_error {
        bail!("{failed} records were not put: {error}");
    }
    Ok(())
}

fn iterator_request(stream: &str, shard: &str, from: &str) -> anyhow::Result<Value> {
    let mut request = json!({ "StreamName": stream, "ShardId": shard });
    match from.split_once(':') {
        None if from == "latest" => request["ShardIteratorType"] = json!("LATEST"),
        None if from == "trim-horizon" => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
        Some(("at-sequence", n)) => {
            request["ShardIteratorType"] = json!("AT_SEQUENCE_NUMBER");
            request["StartingSequenceNumber"] = json!(n);
        }
        Some(("after-sequence", n)) => {
            request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
            request["StartingSequenceNumber"] = json!(n);
        }
        Some(("at-timestamp", t)) => {
            let secs: f64 = t.parse().context("--from at-timestamp:SECONDS")?;
            request["ShardIteratorType"] = json!("AT_TIMESTAMP");
            request["Timestamp"] = json!(secs);
        }
        _ => bail!(
            "--from must be latest, trim-horizon, at-sequence:N, after-sequence:N or at-timestamp:SECONDS"
        ),
    }
    Ok(request)
}

fn print_record(
    out: &mut impl Write,
    format: Format,
    shard: &str,
    record: &millrace_producer::UserRecord,
) -> std::io::Result<()> {
    match format {
        Format::Text => {
            out.write_all(&record.data)?;
            out.write_all(b"\n")
        }
        Format::Hex => writeln!(out, "{}", hex_string(&record.data)),
        Format::Json => {
            let line = json!({
                "ShardId": shard,
                "PartitionKey": record.partition_key,
                "SequenceNumber": record.sequence_number,
                "SubSequenceNumber": record.sub_sequence_number,
                "Data": match std::str::from_utf8(&record.data) {
                    Ok(text) => json!(text),
                    Err(_) => json!({
                        "base64": base64::engine::general_purpose::STANDARD.encode(&record.data)
                    }),
                },
            });
            writeln!(out, "{line}")
        }
    }
}

fn hex_string(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every shard, a child only after all its parents are finished; de-aggregates.
pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    let mut shards: HashMap<String, ShardInfo> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    let mut caught_up: HashSet<String> = HashSet::new();
    let stdout = std::io::stdout();
    let mut first = true;
    loop {
        for shard in client.list_shards(&args.stream).await? {
            shards.entry(shard.shard_id.clone()).or_insert(shard);
        }
        // Shards to read: not finished, parents finished (or unknown, i.e. trimmed).
        let ready: Vec<String> = {
            let mut ids: Vec<&ShardInfo> = shards
                .values()
                .filter(|s| !finished.contains(&s.shard_id))
                .filter(|s| {
                    s.parent_shard_id
                        .iter()
                        .chain(s.adjacent_parent_shard_id.iter())
                        .all(|p| finished.contains(p) || !shards.contains_key(p))
                })
                .collect();
            ids.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
            ids.into_iter().map(|s| s.shard_id.clone()).collect()
        };
        for shard in ready {
            if !iterators.contains_key(&shard) {
                // A child of a shard we read starts at its beginning; the others at --from.
                let has_read_parent = shards[&shard]
                    .parent_shard_id
                    .as_ref()
                    .is_some_and(|p| finished.contains(p));
                let from = if has_read_parent || !first {
                    "trim-horizon"
                } else {
                    args.from.as_str()
                };
                let reply = client
                    .call(
                        "GetShardIterator",
                        &iterator_request(&args.stream, &shard, from)?,
                    )
                    .await?;
                iterators.insert(
                    shard.clone(),
                    reply["ShardIterator"].as_str().map(str::to_owned),
                );
            }
            let Some(Some(iterator)) = iterators.get(&shard).cloned() else {
                finished.insert(shard);
                continue;
            };
            let page = match client
                .call(
                    "GetRecords",
                    &json!({ "ShardIterator": iterator, "Limit": 10000 }),
                )
                .await
            {
                Ok(page) => page,
                Err(e) if e.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let records = page["Records"].as_array().cloned().unwrap_or_default();
            {
                let mut out = stdout.lock();
                for record in &records {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(record["Data"].as_str().unwrap_or_default())
                        .context("record data is not base64")?;
                    let users = deaggregate(
                        record["PartitionKey"].as_str().unwrap_or_default(),
                        None,
                        record["SequenceNumber"].as_str().unwrap_or_default(),
                        &data,
                    );
                    match users {
                        Ok(users) => {
                            for user in &users {
                                print_record(&mut out, args.format, &shard, user)?;
                            }
                        }
                        Err(e) => eprintln!(
                            "record {} in {shard}: {e}",
                            record["SequenceNumber"].as_str().unwrap_or("?")
                        ),
                    }
                }
                out.flush()?;
            }
            let next = page["NextShardIterator"].as_str().map(str::to_owned);
            if next.is_none() {
                finished.insert(shard.clone());
            } else if records.is_empty() && page["MillisBehindLatest"].as_u64() == Some(0) {
                caught_up.insert(shard.clone());
            } else {
                caught_up.remove(&shard);
            }
            iterators.insert(shard, next);
        }
        first = false;
        let open_left = shards
            .keys()
            .filter(|id| !finished.contains(*id))
            .all(|id| caught_up.contains(id));
        if open_left && !args.follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(if open_left { 500 } else { 50 })).await;
    }
}

pub async fn streams(args: StreamsArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client()?;
    match args.command {
        StreamsCommand::List => {
            let mut token: Option<String> = None;
            loop {
                let request = match &token {
                    Some(t) => json!({ "NextToken": t }),
                    None => json!({}),
                };
                let reply = client.call("ListStreams", &request).await?;
                for name in reply["StreamNames"].as_array().into_iter().flatten() {
                    println!("{}", name.as_str().unwrap_or_default());
                }
                match reply["NextToken"].as_str() {
                    Some(t) if reply["HasMoreStreams"].as_bool() == Some(true) => {
                        token = Some(t.to_owned())
                    }
                    _ => break,
                }
            }
        }
        StreamsCommand::Describe { stream } => {
            let summary = client
                .call("DescribeStreamSummary", &json!({ "StreamName": stream }))
                .await?;
            let s = &summary["StreamDescriptionSummary"];
            println!(
                "{}  {}  {} open shards  retention {} h  {}",
                s["StreamName"].as_str().unwrap_or_default(),
                s["StreamStatus"].as_str().unwrap_or_default(),
                s["OpenShardCount"],
                s["RetentionPeriodHours"],
                s["StreamARN"].as_str().unwrap_or_default()
            );
            for shard in client.list_shards(&stream).await? {
                println!(
                    "  {}  {}  {}..{}{}",
                    shard.shard_id,
                    if shard.open { "open  " } else { "closed" },
                    shard.starting_hash_key,
                    shard.ending_hash_key,
                    match (&shard.parent_shard_id, &shard.adjacent_parent_shard_id) {
                        (Some(p), Some(a)) => format!("  from {p} + {a}"),
                        (Some(p), None) => format!("  from {p}"),
                        _ => String::new(),
                    }
                );
            }
        }
        StreamsCommand::Create { stream, shards } => {
            client
                .call(
                    "CreateStream",
                    &json!({ "StreamName": stream, "ShardCount": shards }),
                )
                .await?;
            eprintln!("created {stream} with {shards} shards");
        }
        StreamsCommand::Delete { stream } => {
            client
                .call("DeleteStream", &json!({ "StreamName": stream }))
                .await?;
            eprintln!("deleted {stream}");
        }
        StreamsCommand::Scale { stream, shards } => {
            client
                .call(
                    "UpdateShardCount",
                    &json!({
                        "StreamName": stream,
                        "TargetShardCount": shards,
                        "ScalingType": "UNIFORM_SCALING"
                    }),
                )
                .await?;
            eprintln!("scaling {stream} to {shards} shards");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bars() {
        assert_eq!(
            progress_bar(5_000_000, 10_000_000, 7),
            "\r[###############...............]  50% 5.0/10.0 MB, 7 records"
        );
        assert!(progress_bar(0, 0, 0).contains("100%"));
    }
}
