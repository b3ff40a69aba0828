//! A delivery stream's stored document and the destination descriptions built from the
//! configurations of CreateDeliveryStream and UpdateDestination.
//!
//! Destinations are kept in the shape DescribeDeliveryStream returns (the model's
//! `…DestinationDescription` members), with the service's defaults filled in, so describing is
//! a copy and the delivery engine reads its settings from the same document. The HTTP
//! endpoint's access key is kept beside it, never in a description.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::compress::Compression;
use crate::error::invalid_argument;
use millrace_service::ServiceError;

pub const DESTINATION_ID: &str = "destinationId-000000000001";

/// The destination kinds this implementation delivers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    S3,
    Http,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamDoc {
    pub account: String,
    pub region: String,
    pub name: String,
    /// Allocated once per CreateDeliveryStream: names the record log directory.
    pub incarnation: u64,
    pub stream_type: String,
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: Option<u64>,
    /// When the stream turns ACTIVE.
    pub active_at_ms: u64,
    pub kind: Kind,
    /// `ExtendedS3DestinationDescription` or `HttpEndpointDestinationDescription`.
    pub destination: Value,
    /// The HTTP endpoint's access key (never described or logged).
    #[serde(default)]
    pub access_key: Option<String>,
    /// `KinesisStreamSourceConfiguration` for KinesisStreamAsSource.
    #[serde(default)]
    pub source: Option<Value>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// `DeliveryStreamEncryptionConfiguration` once encryption was started or stopped.
    #[serde(default)]
    pub encryption: Option<Value>,
    /// The first log position whose record is framed (`frame.rs`); `None` in documents written
    /// before records were framed.
    #[serde(default)]
    pub frame_from: Option<u64>,
    /// Set by DeleteDeliveryStream: when the DELETING stream is removed.
    #[serde(default)]
    pub deleted_at_ms: Option<u64>,
}

impl StreamDoc {
    pub fn arn(&self) -> String {
        arn(&self.account, &self.region, &self.name)
    }

    pub fn status(&self, now_ms: u64) -> &'static str {
        if self.deleted_at_ms.is_some() {
            "DELETING"
        } else if now_ms >= self.active_at_ms {
            "ACTIVE"
        } else {
            "CREATING"
        }
    }

    pub fn encrypted(&self) -> bool {
        self.encryption
            .as_ref()
            .and_then(|e| e.get("Status"))
            .and_then(Value::as_str)
            == Some("ENABLED")
    }

    /// The KMS key new records are sealed with while encryption is enabled: the customer
    /// managed key, or for AWS_OWNED_CMK the account's AWS managed key of the Kinesis family
    /// (`alias/aws/kinesis`, which Millrace's KMS creates on first use).
    pub fn encryption_key(&self) -> Option<String> {
        if !self.encrypted() {
            return None;
        }
        let encryption = self.encryption.as_ref()?;
        match encryption.get("KeyType").and_then(Value::as_str) {
            Some("CUSTOMER_MANAGED_CMK") => encryption
                .get("KeyARN")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => Some("alias/aws/kinesis".to_owned()),
        }
    }

    /// The buffering hints in force: (bytes, milliseconds).
    pub fn hints(&self) -> (usize, u64) {
        let hints = self.destination.get("BufferingHints");
        let size = hints
            .and_then(|h| h.get("SizeInMBs"))
            .and_then(Value::as_u64)
            .unwrap_or(5);
        let interval = hints
            .and_then(|h| h.get("IntervalInSeconds"))
            .and_then(Value::as_u64)
            .unwrap_or(300);
        ((size as usize) << 20, interval * 1000)
    }

    /// The S3 settings objects are written with: the destination itself, or the HTTP
    /// destination's backup bucket.
    pub fn s3(&self) -> &Value {
        match self.kind {
            Kind::S3 => &self.destination,
            Kind::Http => self
                .destination
                .get("S3DestinationDescription")
                .unwrap_or(&Value::Null),
        }
    }

    pub fn description(&self, now_ms: u64, input: &Value) -> Value {
        let mut description = Map::new();
        description.insert("DeliveryStreamName".into(), json!(self.name));
        description.insert("DeliveryStreamARN".into(), json!(self.arn()));
        description.insert("DeliveryStreamStatus".into(), json!(self.status(now_ms)));
        description.insert(
            "DeliveryStreamEncryptionConfiguration".into(),
            self.encryption
                .clone()
                .unwrap_or_else(|| json!({"Status": "DISABLED"})),
        );
        description.insert("DeliveryStreamType".into(), json!(self.stream_type));
        description.insert("VersionId".into(), json!(self.version.to_string()));
        description.insert(
            "CreateTimestamp".into(),
            json!(self.created_ms as f64 / 1000.0),
        );
        if let Some(updated) = self.updated_ms {
            description.insert("LastUpdateTimestamp".into(), json!(updated as f64 / 1000.0));
        }
        if let Some(source) = &self.source {
            let mut kinesis = Map::new();
            for member in ["KinesisStreamARN", "RoleARN"] {
                if let Some(value) = source.get(member) {
                    kinesis.insert(member.into(), value.clone());
                }
            }
            kinesis.insert(
                "DeliveryStartTimestamp".into(),
                json!(self.created_ms as f64 / 1000.0),
            );
            description.insert(
                "Source".into(),
                json!({"KinesisStreamSourceDescription": Value::Object(kinesis)}),
            );
        }
        let skip = input
            .get("ExclusiveStartDestinationId")
            .and_then(Value::as_str)
            .is_some_and(|id| id >= DESTINATION_ID);
        let destinations = if skip {
            vec![]
        } else {
            let mut destination = Map::new();
            destination.insert("DestinationId".into(), json!(DESTINATION_ID));
            match self.kind {
                Kind::S3 => {
                    destination.insert(
                        "ExtendedS3DestinationDescription".into(),
                        self.destination.clone(),
                    );
                    destination.insert(
                        "S3DestinationDescription".into(),
                        plain_s3(&self.destination),
                    );
                }
                Kind::Http => {
                    destination.insert(
                        "HttpEndpointDestinationDescription".into(),
                        self.destination.clone(),
                    );
                }
            }
            vec![Value::Object(destination)]
        };
        description.insert("Destinations".into(), Value::Array(destinations));
        description.insert("HasMoreDestinations".into(), json!(false));
        Value::Object(description)
    }
}

pub fn arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:firehose:{region}:{account}:deliverystream/{name}")
}

/// The members an `S3DestinationDescription` has (the extended one minus its extensions).
const PLAIN_S3_MEMBERS: &[&str] = &[
    "RoleARN",
    "BucketARN",
    "Prefix",
    "ErrorOutputPrefix",
    "BufferingHints",
    "CompressionFormat",
    "EncryptionConfiguration",
    "CloudWatchLoggingOptions",
];

fn plain_s3(extended: &Value) -> Value {
    let mut out = Map::new();
    for member in PLAIN_S3_MEMBERS {
        if let Some(value) = extended.get(*member) {
            out.insert((*member).into(), value.clone());
        }
    }
    Value::Object(out)
}

fn buffering_hints(given: Option<&Value>) -> Value {
    let size = given
        .and_then(|h| h.get("SizeInMBs"))
        .and_then(Value::as_u64)
        .unwrap_or(5);
    let interval = given
        .and_then(|h| h.get("IntervalInSeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(300);
    json!({"SizeInMBs": size, "IntervalInSeconds": interval})
}

fn refuse_enabled(config: &Value, member: &str, what: &str) -> Result<(), ServiceError> {
    let enabled = config
        .get(member)
        .and_then(|c| c.get("Enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if enabled {
        return Err(invalid_argument(format!(
            "{what} is not supported by Millrace yet."
        )));
    }
    Ok(())
}

/// An `ExtendedS3DestinationDescription` from an (Extended)S3DestinationConfiguration or the
/// merge of an update into `current`.
pub fn s3_description(config: &Value, current: Option<&Value>) -> Result<Value, ServiceError> {
    refuse_enabled(config, "ProcessingConfiguration", "Data transformation")?;
    refuse_enabled(
        config,
        "DataFormatConversionConfiguration",
        "Record format conversion",
    )?;
    refuse_enabled(
        config,
        "DynamicPartitioningConfiguration",
        "Dynamic partitioning",
    )?;
    let mut out = match current {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let copy = [
        "RoleARN",
        "BucketARN",
        "Prefix",
        "ErrorOutputPrefix",
        "CompressionFormat",
        "EncryptionConfiguration",
        "CloudWatchLoggingOptions",
        "S3BackupMode",
        "FileExtension",
        "CustomTimeZone",
        "ProcessingConfiguration",
        "DataFormatConversionConfiguration",
        "DynamicPartitioningConfiguration",
    ];
    for member in copy {
        if let Some(value) = config.get(member) {
            out.insert(member.into(), value.clone());
        }
    }
    let hints = config
        .get("BufferingHints")
        .or_else(|| out.get("BufferingHints"))
        .cloned();
    out.insert("BufferingHints".into(), buffering_hints(hints.as_ref()));
    out.entry("CompressionFormat")
        .or_insert_with(|| json!("UNCOMPRESSED"));
    out.entry("EncryptionConfiguration")
        .or_insert_with(|| json!({"NoEncryptionConfig": "NoEncryption"}));
    out.entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    out.entry("S3BackupMode")
        .or_insert_with(|| json!("Disabled"));
    if let Some(backup) = config
        .get("S3BackupConfiguration")
        .or_else(|| config.get("S3BackupUpdate"))
    {
        let current = out.get("S3BackupDescription").cloned();
        out.insert(
            "S3BackupDescription".into(),
            plain_s3(&s3_description(backup, current.as_ref())?),
        );
    }
    if out.get("S3BackupMode").and_then(Value::as_str) == Some("Enabled")
        && !out.contains_key("S3BackupDescription")
    {
        return Err(invalid_argument(
            "S3BackupConfiguration is required when S3BackupMode is Enabled.",
        ));
    }
    check_s3(&Value::Object(out.clone()))?;
    Ok(Value::Object(out))
}

fn check_s3(description: &Value) -> Result<(), ServiceError> {
    let text = |member: &str| description.get(member).and_then(Value::as_str);
    crate::prefix::validate(text("Prefix"), text("ErrorOutputPrefix")).map_err(invalid_argument)?;
    if let Some(zone) = text("CustomTimeZone") {
        crate::prefix::time_zone(zone).map_err(invalid_argument)?;
    }
    Ok(())
}

/// An `HttpEndpointDestinationDescription` (and the access key) from an
/// HttpEndpointDestinationConfiguration or an update merged into `current`.
pub fn http_description(
    config: &Value,
    current: Option<&Value>,
) -> Result<(Value, Option<String>), ServiceError> {
    refuse_enabled(config, "ProcessingConfiguration", "Data transformation")?;
    let mut out = match current {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    let mut access_key = None;
    if let Some(endpoint) = config.get("EndpointConfiguration") {
        let mut described = Map::new();
        for member in ["Url", "Name"] {
            if let Some(value) = endpoint.get(member) {
                described.insert(member.into(), value.clone());
            }
        }
        if let Some(url) = crate::httpdest::given_url(endpoint) {
            described.insert("Url".into(), json!(url));
        }
        out.insert("EndpointConfiguration".into(), Value::Object(described));
        access_key = endpoint
            .get("AccessKey")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    for member in [
        "CloudWatchLoggingOptions",
        "RequestConfiguration",
        "ProcessingConfiguration",
        "RoleARN",
        "RetryOptions",
        "S3BackupMode",
    ] {
        if let Some(value) = config.get(member) {
            out.insert(member.into(), value.clone());
        }
    }
    let hints = config
        .get("BufferingHints")
        .or_else(|| out.get("BufferingHints"))
        .cloned();
    out.insert("BufferingHints".into(), buffering_hints(hints.as_ref()));
    out.entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    let request = out
        .entry("RequestConfiguration")
        .or_insert_with(|| json!({}));
    if let Value::Object(request) = request {
        request
            .entry("ContentEncoding")
            .or_insert_with(|| json!("NONE"));
    }
    out.entry("RetryOptions")
        .or_insert_with(|| json!({"DurationInSeconds": 300}));
    out.entry("S3BackupMode")
        .or_insert_with(|| json!("FailedDataOnly"));
    if let Some(s3) = config
        .get("S3Configuration")
        .or_else(|| config.get("S3Update"))
    {
        let current = out.get("S3DestinationDescription").cloned();
        out.insert(
            "S3DestinationDescription".into(),
            plain_s3(&s3_description(s3, current.as_ref())?),
        );
    }
    Ok((Value::Object(out), access_key))
}

/// The compression of an S3 description.
pub fn compression(s3: &Value) -> Compression {
    Compression::parse(
        s3.get("CompressionFormat")
            .and_then(Value::as_str)
            .unwrap_or("UNCOMPRESSED"),
    )
}

/// The destination configurations of CreateDeliveryStream this implementation refuses.
pub const UNSUPPORTED_DESTINATIONS: &[(&str, &str)] = &[
    ("RedshiftDestinationConfiguration", "Amazon Redshift"),
    (
        "ElasticsearchDestinationConfiguration",
        "Amazon Elasticsearch",
    ),
    (
        "AmazonopensearchserviceDestinationConfiguration",
        "Amazon OpenSearch Service",
    ),
    (
        "AmazonOpenSearchServerlessDestinationConfiguration",
        "Amazon OpenSearch Serverless",
    ),
    ("SplunkDestinationConfiguration", "Splunk"),
    ("SnowflakeDestinationConfiguration", "Snowflake"),
    ("IcebergDestinationConfiguration", "Apache Iceberg Tables"),
];
