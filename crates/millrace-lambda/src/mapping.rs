//! Event source mappings on Kinesis streams.
//!
//! Each enabled mapping has a supervisor that lists the stream's shards and runs one poller per
//! shard whose parents are finished (parents before children). A poller reads through the
//! engine's public read path and waits on `Engine::subscribe_shard` — the shard's wake-on-append
//! channel — when it is caught up: nothing is polled on a timer. Batches go to the function as
//! the Kinesis event Lambda sends; after the function completes a batch, the last sequence
//! number is written durably (`lambda.redb`) before the next batch is read, so a restart (even
//! kill -9) resumes right after the last completed batch: at least once, without gaps. A closed
//! shard that has been drained is marked done, which releases its children.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use millrace_engine::{Engine, Error as EngineError, IteratorRequest, IteratorType, ReadRecord};
use millrace_service::{CallContext, ServiceError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::filter::Filters;
use crate::function::{function_key, parse_function_name};
use crate::store::SHARD_DONE;
use crate::{invalid, not_found, now_ms, store_failed, text, Inner};

/// Largest state a tumbling-window function may carry (Lambda's 1 MB).
const MAX_WINDOW_STATE_BYTES: usize = 1024 * 1024;

/// Largest payload of one invocation (Lambda's 6 MB synchronous limit).
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// A mapping as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MappingRecord {
    pub uuid: String,
    pub account: String,
    pub region: String,
    pub function_name: String,
    pub stream_name: String,
    pub event_source_arn: String,
    pub batch_size: u64,
    pub window_seconds: u64,
    pub starting_position: String,
    pub starting_timestamp_ms: Option<u64>,
    pub created_ms: u64,
    pub enabled: bool,
    pub max_retry_attempts: i64,
    pub max_record_age_seconds: i64,
    pub bisect: bool,
    pub parallelization_factor: u64,
    pub tumbling_window_seconds: u64,
    pub function_response_types: Vec<String>,
    pub destination_config: Option<Value>,
    pub filter_criteria: Option<Value>,
    pub last_modified_ms: u64,
}

impl MappingRecord {
    fn function_key(&self) -> String {
        function_key(&self.account, &self.region, &self.function_name)
    }

    fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.function_name
        )
    }

    fn arn(&self) -> String {
        mapping_arn(&self.region, &self.account, &self.uuid)
    }

    /// The stream's ARN (the source's, or the stream of a fan-out consumer source).
    fn stream_arn(&self) -> String {
        let (region, account, name) = stream_of_arn(&self.event_source_arn).unwrap_or_else(|| {
            (
                self.region.clone(),
                self.account.clone(),
                self.stream_name.clone(),
            )
        });
        format!("arn:aws:kinesis:{region}:{account}:stream/{name}")
    }

    fn view(&self, state: &str, last_result: &str) -> Value {
        let mut out = json!({
            "UUID": self.uuid,
            "StartingPosition": self.starting_position,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.window_seconds,
            "ParallelizationFactor": self.parallelization_factor,
            "EventSourceArn": self.event_source_arn,
            "FunctionArn": self.function_arn(),
            "LastModified": self.last_modified_ms as f64 / 1000.0,
            "LastProcessingResult": last_result,
            "State": state,
            "StateTransitionReason": "User action",
            "DestinationConfig": self.destination_config.clone().unwrap_or_else(|| json!({"OnFailure": {}})),
            "MaximumRecordAgeInSeconds": self.max_record_age_seconds,
            "BisectBatchOnFunctionError": self.bisect,
            "MaximumRetryAttempts": self.max_retry_attempts,
            "TumblingWindowInSeconds": self.tumbling_window_seconds,
            "FunctionResponseTypes": self.function_response_types,
            "EventSourceMappingArn": self.arn(),
        });
        if let Some(ms) = self.starting_timestamp_ms {
            out["StartingPositionTimestamp"] = json!(ms as f64 / 1000.0);
        }
        if let Some(filter) = &self.filter_criteria {
            out["FilterCriteria"] = filter.clone();
        }
        out
    }
}

fn mapping_arn(region: &str, account: &str, uuid: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:event-source-mapping:{uuid}")
}

/// A live mapping: its record, its stop switch and what it last did.
pub struct MappingHandle {
    record: MappingRecord,
    stop: watch::Sender<bool>,
    status: Arc<std::sync::Mutex<String>>,
    /// The supervisor (or, while disabled, the one still stopping).
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MappingHandle {
    fn state(&self) -> &'static str {
        if self.record.enabled {
            "Enabled"
        } else {
            "Disabled"
        }
    }
}

fn resource_missing() -> ServiceError {
    ServiceError::client(
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
    )
    .with_status(404)
}

/// Starts the mappings stored as enabled (at startup).
pub(crate) fn resume_all(inner: &Arc<Inner>) -> Result<(), String> {
    for (uuid, text) in inner.store.mappings()? {
        match serde_json::from_str::<MappingRecord>(&text) {
            Ok(record) => start(inner, record),
            Err(error) => tracing::error!(%error, uuid, "unreadable mapping record"),
        }
    }
    Ok(())
}

pub(crate) fn stop_all(inner: &Inner) {
    for handle in inner.mappings.lock().expect("lock").values() {
        let _ = handle.stop.send(true);
    }
}

/// Registers a mapping and, when enabled, starts its supervisor.
fn start(inner: &Arc<Inner>, record: MappingRecord) {
    let (stop, stop_rx) = watch::channel(false);
    let mut mappings = inner.mappings.lock().expect("lock");
    // An update replaces the running supervisor: the new one starts once the old one has let go
    // of every shard (after any invocation in flight), so a shard never has two readers.
    let (status, before) = match mappings.remove(&record.uuid) {
        Some(previous) => {
            let _ = previous.stop.send(true);
            (previous.status, previous.task)
        }
        None => (
            Arc::new(std::sync::Mutex::new("No records processed".to_owned())),
            None,
        ),
    };
    let task = if record.enabled {
        let (inner, record, status) = (inner.clone(), record.clone(), status.clone());
        Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            supervise(inner, record, stop_rx, status).await;
        }))
    } else {
        before
    };
    mappings.insert(
        record.uuid.clone(),
        MappingHandle {
            record,
            stop,
            status,
            task,
        },
    );
}

fn stream_of_arn(arn: &str) -> Option<(String, String, String)> {
    // arn:aws:kinesis:<region>:<account>:stream/<name>
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    if service != "kinesis" {
        return None;
    }
    let name = resource.strip_prefix("stream/")?;
    let name = name.split('/').next()?;
    Some((region.to_owned(), account.to_owned(), name.to_owned()))
}

fn int(input: &Value, key: &str) -> Option<i64> {
    input.get(key).and_then(Value::as_i64)
}

/// Applies the settings in `input` to `record`, with AWS's range checks for Kinesis sources.
fn apply_settings(record: &mut MappingRecord, input: &Value) -> Result<(), ServiceError> {
    if let Some(size) = int(input, "BatchSize") {
        record.batch_size = size as u64;
    }
    if let Some(window) = int(input, "MaximumBatchingWindowInSeconds") {
        record.window_seconds = window as u64;
    }
    if let Some(retries) = int(input, "MaximumRetryAttempts") {
        record.max_retry_attempts = retries;
    }
    if let Some(age) = int(input, "MaximumRecordAgeInSeconds") {
        if age != -1 && age < 60 {
            return Err(invalid(
                "MaximumRecordAgeInSeconds must be -1 (infinite) or between 60 and 604800.",
            ));
        }
        record.max_record_age_seconds = age;
    }
    if let Some(bisect) = input
        .get("BisectBatchOnFunctionError")
        .and_then(Value::as_bool)
    {
        record.bisect = bisect;
    }
    if let Some(factor) = int(input, "ParallelizationFactor") {
        record.parallelization_factor = factor as u64;
    }
    if let Some(window) = int(input, "TumblingWindowInSeconds") {
        record.tumbling_window_seconds = window as u64;
    }
    if let Some(types) = input.get("FunctionResponseTypes").and_then(Value::as_array) {
        record.function_response_types = types
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
    }
    if let Some(destination) = input.get("DestinationConfig") {
        if let Some(arn) = destination
            .pointer("/OnFailure/Destination")
            .and_then(Value::as_str)
        {
            if !arn.starts_with("arn:aws:kinesis:") {
                return Err(invalid(format!(
                    "The OnFailure destination {arn} is not served by Millrace; use a Kinesis stream."
                )));
            }
        }
        record.destination_config = Some(destination.clone());
    }
    if let Some(filter) = input.get("FilterCriteria") {
        Filters::of(Some(filter)).map_err(invalid)?;
        record.filter_criteria = Some(filter.clone());
    }
    if let Some(enabled) = input.get("Enabled").and_then(Value::as_bool) {
        record.enabled = enabled;
    }
    Ok(())
}

pub(crate) fn create(
    inner: &Arc<Inner>,
    context: &CallContext<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    context
        .authz
        .check("lambda:CreateEventSourceMapping", "*", None)?;
    let account = context.caller.account.clone();
    let given = text(input, "FunctionName").unwrap_or_default();
    let (function_name, _) = parse_function_name(&given);
    let function_arn = format!(
        "arn:aws:lambda:{}:{account}:function:{function_name}",
        context.region
    );
    let Some(source) = text(input, "EventSourceArn") else {
        return Err(invalid(
            "Unrecognized event source, must be kafka or specify an EventSourceArn.",
        ));
    };
    if source.starts_with("arn:aws:sqs:")
        || source.starts_with("arn:aws:dynamodb:")
        || source.starts_with("arn:aws:kafka:")
        || source.starts_with("arn:aws:mq:")
    {
        return Err(invalid(format!(
            "The event source {source} is not served by Millrace; mappings read Kinesis streams."
        )));
    }
    let Some((region, stream_account, stream_name)) = stream_of_arn(&source) else {
        return Err(invalid(format!("Unrecognized event source: {source}")));
    };
    let engine = inner
        .engines
        .get(&stream_account)
        .ok_or_else(|| invalid(format!("Stream not found: {source}")))?;
    if engine
        .describe_stream_summary(&region, &stream_name)
        .is_err()
    {
        return Err(invalid(format!("Stream not found: {source}")));
    }
    if source.contains("/consumer/")
        && engine
            .describe_consumer(millrace_engine::ConsumerTarget::Arn(&source))
            .is_err()
    {
        return Err(invalid(format!("Consumer not found: {source}")));
    }
    if inner
        .function(&function_key(&account, context.region, &function_name))
        .is_none()
    {
        return Err(not_found(&function_arn));
    }
    let Some(position) = text(input, "StartingPosition") else {
        return Err(invalid(
            "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null",
        ));
    };
    let starting_timestamp_ms = input
        .get("StartingPositionTimestamp")
        .and_then(Value::as_f64)
        .map(|secs| (secs * 1000.0) as u64);
    if position == "AT_TIMESTAMP" && starting_timestamp_ms.is_none() {
        return Err(invalid(
            "StartingPositionTimestamp must be provided with AT_TIMESTAMP starting position.",
        ));
    }
    {
        let mappings = inner.mappings.lock().expect("lock");
        if let Some(existing) = mappings.values().find(|m| {
            m.record.event_source_arn == source
                && m.record.function_name == function_name
                && m.record.account == account
        }) {
            return Err(ServiceError::client(
                "ResourceConflictException",
                format!(
                    "The event source arn (\" {source} \") and function (\" {function_name} \") provided mapping already exists. Please update or delete the existing mapping with UUID {}",
                    existing.record.uuid
                ),
            )
            .with_status(409));
        }
    }
    let now = now_ms();
    let mut record = MappingRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        account,
        region: context.region.to_owned(),
        function_name,
        stream_name,
        event_source_arn: source,
        batch_size: 100,
        window_seconds: 0,
        starting_position: position,
        starting_timestamp_ms,
        created_ms: now,
        enabled: true,
        max_retry_attempts: -1,
        max_record_age_seconds: -1,
        bisect: false,
        parallelization_factor: 1,
        tumbling_window_seconds: 0,
        function_response_types: Vec::new(),
        destination_config: None,
        filter_criteria: None,
        last_modified_ms: now,
    };
    apply_settings(&mut record, input)?;
    save(inner, &record)?;
    let view = record.view(
        if record.enabled {
            "Creating"
        } else {
            "Disabled"
        },
        "No records processed",
    );
    start(inner, record);
    Ok(view)
}

fn save(inner: &Inner, record: &MappingRecord) -> Result<(), ServiceError> {
    let text = serde_json::to_string(record).map_err(|e| store_failed(e.to_string()))?;
    inner
        .store
        .put_mapping(&record.uuid, &text)
        .map_err(store_failed)
}

fn authorized(
    inner: &Inner,
    context: &CallContext<'_>,
    action: &str,
    input: &Value,
) -> Result<MappingRecord, ServiceError> {
    let uuid = text(input, "UUID").unwrap_or_default();
    context.authz.check(
        action,
        &mapping_arn(context.region, &context.caller.account, &uuid),
        None,
    )?;
    let mappings = inner.mappings.lock().expect("lock");
    mappings
        .get(&uuid)
        .filter(|m| m.record.account == context.caller.account)
        .map(|m| m.record.clone())
        .ok_or_else(resource_missing)
}

pub(crate) fn get(
    inner: &Arc<Inner>,
    context: &CallContext<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let record = authorized(inner, context, "lambda:GetEventSourceMapping", input)?;
    let mappings = inner.mappings.lock().expect("lock");
    let handle = mappings.get(&record.uuid).ok_or_else(resource_missing)?;
    let status = handle.status.lock().expect("lock").clone();
    Ok(handle.record.view(handle.state(), &status))
}

pub(crate) fn update(
    inner: &Arc<Inner>,
    context: &CallContext<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let mut record = authorized(inner, context, "lambda:UpdateEventSourceMapping", input)?;
    let was_enabled = record.enabled;
    if let Some(given) = text(input, "FunctionName") {
        let (name, _) = parse_function_name(&given);
        if inner
            .function(&function_key(&record.account, &record.region, &name))
            .is_none()
        {
            return Err(not_found(&format!(
                "arn:aws:lambda:{}:{}:function:{name}",
                record.region, record.account
            )));
        }
        record.function_name = name;
    }
    apply_settings(&mut record, input)?;
    record.last_modified_ms = now_ms();
    save(inner, &record)?;
    let status = inner
        .mappings
        .lock()
        .expect("lock")
        .get(&record.uuid)
        .map(|m| m.status.lock().expect("lock").clone())
        .unwrap_or_default();
    let state = match (was_enabled, record.enabled) {
        (false, true) => "Enabling",
        (true, false) => "Disabling",
        _ => "Updating",
    };
    let view = record.view(state, &status);
    start(inner, record);
    Ok(view)
}

pub(crate) fn delete(
    inner: &Arc<Inner>,
    context: &CallContext<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let record = authorized(inner, context, "lambda:DeleteEventSourceMapping", input)?;
    inner
        .store
        .delete_mapping(&record.uuid)
        .map_err(store_failed)?;
    let handle = inner.mappings.lock().expect("lock").remove(&record.uuid);
    let status = match handle {
        Some(handle) => {
            let _ = handle.stop.send(true);
            let status = handle.status.lock().expect("lock").clone();
            status
        }
        None => String::new(),
    };
    Ok(record.view("Deleting", &status))
}

pub(crate) fn list(
    inner: &Arc<Inner>,
    context: &CallContext<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    context
        .authz
        .check("lambda:ListEventSourceMappings", "*", None)?;
    let source = text(input, "EventSourceArn");
    let function = text(input, "FunctionName").map(|f| parse_function_name(&f).0);
    let max = input
        .get("MaxItems")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 10_000) as usize;
    let marker = text(input, "Marker");
    let mappings = inner.mappings.lock().expect("lock");
    let mut page = Vec::new();
    let mut next = None;
    for (uuid, handle) in mappings.iter() {
        let record = &handle.record;
        if record.account != context.caller.account
            || source
                .as_ref()
                .is_some_and(|s| *s != record.event_source_arn)
            || function
                .as_ref()
                .is_some_and(|f| *f != record.function_name)
            || marker.as_ref().is_some_and(|m| uuid.as_str() <= m.as_str())
        {
            continue;
        }
        if page.len() == max {
            next = page.last().and_then(|v: &Value| v.get("UUID")).cloned();
            break;
        }
        let status = handle.status.lock().expect("lock").clone();
        page.push(record.view(handle.state(), &status));
    }
    let mut out = json!({ "EventSourceMappings": page });
    if let Some(next) = next {
        out["NextMarker"] = next;
    }
    Ok(out)
}

// --- Running a mapping. ---

type Status = Arc<std::sync::Mutex<String>>;

fn set_status(status: &Status, text: &str) {
    *status.lock().expect("lock") = text.to_owned();
}

/// Lists the stream's shards (all of them, closed ones too).
fn all_shards(
    engine: &Engine,
    record: &MappingRecord,
) -> Result<Vec<(String, Vec<String>)>, EngineError> {
    let mut out = Vec::new();
    let mut request = millrace_engine::ListShardsRequest {
        stream_name: Some(record.stream_name.clone()),
        ..Default::default()
    };
    loop {
        let (shards, next) = engine.list_shards(&record.region, &request)?;
        for shard in shards {
            let parents = shard
                .parent_shard_id
                .into_iter()
                .chain(shard.adjacent_parent_shard_id)
                .collect();
            out.push((shard.shard_id, parents));
        }
        match next {
            Some(token) => {
                request = millrace_engine::ListShardsRequest {
                    next_token: Some(token),
                    ..Default::default()
                }
            }
            None => return Ok(out),
        }
    }
}

/// Runs one mapping's shard pollers, parents before children, until stopped.
async fn supervise(
    inner: Arc<Inner>,
    record: MappingRecord,
    mut stop: watch::Receiver<bool>,
    status: Status,
) {
    let Some(engine) = inner
        .engines
        .get(
            &stream_of_arn(&record.event_source_arn)
                .map(|s| s.1)
                .unwrap_or_default(),
        )
        .cloned()
    else {
        set_status(&status, "PROBLEM: Stream not found");
        return;
    };
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    loop {
        if *stop.borrow() {
            break;
        }
        let shards = match all_shards(&engine, &record) {
            Ok(shards) => shards,
            Err(error) => {
                tracing::info!(mapping = %record.uuid, %error, "event source stream unavailable");
                set_status(&status, "PROBLEM: Stream not found");
                let _ = stop.changed().await;
                break;
            }
        };
        let known: BTreeMap<&str, &Vec<String>> = shards
            .iter()
            .map(|(id, parents)| (id.as_str(), parents))
            .collect();
        let done = |shard: &str| -> bool {
            matches!(inner.store.checkpoint(&record.uuid, shard), Ok(Some(value)) if value == SHARD_DONE)
        };
        for (shard, parents) in &shards {
            if running.contains_key(shard) || done(shard) {
                continue;
            }
            // A parent that has expired from the stream no longer holds records.
            let parents_done = parents
                .iter()
                .all(|parent| !known.contains_key(parent.as_str()) || done(parent));
            if !parents_done {
                continue;
            }
            let task = tokio::spawn(poll_shard(
                inner.clone(),
                engine.clone(),
                record.clone(),
                shard.clone(),
                !parents.is_empty(),
                stop.clone(),
                status.clone(),
                finished_tx.clone(),
            ));
            running.insert(shard.clone(), task);
        }
        tokio::select! {
            finished = finished_rx.recv() => {
                if let Some(shard) = finished {
                    running.remove(&shard);
                }
            }
            _ = stop.changed() => {}
        }
    }
    // Pollers stop at their next step (an invocation in flight completes first).
    for (_, task) in running {
        let _ = task.await;
    }
}

/// What the function made of a batch.
enum BatchResult {
    Success,
    /// Retry from this index of the batch (ReportBatchItemFailures).
    Partial(usize),
    Failure,
}

#[allow(clippy::too_many_arguments)]
async fn poll_shard(
    inner: Arc<Inner>,
    engine: Arc<Engine>,
    record: MappingRecord,
    shard: String,
    has_parent: bool,
    mut stop: watch::Receiver<bool>,
    status: Status,
    finished: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let shard_index = shard
        .rsplit('-')
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    let Some(mut wake) = engine.subscribe_shard(&record.region, &record.stream_name, shard_index)
    else {
        let _ = finished.send(shard);
        return;
    };
    let checkpoint = inner.store.checkpoint(&record.uuid, &shard).ok().flatten();
    let mut last_done: Option<String> = checkpoint;
    let mut iterator: Option<String> = None;
    let mut pending: Vec<ReadRecord> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut window_deadline: Option<tokio::time::Instant> = None;
    let window = Duration::from_secs(record.window_seconds);
    let mut closed = false;
    // An enhanced fan-out consumer ARN as the source: records are pushed by a subscription.
    let consumer = record
        .event_source_arn
        .contains("/consumer/")
        .then(|| record.event_source_arn.clone());
    let mut subscription: Option<millrace_engine::Subscription> = None;
    let mut tumble: Option<Tumble> = inner
        .store
        .checkpoint(&record.uuid, &format!("{shard}#window"))
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok());
    loop {
        if *stop.borrow() {
            return;
        }
        if iterator.is_none() && subscription.is_none() && !closed {
            let after = pending
                .last()
                .map(|r| r.sequence_number.to_string())
                .or_else(|| last_done.clone());
            let request = match &after {
                Some(sequence) => IteratorRequest {
                    shard_id: &shard,
                    iterator_type: IteratorType::AfterSequenceNumber,
                    starting_sequence_number: Some(sequence),
                    timestamp_ms: None,
                },
                None if has_parent => IteratorRequest {
                    shard_id: &shard,
                    iterator_type: IteratorType::TrimHorizon,
                    starting_sequence_number: None,
                    timestamp_ms: None,
                },
                None => match record.starting_position.as_str() {
                    "TRIM_HORIZON" => IteratorRequest {
                        shard_id: &shard,
                        iterator_type: IteratorType::TrimHorizon,
                        starting_sequence_number: None,
                        timestamp_ms: None,
                    },
                    // LATEST is fixed when the mapping is created: records written after it.
                    "LATEST" => IteratorRequest {
                        shard_id: &shard,
                        iterator_type: IteratorType::AtTimestamp,
                        starting_sequence_number: None,
                        timestamp_ms: Some(record.created_ms),
                    },
                    _ => IteratorRequest {
                        shard_id: &shard,
                        iterator_type: IteratorType::AtTimestamp,
                        starting_sequence_number: None,
                        timestamp_ms: record.starting_timestamp_ms,
                    },
                },
            };
            if let Some(consumer) = &consumer {
                match engine.subscribe(consumer, request).await {
                    Ok(started) => subscription = Some(started),
                    Err(EngineError::ResourceInUse(_)) => {
                        // Another subscription of the consumer holds the shard for now.
                        backoff(&mut stop, Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::info!(mapping = %record.uuid, shard, %error, "consumer unavailable");
                        let _ = stop.changed().await;
                        return;
                    }
                }
            } else {
                match engine
                    .get_shard_iterator(&record.region, &record.stream_name, request)
                    .await
                {
                    Ok(it) => iterator = Some(it),
                    Err(EngineError::ProvisionedThroughputExceeded(_)) => {
                        backoff(&mut stop, Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::info!(mapping = %record.uuid, shard, %error, "shard unavailable");
                        let _ = stop.changed().await;
                        return;
                    }
                }
            }
        }
        wake.borrow_and_update();
        let mut read_any = false;
        if let Some(pushed) = subscription.as_mut() {
            // The subscription waits for records itself; its heartbeat brings the loop back in
            // time for a batching window or a tumbling window's end.
            let now = tokio::time::Instant::now();
            let heartbeat = window_deadline
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(5))
                .clamp(Duration::from_millis(1), Duration::from_secs(5));
            match pushed.next_event(heartbeat).await {
                Ok(Some(event)) => {
                    read_any = !event.records.is_empty();
                    for r in event.records {
                        pending_bytes += r.data().len() + r.partition_key().len() + 200;
                        pending.push(r);
                    }
                    if window_deadline.is_none() && !pending.is_empty() {
                        window_deadline = Some(tokio::time::Instant::now() + window);
                    }
                    if event.continuation_sequence_number.is_none() {
                        subscription = None;
                        closed = true;
                    }
                }
                // The subscription's time is up: subscribe again after what was read.
                Ok(None) => subscription = None,
                Err(error) => {
                    tracing::info!(mapping = %record.uuid, shard, %error, "subscription ended");
                    subscription = None;
                    backoff(&mut stop, Duration::from_millis(200)).await;
                    continue;
                }
            }
        } else if let Some(current) = iterator.clone() {
            let room = (record.batch_size as usize)
                .saturating_sub(pending.len())
                .max(1);
            match engine
                .get_records(&current, Some(room.min(10_000) as i64))
                .await
            {
                Ok(out) => {
                    read_any = !out.records.is_empty();
                    for r in out.records {
                        pending_bytes += r.data().len() + r.partition_key().len() + 200;
                        pending.push(r);
                    }
                    if window_deadline.is_none() && !pending.is_empty() {
                        window_deadline = Some(tokio::time::Instant::now() + window);
                    }
                    match out.next_shard_iterator {
                        Some(next) => iterator = Some(next),
                        None => {
                            iterator = None;
                            closed = true;
                        }
                    }
                }
                Err(EngineError::ProvisionedThroughputExceeded(_)) => {
                    backoff(&mut stop, Duration::from_millis(200)).await;
                    continue;
                }
                Err(EngineError::ExpiredIterator(_)) => {
                    iterator = None;
                    continue;
                }
                Err(error) => {
                    tracing::info!(mapping = %record.uuid, shard, %error, "shard read failed");
                    set_status(&status, "PROBLEM: Stream not found");
                    let _ = stop.changed().await;
                    return;
                }
            }
        }
        let full =
            pending.len() >= record.batch_size as usize || pending_bytes >= MAX_PAYLOAD_BYTES;
        let window_over = window_deadline.is_some_and(|d| d <= tokio::time::Instant::now());
        if !pending.is_empty() && (full || window.is_zero() || window_over || closed) {
            let batch = std::mem::take(&mut pending);
            pending_bytes = 0;
            window_deadline = None;
            let delivered = if record.tumbling_window_seconds > 0 {
                deliver_windows(
                    &inner,
                    &record,
                    &shard,
                    batch,
                    &mut tumble,
                    &mut stop,
                    &status,
                )
                .await
            } else {
                deliver(&inner, &record, &shard, batch, &mut stop, &status, None).await
            };
            match delivered {
                Some(last) => last_done = Some(last),
                None => return,
            }
            continue;
        }
        if closed && pending.is_empty() {
            if let Some(window) = tumble.take() {
                final_invoke(&inner, &record, &shard, window).await;
            }
            if let Err(error) = inner.store.set_checkpoint(&record.uuid, &shard, SHARD_DONE) {
                tracing::error!(%error, "checkpoint failed");
            }
            let _ = finished.send(shard);
            return;
        }
        if read_any {
            continue;
        }
        // A tumbling window ends on the clock too: its final invocation is due at its end.
        let window_end = tumble.as_ref().map(|t| {
            let end_ms = t.start_ms + record.tumbling_window_seconds * 1000;
            tokio::time::Instant::now() + Duration::from_millis(end_ms.saturating_sub(now_ms()))
        });
        let deadline = match (window_deadline, window_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if window_end.is_some_and(|end| end <= tokio::time::Instant::now()) && pending.is_empty() {
            if let Some(window) = tumble.take() {
                final_invoke(&inner, &record, &shard, window).await;
            }
            continue;
        }
        if consumer.is_some() {
            continue;
        }
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    // The shard is gone (stream deleted).
                    set_status(&status, "PROBLEM: Stream not found");
                    let _ = stop.changed().await;
                    return;
                }
            }
            _ = stop.changed() => return,
            _ = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

async fn backoff(stop: &mut watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.changed() => {}
    }
}

/// Delivers a batch: records the filters drop are skipped; with a ParallelizationFactor above
/// 1 the batch is split into lanes by partition key (one key always in the same lane, so its
/// order holds) that run concurrently; the checkpoint moves to the batch's end once every lane
/// is done. Returns the batch's last sequence number (`None` when stopped).
async fn deliver(
    inner: &Arc<Inner>,
    record: &MappingRecord,
    shard: &str,
    batch: Vec<ReadRecord>,
    stop: &mut watch::Receiver<bool>,
    status: &Status,
    tumble: Option<&mut Tumble>,
) -> Option<String> {
    let last_of_all = batch.last()?.sequence_number.to_string();
    let filters = Filters::of(record.filter_criteria.as_ref()).ok().flatten();
    let batch: Vec<ReadRecord> = match &filters {
        Some(filters) => batch
            .into_iter()
            .filter(|r| filters.matches(&filter_document(r)))
            .collect(),
        None => batch,
    };
    let lanes = record.parallelization_factor.max(1) as usize;
    if let Some(tumble) = tumble {
        deliver_lane(
            inner,
            record,
            shard,
            batch,
            stop.clone(),
            status,
            true,
            Some(tumble),
        )
        .await?;
    } else if lanes == 1 || batch.len() < 2 {
        deliver_lane(
            inner,
            record,
            shard,
            batch,
            stop.clone(),
            status,
            true,
            None,
        )
        .await?;
    } else {
        let mut split: Vec<Vec<ReadRecord>> = (0..lanes).map(|_| Vec::new()).collect();
        for r in batch {
            let lane = lane_of(r.partition_key(), lanes);
            split[lane].push(r);
        }
        let runs = split
            .into_iter()
            .filter(|lane| !lane.is_empty())
            .map(|lane| {
                deliver_lane(
                    inner,
                    record,
                    shard,
                    lane,
                    stop.clone(),
                    status,
                    false,
                    None,
                )
            });
        let results = futures_join_all(runs).await;
        if results.iter().any(Option::is_none) {
            return None;
        }
    }
    checkpoint(inner, record, shard, &last_of_all);
    Some(last_of_all)
}

/// A stable lane for a partition key (FNV-1a).
fn lane_of(key: &str, lanes: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % lanes as u64) as usize
}

/// Runs futures concurrently on this task and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in set.iter_mut().enumerate() {
            if outputs[index].is_some() {
                continue;
            }
            match future.as_mut().poll(cx) {
                std::task::Poll::Ready(output) => outputs[index] = Some(output),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The record as filter patterns see it: its metadata, and `data` parsed when it is JSON.
fn filter_document(r: &ReadRecord) -> Value {
    let mut document = json!({
        "partitionKey": r.partition_key(),
        "sequenceNumber": r.sequence_number.to_string(),
        "kinesisSchemaVersion": "1.0",
        "approximateArrivalTimestamp": r.arrival_ms as f64 / 1000.0,
    });
    if let Ok(data) = serde_json::from_slice::<Value>(r.data()) {
        document["data"] = data;
    }
    document
}

/// What the last invocation of a failed batch answered (for the OnFailure record).
struct LastResponse {
    status: u16,
    function_error: Option<String>,
    /// A tumbling-window function's `state`.
    state: Option<Value>,
}

/// A shard's open tumbling window: where it starts and the state the function returned last.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tumble {
    start_ms: u64,
    state: Value,
}

/// The window fields of a tumbling-window invocation.
struct WindowContext {
    start_ms: u64,
    end_ms: u64,
    state: Value,
    last: bool,
    /// The state outgrew Lambda's 1 MB limit and the window ends before its time.
    early: bool,
}

impl Tumble {
    fn context(&self, record: &MappingRecord, last: bool) -> WindowContext {
        WindowContext {
            start_ms: self.start_ms,
            end_ms: self.start_ms + record.tumbling_window_seconds * 1000,
            state: self.state.clone(),
            last,
            early: false,
        }
    }
}

fn save_window(inner: &Inner, record: &MappingRecord, shard: &str, tumble: Option<&Tumble>) {
    let text = match tumble {
        Some(tumble) => serde_json::to_string(tumble).unwrap_or_default(),
        None => String::new(),
    };
    if let Err(error) = inner
        .store
        .set_checkpoint(&record.uuid, &format!("{shard}#window"), &text)
    {
        tracing::error!(%error, "window state not saved");
    }
}

/// Tumbling windows: a batch is cut at window boundaries (by arrival time); a record of a later
/// window first closes the open one with its final invocation.
async fn deliver_windows(
    inner: &Arc<Inner>,
    record: &MappingRecord,
    shard: &str,
    batch: Vec<ReadRecord>,
    tumble: &mut Option<Tumble>,
    stop: &mut watch::Receiver<bool>,
    status: &Status,
) -> Option<String> {
    let window_ms = record.tumbling_window_seconds * 1000;
    let last_of_all = batch.last()?.sequence_number.to_string();
    let mut rest = batch;
    while !rest.is_empty() {
        let start = rest[0].arrival_ms - rest[0].arrival_ms % window_ms;
        if tumble.as_ref().is_some_and(|t| t.start_ms != start) {
            if let Some(window) = tumble.take() {
                final_invoke(inner, record, shard, window).await;
            }
        }
        let open = tumble.get_or_insert(Tumble {
            start_ms: start,
            state: json!({}),
        });
        let split = rest.partition_point(|r| r.arrival_ms - r.arrival_ms % window_ms == start);
        let part: Vec<ReadRecord> = rest.drain(..split.max(1)).collect();
        deliver(inner, record, shard, part, stop, status, Some(open)).await?;
        // A state past 1 MB ends the window early; later records of the same interval start
        // a fresh one.
        if open.state.to_string().len() > MAX_WINDOW_STATE_BYTES {
            if let Some(window) = tumble.take() {
                final_invoke_with(inner, record, shard, window, true).await;
            }
        }
    }
    Some(last_of_all)
}

/// The final invocation of a window: no records, the accumulated state,
/// `isFinalInvokeForWindow: true`.
async fn final_invoke(inner: &Arc<Inner>, record: &MappingRecord, shard: &str, window: Tumble) {
    final_invoke_with(inner, record, shard, window, false).await;
}

async fn final_invoke_with(
    inner: &Arc<Inner>,
    record: &MappingRecord,
    shard: &str,
    window: Tumble,
    early: bool,
) {
    let mut context = window.context(record, true);
    context.early = early;
    let (result, _) = invoke_batch(inner, record, shard, &[], Some(context)).await;
    if matches!(result, BatchResult::Failure) {
        tracing::info!(mapping = %record.uuid, shard, "final window invocation failed");
    }
    save_window(inner, record, shard, None);
}

/// One lane's records with the mapping's retry, bisect and age rules; when `checkpointing`,
/// each completed part moves the checkpoint (a single lane owns the shard's order).
#[allow(clippy::too_many_arguments)]
async fn deliver_lane(
    inner: &Arc<Inner>,
    record: &MappingRecord,
    shard: &str,
    batch: Vec<ReadRecord>,
    mut stop: watch::Receiver<bool>,
    status: &Status,
    checkpointing: bool,
    mut tumble: Option<&mut Tumble>,
) -> Option<()> {
    let save = |sequence: &str| {
        if checkpointing {
            checkpoint(inner, record, shard, sequence);
        }
    };
    let mut queue: VecDeque<(Vec<ReadRecord>, i64)> = VecDeque::from([(batch, 0)]);
    // Windows carry state from call to call: bisecting them would reorder it.
    let bisect = record.bisect && tumble.is_none();
    while let Some((mut part, mut attempts)) = queue.pop_front() {
        let mut invokes = 0u32;
        loop {
            if *stop.borrow() {
                return None;
            }
            if record.max_record_age_seconds > 0 {
                let oldest_allowed = now_ms().saturating_sub(
                    record.max_record_age_seconds as u64 * inner.record_age_second_ms,
                );
                let split = part.partition_point(|r| r.arrival_ms < oldest_allowed);
                if split > 0 {
                    let expired: Vec<ReadRecord> = part.drain(..split).collect();
                    tracing::info!(mapping = %record.uuid, shard, dropped = expired.len(), "records older than MaximumRecordAgeInSeconds skipped");
                    on_failure(
                        inner,
                        record,
                        shard,
                        &expired,
                        "RecordAgeExceeded",
                        invokes,
                        None,
                    )
                    .await;
                    if let Some(last) = expired.last() {
                        save(&last.sequence_number.to_string());
                    }
                }
            }
            let Some(last) = part.last().map(|r| r.sequence_number.to_string()) else {
                break;
            };
            invokes += 1;
            let window = tumble.as_deref().map(|t| t.context(record, false));
            let (result, response) = invoke_batch(inner, record, shard, &part, window).await;
            if let (Some(tumble), Some(state)) = (
                tumble.as_deref_mut(),
                response.as_ref().and_then(|r| r.state.clone()),
            ) {
                if !matches!(result, BatchResult::Failure) {
                    tumble.state = state;
                }
            }
            match result {
                BatchResult::Success => {
                    set_status(status, "OK");
                    if let Some(tumble) = tumble.as_deref() {
                        save_window(inner, record, shard, Some(tumble));
                    }
                    save(&last);
                    break;
                }
                result => {
                    set_status(status, "PROBLEM: Function call failed");
                    if let BatchResult::Partial(index) = result {
                        if index > 0 {
                            save(&part[index - 1].sequence_number.to_string());
                            part.drain(..index);
                        }
                    }
                    attempts += 1;
                    if record.max_retry_attempts >= 0 && attempts > record.max_retry_attempts {
                        tracing::info!(mapping = %record.uuid, shard, records = part.len(), "batch discarded after MaximumRetryAttempts");
                        on_failure(
                            inner,
                            record,
                            shard,
                            &part,
                            "RetryAttemptsExhausted",
                            invokes,
                            response,
                        )
                        .await;
                        save(&last);
                        break;
                    }
                    if bisect && part.len() > 1 {
                        // Splitting does not count as a retry: each half keeps the count.
                        let second = part.split_off(part.len() / 2);
                        queue.push_front((second, attempts - 1));
                        queue.push_front((part, attempts - 1));
                        break;
                    }
                    let delay = Duration::from_millis((100u64 << attempts.min(6)).min(5_000));
                    backoff(&mut stop, delay).await;
                }
            }
        }
    }
    Some(())
}

/// Sends the OnFailure record for discarded records to the mapping's destination stream.
async fn on_failure(
    inner: &Arc<Inner>,
    record: &MappingRecord,
    shard: &str,
    discarded: &[ReadRecord],
    condition: &str,
    invokes: u32,
    response: Option<LastResponse>,
) {
    let (Some(first), Some(last)) = (discarded.first(), discarded.last()) else {
        return;
    };
    let Some(destination) = record
        .destination_config
        .as_ref()
        .and_then(|d| d.pointer("/OnFailure/Destination"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let Some((region, account, stream)) = stream_of_arn(destination) else {
        return;
    };
    let Some(engine) = inner.engines.get(&account) else {
        return;
    };
    let mut document = json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": record.function_arn(),
            "condition": condition,
            "approximateInvokeCount": invokes,
        },
        "version": "1.0",
        "timestamp": crate::runtime::iso_millis(now_ms()),
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": first.sequence_number.to_string(),
            "endSequenceNumber": last.sequence_number.to_string(),
            "approximateArrivalOfFirstRecord": crate::runtime::iso_millis(first.arrival_ms),
            "approximateArrivalOfLastRecord": crate::runtime::iso_millis(last.arrival_ms),
            "batchSize": discarded.len(),
            "streamArn": record.stream_arn(),
        },
    });
    if let Some(response) = response {
        let mut context = json!({"statusCode": response.status, "executedVersion": "$LATEST"});
        if let Some(error) = response.function_error {
            context["functionError"] = Value::String(error);
        }
        document["responseContext"] = context;
    }
    let data = document.to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let entry = millrace_engine::PutEntry {
        partition_key: Some(&key),
        explicit_hash_key: None,
        data: data.as_bytes(),
    };
    match engine.put_records(&region, &stream, &[entry]).await {
        Ok(results) if results.iter().all(Result::is_ok) => {}
        Ok(_) | Err(_) => {
            tracing::warn!(mapping = %record.uuid, destination, "could not deliver the OnFailure record")
        }
    }
}

fn checkpoint(inner: &Inner, record: &MappingRecord, shard: &str, sequence: &str) {
    // A batch that finishes after its mapping was deleted leaves nothing behind.
    if !inner
        .mappings
        .lock()
        .expect("lock")
        .contains_key(&record.uuid)
    {
        return;
    }
    if let Err(error) = inner.store.set_checkpoint(&record.uuid, shard, sequence) {
        tracing::error!(%error, mapping = %record.uuid, "checkpoint failed");
    }
}

/// The Kinesis event for a batch, exactly as Lambda sends it.
fn event(record: &MappingRecord, role: &str, shard: &str, batch: &[ReadRecord]) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .map(|r| {
            let sequence = r.sequence_number.to_string();
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key(),
                    "sequenceNumber": sequence,
                    "data": STANDARD.encode(r.data()),
                    "approximateArrivalTimestamp": r.arrival_ms as f64 / 1000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard}:{sequence}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role,
                "awsRegion": record.region,
                "eventSourceARN": record.stream_arn(),
            })
        })
        .collect();
    json!({ "Records": records })
}

async fn invoke_batch(
    inner: &Arc<Inner>,
    record: &MappingRecord,
    shard: &str,
    batch: &[ReadRecord],
    window: Option<WindowContext>,
) -> (BatchResult, Option<LastResponse>) {
    let Some(function) = inner.function(&record.function_key()) else {
        tracing::info!(mapping = %record.uuid, function = %record.function_name, "the mapping's function does not exist");
        return (BatchResult::Failure, None);
    };
    let mut event = event(record, &function.role, shard, batch);
    if let Some(window) = window {
        event["window"] = json!({
            "start": crate::runtime::iso_seconds(window.start_ms),
            "end": crate::runtime::iso_seconds(window.end_ms),
        });
        event["state"] = window.state;
        event["shardId"] = json!(shard);
        event["eventSourceARN"] = json!(record.stream_arn());
        event["isFinalInvokeForWindow"] = json!(window.last);
        event["isWindowTerminatedEarly"] = json!(window.early);
    }
    let payload = event.to_string();
    let outcome = match inner.runtimes.invoke(&function, payload.into(), None).await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::warn!(?error, mapping = %record.uuid, "invocation failed");
            return (BatchResult::Failure, None);
        }
    };
    let response = LastResponse {
        status: 200,
        function_error: outcome.function_error.clone(),
        state: serde_json::from_slice::<Value>(&outcome.payload)
            .ok()
            .and_then(|v| v.get("state").cloned())
            .filter(Value::is_object),
    };
    if outcome.function_error.is_some() {
        return (BatchResult::Failure, Some(response));
    }
    if !record
        .function_response_types
        .iter()
        .any(|t| t == "ReportBatchItemFailures")
    {
        return (BatchResult::Success, Some(response));
    }
    let sequences: Vec<String> = batch
        .iter()
        .map(|r| r.sequence_number.to_string())
        .collect();
    (
        batch_item_failures(&outcome.payload, &sequences),
        Some(response),
    )
}

/// ReportBatchItemFailures: which responses are full success, which whole-batch failure, and
/// otherwise where to resume (the lowest failed sequence number).
fn batch_item_failures(payload: &[u8], sequences: &[String]) -> BatchResult {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return BatchResult::Success;
    }
    let Ok(response) = serde_json::from_slice::<Value>(payload) else {
        return BatchResult::Failure;
    };
    let failures = match &response {
        Value::Object(map) => match map.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchResult::Success,
            Some(Value::Array(items)) => items,
            Some(_) => return BatchResult::Failure,
        },
        // A function that returns nothing (null) or something else entirely succeeded.
        _ => return BatchResult::Success,
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let Some(identifier) = item.get("itemIdentifier").and_then(Value::as_str) else {
            return BatchResult::Failure;
        };
        let Some(index) = sequences.iter().position(|s| s == identifier) else {
            return BatchResult::Failure;
        };
        lowest = Some(lowest.map_or(index, |l: usize| l.min(index)));
    }
    match lowest {
        Some(index) => BatchResult::Partial(index),
        None => BatchResult::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failure_responses() {
        let sequences: Vec<String> = ["10", "11", "12"].iter().map(|s| s.to_string()).collect();
        let result = |text: &str| match batch_item_failures(text.as_bytes(), &sequences) {
            BatchResult::Success => "success".to_owned(),
            BatchResult::Failure => "failure".to_owned(),
            BatchResult::Partial(index) => format!("from {index}"),
        };
        // Full success: nothing, null, an empty object, an empty or null list.
        for text in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(result(text), "success", "{text}");
        }
        // Whole-batch failure: not JSON, an unknown, empty or missing identifier.
        for text in [
            "not json",
            r#"{"batchItemFailures": [{"itemIdentifier": "99"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"wrongKey": "11"}]}"#,
        ] {
            assert_eq!(result(text), "failure", "{text}");
        }
        // Otherwise resume at the lowest failed record.
        assert_eq!(
            result(
                r#"{"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}"#
            ),
            "from 1"
        );
    }

    #[test]
    fn lanes_are_stable_and_spread() {
        assert_eq!(lane_of("user-1", 5), lane_of("user-1", 5));
        let used: std::collections::BTreeSet<usize> =
            (0..100).map(|i| lane_of(&format!("k{i}"), 5)).collect();
        assert_eq!(used.len(), 5);
    }

    #[test]
    fn stream_arns_parse() {
        assert_eq!(
            stream_of_arn("arn:aws:kinesis:us-east-1:000000000000:stream/demo"),
            Some(("us-east-1".into(), "000000000000".into(), "demo".into()))
        );
        assert_eq!(stream_of_arn("arn:aws:sqs:us-east-1:000000000000:q"), None);
    }
}
