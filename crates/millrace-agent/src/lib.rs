//! `millrace agent`: the Kinesis Agent's job in Rust. It reads the agent's `agent.json`
//! ([`config`]), follows the files of each flow through renames, copy-truncation and new files
//! ([`tail`]), woken by file-system events (`notify`; no polling), turns lines into records with
//! the data-processing options ([`process`]), sends them to a Kinesis stream through the producer
//! library or to a Firehose delivery stream with PutRecordBatch ([`send`]), and after each
//! delivered batch stores every file's position durably ([`checkpoint`]): a restart resumes
//! where the last acknowledged batch ended, so no line is lost, and a line is sent again only
//! if the agent died between sending it and storing the checkpoint (at least once).
//!
//! It is a client of the public APIs only (`millrace-client`, `millrace-producer`), so it runs
//! against AWS as well as Millrace.
#![deny(clippy::unwrap_used)]

pub mod checkpoint;
pub mod config;
pub mod process;
pub mod send;
pub mod tail;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use millrace_client::{AwsClient, ClientConfig, Credentials, Service, FIREHOSE, KINESIS};
use millrace_producer::{KinesisClient, Producer, ProducerConfig};
use notify::Watcher as _;
use tokio::sync::{watch, Notify};

use crate::checkpoint::CheckpointStore;
use crate::config::{AgentConfig, Destination, Flow, PartitionKeyOption};
use crate::send::{OutRecord, Stopped};
use crate::tail::{Batch, FlowFiles};

/// An endpoint as the agent's settings give it: `https://` is assumed without a scheme.
fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_owned()
    } else {
        format!("https://{}", endpoint.trim_end_matches('/'))
    }
}

/// The region of an AWS endpoint's host (`kinesis.eu-west-1.amazonaws.com`).
fn region_of(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").last()?.split(['/', ':']).next()?;
    let labels: Vec<&str> = host.split('.').collect();
    (labels.len() >= 4 && labels[2] == "amazonaws").then(|| labels[1].to_owned())
}

fn client_config(
    service: &Service,
    endpoint: Option<&str>,
    config: &AgentConfig,
) -> Result<ClientConfig, String> {
    let endpoint = endpoint.map(endpoint_url);
    let region = config
        .region
        .clone()
        .or_else(|| endpoint.as_deref().and_then(region_of));
    match &config.access_key {
        Some((id, secret)) => {
            let region = region
                .or_else(|| {
                    millrace_client::credentials::resolve(None)
                        .ok()
                        .and_then(|r| r.region)
                })
                .or_else(|| std::env::var("AWS_REGION").ok())
                .unwrap_or_else(|| "us-east-1".to_owned());
            Ok(ClientConfig {
                endpoint: endpoint
                    .or_else(|| millrace_client::env_endpoint(service))
                    .unwrap_or_else(|| millrace_client::default_endpoint(service, &region)),
                region,
                credentials: Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: None,
                },
                request_timeout: Duration::from_secs(30),
            })
        }
        None => ClientConfig::for_service(service, endpoint.as_deref(), region.as_deref(), None)
            .map_err(|e| e.to_string()),
    }
}

/// Where a flow's batches go.
#[derive(Clone)]
enum Sender {
    Kinesis(Producer),
    Firehose(Box<AwsClient>),
}

fn partition_key(option: PartitionKeyOption, data: &[u8]) -> String {
    match option {
        PartitionKeyOption::Random => format!("{}", rand::random::<f64>() * 1_000_000.0),
        PartitionKeyOption::Deterministic => hex(&Md5::digest(data)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The batch's records after the data-processing options, cut to the destination's limit.
fn prepare(flow: &Flow, batch: &mut Batch) -> Vec<OutRecord> {
    let limit = flow.destination.max_record_bytes();
    std::mem::take(&mut batch.records)
        .into_iter()
        .filter_map(|raw| process::apply_all(&flow.processors, raw.data))
        .map(|mut data| {
            let key = partition_key(flow.partition_key, &data);
            let room = match flow.destination {
                Destination::Kinesis(_) => limit - key.len(),
                Destination::Firehose(_) => limit,
            };
            if data.len() > room {
                let terminator = &flow.truncated_record_terminator;
                data.truncate(room.saturating_sub(terminator.len()));
                data.extend_from_slice(terminator);
            }
            OutRecord {
                data,
                partition_key: key,
            }
        })
        .collect()
}

async fn deliver(
    sender: &Sender,
    flow: &Flow,
    records: Vec<OutRecord>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Stopped> {
    if records.is_empty() {
        return Ok(());
    }
    match sender {
        Sender::Kinesis(producer) => {
            send::to_kinesis(producer, flow.destination.name(), records, stop).await
        }
        Sender::Firehose(client) => {
            send::to_firehose(client, flow.destination.name(), records, stop).await
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// File-system events routed to the flows: (directory, the flow to wake). A flow whose
/// directory does not exist yet is also woken by its nearest existing ancestor.
type Routes = Arc<Mutex<Vec<(PathBuf, Arc<Notify>)>>>;

struct FlowTask {
    flow: Flow,
    files: FlowFiles,
    sender: Sender,
    wake: Arc<Notify>,
    store: Arc<Mutex<CheckpointStore>>,
    watcher: Arc<Mutex<notify::RecommendedWatcher>>,
    routes: Routes,
    /// The directory is not watched yet (it did not exist): the ancestor watched instead.
    waiting_in: Option<PathBuf>,
}

/// The nearest existing ancestor of a directory.
fn nearest_existing(directory: &std::path::Path) -> PathBuf {
    directory
        .ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(std::path::Path::new("/"))
        .to_path_buf()
}

impl FlowTask {
    /// Watches the flow's directory once it exists; until then its nearest existing ancestor,
    /// so that its creation wakes the flow. Whether the directory is watched.
    fn watch_directory(&mut self) -> bool {
        if self.waiting_in.is_none() {
            return true;
        }
        let directory = self.files.directory().to_owned();
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if directory.is_dir() {
                match watcher.watch(&directory, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        tracing::info!(directory = %directory.display(), "the flow's directory exists: watching it");
                        self.waiting_in = None;
                        return true;
                    }
                    Err(error) => {
                        tracing::warn!(directory = %directory.display(), %error, "cannot watch the flow's directory");
                        return false;
                    }
                }
            }
            // A nearer ancestor was created: watch it instead, then look again (what was created
            // before the watch began would not be reported).
            let ancestor = nearest_existing(&directory);
            if Some(&ancestor) == self.waiting_in.as_ref()
                || watcher
                    .watch(&ancestor, notify::RecursiveMode::NonRecursive)
                    .is_err()
            {
                return false;
            }
            self.routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((ancestor.clone(), self.wake.clone()));
            self.waiting_in = Some(ancestor);
        }
    }

    fn store(&self, checkpoints: Vec<checkpoint::FileCheckpoint>) {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = store.store(&self.flow.id(), checkpoints) {
            tracing::error!(flow = %self.flow.id(), %error, "could not store the checkpoint");
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let id = self.flow.id();
        let max_record = self.flow.destination.max_record_bytes();
        let mut batch = Batch::default();
        let mut first = true;
        loop {
            if *stop.borrow() {
                break;
            }
            if !self.watch_directory() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            if let Err(error) = self.files.scan(&self.flow) {
                tracing::warn!(flow = %id, %error, "cannot list the flow's directory");
            }
            if first {
                // The starting positions, so that a crash before the first batch resumes here.
                self.store(self.files.checkpoints());
                first = false;
            }
            if let Err(error) = self.files.read(&self.flow, &mut batch, max_record) {
                tracing::warn!(flow = %id, %error, "read failed");
            }
            let aged = batch
                .started
                .is_some_and(|t| t.elapsed() >= self.flow.max_buffer_age);
            if !batch.records.is_empty() && (aged || batch.is_full(&self.flow)) {
                let count = batch.records.len();
                let records = prepare(&self.flow, &mut batch);
                if deliver(&self.sender, &self.flow, records, &mut stop)
                    .await
                    .is_err()
                {
                    return; // stopping: this batch is not checkpointed and is read again
                }
                tracing::debug!(flow = %id, records = count, "batch delivered");
                let checkpoints = self.files.acknowledge(&batch);
                self.store(checkpoints);
                batch = Batch::default();
                continue;
            }
            if batch.records.is_empty() {
                // Nothing to send: forget files that are gone and delivered.
                let checkpoints = self.files.acknowledge(&batch);
                self.store(checkpoints);
            }
            let deadline = [
                batch.started.map(|t| t + self.flow.max_buffer_age),
                self.files.next_flush(&self.flow),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep_until(deadline) => {}
                _ = stop.changed() => {}
            }
        }
        // Stopping: what was read is sent (briefly) and checkpointed; otherwise it is read again
        // at the next start.
        if !batch.records.is_empty() {
            let records = prepare(&self.flow, &mut batch);
            let (_never, mut no_stop) = watch::channel(false);
            let sent = tokio::time::timeout(
                Duration::from_secs(10),
                deliver(&self.sender, &self.flow, records, &mut no_stop),
            )
            .await;
            if matches!(sent, Ok(Ok(()))) {
                let checkpoints = self.files.acknowledge(&batch);
                self.store(checkpoints);
            }
        }
    }
}

/// Runs the agent until `stop` turns true.
pub async fn run(config_path: PathBuf, stop: watch::Receiver<bool>) -> Result<(), String> {
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("read {}: {e}", config_path.display()))?;
    let config = AgentConfig::parse(&text)
        .map_err(|e| format!("the configuration {}: {e}", config_path.display()))?;
    let store = CheckpointStore::open(&config.checkpoint_file)?;
    let mut kinesis: Option<Producer> = None;
    let mut firehose: Option<AwsClient> = None;
    let mut tasks = Vec::new();
    let mut watched: Vec<(PathBuf, Arc<Notify>)> = Vec::new();
    for flow in &config.flows {
        let sender = match &flow.destination {
            Destination::Kinesis(_) => {
                if kinesis.is_none() {
                    let client_config =
                        client_config(&KINESIS, config.kinesis_endpoint.as_deref(), &config)?;
                    let client = KinesisClient::new(client_config, 8).map_err(|e| e.to_string())?;
                    let producer_config = ProducerConfig {
                        aggregation_enabled: false,
                        record_max_buffered_time: Duration::from_millis(10),
                        record_ttl: Duration::from_secs(600),
                        ..ProducerConfig::default()
                    };
                    kinesis = Some(Producer::new(client, producer_config));
                }
                Sender::Kinesis(kinesis.clone().ok_or("no producer")?)
            }
            Destination::Firehose(_) => {
                if firehose.is_none() {
                    let client_config =
                        client_config(&FIREHOSE, config.firehose_endpoint.as_deref(), &config)?;
                    firehose = Some(AwsClient::new(client_config, 8).map_err(|e| e.to_string())?);
                }
                Sender::Firehose(Box::new(firehose.clone().ok_or("no Firehose client")?))
            }
        };
        let files = FlowFiles::new(flow, store.flow(&flow.id()));
        let wake = Arc::new(Notify::new());
        watched.push((files.directory().to_owned(), wake.clone()));
        tasks.push((flow.clone(), files, sender, wake));
    }
    let store = Arc::new(Mutex::new(store));
    let routes: Routes = Arc::new(Mutex::new(watched.clone()));
    let callback_routes = routes.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // An error or a lost-events notice (the kernel's queue overflowed) wakes every flow:
        // each lists its directory again.
        let everything = match &event {
            // Opening and reading a file (the agent's own reads among them) changes nothing.
            Ok(event) if event.kind.is_access() => return,
            Ok(event) => event.need_rescan(),
            Err(_) => true,
        };
        let routes = callback_routes.lock().unwrap_or_else(|p| p.into_inner());
        for (directory, wake) in routes.iter() {
            let concerned = everything
                || event.as_ref().is_ok_and(|e| {
                    e.paths
                        .iter()
                        .any(|p| p.parent() == Some(directory.as_path()) || p == directory)
                });
            if concerned {
                wake.notify_one();
            }
        }
    })
    .map_err(|e| format!("watch files: {e}"))?;
    let mut waiting = Vec::new();
    for (directory, wake) in &watched {
        if directory.is_dir() {
            watcher
                .watch(directory, notify::RecursiveMode::NonRecursive)
                .map_err(|e| format!("watch {}: {e}", directory.display()))?;
            waiting.push(None);
        } else {
            // Not there yet: its nearest existing ancestor tells when it is created.
            let ancestor = nearest_existing(directory);
            watcher
                .watch(&ancestor, notify::RecursiveMode::NonRecursive)
                .map_err(|e| format!("watch {}: {e}", ancestor.display()))?;
            tracing::info!(directory = %directory.display(), "the flow's directory does not exist yet");
            routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((ancestor.clone(), wake.clone()));
            waiting.push(Some(ancestor));
        }
    }
    let watcher = Arc::new(Mutex::new(watcher));
    tracing::info!(flows = config.flows.len(), checkpoints = %config.checkpoint_file.display(), "agent started");
    let handles: Vec<_> = tasks
        .into_iter()
        .zip(waiting)
        .map(|((flow, mut files, sender, wake), waiting_in)| {
            if waiting_in.is_some() {
                files.all_new();
            }
            let task = FlowTask {
                flow,
                files,
                sender,
                wake,
                store: store.clone(),
                watcher: watcher.clone(),
                routes: routes.clone(),
                waiting_in,
            };
            tokio::spawn(task.run(stop.clone()))
        })
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
    drop(watcher);
    if let Some(producer) = kinesis {
        producer.shutdown().await;
    }
    tracing::info!("agent stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_regions() {
        assert_eq!(
            endpoint_url("kinesis.us-west-2.amazonaws.com"),
            "https://kinesis.us-west-2.amazonaws.com"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:4567/"),
            "http://127.0.0.1:4567"
        );
        assert_eq!(
            region_of("https://firehose.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://127.0.0.1:4567"), None);
    }

    #[test]
    fn partition_keys() {
        assert_eq!(
            partition_key(PartitionKeyOption::Deterministic, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        let random = partition_key(PartitionKeyOption::Random, b"abc");
        assert!(random
            .parse::<f64>()
            .is_ok_and(|v| (0.0..1_000_000.0).contains(&v)));
    }
}
