//! A channel's stored document and the shapes DescribeChannel and ListChannels answer with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The buffer size at which an object is written before the freshness interval is up.
pub const BUFFER_MB: u64 = 64;
/// `DataFreshnessInSeconds` when not given (the model's documented default).
pub const DEFAULT_FRESHNESS: u64 = 300;
/// The error prefix of the default dead-letter configuration (the destination bucket).
pub const DEFAULT_ERROR_PREFIX: &str = "errors/";

/// One source stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceStream {
    pub arn: String,
    pub created_ms: u64,
    /// The `RecordConfiguration` as given.
    pub record_configuration: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelDoc {
    pub account: String,
    pub region: String,
    pub name: String,
    /// `ChannelId`.
    pub id: String,
    /// The Firehose pipeline id (names its record log and positions).
    pub pipeline: u64,
    pub created_ms: u64,
    /// CREATING until then.
    pub active_at_ms: u64,
    /// UPDATING until then (after UpdateChannel).
    #[serde(default)]
    pub updating_until_ms: u64,
    /// Set by DeleteChannel: DELETING until then, gone after.
    #[serde(default)]
    pub deleting_until_ms: Option<u64>,
    pub role_arn: String,
    pub streams: Vec<SourceStream>,
    /// `S3DestinationDescription` with the defaults filled in.
    pub s3: Value,
    #[serde(default)]
    pub encryption: Option<Value>,
    /// `ChannelLoggingConfiguration` with the defaults filled in.
    pub logging: Value,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub fn channel_arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:channel/{name}")
}

/// `(region, account, name)` of a channel ARN `arn:<partition>:kinesis:<region>:<account>:channel/<name>`.
pub fn parse_channel_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesis" {
        return None;
    }
    let name = parts[5]
        .strip_prefix("channel/")
        .filter(|n| !n.is_empty() && !n.contains('/'))?;
    Some((parts[3], parts[4], name))
}

/// `(region, account, name)` of a stream ARN.
pub fn parse_stream_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesis" {
        return None;
    }
    let name = parts[5]
        .strip_prefix("stream/")
        .filter(|n| !n.is_empty() && !n.contains('/'))?;
    Some((parts[3], parts[4], name))
}

fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

impl ChannelDoc {
    pub fn arn(&self) -> String {
        channel_arn(&self.account, &self.region, &self.name)
    }

    /// The status at `now_ms`; `None` once a deleted channel is gone.
    pub fn status(&self, now_ms: u64) -> Option<&'static str> {
        match self.deleting_until_ms {
            Some(until) if now_ms >= until => None,
            Some(_) => Some("DELETING"),
            None if now_ms < self.active_at_ms => Some("CREATING"),
            None if now_ms < self.updating_until_ms => Some("UPDATING"),
            None => Some("ACTIVE"),
        }
    }

    pub fn freshness(&self) -> u64 {
        self.s3
            .get("DataFreshnessInSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_FRESHNESS)
    }

    pub fn storage(&self) -> &Value {
        self.s3.get("StorageConfiguration").unwrap_or(&Value::Null)
    }

    pub fn description(&self, now_ms: u64) -> Value {
        let mut out = Map::new();
        out.insert("ChannelName".into(), json!(self.name));
        out.insert("ChannelARN".into(), json!(self.arn()));
        out.insert("ChannelId".into(), json!(self.id));
        out.insert(
            "ChannelStatus".into(),
            json!(self.status(now_ms).unwrap_or("DELETING")),
        );
        out.insert("ChannelCreationTimestamp".into(), seconds(self.created_ms));
        out.insert("ServiceExecutionRoleARN".into(), json!(self.role_arn));
        out.insert(
            "StreamConfigurationList".into(),
            Value::Array(
                self.streams
                    .iter()
                    .map(|s| {
                        json!({
                            "StreamARN": s.arn,
                            "StreamCreationTimestamp": seconds(s.created_ms),
                            "RecordConfiguration": s.record_configuration,
                        })
                    })
                    .collect(),
            ),
        );
        out.insert("S3DestinationConfiguration".into(), self.s3.clone());
        if let Some(encryption) = &self.encryption {
            out.insert("EncryptionConfiguration".into(), encryption.clone());
        }
        out.insert("LoggingConfiguration".into(), self.logging.clone());
        Value::Object(out)
    }

    pub fn summary(&self, now_ms: u64) -> Value {
        json!({
            "ChannelName": self.name,
            "ChannelARN": self.arn(),
            "ChannelId": self.id,
            "ChannelStatus": self.status(now_ms).unwrap_or("DELETING"),
            "ChannelCreationTimestamp": seconds(self.created_ms),
            "ChannelDestinationType": "S3",
            "Streams": self.streams.iter().map(|s| json!({
                "StreamARN": s.arn,
                "StreamCreationTimestamp": seconds(s.created_ms),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The `S3DestinationDescription` of an `S3DestinationConfiguration`: the freshness default,
/// the dead-letter bucket defaulting to the destination bucket with an error prefix, and the
/// STANDARD storage class.
pub fn s3_description(config: &Value) -> Value {
    let mut storage = config
        .get("StorageConfiguration")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut storage {
        map.entry("StorageClass")
            .or_insert_with(|| json!("STANDARD"));
    }
    let mut dead_letter = config
        .get("DeadLetterQueueS3Configuration")
        .cloned()
        .unwrap_or_else(|| {
            json!({
                "BucketARN": storage.get("BucketARN").cloned().unwrap_or(Value::Null),
                "ExpectedBucketOwner": storage.get("ExpectedBucketOwner").cloned().unwrap_or(Value::Null),
            })
        });
    if let Value::Object(map) = &mut dead_letter {
        map.entry("ErrorOutputPrefix")
            .or_insert_with(|| json!(DEFAULT_ERROR_PREFIX));
    }
    json!({
        "DataFreshnessInSeconds": config
            .get("DataFreshnessInSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_FRESHNESS),
        "DeadLetterQueueS3Configuration": dead_letter,
        "StorageConfiguration": storage,
    })
}

/// The `ChannelLoggingConfiguration` with the documented defaults of an enabled log: group
/// `/aws/kinesis/<channelName>/<channelId>`, stream `DestinationDelivery`.
pub fn logging(given: Option<&Value>, name: &str, id: &str) -> Value {
    let mut logs = given
        .and_then(|l| l.get("CloudWatchLogs"))
        .cloned()
        .unwrap_or_else(|| json!({"Enabled": false}));
    if logs.get("Enabled").and_then(Value::as_bool) == Some(true) {
        if let Value::Object(map) = &mut logs {
            map.entry("LogGroupName")
                .or_insert_with(|| json!(format!("/aws/kinesis/{name}/{id}")));
            map.entry("LogStreamName")
                .or_insert_with(|| json!("DestinationDelivery"));
        }
    }
    json!({ "CloudWatchLogs": logs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_arns_round_trip() {
        let arn = channel_arn("123456789012", "us-east-1", "orders");
        assert_eq!(arn, "arn:aws:kinesis:us-east-1:123456789012:channel/orders");
        assert_eq!(
            parse_channel_arn(&arn),
            Some(("us-east-1", "123456789012", "orders"))
        );
        assert_eq!(
            parse_channel_arn("arn:aws:kinesis:us-east-1:123456789012:stream/orders"),
            None
        );
        assert_eq!(
            parse_channel_arn("arn:aws:kinesis:us-east-1:123456789012:channel/a/b"),
            None
        );
    }

    #[test]
    fn defaults_are_filled_in() {
        let s3 = s3_description(&json!({
            "StorageConfiguration": {
                "BucketARN": "arn:aws:s3:::bucket",
                "ExpectedBucketOwner": "123456789012",
                "CompressionType": "GZIP",
            }
        }));
        assert_eq!(s3["DataFreshnessInSeconds"], 300);
        assert_eq!(s3["StorageConfiguration"]["StorageClass"], "STANDARD");
        assert_eq!(
            s3["DeadLetterQueueS3Configuration"],
            json!({
                "BucketARN": "arn:aws:s3:::bucket",
                "ExpectedBucketOwner": "123456789012",
                "ErrorOutputPrefix": "errors/",
            })
        );
        let on = logging(
            Some(&json!({"CloudWatchLogs": {"Enabled": true}})),
            "c",
            "id",
        );
        assert_eq!(on["CloudWatchLogs"]["LogGroupName"], "/aws/kinesis/c/id");
        assert_eq!(on["CloudWatchLogs"]["LogStreamName"], "DestinationDelivery");
        assert_eq!(
            logging(None, "c", "id"),
            json!({"CloudWatchLogs": {"Enabled": false}})
        );
    }

    #[test]
    fn status_follows_the_clock() {
        let mut doc: ChannelDoc = serde_json::from_value(json!({
            "account": "1", "region": "r", "name": "n", "id": "i", "pipeline": 1,
            "created_ms": 100, "active_at_ms": 200, "role_arn": "x", "streams": [],
            "s3": {}, "logging": {},
        }))
        .expect("doc");
        assert_eq!(doc.status(150), Some("CREATING"));
        assert_eq!(doc.status(200), Some("ACTIVE"));
        doc.updating_until_ms = 300;
        assert_eq!(doc.status(250), Some("UPDATING"));
        doc.deleting_until_ms = Some(400);
        assert_eq!(doc.status(350), Some("DELETING"));
        assert_eq!(doc.status(400), None);
    }
}
