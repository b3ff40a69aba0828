//! `millrace kcl --properties app.properties`: a drop-in for the Java MultiLangDaemon. It reads
//! the daemon's `.properties` keys, runs a `millrace-consumer` worker, and speaks the
//! multi-language protocol (JSON lines on stdin/stdout) to one child process per shard lease.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use millrace_consumer::{
    AwsClient, BoxFuture, Checkpointer, ClientConfig, InitialPosition, InitializeInput,
    ProcessRecordsInput, ProcessorError, ProcessorFactory, RecordProcessor, Retrieval, Worker,
    WorkerConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Keys the Java daemon knows that this daemon accepts without acting on them.
const ACCEPTED_IGNORED: &[&str] = &[
    "AwsCredentialsProvider",
    "AWSCredentialsProvider",
    "awsCredentialsProvider",
    "AWSCredentialsProviderDynamoDB",
    "AWSCredentialsProviderCloudWatch",
    "processingLanguage",
    "cloudWatchEndpoint",
    "metricsLevel",
    "metricsEnabledDimensions",
    "parentShardPollIntervalMillis",
    "cleanupLeasesUponShardCompletion",
    "taskBackoffTimeMillis",
    "validateSequenceNumberBeforeCheckpointing",
    "shutdownGraceMillis",
    "maxActiveThreads",
];

/// Parses Java `.properties` text: `key = value`, `key: value` or `key value`; `#` and `!`
/// comments; a trailing backslash continues a line.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry
            .find(['=', ':'])
            .or_else(|| entry.find(char::is_whitespace));
        let (key, value) = match split {
            Some(at) => (&entry[..at], &entry[at + 1..]),
            None => (entry.as_str(), ""),
        };
        out.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    out
}

pub struct DaemonConfig {
    pub worker: WorkerConfig,
    pub command: Vec<String>,
    pub kinesis: ClientConfig,
    pub dynamodb: ClientConfig,
    pub timeout: Option<Duration>,
}

fn millis(
    properties: &BTreeMap<String, String>,
    key: &str,
    default: u64,
) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(number(properties, key, default)?))
}

fn number(properties: &BTreeMap<String, String>, key: &str, default: u64) -> anyhow::Result<u64> {
    match properties.get(key) {
        Some(text) => text
            .parse()
            .with_context(|| format!("read {key} = {text:?} as a number")),
        None => Ok(default),
    }
}

/// Turns the properties into the daemon's configuration; unknown keys are warned about.
pub fn daemon_config(
    properties: &BTreeMap<String, String>,
    base_dir: &Path,
) -> anyhow::Result<DaemonConfig> {
    const KNOWN: &[&str] = &[
        "executableName",
        "streamName",
        "streamArn",
        "applicationName",
        "tableName",
        "regionName",
        "kinesisEndpoint",
        "dynamoDBEndpoint",
        "dynamoDbEndpoint",
        "initialPositionInStream",
        "initialPositionInStreamExtended",
        "workerId",
        "failoverTimeMillis",
        "shardSyncIntervalMillis",
        "maxRecords",
        "idleTimeBetweenReadsInMillis",
        "retrievalMode",
        "maxLeasesForWorker",
        "maxLeasesToStealAtOneTime",
        "callProcessRecordsEvenForEmptyRecordList",
        "timeoutInSeconds",
    ];
    for key in properties.keys() {
        if !KNOWN.contains(&key.as_str()) && !ACCEPTED_IGNORED.contains(&key.as_str()) {
            tracing::warn!(key = %key, "unknown property ignored");
        }
    }
    let Some(executable) = properties.get("executableName") else {
        bail!("read executableName: the properties have none");
    };
    let mut command: Vec<String> = executable.split_whitespace().map(str::to_owned).collect();
    if let Some(first) = command.first_mut() {
        let beside = base_dir.join(&*first);
        if !Path::new(first.as_str()).is_absolute() && beside.exists() {
            *first = beside.to_string_lossy().into_owned();
        }
    }
    let stream_name = match (properties.get("streamName"), properties.get("streamArn")) {
        (Some(name), _) => name.clone(),
        (None, Some(arn)) => arn.rsplit('/').next().unwrap_or(arn).to_owned(),
        (None, None) => bail!("read streamName: the properties name no stream"),
    };
    let Some(application) = properties.get("applicationName") else {
        bail!("read applicationName: the properties have none");
    };
    // Credentials as the AWS SDKs find them: the environment, then the profile (AWS_PROFILE or
    // `default`) of ~/.aws/credentials and ~/.aws/config; the region from regionName or there.
    let found = millrace_client::credentials::resolve(None).map_err(anyhow::Error::msg)?;
    let region = properties
        .get("regionName")
        .cloned()
        .or(found.region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = |key: &[&str], service: &millrace_client::Service| ClientConfig {
        endpoint: key
            .iter()
            .find_map(|k| properties.get(*k).cloned())
            .or_else(|| millrace_client::env_endpoint(service))
            .unwrap_or_else(|| millrace_client::default_endpoint(service, &region)),
        region: region.clone(),
        credentials: found.credentials.clone(),
        request_timeout: Duration::from_secs(30),
    };
    let kinesis = endpoint(&["kinesisEndpoint"], &millrace_client::KINESIS);
    let dynamodb = endpoint(
        &["dynamoDBEndpoint", "dynamoDbEndpoint"],
        &millrace_client::DYNAMODB,
    );
    let initial_position = match properties
        .get("initialPositionInStream")
        .map(String::as_str)
        .unwrap_or("LATEST")
    {
        "TRIM_HORIZON" => InitialPosition::TrimHorizon,
        "LATEST" => InitialPosition::Latest,
        "AT_TIMESTAMP" => {
            let millis = number(properties, "initialPositionInStreamExtended", 0)?;
            InitialPosition::AtTimestamp(millis as f64 / 1000.0)
        }
        other => bail!(
            "read initialPositionInStream: {other:?} is not TRIM_HORIZON, LATEST or AT_TIMESTAMP"
        ),
    };
    // The Java daemon's default is enhanced fan-out; a consumer named after the application.
    let retrieval = match properties
        .get("retrievalMode")
        .map(|m| m.to_ascii_uppercase())
    {
        Some(mode) if mode == "POLLING" => Retrieval::Polling,
        Some(mode) if mode == "FANOUT" => Retrieval::FanOut {
            consumer_name: application.clone(),
        },
        Some(mode) => bail!("read retrievalMode: {mode:?} is not FANOUT or POLLING"),
        None => Retrieval::FanOut {
            consumer_name: application.clone(),
        },
    };
    let worker_id = properties.get("workerId").cloned().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        format!("millrace-{}-{nanos:08x}", std::process::id())
    });
    let timeout = number(properties, "timeoutInSeconds", 0)?;
    Ok(DaemonConfig {
        worker: WorkerConfig {
            retrieval,
            stream_name,
            table_name: properties
                .get("tableName")
                .cloned()
                .unwrap_or_else(|| application.clone()),
            worker_id,
            initial_position,
            failover: millis(properties, "failoverTimeMillis", 10_000)?,
            shard_sync_interval: millis(properties, "shardSyncIntervalMillis", 60_000)?,
            max_records: number(properties, "maxRecords", 10_000)?.clamp(1, 10_000) as u32,
            idle_between_reads: millis(properties, "idleTimeBetweenReadsInMillis", 1_000)?,
            max_leases_for_worker: number(properties, "maxLeasesForWorker", u32::MAX as u64)?
                as usize,
            max_leases_to_steal: number(properties, "maxLeasesToStealAtOneTime", 1)? as usize,
            call_process_records_even_for_empty: properties
                .get("callProcessRecordsEvenForEmptyRecordList")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        },
        command,
        kinesis,
        dynamodb,
        timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
    })
}

/// Starts one child per shard lease.
struct ChildFactory {
    command: Vec<String>,
    timeout: Option<Duration>,
}

impl ProcessorFactory for ChildFactory {
    fn create(&self, shard_id: &str) -> Result<Box<dyn RecordProcessor>, ProcessorError> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(ProcessorError("executableName is empty".into()));
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ProcessorError(format!("start {program}: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| ProcessorError("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| ProcessorError("no stdout".into()))?;
        Ok(Box::new(ChildProcessor {
            child,
            stdin: Some(stdin),
            lines: BufReader::new(stdout).lines(),
            shard: shard_id.to_owned(),
            timeout: self.timeout,
        }))
    }
}

struct ChildProcessor {
    child: Child,
    /// Dropped (closed) when the child is told to finish.
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    shard: String,
    timeout: Option<Duration>,
}

fn failed(message: impl std::fmt::Display) -> ProcessorError {
    ProcessorError(message.to_string())
}

impl ChildProcessor {
    async fn send(&mut self, message: &Value) -> Result<(), ProcessorError> {
        let mut line = serde_json::to_vec(message).map_err(failed)?;
        line.push(b'\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| failed("the child's stdin is closed"))?;
        stdin
            .write_all(&line)
            .await
            .map_err(|e| failed(format!("write to the child: {e}")))?;
        stdin
            .flush()
            .await
            .map_err(|e| failed(format!("write to the child: {e}")))
    }

    async fn next_line(&mut self) -> Result<Option<String>, ProcessorError> {
        let read = self.lines.next_line();
        let line = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| failed("the child did not answer within timeoutInSeconds"))?,
            None => read.await,
        };
        line.map_err(|e| failed(format!("read from the child: {e}")))
    }

    /// Sends `message` and serves the child's checkpoints until it reports `status` for it.
    async fn exchange(
        &mut self,
        message: Value,
        mut checkpointer: Option<&mut Checkpointer>,
    ) -> Result<(), ProcessorError> {
        let action = message["action"].as_str().unwrap_or_default().to_owned();
        self.send(&message).await?;
        loop {
            let Some(line) = self.next_line().await? else {
                let status = self.child.try_wait().ok().flatten();
                return Err(failed(format!(
                    "the child exited during {action} ({status:?})"
                )));
            };
            let parsed: Option<Value> = serde_json::from_str(line.trim()).ok();
            let Some(reply) = parsed.filter(|v| v.get("action").is_some()) else {
                if !line.trim().is_empty() {
                    tracing::info!(shard = %self.shard, line = %line, "child output that is not a protocol message");
                }
                continue;
            };
            match reply["action"].as_str().unwrap_or_default() {
                "status" => {
                    let answered = reply["responseFor"].as_str().unwrap_or_default();
                    if answered == action {
                        return Ok(());
                    }
                    return Err(failed(format!(
                        "the child answered status for {answered} during {action}"
                    )));
                }
                "checkpoint" => {
                    let sequence = reply
                        .get("sequenceNumber")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let sub = reply
                        .get("subSequenceNumber")
                        .and_then(|v| {
                            v.as_u64()
                                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        })
                        .unwrap_or(0);
                    let outcome = match checkpointer.as_deref_mut() {
                        None => Err("InvalidStateException".to_owned()),
                        Some(cp) => match &sequence {
                            Some(seq) => cp.checkpoint_at(seq, sub).await.map_err(|e| e.name()),
                            None => cp.checkpoint().await.map_err(|e| e.name()),
                        },
                    };
                    let mut answer = json!({
                        "action": "checkpoint",
                        "sequenceNumber": sequence,
                        "subSequenceNumber": reply.get("subSequenceNumber").cloned().unwrap_or(Value::Null),
                    });
                    if let Err(error) = outcome {
                        tracing::info!(shard = %self.shard, %error, "checkpoint refused");
                        answer["error"] = json!(error);
                    }
                    self.send(&answer).await?;
                }
                other => return Err(failed(format!("the child sent {other} during {action}"))),
            }
        }
    }

    /// Closes stdin and waits briefly for the child to exit, then kills it.
    async fn finish(&mut self) {
        // Closing stdin is the child's signal to exit (its read loop ends at EOF).
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl RecordProcessor for ChildProcessor {
    fn initialize(&mut self, input: InitializeInput) -> BoxFuture<'_, Result<(), ProcessorError>> {
        Box::pin(async move {
            let message = json!({
                "action": "initialize",
                "shardId": input.shard_id,
                "sequenceNumber": input.sequence_number,
                "subSequenceNumber": input.sub_sequence_number,
            });
            self.exchange(message, None).await
        })
    }

    fn process_records<'a>(
        &'a mut self,
        input: ProcessRecordsInput,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        Box::pin(async move {
            let engine = base64::engine::general_purpose::STANDARD;
            let records: Vec<Value> = input
                .records
                .iter()
                .map(|r| {
                    json!({
                        "action": "record",
                        "data": engine.encode(&r.data),
                        "partitionKey": r.partition_key,
                        "sequenceNumber": r.sequence_number,
                        "subSequenceNumber": r.sub_sequence_number,
                        "approximateArrivalTimestamp": r.approximate_arrival_millis,
                    })
                })
                .collect();
            let message = json!({
                "action": "processRecords",
                "millisBehindLatest": input.millis_behind_latest,
                "records": records,
            });
            let outcome = self.exchange(message, Some(checkpointer)).await;
            if outcome.is_err() {
                let _ = self.child.kill().await;
            }
            outcome
        })
    }

    fn lease_lost(&mut self) -> BoxFuture<'_, Result<(), ProcessorError>> {
        Box::pin(async move {
            let outcome = self.exchange(json!({"action": "leaseLost"}), None).await;
            self.finish().await;
            outcome
        })
    }

    fn shard_ended<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        Box::pin(async move {
            let outcome = self
                .exchange(json!({"action": "shardEnded"}), Some(checkpointer))
                .await;
            self.finish().await;
            outcome
        })
    }

    fn shutdown_requested<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        Box::pin(async move {
            let outcome = self
                .exchange(json!({"action": "shutdownRequested"}), Some(checkpointer))
                .await;
            self.finish().await;
            outcome
        })
    }
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub async fn run(properties_path: PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&properties_path)
        .with_context(|| format!("read {}", properties_path.display()))?;
    let base_dir = properties_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let config = daemon_config(&parse_properties(&text), &base_dir)?;
    let kinesis = AwsClient::from_config(config.kinesis.clone()).context("the Kinesis client")?;
    let dynamodb =
        AwsClient::from_config(config.dynamodb.clone()).context("the DynamoDB client")?;
    tracing::info!(
        worker = %config.worker.worker_id,
        stream = %config.worker.stream_name,
        table = %config.worker.table_name,
        "kcl daemon starting"
    );
    let factory = Arc::new(ChildFactory {
        command: config.command.clone(),
        timeout: config.timeout,
    });
    let worker = Worker::new(config.worker, kinesis, dynamodb, factory);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // A worker that cannot start (no lease table, an unreachable endpoint) ends the daemon.
    let running = tokio::spawn(worker.run(stopped));
    crate::until_signal(running, stop)
        .await
        .context("join the worker")?
        .context("run the worker")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_follow_java_syntax() {
        let parsed = parse_properties(
            "# comment\n! also\nexecutableName = sample.py\nstreamName: s\nregionName us-east-1\nlong = a \\\n  b\n",
        );
        assert_eq!(parsed["executableName"], "sample.py");
        assert_eq!(parsed["streamName"], "s");
        assert_eq!(parsed["regionName"], "us-east-1");
        assert_eq!(parsed["long"], "a b");
    }
}
