//! Kinesis Channels for Millrace (docs/channels.md): CreateChannel, DescribeChannel,
//! ListChannels, UpdateChannel and DeleteChannel of the Kinesis model, delivering a stream's
//! records into an S3 bucket through Firehose's delivery engine.
//!
//! A channel is one document in `<data-dir>/channels.redb`, written (and synced) before the
//! call that made the change is answered. Its delivery is a Firehose pipeline
//! ([`millrace_firehose::Pipeline`]): the stream-as-source reader (resharding followed, KPL
//! records de-aggregated, woken by `Engine::subscribe_shard`) and the delivery task with the
//! channel's `DataFreshnessInSeconds` as the buffer interval, writing objects to the embedded
//! store or `--s3-endpoint`. After a restart each channel's pipeline is started again with the
//! same id, so its log, checkpoints and delivered position carry on.
//!
//! **Invariant:** knows no HTTP; the server validates the input against the model and
//! authorizes `kinesis:<Operation>` on the channel ARN (ListChannels on `*`) before calling in.
#![deny(clippy::unwrap_used)]

mod doc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use millrace_catalog::DocumentStore;
use millrace_engine::{Engine, Error};
use millrace_firehose::{Firehose, Pipeline, PipelineSpec};
use serde_json::{json, Value};

pub use doc::{channel_arn, parse_channel_arn, ChannelDoc};

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct ChannelsConfig {
    /// `<data-dir>`; channels are kept in `channels.redb` there.
    pub data_dir: PathBuf,
    /// How long a new channel stays CREATING, in milliseconds.
    pub create_ms: u64,
    /// How long an updated channel stays UPDATING.
    pub update_ms: u64,
    /// How long a deleted channel stays DELETING.
    pub delete_ms: u64,
}

const PREFIX: &str = "ch/";
/// ListChannels' page size when MaxResults is not given, and its largest.
const PAGE: usize = 100;
/// The largest `DataFreshnessInSeconds` (a delivery stream's longest buffer interval).
const MAX_FRESHNESS: u64 = 900;

fn key(account: &str, region: &str, name: &str) -> String {
    format!("{PREFIX}{account}/{region}/{name}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::Internal(error.to_string())
}

type Key = (String, String, String);

struct Entry {
    doc: ChannelDoc,
    pipeline: Option<Pipeline>,
}

struct Inner {
    config: ChannelsConfig,
    store: DocumentStore,
    firehose: Firehose,
    channels: Mutex<BTreeMap<Key, Entry>>,
    /// Serialises control-plane changes.
    control: tokio::sync::Mutex<()>,
}

/// The channels of every account.
#[derive(Clone)]
pub struct Channels {
    inner: Arc<Inner>,
}

fn spec(doc: &ChannelDoc) -> PipelineSpec {
    let storage = doc.storage();
    let text =
        |value: &Value, member: &str| value.get(member).and_then(Value::as_str).map(str::to_owned);
    let compression = match storage.get("CompressionType").and_then(Value::as_str) {
        Some("GZIP") => "GZIP",
        Some("ZSTD") => "ZSTD",
        _ => "UNCOMPRESSED",
    };
    PipelineSpec {
        account: doc.account.clone(),
        region: doc.region.clone(),
        name: doc.name.clone(),
        id: doc.pipeline,
        start_ms: doc.created_ms,
        source_stream_arn: doc
            .streams
            .first()
            .map(|s| s.arn.clone())
            .unwrap_or_default(),
        bucket_arn: text(storage, "BucketARN").unwrap_or_default(),
        prefix: text(storage, "OutputKeyTemplate"),
        error_output_prefix: doc
            .s3
            .get("DeadLetterQueueS3Configuration")
            .and_then(|d| text(d, "ErrorOutputPrefix")),
        compression: compression.to_owned(),
        interval_seconds: doc.freshness(),
        size_mb: doc::BUFFER_MB,
    }
}

impl Channels {
    /// Opens `<data-dir>/channels.redb`. Call [`Channels::start`] inside the runtime (after
    /// Firehose started) to run the deliveries.
    pub fn open(config: ChannelsConfig, firehose: Firehose) -> std::io::Result<Channels> {
        let store = DocumentStore::open(&config.data_dir.join("channels.redb"))
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let mut channels = BTreeMap::new();
        for (_, bytes) in store
            .scan(PREFIX)
            .map_err(|error| std::io::Error::other(error.to_string()))?
        {
            let doc: ChannelDoc = serde_json::from_slice(&bytes)
                .map_err(|error| std::io::Error::other(format!("channel document: {error}")))?;
            channels.insert(
                (doc.account.clone(), doc.region.clone(), doc.name.clone()),
                Entry {
                    doc,
                    pipeline: None,
                },
            );
        }
        Ok(Channels {
            inner: Arc::new(Inner {
                config,
                store,
                firehose,
                channels: Mutex::new(channels),
                control: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Starts the delivery of every channel, and finishes deletions a stop interrupted.
    pub fn start(&self) {
        let mut deleting = Vec::new();
        {
            let mut channels = self.inner.channels.lock().expect("channels lock");
            for entry in channels.values_mut() {
                if entry.doc.deleting_until_ms.is_some() {
                    deleting.push(entry.doc.clone());
                    continue;
                }
                match self.inner.firehose.start_pipeline(&spec(&entry.doc)) {
                    Ok(pipeline) => entry.pipeline = Some(pipeline),
                    Err(error) => {
                        tracing::error!(channel = %entry.doc.name, %error, "starting a channel's delivery failed")
                    }
                }
            }
        }
        for doc in deleting {
            let inner = self.inner.clone();
            tokio::spawn(async move {
                if let Err(error) = inner.firehose.remove_pipeline(None, doc.pipeline).await {
                    tracing::warn!(channel = %doc.name, %error, "removing a deleted channel's records failed");
                }
                finish_delete(inner, doc).await;
            });
        }
    }

    /// Stops every delivery (at shutdown; undelivered records stay in the pipelines' logs).
    pub fn stop(&self) {
        for entry in self.inner.channels.lock().expect("channels lock").values() {
            if let Some(pipeline) = &entry.pipeline {
                pipeline.stop();
            }
        }
    }

    /// Whether a stream has channels that are not being deleted (DeleteStream is refused).
    pub fn stream_has_channels(&self, account: &str, region: &str, stream: &str) -> bool {
        let now = now_ms();
        self.inner
            .channels
            .lock()
            .expect("channels lock")
            .values()
            .any(|entry| {
                let doc = &entry.doc;
                doc.account == account
                    && doc.status(now).is_some_and(|s| s != "DELETING")
                    && doc.streams.iter().any(|s| {
                        doc::parse_stream_arn(&s.arn)
                            .is_some_and(|(r, a, n)| r == region && a == account && n == stream)
                    })
            })
    }

    /// Runs one channel operation for the account of `engine` (input already checked against
    /// the model, the caller authorized). DeleteChannel answers `Value::Null` (no output).
    pub async fn call(
        &self,
        engine: &Arc<Engine>,
        region: &str,
        operation: &str,
        input: &Value,
    ) -> Result<Value, Error> {
        let account = engine.account_id();
        match operation {
            "CreateChannel" => self.create(engine, region, input).await,
            "DescribeChannel" => {
                let doc = self.find(account, input)?;
                Ok(json!({"ChannelDescription": doc.description(now_ms())}))
            }
            "ListChannels" => self.list(account, region, input),
            "UpdateChannel" => self.update(account, input).await,
            "DeleteChannel" => self.delete(account, input).await,
            other => Err(invalid(format!("{other} is not a channel operation."))),
        }
    }

    fn not_found(name: &str, account: &str) -> Error {
        Error::ResourceNotFound(format!("Channel {name} under account {account} not found."))
    }

    /// The live channel a `ChannelARN` names.
    fn find(&self, account: &str, input: &Value) -> Result<ChannelDoc, Error> {
        let arn = input["ChannelARN"].as_str().unwrap_or_default();
        let Some((region, arn_account, name)) = parse_channel_arn(arn) else {
            return Err(Error::ResourceNotFound(format!("Channel {arn} not found.")));
        };
        if arn_account != account {
            return Err(Self::not_found(name, arn_account));
        }
        let channels = self.inner.channels.lock().expect("channels lock");
        channels
            .get(&(account.to_owned(), region.to_owned(), name.to_owned()))
            .map(|entry| entry.doc.clone())
            .filter(|doc| doc.status(now_ms()).is_some())
            .ok_or_else(|| Self::not_found(name, account))
    }

    async fn save(&self, doc: &ChannelDoc) -> Result<(), Error> {
        let bytes = serde_json::to_vec(doc).map_err(internal)?;
        let key = key(&doc.account, &doc.region, &doc.name);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.store.write(&[(&key, Some(&bytes))]))
            .await
            .map_err(internal)?
            .map_err(internal)
    }

    async fn create(
        &self,
        engine: &Arc<Engine>,
        region: &str,
        input: &Value,
    ) -> Result<Value, Error> {
        let account = engine.account_id().to_owned();
        let name = input["ChannelName"].as_str().unwrap_or_default().to_owned();
        let s3_config = input.get("S3DestinationConfiguration");
        if input.get("S3TablesDestinationConfiguration").is_some() {
            if s3_config.is_some() {
                return Err(invalid(
                    "Specify either S3DestinationConfiguration or \
                     S3TablesDestinationConfiguration, not both.",
                ));
            }
            return Err(invalid(
                "S3TablesDestinationConfiguration is not supported by Millrace yet (streaming \
                 tables on Apache Iceberg need Iceberg support); deliver to a general purpose \
                 bucket with S3DestinationConfiguration.",
            ));
        }
        let Some(s3_config) = s3_config else {
            return Err(invalid(
                "Specify either S3DestinationConfiguration or S3TablesDestinationConfiguration.",
            ));
        };
        let streams = input["StreamConfigurationList"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if streams.len() != 1 {
            return Err(invalid(
                "StreamConfigurationList must contain exactly one entry, because a channel \
                 delivers records from a single data stream.",
            ));
        }
        let stream_config = &streams[0];
        let format = stream_config["RecordConfiguration"]["RecordFormatType"]
            .as_str()
            .unwrap_or_default();
        if format == "GSR_JSON" {
            return Err(invalid(
                "RecordFormatType GSR_JSON is supported only for streaming table destinations; \
                 use JSON, STRING or BYTE_ARRAY for a general purpose bucket.",
            ));
        }
        let freshness = s3_config
            .get("DataFreshnessInSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(doc::DEFAULT_FRESHNESS as i64);
        check_freshness(freshness)?;
        let storage = &s3_config["StorageConfiguration"];
        let error_prefix = s3_config
            .get("DeadLetterQueueS3Configuration")
            .and_then(|d| d.get("ErrorOutputPrefix"))
            .and_then(Value::as_str)
            .unwrap_or(doc::DEFAULT_ERROR_PREFIX);
        millrace_firehose::validate_prefixes(
            storage["OutputKeyTemplate"].as_str(),
            Some(error_prefix),
        )
        .map_err(|message| {
            invalid(format!(
                "OutputKeyTemplate or ErrorOutputPrefix is not valid: {message}"
            ))
        })?;
        let encryption = match input.get("EncryptionConfiguration") {
            None => None,
            Some(encryption) => {
                let key_id = encryption["KeyId"].as_str().unwrap_or_default();
                let lowered = key_id.to_ascii_lowercase();
                if lowered == "alias/aws/kinesis" || lowered.ends_with(":alias/aws/kinesis") {
                    return Err(invalid(
                        "The Amazon Kinesis Data Streams service key (aws/kinesis) cannot encrypt \
                         a channel's destination; use a customer managed KMS key.",
                    ));
                }
                engine.check_encryption_key(region, key_id)?;
                Some(json!({"EncryptionType": "KMS", "KeyId": key_id}))
            }
        };
        // The source stream: it must exist, in this account and region, in on-demand mode.
        let stream_arn = stream_config["StreamARN"].as_str().unwrap_or_default();
        let (stream_region, stream_account, stream_name) = doc::parse_stream_arn(stream_arn)
            .ok_or_else(|| invalid(format!("Invalid StreamARN {stream_arn}.")))?;
        if stream_account != account || stream_region != region {
            return Err(Error::ResourceNotFound(format!(
                "Stream {stream_name} under account {stream_account} not found."
            )));
        }
        let summary = engine.describe_stream_summary(stream_region, stream_name)?;
        if summary.mode != "ON_DEMAND" {
            return Err(invalid(format!(
                "Channels are supported only on data streams in on-demand capacity mode. Stream \
                 {stream_name} under account {account} is in provisioned mode."
            )));
        }
        if summary.status == "CREATING" || summary.status == "DELETING" {
            return Err(Error::ResourceInUse(format!(
                "Stream {stream_name} under account {account} is not ACTIVE."
            )));
        }
        let tags: BTreeMap<String, String> = input["Tags"]
            .as_object()
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let _control = self.inner.control.lock().await;
        let now = now_ms();
        {
            let channels = self.inner.channels.lock().expect("channels lock");
            let exists = channels
                .get(&(account.clone(), region.to_owned(), name.clone()))
                .is_some_and(|entry| entry.doc.status(now).is_some());
            if exists {
                return Err(Error::ResourceInUse(format!(
                    "Channel {name} under account {account} already exists."
                )));
            }
        }
        let firehose = self.inner.firehose.clone();
        let pipeline_id = tokio::task::spawn_blocking(move || firehose.allocate_pipeline_id())
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let doc = ChannelDoc {
            account: account.clone(),
            region: region.to_owned(),
            logging: doc::logging(input.get("LoggingConfiguration"), &name, &id),
            name: name.clone(),
            id,
            pipeline: pipeline_id,
            created_ms: now,
            active_at_ms: now + self.inner.config.create_ms,
            updating_until_ms: 0,
            deleting_until_ms: None,
            role_arn: input["ServiceExecutionRoleARN"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            streams: vec![doc::SourceStream {
                arn: stream_arn.to_owned(),
                created_ms: summary.created_ms,
                record_configuration: stream_config["RecordConfiguration"].clone(),
            }],
            s3: doc::s3_description(s3_config),
            encryption,
            tags,
        };
        self.save(&doc).await?;
        // The channel is stored: it is delivered from now on (and after any restart).
        let pipeline = match self.inner.firehose.start_pipeline(&spec(&doc)) {
            Ok(pipeline) => Some(pipeline),
            Err(error) => {
                tracing::error!(channel = %name, %error, "starting a channel's delivery failed");
                None
            }
        };
        let description = doc.description(now);
        self.inner
            .channels
            .lock()
            .expect("channels lock")
            .insert((account, region.to_owned(), name), Entry { doc, pipeline });
        Ok(json!({"ChannelDescription": description}))
    }

    fn list(&self, account: &str, region: &str, input: &Value) -> Result<Value, Error> {
        let limit = input
            .get("MaxResults")
            .and_then(Value::as_u64)
            .map_or(PAGE, |n| (n as usize).min(PAGE));
        let after = match input.get("NextToken").and_then(Value::as_str) {
            None => None,
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                invalid(format!(
                    "Invalid NextToken {token}: not a ListChannels token."
                ))
            })?),
        };
        let filters: Vec<(String, Option<u64>)> = input["StreamFilter"]
            .as_array()
            .map(|filters| {
                filters
                    .iter()
                    .map(|f| {
                        (
                            f["StreamARN"].as_str().unwrap_or_default().to_owned(),
                            f.get("StreamCreationTimestamp")
                                .and_then(Value::as_f64)
                                .map(|s| (s * 1000.0).round() as u64),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = now_ms();
        let channels = self.inner.channels.lock().expect("channels lock");
        let mut matching = channels
            .values()
            .map(|entry| &entry.doc)
            .filter(|doc| doc.account == account && doc.region == region)
            .filter(|doc| doc.status(now).is_some())
            .filter(|doc| {
                after
                    .as_deref()
                    .is_none_or(|after| doc.name.as_str() > after)
            })
            .filter(|doc| {
                filters.is_empty()
                    || doc.streams.iter().any(|s| {
                        filters.iter().any(|(arn, created)| {
                            *arn == s.arn && created.is_none_or(|c| c / 1000 == s.created_ms / 1000)
                        })
                    })
            });
        let page: Vec<&ChannelDoc> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let mut out = json!({
            "ChannelSummaries": page.iter().map(|doc| doc.summary(now)).collect::<Vec<_>>(),
        });
        if more {
            if let Some(last) = page.last() {
                out["NextToken"] = json!(encode_token(&last.name));
            }
        }
        Ok(out)
    }

    async fn update(&self, account: &str, input: &Value) -> Result<Value, Error> {
        let _control = self.inner.control.lock().await;
        let mut doc = self.find(account, input)?;
        let now = now_ms();
        if input.get("S3TablesDestinationConfiguration").is_some() {
            return Err(invalid(format!(
                "Channel {} delivers to a general purpose bucket; update it with \
                 S3DestinationConfiguration.",
                doc.name
            )));
        }
        let freshness = input
            .get("S3DestinationConfiguration")
            .and_then(|s| s.get("DataFreshnessInSeconds"))
            .and_then(Value::as_i64);
        let logging = input.get("LoggingConfiguration");
        if freshness.is_none() && logging.is_none() {
            return Err(invalid(
                "Specify S3DestinationConfiguration or LoggingConfiguration to update.",
            ));
        }
        if let Some(freshness) = freshness {
            check_freshness(freshness)?;
        }
        let status = doc.status(now).unwrap_or("DELETING");
        if status != "ACTIVE" {
            return Err(Error::ResourceInUse(format!(
                "Channel {} under account {account} is not ACTIVE (it is {status}).",
                doc.name
            )));
        }
        if let Some(freshness) = freshness {
            doc.s3["DataFreshnessInSeconds"] = json!(freshness);
        }
        if let Some(logging) = logging {
            doc.logging = doc::logging(Some(logging), &doc.name, &doc.id);
        }
        doc.updating_until_ms = now + self.inner.config.update_ms;
        self.save(&doc).await?;
        let description = doc.description(now);
        let mut channels = self.inner.channels.lock().expect("channels lock");
        if let Some(entry) =
            channels.get_mut(&(doc.account.clone(), doc.region.clone(), doc.name.clone()))
        {
            if let (Some(pipeline), Some(freshness)) = (&entry.pipeline, freshness) {
                pipeline.set_interval(freshness as u64);
            }
            entry.doc = doc;
        }
        Ok(json!({"ChannelDescription": description}))
    }

    async fn delete(&self, account: &str, input: &Value) -> Result<Value, Error> {
        let _control = self.inner.control.lock().await;
        let mut doc = self.find(account, input)?;
        if doc.deleting_until_ms.is_some() {
            return Err(Error::ResourceInUse(format!(
                "Channel {} under account {account} is already being deleted.",
                doc.name
            )));
        }
        doc.deleting_until_ms = Some(now_ms() + self.inner.config.delete_ms);
        self.save(&doc).await?;
        let pipeline = {
            let mut channels = self.inner.channels.lock().expect("channels lock");
            channels
                .get_mut(&(doc.account.clone(), doc.region.clone(), doc.name.clone()))
                .and_then(|entry| {
                    entry.doc = doc.clone();
                    entry.pipeline.take()
                })
        };
        // Delivery stops now; records not yet delivered are dropped with the pipeline.
        if let Err(error) = self
            .inner
            .firehose
            .remove_pipeline(pipeline, doc.pipeline)
            .await
        {
            tracing::warn!(channel = %doc.name, %error, "removing a deleted channel's records failed");
        }
        tokio::spawn(finish_delete(self.inner.clone(), doc));
        Ok(Value::Null)
    }
}

/// Removes a deleted channel's document once its DELETING time is over (unless a new
/// channel of the same name took its place).
async fn finish_delete(inner: Arc<Inner>, doc: ChannelDoc) {
    let until = doc.deleting_until_ms.unwrap_or(0);
    let wait = until.saturating_sub(now_ms());
    if wait > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
    let _control = inner.control.lock().await;
    let map_key = (doc.account.clone(), doc.region.clone(), doc.name.clone());
    let same = inner
        .channels
        .lock()
        .expect("channels lock")
        .get(&map_key)
        .is_some_and(|entry| entry.doc.id == doc.id);
    if !same {
        return;
    }
    let store_key = key(&doc.account, &doc.region, &doc.name);
    let writer = inner.clone();
    let removed =
        tokio::task::spawn_blocking(move || writer.store.write(&[(&store_key, None)])).await;
    match removed {
        Ok(Ok(())) => {
            inner
                .channels
                .lock()
                .expect("channels lock")
                .remove(&map_key);
        }
        Ok(Err(error)) => {
            tracing::warn!(channel = %doc.name, %error, "removing a deleted channel failed")
        }
        Err(error) => {
            tracing::warn!(channel = %doc.name, %error, "removing a deleted channel failed")
        }
    }
}

fn check_freshness(seconds: i64) -> Result<(), Error> {
    if !(0..=MAX_FRESHNESS as i64).contains(&seconds) {
        return Err(invalid(format!(
            "DataFreshnessInSeconds must be between 0 and {MAX_FRESHNESS} seconds; {seconds} is \
             not."
        )));
    }
    Ok(())
}

const TOKEN_TAG: &str = "channels:";

fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_TAG}{after}"))
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(TOKEN_TAG)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        assert_eq!(
            decode_token(&encode_token("orders")).as_deref(),
            Some("orders")
        );
        assert_eq!(decode_token("not a token"), None);
    }

    #[test]
    fn a_channel_becomes_a_pipeline_spec() {
        let doc: ChannelDoc = serde_json::from_value(json!({
            "account": "000000000000", "region": "us-east-1", "name": "orders", "id": "i",
            "pipeline": 7, "created_ms": 1000, "active_at_ms": 1050, "role_arn": "r",
            "streams": [{"arn": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
                         "created_ms": 5, "record_configuration": {}}],
            "s3": doc::s3_description(&json!({
                "DataFreshnessInSeconds": 60,
                "StorageConfiguration": {"BucketARN": "arn:aws:s3:::b", "ExpectedBucketOwner": "000000000000",
                                         "CompressionType": "ZSTD", "OutputKeyTemplate": "t/"},
            })),
            "logging": {},
        }))
        .expect("doc");
        let spec = spec(&doc);
        assert_eq!(spec.id, 7);
        assert_eq!(spec.start_ms, 1000);
        assert_eq!(spec.compression, "ZSTD");
        assert_eq!(spec.interval_seconds, 60);
        assert_eq!(spec.prefix.as_deref(), Some("t/"));
        assert_eq!(spec.error_output_prefix.as_deref(), Some("errors/"));
        assert_eq!(spec.bucket_arn, "arn:aws:s3:::b");
        assert_eq!(
            spec.source_stream_arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/s"
        );
    }

    #[test]
    fn freshness_has_bounds() {
        assert!(check_freshness(0).is_ok());
        assert!(check_freshness(900).is_ok());
        assert!(check_freshness(901).is_err());
        assert!(check_freshness(-1).is_err());
    }
}
