//! Amazon Data Firehose for Millrace (`Firehose_20150804`, awsJson 1.1): delivery streams that
//! buffer records durably and deliver them to S3-compatible stores and HTTP endpoints.
//!
//! Records accepted by PutRecord and PutRecordBatch are appended to the delivery stream's own
//! `millrace-log` log (`<data-dir>/firehose/<incarnation>/`) and synced before the reply; the
//! delivery engine (`delivery.rs`, one task per stream) rebuilds its buffer from the log after
//! a restart, delivers an object when the buffering hints say so, and only then records the
//! delivered position in `firehose.redb` (at-least-once). Metadata is one document per stream
//! in the same store.
//! **Invariant:** knows no HTTP server: the server hands it model-checked JSON and an
//! authorizer; outgoing requests (S3, HTTP endpoints) use its own client.
#![deny(clippy::unwrap_used)]

mod compress;
mod delivery;
mod doc;
mod error;
mod frame;
mod http;
mod httpdest;
mod metrics;
mod pipeline;
mod prefix;
mod s3;
mod service;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use millrace_catalog::DocumentStore;
use millrace_log::{LogConfig, ShardLog};
use tokio::sync::watch;

pub use doc::StreamDoc;
pub use metrics::{MetricPoint, MetricsSink};
pub use pipeline::{validate_prefixes, Pipeline, PipelineSpec};
pub use s3::S3Target;
pub use source::KinesisStreams;

/// Settings from the command line.
#[derive(Clone)]
pub struct FirehoseConfig {
    /// `<data-dir>`; the service keeps `firehose.redb` and `firehose/` there.
    pub data_dir: PathBuf,
    /// Where S3 destinations write.
    pub s3: S3Target,
    /// How long a new delivery stream stays CREATING, in milliseconds.
    pub create_ms: u64,
    /// Whether HTTP endpoint destinations may use `http://` to a loopback address.
    pub allow_http_loopback: bool,
    /// Where `AWS/Firehose` metrics go (`None`: not counted).
    pub metrics: Option<Arc<dyn MetricsSink>>,
    /// Whether appends are synced before PutRecord answers (`--fsync always`); otherwise they
    /// are written to the log file without a sync, so they survive a crash of the process.
    pub sync: bool,
    /// Checks the customer managed KMS keys of StartDeliveryStreamEncryption.
    pub keys: Option<Arc<dyn KmsKeys>>,
}

/// Further settings, each with a default that keeps [`Firehose::open`]'s behaviour.
#[derive(Clone, Default)]
pub struct FirehoseOptions {
    /// Objects larger than this go up as multipart uploads in parts of this size (0: 16 MiB).
    pub s3_part_bytes: usize,
    /// Where the objects of particular buckets go, instead of [`FirehoseConfig::s3`].
    pub bucket_targets: BTreeMap<String, S3Target>,
    /// How long a deleted delivery stream stays DELETING, in milliseconds.
    pub delete_ms: u64,
    /// The KMS data keys records of encrypted streams are sealed with (`None`: no KMS, records
    /// are stored as they came).
    pub record_keys: Option<Arc<dyn millrace_engine::encryption::RecordKeys>>,
}

/// The KMS keys, as encryption settings see them.
pub trait KmsKeys: Send + Sync {
    /// `Ok` when the key exists in the account and region and is enabled; otherwise KMS's
    /// reason.
    fn check(&self, account: &str, region: &str, key_arn: &str) -> Result<(), String>;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

type Key = (String, String, String);

/// One live delivery stream: its document, its record log and its delivery task's signals.
pub(crate) struct Stream {
    pub(crate) doc: Mutex<StreamDoc>,
    pub(crate) log: ShardLog,
    /// The position after the last durable record (wakes the delivery task).
    pub(crate) appended: watch::Sender<u64>,
    /// Serialises appends, so arrival timestamps never go backwards.
    pub(crate) append_lock: Mutex<u64>,
    /// Serialises syncs and holds the position everything before which is durable: a request
    /// whose records an earlier sync already covered does not sync again (group commit).
    pub(crate) synced: Mutex<u64>,
    /// Set when the stream is deleted or the server stops.
    pub(crate) stop: watch::Sender<bool>,
}

impl Stream {
    pub(crate) fn snapshot(&self) -> StreamDoc {
        self.doc.lock().expect("stream document lock").clone()
    }
}

pub(crate) struct Inner {
    pub(crate) config: FirehoseConfig,
    pub(crate) store: DocumentStore,
    pub(crate) streams: Mutex<BTreeMap<Key, Arc<Stream>>>,
    pub(crate) next_incarnation: AtomicU64,
    pub(crate) client: http::HttpClient,
    pub(crate) kinesis: Option<Arc<dyn KinesisStreams>>,
    /// Serialises control-plane changes.
    pub(crate) control: tokio::sync::Mutex<()>,
    pub(crate) meter: metrics::Meter,
    pub(crate) options: FirehoseOptions,
    pub(crate) sealer: Option<millrace_engine::encryption::PayloadSealer>,
}

/// The Firehose service.
#[derive(Clone)]
pub struct Firehose {
    pub(crate) inner: Arc<Inner>,
}

const STREAM_PREFIX: &str = "fh/s/";
const INCARNATION_KEY: &str = "fh/next-incarnation";

pub(crate) fn stream_key(account: &str, region: &str, name: &str) -> String {
    format!("{STREAM_PREFIX}{account}/{region}/{name}")
}

pub(crate) fn delivered_key(incarnation: u64) -> String {
    format!("fh/p/{incarnation}")
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 20,
        ..LogConfig::default()
    }
}

impl Firehose {
    /// Opens `<data-dir>/firehose.redb` and every delivery stream's log. Call
    /// [`Firehose::start`] from inside the runtime to start delivering.
    pub fn open(
        config: FirehoseConfig,
        kinesis: Option<Arc<dyn KinesisStreams>>,
    ) -> std::io::Result<Firehose> {
        Firehose::open_with(config, kinesis, FirehoseOptions::default())
    }

    /// [`Firehose::open`] with further settings.
    pub fn open_with(
        config: FirehoseConfig,
        kinesis: Option<Arc<dyn KinesisStreams>>,
        options: FirehoseOptions,
    ) -> std::io::Result<Firehose> {
        let store = DocumentStore::open(&config.data_dir.join("firehose.redb"))
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let next = store
            .get(INCARNATION_KEY)
            .map_err(|error| std::io::Error::other(error.to_string()))?
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse().ok())
            .unwrap_or(1);
        let rows = store
            .scan(STREAM_PREFIX)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let mut streams = BTreeMap::new();
        for (_, bytes) in rows {
            let doc: StreamDoc = serde_json::from_slice(&bytes)
                .map_err(|error| std::io::Error::other(format!("stream document: {error}")))?;
            let legacy = doc.frame_from.is_none();
            let stream = open_stream(&config.data_dir, doc)?;
            if legacy {
                // Written before records were framed: frames start after its last record.
                let mut doc = stream.doc.lock().expect("stream document lock");
                doc.frame_from = Some(stream.log.next_position());
                let bytes = serde_json::to_vec(&*doc).map_err(std::io::Error::other)?;
                store
                    .write(&[(
                        &stream_key(&doc.account, &doc.region, &doc.name),
                        Some(&bytes),
                    )])
                    .map_err(|error| std::io::Error::other(error.to_string()))?;
            }
            let key = {
                let doc = stream.snapshot();
                (doc.account, doc.region, doc.name)
            };
            streams.insert(key, stream);
        }
        Ok(Firehose {
            inner: Arc::new(Inner {
                client: http::client()?,
                meter: metrics::Meter::new(config.metrics.clone()),
                config,
                store,
                streams: Mutex::new(streams),
                next_incarnation: AtomicU64::new(next),
                kinesis,
                control: tokio::sync::Mutex::new(()),
                sealer: options
                    .record_keys
                    .clone()
                    .map(millrace_engine::encryption::PayloadSealer::new),
                options,
            }),
        })
    }

    /// Starts the delivery task of every stream (and the source readers).
    pub fn start(&self) {
        let streams: Vec<Arc<Stream>> = self
            .inner
            .streams
            .lock()
            .expect("streams lock")
            .values()
            .cloned()
            .collect();
        for stream in streams {
            let doc = stream.snapshot();
            if doc.deleted_at_ms.is_some() {
                // Deleted before the restart: only its removal is left to do.
                schedule_removal(self.inner.clone(), doc);
                continue;
            }
            self.spawn(stream);
        }
        // Finished minutes go to the metrics layer once a minute (a timer, not a poll: nothing
        // waits on it).
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let inner = inner.clone();
                let _ = tokio::task::spawn_blocking(move || inner.meter.flush(false)).await;
            }
        });
    }

    pub(crate) fn spawn(&self, stream: Arc<Stream>) {
        tokio::spawn(delivery::run(self.inner.clone(), stream.clone()));
        if stream.snapshot().source.is_some() {
            tokio::spawn(source::run(self.inner.clone(), stream));
        }
    }

    /// Stops every delivery task (at shutdown; undelivered records stay in the logs) and hands
    /// the metrics counted so far to the metrics layer.
    pub fn stop(&self) {
        for stream in self.inner.streams.lock().expect("streams lock").values() {
            let _ = stream.stop.send(true);
        }
        self.inner.meter.flush(true);
    }
}

impl Inner {
    pub(crate) fn allocate_incarnation(&self) -> Result<u64, String> {
        let incarnation = self.next_incarnation.fetch_add(1, Ordering::SeqCst);
        let next = (incarnation + 1).to_string();
        self.store
            .write(&[(INCARNATION_KEY, Some(next.as_bytes()))])
            .map_err(|error| error.to_string())?;
        Ok(incarnation)
    }

    /// Where a bucket's objects go: its own endpoint when one is configured, else the default.
    pub(crate) fn target(&self, bucket: &str) -> &S3Target {
        self.options
            .bucket_targets
            .get(bucket)
            .unwrap_or(&self.config.s3)
    }

    /// The part size of multipart uploads.
    pub(crate) fn part_bytes(&self) -> usize {
        match self.options.s3_part_bytes {
            0 => s3::DEFAULT_PART_BYTES,
            given => given,
        }
    }

    pub(crate) fn lookup(&self, account: &str, region: &str, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .lock()
            .expect("streams lock")
            .get(&(account.to_owned(), region.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Writes a stream's document durably.
    pub(crate) fn save(&self, doc: &StreamDoc) -> Result<(), String> {
        let bytes = serde_json::to_vec(doc).map_err(|error| error.to_string())?;
        self.store
            .write(&[(
                &stream_key(&doc.account, &doc.region, &doc.name),
                Some(&bytes),
            )])
            .map_err(|error| error.to_string())
    }

    /// Appends records durably (synced before returning) and wakes the delivery task; returns
    /// the position of the first. `arrivals` are the records' arrival times (Kinesis sources);
    /// records of a stream with encryption enabled are sealed with its KMS key first.
    pub(crate) fn append_framed(
        &self,
        stream: &Stream,
        records: &[&[u8]],
        arrivals: Option<&[u64]>,
    ) -> Result<u64, AppendError> {
        let (first, end) = {
            let mut last_ts = stream.append_lock.lock().expect("append lock");
            let doc = stream.snapshot();
            let sealed = match (&self.sealer, doc.encryption_key()) {
                (Some(sealer), Some(key_id)) => Some(
                    sealer
                        .seal(
                            &doc.account,
                            &doc.region,
                            doc.incarnation,
                            &key_id,
                            &doc.arn(),
                            records,
                        )
                        .map_err(|error| AppendError::Kms(error.to_string()))?,
                ),
                _ => None,
            };
            let bodies: Vec<&[u8]> = match &sealed {
                Some(sealed) => sealed.iter().map(Vec::as_slice).collect(),
                None => records.to_vec(),
            };
            let framed: Vec<Vec<u8>> = bodies
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    let arrival = arrivals.and_then(|a| a.get(i).copied());
                    frame::encode(arrival, sealed.is_some(), body)
                })
                .collect();
            let ts = now_ms().max(*last_ts);
            *last_ts = ts;
            let entries: Vec<millrace_log::Entry<'_>> = framed
                .iter()
                .map(|payload| millrace_log::Entry {
                    timestamp_ms: ts,
                    payload,
                })
                .collect();
            let first = stream
                .log
                .append(&entries)
                .map_err(|error| AppendError::Storage(error.to_string()))?;
            (first, first + records.len() as u64)
        };
        {
            let mut synced = stream.synced.lock().expect("sync lock");
            if self.config.sync && *synced < end {
                // Everything appended so far, also by requests still waiting for this lock.
                let target = stream.log.next_position();
                stream
                    .log
                    .sync()
                    .map_err(|error| AppendError::Storage(error.to_string()))?;
                *synced = target;
            }
        }
        stream.appended.send_if_modified(|current| {
            if end > *current {
                *current = end;
                true
            } else {
                false
            }
        });
        Ok(first)
    }
}

/// Why records were not appended.
pub(crate) enum AppendError {
    /// The stream's KMS key cannot be used (KMS's reason).
    Kms(String),
    Storage(String),
}

/// Removes a deleted stream for good: its document, delivered position, source checkpoints
/// and record log.
pub(crate) fn remove_stream(inner: &Inner, doc: &StreamDoc) -> Result<(), String> {
    let key = stream_key(&doc.account, &doc.region, &doc.name);
    let delivered = delivered_key(doc.incarnation);
    let mut changes: Vec<(&str, Option<&[u8]>)> =
        vec![(key.as_str(), None), (delivered.as_str(), None)];
    let sources = source::position_keys(inner, doc.incarnation);
    for key in &sources {
        changes.push((key.as_str(), None));
    }
    inner
        .store
        .write(&changes)
        .map_err(|error| error.to_string())?;
    inner.streams.lock().expect("streams lock").remove(&(
        doc.account.clone(),
        doc.region.clone(),
        doc.name.clone(),
    ));
    if let Some(sealer) = &inner.sealer {
        sealer.forget(doc.incarnation);
    }
    let dir = stream_dir(&inner.config.data_dir, doc.incarnation);
    if let Err(error) = std::fs::remove_dir_all(&dir) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, dir = %dir.display(), "could not remove a deleted delivery stream's log");
        }
    }
    Ok(())
}

/// Removes a DELETING stream once its time has come (a timer, not a poll).
pub(crate) fn schedule_removal(inner: Arc<Inner>, doc: StreamDoc) {
    tokio::spawn(async move {
        let at = doc.deleted_at_ms.unwrap_or(0);
        let wait = at.saturating_sub(now_ms());
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        let _control = inner.control.lock().await;
        let removing = inner.clone();
        let removed = tokio::task::spawn_blocking(move || remove_stream(&removing, &doc)).await;
        if let Ok(Err(error)) | Err(error) = removed.map_err(|e| e.to_string()) {
            tracing::error!(%error, "removing a deleted delivery stream failed");
        }
    });
}

pub(crate) fn stream_dir(data_dir: &Path, incarnation: u64) -> PathBuf {
    data_dir.join("firehose").join(incarnation.to_string())
}

pub(crate) fn open_stream(data_dir: &Path, doc: StreamDoc) -> std::io::Result<Arc<Stream>> {
    let log = ShardLog::open(&stream_dir(data_dir, doc.incarnation), log_config())
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    let end = log.next_position();
    let last = log.last_timestamp().unwrap_or(0);
    Ok(Arc::new(Stream {
        doc: Mutex::new(doc),
        log,
        appended: watch::channel(end).0,
        append_lock: Mutex::new(last),
        synced: Mutex::new(end),
        stop: watch::channel(false).0,
    }))
}
