//! The Kinesis Agent's `agent.json`: general settings (`checkpointFile`, `kinesis.endpoint`,
//! `firehose.endpoint`, `kinesis.region`, `awsAccessKeyId`, `awsSecretAccessKey`, …) and
//! `flows`, each with `filePattern`, `kinesisStream` or `deliveryStream` and the optional
//! settings below, with the agent's defaults. Unknown keys are warned about, not fatal.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::process::Processor;

/// A configuration error, in plain words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// Where a flow's records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `kinesisStream`.
    Kinesis(String),
    /// `deliveryStream` (Firehose, PutRecordBatch).
    Firehose(String),
}

impl Destination {
    pub fn name(&self) -> &str {
        match self {
            Destination::Kinesis(name) | Destination::Firehose(name) => name,
        }
    }

    /// The largest record the destination takes (Kinesis 1 MiB, Firehose 1,000 KiB).
    pub fn max_record_bytes(&self) -> usize {
        match self {
            Destination::Kinesis(_) => 1024 * 1024,
            Destination::Firehose(_) => 1000 * 1024,
        }
    }
}

/// `partitionKeyOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKeyOption {
    /// A random number (the default).
    Random,
    /// The MD5 of the record's data, in hex.
    Deterministic,
}

/// `initialPosition`: where a flow starts in the newest file when it has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    StartOfFile,
    /// The default.
    EndOfFile,
}

#[derive(Debug, Clone)]
pub struct Flow {
    /// `filePattern`: a path whose last component may hold `*` and `?`.
    pub file_pattern: PathBuf,
    pub destination: Destination,
    pub partition_key: PartitionKeyOption,
    pub initial_position: InitialPosition,
    /// `maxBufferAgeMillis` (60000).
    pub max_buffer_age: Duration,
    /// `maxBufferSizeRecords` (500).
    pub max_buffer_records: usize,
    /// `maxBufferSizeBytes` (5 MiB for Kinesis, 4 MiB for Firehose).
    pub max_buffer_bytes: usize,
    /// `multiLineStartPattern`: a record starts at each line matching it.
    pub multi_line_start: Option<regex::Regex>,
    /// `skipHeaderLines` (0): lines skipped at the start of each file.
    pub skip_header_lines: usize,
    /// `truncatedRecordTerminator` (a newline): ends a record cut to the destination's limit.
    pub truncated_record_terminator: Vec<u8>,
    /// `dataProcessingOptions`, applied in order.
    pub processors: Vec<Processor>,
}

impl Flow {
    /// The flow's name in logs and in the checkpoint file.
    pub fn id(&self) -> String {
        let kind = match self.destination {
            Destination::Kinesis(_) => "kinesis",
            Destination::Firehose(_) => "firehose",
        };
        format!(
            "{} -> {kind}:{}",
            self.file_pattern.display(),
            self.destination.name()
        )
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `checkpointFile` (`/var/run/aws-kinesis-agent/checkpoints`).
    pub checkpoint_file: PathBuf,
    /// `kinesis.endpoint` (else the environment's or AWS's regional endpoint).
    pub kinesis_endpoint: Option<String>,
    /// `firehose.endpoint`.
    pub firehose_endpoint: Option<String>,
    /// `kinesis.region` (else taken from the endpoint's host, else the credential chain's).
    pub region: Option<String>,
    /// `awsAccessKeyId` and `awsSecretAccessKey`: take precedence over every other source.
    pub access_key: Option<(String, String)>,
    pub flows: Vec<Flow>,
}

const GENERAL_KEYS: &[&str] = &[
    "checkpointFile",
    "kinesis.endpoint",
    "firehose.endpoint",
    "kinesis.region",
    "awsAccessKeyId",
    "awsSecretAccessKey",
    "flows",
];

/// Settings of the Java agent accepted without effect here (its thread pools, HTTP tuning,
/// CloudWatch metrics and log settings).
const ACCEPTED_IGNORED: &[&str] = &[
    "cloudwatch.emitMetrics",
    "cloudwatch.endpoint",
    "cloudwatch.namespace",
    "cloudwatch.tagInstance",
    "cloudwatch.metricsBufferTimeMillis",
    "cloudwatch.metricsQueueSize",
    "sts.endpoint",
    "log.emitMetrics",
    "log.emitInternalMetrics",
    "log.statusReportingPeriodSeconds",
    "maxSendingThreads",
    "maxSendingThreadsPerCore",
    "sendingThreadsKeepAliveMillis",
    "sendingThreadsMaxQueueSize",
    "maxConnections",
    "connectionTimeoutMillis",
    "connectionTTLMillis",
    "socketTimeoutMillis",
    "useTcpKeepAlive",
    "useHttpGzip",
    "checkpointTimeToLiveDays",
    "shutdownTimeoutMillis",
    "userAgent",
    "userAgentOverride",
];

const FLOW_KEYS: &[&str] = &[
    "filePattern",
    "kinesisStream",
    "deliveryStream",
    "partitionKeyOption",
    "initialPosition",
    "maxBufferAgeMillis",
    "maxBufferSizeRecords",
    "maxBufferSizeBytes",
    "multiLineStartPattern",
    "skipHeaderLines",
    "truncatedRecordTerminator",
    "dataProcessingOptions",
];

const FLOW_ACCEPTED_IGNORED: &[&str] = &[
    "waitOnFullPublishQueueMillis",
    "waitOnEmptyPublishQueueMillis",
    "waitOnFullRetryQueueMillis",
    "retryInitialBackoffMillis",
    "retryMaxBackoffMillis",
    "publishQueueCapacity",
    "minTimeBetweenFilePollsMillis",
    "maxTimeBetweenFileTrackerRefreshMillis",
];

fn warn_unknown(object: &Map<String, Value>, known: &[&str], ignored: &[&str], place: &str) {
    for key in object.keys() {
        if !known.contains(&key.as_str()) && !ignored.contains(&key.as_str()) {
            tracing::warn!(key = %key, place, "unknown agent setting ignored");
        }
    }
}

fn string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => fail(format!("{key} must be a string, not {other}")),
    }
}

/// A number, given as a JSON number or a string of digits (the Java agent reads both).
fn number(
    object: &Map<String, Value>,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value = match object.get(key) {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match value {
        Some(v) if range.contains(&v) => Ok(v),
        _ => fail(format!(
            "{key} must be a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// A regular expression in Java's syntax, as far as the `regex` crate shares it.
pub fn pattern(key: &str, text: &str) -> Result<regex::Regex, ConfigError> {
    regex::Regex::new(text).map_err(|e| ConfigError(format!("{key} {text:?}: {e}")))
}

impl AgentConfig {
    pub fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("the configuration is not JSON: {e}")))?;
        let Value::Object(root) = value else {
            return fail("the configuration must be a JSON object");
        };
        warn_unknown(&root, GENERAL_KEYS, ACCEPTED_IGNORED, "general");
        let access_key = match (
            string(&root, "awsAccessKeyId")?,
            string(&root, "awsSecretAccessKey")?,
        ) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => return fail("awsAccessKeyId and awsSecretAccessKey must be given together"),
        };
        let flows = match root.get("flows") {
            Some(Value::Array(flows)) => flows,
            _ => return fail("flows must be a list of flows"),
        };
        let flows = flows
            .iter()
            .enumerate()
            .map(|(i, flow)| Flow::parse(flow).map_err(|e| ConfigError(format!("flow {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if flows.is_empty() {
            return fail("flows is empty: nothing to do");
        }
        Ok(AgentConfig {
            checkpoint_file: string(&root, "checkpointFile")?
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/run/aws-kinesis-agent/checkpoints")),
            kinesis_endpoint: string(&root, "kinesis.endpoint")?,
            firehose_endpoint: string(&root, "firehose.endpoint")?,
            region: string(&root, "kinesis.region")?,
            access_key,
            flows,
        })
    }
}

impl Flow {
    fn parse(value: &Value) -> Result<Flow, ConfigError> {
        let Value::Object(flow) = value else {
            return fail("a flow must be a JSON object");
        };
        warn_unknown(flow, FLOW_KEYS, FLOW_ACCEPTED_IGNORED, "flow");
        let Some(file_pattern) = string(flow, "filePattern")? else {
            return fail("filePattern is missing");
        };
        let file_pattern = PathBuf::from(file_pattern);
        if !file_pattern.is_absolute() {
            return fail("filePattern must be an absolute path");
        }
        if file_pattern
            .parent()
            .is_some_and(|p| p.to_string_lossy().contains(['*', '?']))
        {
            return fail("filePattern may have wildcards in its file name only");
        }
        let destination = match (
            string(flow, "kinesisStream")?,
            string(flow, "deliveryStream")?,
        ) {
            (Some(stream), None) => Destination::Kinesis(stream),
            (None, Some(stream)) => Destination::Firehose(stream),
            (Some(_), Some(_)) => return fail("give kinesisStream or deliveryStream, not both"),
            (None, None) => return fail("kinesisStream or deliveryStream is missing"),
        };
        let partition_key = match string(flow, "partitionKeyOption")?.as_deref() {
            None | Some("RANDOM") => PartitionKeyOption::Random,
            Some("DETERMINISTIC") => PartitionKeyOption::Deterministic,
            Some(other) => {
                return fail(format!(
                    "partitionKeyOption {other:?} is not RANDOM or DETERMINISTIC"
                ))
            }
        };
        let initial_position = match string(flow, "initialPosition")?.as_deref() {
            None | Some("END_OF_FILE") => InitialPosition::EndOfFile,
            Some("START_OF_FILE") => InitialPosition::StartOfFile,
            Some(other) => {
                return fail(format!(
                    "initialPosition {other:?} is not START_OF_FILE or END_OF_FILE"
                ))
            }
        };
        let (max_records, max_bytes) = match destination {
            Destination::Kinesis(_) => (500, 5 * 1024 * 1024),
            Destination::Firehose(_) => (500, 4 * 1024 * 1024),
        };
        let multi_line_start = string(flow, "multiLineStartPattern")?
            .map(|p| pattern("multiLineStartPattern", &p))
            .transpose()?;
        let processors = match flow.get("dataProcessingOptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(options)) => options
                .iter()
                .map(Processor::parse)
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return fail("dataProcessingOptions must be a list"),
        };
        Ok(Flow {
            file_pattern,
            partition_key,
            initial_position,
            max_buffer_age: Duration::from_millis(number(
                flow,
                "maxBufferAgeMillis",
                60_000,
                1..=900_000,
            )?),
            max_buffer_records: number(flow, "maxBufferSizeRecords", max_records, 1..=max_records)?
                as usize,
            max_buffer_bytes: number(flow, "maxBufferSizeBytes", max_bytes, 1..=max_bytes)?
                as usize,
            multi_line_start,
            skip_header_lines: number(flow, "skipHeaderLines", 0, 0..=u32::MAX as u64)? as usize,
            truncated_record_terminator: string(flow, "truncatedRecordTerminator")?
                .unwrap_or_else(|| "\n".to_owned())
                .into_bytes(),
            processors,
            destination,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_with_defaults() {
        let config = AgentConfig::parse(
            r#"{"checkpointFile": "/tmp/cp", "kinesis.endpoint": "http://127.0.0.1:1",
                "cloudwatch.emitMetrics": false,
                "flows": [{"filePattern": "/var/log/app.log*", "kinesisStream": "s"}]}"#,
        )
        .expect("parses");
        let flow = &config.flows[0];
        assert_eq!(flow.destination, Destination::Kinesis("s".into()));
        assert_eq!(flow.initial_position, InitialPosition::EndOfFile);
        assert_eq!(flow.partition_key, PartitionKeyOption::Random);
        assert_eq!(flow.max_buffer_age, Duration::from_secs(60));
        assert_eq!(flow.max_buffer_records, 500);
        assert_eq!(flow.truncated_record_terminator, b"\n");
    }

    #[test]
    fn bad_settings_are_named() {
        let error = |text: &str| AgentConfig::parse(text).expect_err("refused").to_string();
        assert!(error(r#"{"flows": []}"#).contains("empty"));
        assert!(error(r#"{"flows": [{"filePattern": "/a"}]}"#).contains("kinesisStream"));
        assert!(error(
            r#"{"flows": [{"filePattern": "/a", "kinesisStream": "s", "maxBufferSizeRecords": 501}]}"#
        )
        .contains("maxBufferSizeRecords"));
        assert!(
            error(r#"{"flows": [{"filePattern": "/a*/b", "kinesisStream": "s"}]}"#)
                .contains("file name only")
        );
        assert!(error(r#"{"awsAccessKeyId": "A", "flows": []}"#).contains("together"));
    }
}
