//! Stream-to-bucket pipelines for other services (Kinesis Channels): the machinery of a
//! KinesisStreamAsSource delivery stream with an S3 destination, without a delivery stream
//! around it.
//!
//! A pipeline is the same [`Stream`] a delivery stream is (its own record log under
//! `firehose/<id>/`, its delivered position and source checkpoints in `firehose.redb`), run by
//! the same tasks: `source.rs` reads the Kinesis stream (parents before children, KPL records
//! de-aggregated, waiting on `Engine::subscribe_shard`) into the log, `delivery.rs` buffers and
//! writes objects through `s3.rs`. The caller keeps the pipeline's settings durably (a
//! pipeline is not listed, described or reopened by Firehose) and starts it again after a
//! restart with the same id, so its log, checkpoints and delivered position carry on.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::{Firehose, Stream, StreamDoc};

/// What a pipeline reads and where it writes.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    pub account: String,
    pub region: String,
    /// Names objects as a delivery stream's name does: `<name>-<version>-<date>-<random>`.
    pub name: String,
    /// From [`Firehose::allocate_pipeline_id`]; the same id after a restart.
    pub id: u64,
    /// Reading starts at records that arrived at this time (milliseconds since the epoch).
    pub start_ms: u64,
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    pub source_stream_arn: String,
    /// `arn:aws:s3:::<bucket>`.
    pub bucket_arn: String,
    /// A delivery stream's `Prefix` (expressions allowed; see [`validate_prefixes`]).
    pub prefix: Option<String>,
    pub error_output_prefix: Option<String>,
    /// A delivery stream's `CompressionFormat` (`UNCOMPRESSED`, `GZIP`, ...).
    pub compression: String,
    /// Buffer interval: the oldest buffered record waits at most this long.
    pub interval_seconds: u64,
    /// Buffer size: an object is written once this many bytes are buffered.
    pub size_mb: u64,
}

/// A running pipeline.
pub struct Pipeline {
    stream: Arc<Stream>,
}

/// Checks a prefix and error prefix by the rules of delivery streams (the service's texts).
pub fn validate_prefixes(prefix: Option<&str>, error_prefix: Option<&str>) -> Result<(), String> {
    crate::prefix::validate(prefix, error_prefix)
}

fn document(spec: &PipelineSpec) -> Result<StreamDoc, String> {
    let mut destination = json!({
        "BucketARN": spec.bucket_arn,
        "CompressionFormat": spec.compression,
        "BufferingHints": {
            "SizeInMBs": spec.size_mb,
            "IntervalInSeconds": spec.interval_seconds,
        },
        "S3BackupMode": "Disabled",
    });
    if let Some(prefix) = &spec.prefix {
        destination["Prefix"] = json!(prefix);
    }
    if let Some(prefix) = &spec.error_output_prefix {
        destination["ErrorOutputPrefix"] = json!(prefix);
    }
    // Built from JSON, so that members added to the document later take their defaults.
    serde_json::from_value(json!({
        "account": spec.account,
        "region": spec.region,
        "name": spec.name,
        "incarnation": spec.id,
        "stream_type": "KinesisStreamAsSource",
        "version": 1,
        "created_ms": spec.start_ms,
        "updated_ms": Value::Null,
        "active_at_ms": spec.start_ms,
        "kind": "S3",
        "destination": destination,
        "source": {"KinesisStreamARN": spec.source_stream_arn},
        // Every record of a pipeline's log is framed (`frame.rs`).
        "frame_from": 0,
    }))
    .map_err(|error| format!("pipeline document: {error}"))
}

impl Firehose {
    /// A new pipeline id, stored durably (never handed out twice).
    pub fn allocate_pipeline_id(&self) -> Result<u64, String> {
        self.inner.allocate_incarnation()
    }

    /// Opens the pipeline's log (created on first use) and starts its source reader and
    /// delivery task. Call from inside the runtime.
    pub fn start_pipeline(&self, spec: &PipelineSpec) -> Result<Pipeline, String> {
        let doc = document(spec)?;
        let stream = crate::open_stream(&self.inner.config.data_dir, doc)
            .map_err(|error| format!("open the pipeline's log: {error}"))?;
        self.spawn(stream.clone());
        Ok(Pipeline { stream })
    }

    /// Stops a pipeline and removes its log, checkpoints and delivered position; records not
    /// yet delivered are dropped.
    pub async fn remove_pipeline(&self, pipeline: Option<Pipeline>, id: u64) -> Result<(), String> {
        if let Some(pipeline) = pipeline {
            pipeline.stop();
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let delivered = crate::delivered_key(id);
            let sources = crate::source::position_keys(&inner, id);
            let mut changes: Vec<(&str, Option<&[u8]>)> = vec![(delivered.as_str(), None)];
            for key in &sources {
                changes.push((key.as_str(), None));
            }
            inner
                .store
                .write(&changes)
                .map_err(|error| error.to_string())?;
            let dir = crate::stream_dir(&inner.config.data_dir, id);
            match std::fs::remove_dir_all(&dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(%error, dir = %dir.display(), "could not remove a pipeline's log");
                }
                _ => {}
            }
            Ok(())
        })
        .await
        .map_err(|error| error.to_string())?
    }
}

impl Pipeline {
    /// Changes the buffer interval (the delivery task reads it before each wait).
    pub fn set_interval(&self, seconds: u64) {
        let mut doc = self.stream.doc.lock().expect("stream document lock");
        if let Some(hints) = doc.destination.get_mut("BufferingHints") {
            hints["IntervalInSeconds"] = json!(seconds);
        }
        drop(doc);
        // Wake the delivery task, so a shorter interval takes effect now.
        self.stream.appended.send_modify(|_| {});
    }

    /// Stops the pipeline's tasks (undelivered records stay in its log).
    pub fn stop(&self) {
        let _ = self.stream.stop.send(true);
    }
}
