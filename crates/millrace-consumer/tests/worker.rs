//! The library with a Rust record processor, against the real `millrace` binary on 127.0.0.1
//! (built by `cargo build -p millrace-cli`; `MILLRACE_BIN` overrides the path): two workers share
//! a 4-shard stream, every acknowledged record is processed and checkpointed, and a worker that
//! shuts down hands its leases to the other.
#![allow(clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use millrace_consumer::{
    AwsClient, BoxFuture, CheckpointError, Checkpointer, Endpoint, InitialPosition,
    InitializeInput, PreparedCheckpoint, ProcessRecordsInput, ProcessorError, ProcessorFactory,
    RecordProcessor, Retrieval, Worker, WorkerConfig,
};
use serde_json::{json, Value};

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("MILLRACE_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    target.join("debug/millrace")
}

struct Server {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--create-stream-ms",
            "50",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {} (build it with cargo build -p millrace-cli): {e}",
                binary().display()
            )
        });
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    let endpoint = line.trim().trim_start_matches("listening on ").to_owned();
    Server {
        child,
        endpoint,
        _dir: dir,
    }
}

/// (worker, shard, sequence number, sub-sequence number, partition key) of every record processed.
type Seen = Arc<Mutex<Vec<(String, String, String, u64, String)>>>;

/// Checkpoints at the last record delivered (or at SHARD_END after the shard's end).
fn checkpoint_now(checkpointer: &mut Checkpointer) -> BoxFuture<'_, Result<(), ProcessorError>> {
    Box::pin(async move {
        checkpointer
            .checkpoint()
            .await
            .map_err(|e| ProcessorError(e.name()))
    })
}

struct Collector {
    worker: String,
    shard: String,
    seen: Seen,
}

impl RecordProcessor for Collector {
    fn initialize(&mut self, input: InitializeInput) -> BoxFuture<'_, Result<(), ProcessorError>> {
        self.shard = input.shard_id;
        Box::pin(async { Ok(()) })
    }

    fn process_records<'a>(
        &'a mut self,
        input: ProcessRecordsInput,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        Box::pin(async move {
            {
                let mut seen = self.seen.lock().expect("lock");
                for record in &input.records {
                    seen.push((
                        self.worker.clone(),
                        self.shard.clone(),
                        record.sequence_number.clone(),
                        record.sub_sequence_number,
                        record.partition_key.clone(),
                    ));
                }
            }
            checkpointer
                .checkpoint()
                .await
                .map_err(|e| ProcessorError(e.name()))
        })
    }

    fn lease_lost(&mut self) -> BoxFuture<'_, Result<(), ProcessorError>> {
        Box::pin(async { Ok(()) })
    }

    fn shard_ended<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        checkpoint_now(checkpointer)
    }

    fn shutdown_requested<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        checkpoint_now(checkpointer)
    }
}

struct Factory {
    worker: String,
    seen: Seen,
}

impl ProcessorFactory for Factory {
    fn create(&self, _shard: &str) -> Result<Box<dyn RecordProcessor>, ProcessorError> {
        Ok(Box::new(Collector {
            worker: self.worker.clone(),
            shard: String::new(),
            seen: self.seen.clone(),
        }))
    }
}

fn config(worker: &str, retrieval: Retrieval) -> WorkerConfig {
    WorkerConfig {
        retrieval,
        stream_name: "rust-consumer".into(),
        table_name: "rust-app".into(),
        worker_id: worker.into(),
        initial_position: InitialPosition::TrimHorizon,
        failover: Duration::from_millis(1500),
        shard_sync_interval: Duration::from_millis(1000),
        max_records: 100,
        idle_between_reads: Duration::from_millis(100),
        max_leases_for_worker: usize::MAX,
        max_leases_to_steal: 1,
        call_process_records_even_for_empty: false,
    }
}

async fn owners(client: &AwsClient) -> BTreeMap<String, String> {
    let Ok(page) = client
        .dynamodb(
            "Scan",
            &json!({"TableName": "rust-app", "ConsistentRead": true}),
        )
        .await
    else {
        return BTreeMap::new();
    };
    page["Items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            (
                item["leaseKey"]["S"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                item["leaseOwner"]["S"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rust_workers_share_process_and_hand_over_by_polling() {
    share_process_and_hand_over(Retrieval::Polling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rust_workers_share_process_and_hand_over_by_fan_out() {
    share_process_and_hand_over(Retrieval::FanOut {
        consumer_name: "rust-app".into(),
    })
    .await;
}

/// A server with an active stream of `shards` shards, and a client of it.
async fn server_with_stream(stream: &str, shards: u32) -> (Server, AwsClient) {
    let server = start_server();
    let client = AwsClient::new(Endpoint {
        url: server.endpoint.clone(),
        region: "us-east-1".into(),
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
    })
    .expect("client");
    client
        .kinesis(
            "CreateStream",
            &json!({"StreamName": stream, "ShardCount": shards}),
        )
        .await
        .expect("create stream");
    wait_until("the stream", Duration::from_secs(10), || async {
        let described = client
            .kinesis("DescribeStreamSummary", &json!({"StreamName": stream}))
            .await;
        described.is_ok_and(|d| d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE")
    })
    .await;
    (server, client)
}

async fn share_process_and_hand_over(retrieval: Retrieval) {
    let (_server, client) = server_with_stream("rust-consumer", 4).await;
    let mut acked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for batch in 0..4 {
        let records: Vec<Value> = (0..50)
            .map(|i| json!({"Data": "aGVsbG8=", "PartitionKey": format!("key-{batch}-{i}")}))
            .collect();
        let out = client
            .kinesis(
                "PutRecords",
                &json!({"StreamName": "rust-consumer", "Records": records}),
            )
            .await
            .expect("put records");
        for entry in out["Records"].as_array().expect("records") {
            acked
                .entry(entry["ShardId"].as_str().expect("shard").to_owned())
                .or_default()
                .insert(entry["SequenceNumber"].as_str().expect("seq").to_owned());
        }
    }
    // One KPL aggregate on the first shard: two user records inside its hash range, one outside.
    let mut aggregator = millrace_producer::Aggregator::new();
    aggregator.add("agg-0", Some("1"), b"user record");
    aggregator.add("agg-1", Some("2"), b"user record");
    aggregator.add("agg-outside", Some(&u128::MAX.to_string()), b"user record");
    let aggregate = aggregator.finish();
    let put = client
        .kinesis(
            "PutRecord",
            &json!({
                "StreamName": "rust-consumer",
                "PartitionKey": "agg",
                "ExplicitHashKey": "1",
                "Data": base64::engine::general_purpose::STANDARD.encode(&aggregate),
            }),
        )
        .await
        .expect("put the aggregate");
    let aggregate_sequence = put["SequenceNumber"].as_str().expect("seq").to_owned();
    acked
        .entry(put["ShardId"].as_str().expect("shard").to_owned())
        .or_default()
        .insert(aggregate_sequence.clone());
    let seen: Seen = Arc::default();
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for name in ["rust-a", "rust-b"] {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = Worker::new(
            config(name, retrieval.clone()),
            client.clone(),
            client.clone(),
            Arc::new(Factory {
                worker: name.into(),
                seen: seen.clone(),
            }),
        );
        runs.push(tokio::spawn(worker.run(stopped)));
        stops.push(stop);
    }
    let expected: BTreeSet<String> = acked.values().flatten().cloned().collect();
    wait_until(
        "every record processed",
        Duration::from_secs(60),
        || async {
            let got: BTreeSet<String> = seen
                .lock()
                .expect("lock")
                .iter()
                .map(|s| s.2.clone())
                .collect();
            expected.is_subset(&got)
        },
    )
    .await;
    wait_until("two leases each", Duration::from_secs(30), || async {
        let owners = owners(&client).await;
        let a = owners.values().filter(|o| *o == "rust-a").count();
        a == 2 && owners.len() == 4
    })
    .await;
    // Within one worker, no record is processed twice between checkpoints.
    {
        let seen = seen.lock().expect("lock");
        let parts: BTreeSet<(u64, String)> = seen
            .iter()
            .filter(|s| s.2 == aggregate_sequence)
            .map(|s| (s.3, s.4.clone()))
            .collect();
        let expected_parts: BTreeSet<(u64, String)> =
            [(0, "agg-0".to_owned()), (1, "agg-1".to_owned())].into();
        assert_eq!(
            parts, expected_parts,
            "de-aggregated, outside-range record dropped"
        );
        let unique: BTreeSet<&(String, String, String, u64, String)> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a record was processed twice by one worker"
        );
    }
    // rust-a shuts down gracefully: its leases are released and rust-b takes them.
    stops[0].send(true).expect("stop rust-a");
    runs.remove(0).await.expect("join").expect("rust-a ran");
    wait_until(
        "rust-b holding every lease",
        Duration::from_secs(20),
        || async { owners(&client).await.values().all(|o| o == "rust-b") },
    )
    .await;
    stops[1].send(true).expect("stop rust-b");
    runs.remove(0).await.expect("join").expect("rust-b ran");
    let page = client
        .dynamodb(
            "Scan",
            &json!({"TableName": "rust-app", "ConsistentRead": true}),
        )
        .await
        .expect("scan");
    for item in page["Items"].as_array().expect("items") {
        let shard = item["leaseKey"]["S"].as_str().expect("key");
        let largest = acked[shard]
            .iter()
            .max_by_key(|s| (s.len(), (*s).clone()))
            .expect("records on every shard");
        assert_eq!(
            item["checkpoint"]["S"].as_str(),
            Some(largest.as_str()),
            "{shard}"
        );
    }
}

/// A pending checkpoint and its state, as `initialize` is handed them.
type Pending = (Option<(String, u64)>, Option<Vec<u8>>);

/// What a two-phase processor saw: the pending checkpoint `initialize` was handed, and the
/// result of preparing a checkpoint beyond the records delivered.
#[derive(Default)]
struct TwoPhaseLog {
    initialized_with: Vec<Pending>,
    out_of_range: Vec<Result<(), CheckpointError>>,
    committed: Vec<String>,
}

/// Prepares a checkpoint at the last record of each batch (`commit` false), or commits the
/// pending checkpoint it was initialized with once that record is delivered again (`commit`
/// true).
struct TwoPhase {
    commit: bool,
    pending: Option<(String, u64)>,
    log: Arc<Mutex<TwoPhaseLog>>,
}

impl RecordProcessor for TwoPhase {
    fn initialize(&mut self, input: InitializeInput) -> BoxFuture<'_, Result<(), ProcessorError>> {
        self.pending = input.pending_checkpoint.clone();
        self.log
            .lock()
            .expect("lock")
            .initialized_with
            .push((input.pending_checkpoint, input.pending_checkpoint_state));
        Box::pin(async { Ok(()) })
    }

    fn process_records<'a>(
        &'a mut self,
        input: ProcessRecordsInput,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        Box::pin(async move {
            let Some(last) = input.records.last() else {
                return Ok(());
            };
            if self.commit {
                if let Some((sequence, sub)) = self.pending.take() {
                    let prepared = PreparedCheckpoint {
                        sequence: sequence.clone(),
                        sub_sequence: sub,
                    };
                    prepared
                        .checkpoint(checkpointer)
                        .await
                        .map_err(|e| ProcessorError(e.name()))?;
                    self.log.lock().expect("lock").committed.push(sequence);
                }
                return Ok(());
            }
            let beyond = checkpointer
                .prepare_checkpoint(&"9".repeat(60), 0, None)
                .await
                .map(|_| ());
            self.log.lock().expect("lock").out_of_range.push(beyond);
            let prepared = checkpointer
                .prepare_checkpoint(&last.sequence_number, 0, Some(b"state-1"))
                .await
                .map_err(|e| ProcessorError(e.name()))?;
            assert_eq!(prepared.sequence, last.sequence_number);
            assert_eq!(
                checkpointer.pending_checkpoint().await,
                Some((last.sequence_number.clone(), 0))
            );
            Ok(())
        })
    }

    fn lease_lost(&mut self) -> BoxFuture<'_, Result<(), ProcessorError>> {
        Box::pin(async { Ok(()) })
    }

    fn shard_ended<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        checkpoint_now(checkpointer)
    }

    fn shutdown_requested<'a>(
        &'a mut self,
        _checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>> {
        // Neither phase is forced at shutdown: the prepared checkpoint stays pending.
        Box::pin(async { Ok(()) })
    }
}

struct TwoPhaseFactory {
    commit: bool,
    log: Arc<Mutex<TwoPhaseLog>>,
}

impl ProcessorFactory for TwoPhaseFactory {
    fn create(&self, _shard: &str) -> Result<Box<dyn RecordProcessor>, ProcessorError> {
        Ok(Box::new(TwoPhase {
            commit: self.commit,
            pending: None,
            log: self.log.clone(),
        }))
    }
}

async fn lease_item(client: &AwsClient, table: &str) -> Option<Value> {
    let page = client
        .dynamodb("Scan", &json!({"TableName": table, "ConsistentRead": true}))
        .await
        .ok()?;
    page["Items"].as_array()?.first().cloned()
}

/// The two-phase checkpoint: a prepared checkpoint is stored as the Java KCL stores it
/// (`pendingCheckpoint`, `pendingCheckpointSubSequenceNumber`, `pendingCheckpointState`) without
/// moving the checkpoint, survives a change of owner (the next worker's `initialize` is handed
/// it), and committing it moves the checkpoint and removes the pending attributes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_checkpoints_are_stored_handed_over_and_committed() {
    let (_server, client) = server_with_stream("two-phase", 1).await;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"Data": "aGVsbG8=", "PartitionKey": format!("k{i}")}))
        .collect();
    let out = client
        .kinesis(
            "PutRecords",
            &json!({"StreamName": "two-phase", "Records": records}),
        )
        .await
        .expect("put records");
    let last = out["Records"][9]["SequenceNumber"]
        .as_str()
        .expect("seq")
        .to_owned();
    let two_phase_config = |name: &str| WorkerConfig {
        stream_name: "two-phase".into(),
        table_name: "two-phase-app".into(),
        ..config(name, Retrieval::Polling)
    };

    let log: Arc<Mutex<TwoPhaseLog>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(
        Worker::new(
            two_phase_config("preparer"),
            client.clone(),
            client.clone(),
            Arc::new(TwoPhaseFactory {
                commit: false,
                log: log.clone(),
            }),
        )
        .run(stopped),
    );
    wait_until("a prepared checkpoint", Duration::from_secs(30), || async {
        lease_item(&client, "two-phase-app")
            .await
            .is_some_and(|item| item["pendingCheckpoint"]["S"] == last.as_str())
    })
    .await;
    let item = lease_item(&client, "two-phase-app").await.expect("lease");
    assert_eq!(item["checkpoint"]["S"], "TRIM_HORIZON", "{item}");
    assert_eq!(item["pendingCheckpointSubSequenceNumber"]["N"], "0");
    assert_eq!(
        item["pendingCheckpointState"]["B"],
        base64::engine::general_purpose::STANDARD.encode(b"state-1")
    );
    stop.send(true).expect("stop");
    first.await.expect("join").expect("the preparer ran");
    {
        let log = log.lock().expect("lock");
        assert_eq!(log.initialized_with, vec![(None, None)]);
        assert!(!log.out_of_range.is_empty());
        assert!(log
            .out_of_range
            .iter()
            .all(|r| *r == Err(CheckpointError::OutOfRange)));
    }
    let item = lease_item(&client, "two-phase-app").await.expect("lease");
    assert_eq!(
        item["pendingCheckpoint"]["S"],
        last.as_str(),
        "kept at shutdown"
    );

    // The next owner is handed the pending checkpoint and commits it.
    let log: Arc<Mutex<TwoPhaseLog>> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(
        Worker::new(
            two_phase_config("committer"),
            client.clone(),
            client.clone(),
            Arc::new(TwoPhaseFactory {
                commit: true,
                log: log.clone(),
            }),
        )
        .run(stopped),
    );
    wait_until(
        "the committed checkpoint",
        Duration::from_secs(30),
        || async {
            lease_item(&client, "two-phase-app")
                .await
                .is_some_and(|item| item["checkpoint"]["S"] == last.as_str())
        },
    )
    .await;
    let item = lease_item(&client, "two-phase-app").await.expect("lease");
    for gone in [
        "pendingCheckpoint",
        "pendingCheckpointSubSequenceNumber",
        "pendingCheckpointState",
    ] {
        assert!(item.get(gone).is_none(), "{gone} left in {item}");
    }
    stop.send(true).expect("stop");
    second.await.expect("join").expect("the committer ran");
    let log = log.lock().expect("lock");
    assert_eq!(
        log.initialized_with,
        vec![(Some((last.clone(), 0)), Some(b"state-1".to_vec()))]
    );
    assert_eq!(log.committed, vec![last]);
}
