//! CloudWatch Logs (awsJson1.1, `Logs_20140328.*`): log groups, log streams and their events,
//! stored durably in `logs.redb` (every PutLogEvents is one committed transaction), with
//! retention applied when events are read and when a group's policy changes. Function logs
//! arrive through [`Logs::append`] (`/aws/lambda/<function name>`).
#![deny(clippy::unwrap_used)]

mod filter;

use std::path::Path;
use std::sync::Mutex;

use millrace_service::{BoxFuture, CallContext, JsonService, ServiceError};
use millrace_wire::model::ServiceModel;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `account/region/group` → group metadata.
const GROUPS: TableDefinition<&str, &str> = TableDefinition::new("groups");
/// `account/region/group\0stream` → stream metadata.
const STREAMS: TableDefinition<&str, &str> = TableDefinition::new("streams");
/// (`account/region/group\0stream`, sequence) → event (JSON).
const EVENTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("events");

const DAY_MS: u64 = 86_400_000;

/// Retention periods CloudWatch Logs accepts.
const RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Group {
    name: String,
    created_ms: u64,
    retention_days: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stream {
    name: String,
    created_ms: u64,
    first_event_ms: Option<u64>,
    last_event_ms: Option<u64>,
    last_ingestion_ms: Option<u64>,
    next_sequence: u64,
    stored_bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Event {
    timestamp: u64,
    message: String,
    ingestion: u64,
}

/// The CloudWatch Logs service.
pub struct Logs {
    db: Database,
    /// Serialises writers (sequence numbers per stream).
    write_lock: Mutex<()>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn failed(error: impl std::fmt::Display) -> ServiceError {
    tracing::error!(%error, "logs store failure");
    ServiceError::internal("ServiceUnavailableException")
}

fn group_missing() -> ServiceError {
    ServiceError::client(
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

fn stream_missing() -> ServiceError {
    ServiceError::client(
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
}

fn text<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// The group a request names (`logGroupName`, or `logGroupIdentifier`: a name or an ARN).
fn group_name(input: &Value) -> Option<String> {
    if let Some(name) = text(input, "logGroupName") {
        return Some(name.to_owned());
    }
    let identifier = text(input, "logGroupIdentifier")?;
    match identifier.split_once(":log-group:") {
        Some((_, rest)) => Some(rest.trim_end_matches(":*").to_owned()),
        None => Some(identifier.to_owned()),
    }
}

struct Scope<'a> {
    account: &'a str,
    region: &'a str,
}

impl Scope<'_> {
    fn group_key(&self, group: &str) -> String {
        format!("{}/{}/{group}", self.account, self.region)
    }
    fn group_arn(&self, group: &str) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{group}",
            self.region, self.account
        )
    }
}

fn stream_key(group_key: &str, stream: &str) -> String {
    format!("{group_key}\0{stream}")
}

impl Logs {
    pub fn open(path: &Path) -> Result<Logs, String> {
        let db = Database::create(path).map_err(|e| e.to_string())?;
        let write = db.begin_write().map_err(|e| e.to_string())?;
        write.open_table(GROUPS).map_err(|e| e.to_string())?;
        write.open_table(STREAMS).map_err(|e| e.to_string())?;
        write.open_table(EVENTS).map_err(|e| e.to_string())?;
        write.commit().map_err(|e| e.to_string())?;
        Ok(Logs {
            db,
            write_lock: Mutex::new(()),
        })
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &str>,
        key: &str,
    ) -> Result<Option<T>, ServiceError> {
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(table).map_err(failed)?;
        let value = table.get(key).map_err(failed)?;
        Ok(value.and_then(|v| serde_json::from_str(v.value()).ok()))
    }

    fn group(&self, key: &str) -> Result<Option<Group>, ServiceError> {
        self.read_json(GROUPS, key)
    }

    /// Appends events to a stream, creating the group and the stream when missing (the path
    /// Lambda's function logs take); one durable transaction.
    pub fn append(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        events: &[(u64, String)],
    ) -> Result<(), String> {
        let scope = Scope { account, region };
        let _guard = self.write_lock.lock().expect("lock");
        let write = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let gkey = scope.group_key(group);
            let mut groups = write.open_table(GROUPS).map_err(|e| e.to_string())?;
            let missing = groups
                .get(gkey.as_str())
                .map_err(|e| e.to_string())?
                .is_none();
            if missing {
                let record = Group {
                    name: group.to_owned(),
                    created_ms: now_ms(),
                    retention_days: None,
                };
                let text = serde_json::to_string(&record).map_err(|e| e.to_string())?;
                groups
                    .insert(gkey.as_str(), text.as_str())
                    .map_err(|e| e.to_string())?;
            }
            drop(groups);
            let mut streams = write.open_table(STREAMS).map_err(|e| e.to_string())?;
            let skey = stream_key(&gkey, stream);
            let mut record: Stream = streams
                .get(skey.as_str())
                .map_err(|e| e.to_string())?
                .and_then(|v| serde_json::from_str(v.value()).ok())
                .unwrap_or(Stream {
                    name: stream.to_owned(),
                    created_ms: now_ms(),
                    first_event_ms: None,
                    last_event_ms: None,
                    last_ingestion_ms: None,
                    next_sequence: 0,
                    stored_bytes: 0,
                });
            append_events(&write, &skey, &mut record, events)?;
            let text = serde_json::to_string(&record).map_err(|e| e.to_string())?;
            streams
                .insert(skey.as_str(), text.as_str())
                .map_err(|e| e.to_string())?;
        }
        write.commit().map_err(|e| e.to_string())
    }

    fn run(
        &self,
        context: &CallContext<'_>,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let scope = Scope {
            account: &context.caller.account,
            region: context.region,
        };
        let action = format!("logs:{operation}");
        match operation {
            "CreateLogGroup" => {
                let name = group_name(input).unwrap_or_default();
                context
                    .authz
                    .check(&action, &scope.group_arn(&name), None)?;
                let key = scope.group_key(&name);
                let _guard = self.write_lock.lock().expect("lock");
                if self.group(&key)?.is_some() {
                    return Err(ServiceError::client(
                        "ResourceAlreadyExistsException",
                        "The specified log group already exists",
                    ));
                }
                let record = Group {
                    name,
                    created_ms: now_ms(),
                    retention_days: None,
                };
                self.put(GROUPS, &key, &record)?;
                Ok(json!({}))
            }
            "DeleteLogGroup" => {
                let name = group_name(input).unwrap_or_default();
                context
                    .authz
                    .check(&action, &scope.group_arn(&name), None)?;
                let key = scope.group_key(&name);
                let _guard = self.write_lock.lock().expect("lock");
                if self.group(&key)?.is_none() {
                    return Err(group_missing());
                }
                self.delete_group(&key)?;
                Ok(json!({}))
            }
            "PutRetentionPolicy" => {
                let name = group_name(input).unwrap_or_default();
                context
                    .authz
                    .check(&action, &scope.group_arn(&name), None)?;
                let days = input
                    .get("retentionInDays")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if !RETENTION_DAYS.contains(&days) {
                    return Err(ServiceError::client(
                        "InvalidParameterException",
                        format!("1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]"),
                    ));
                }
                let key = scope.group_key(&name);
                let _guard = self.write_lock.lock().expect("lock");
                let mut group = self.group(&key)?.ok_or_else(group_missing)?;
                group.retention_days = Some(days);
                self.put(GROUPS, &key, &group)?;
                self.sweep_group(&key, &group)?;
                Ok(json!({}))
            }
            "DescribeLogGroups" => {
                context.authz.check(&action, "*", None)?;
                let prefix = text(input, "logGroupNamePrefix").unwrap_or("");
                let pattern = text(input, "logGroupNamePattern");
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(50) as usize;
                let after = text(input, "nextToken");
                let base = scope.group_key("");
                let read = self.db.begin_read().map_err(failed)?;
                let table = read.open_table(GROUPS).map_err(failed)?;
                let start = format!("{base}{prefix}");
                let mut groups = Vec::new();
                let mut next = None;
                for entry in table.range(start.as_str()..).map_err(failed)? {
                    let (key, value) = entry.map_err(failed)?;
                    let key = key.value();
                    if !key.starts_with(&start) {
                        break;
                    }
                    let Ok(group) = serde_json::from_str::<Group>(value.value()) else {
                        continue;
                    };
                    if after.is_some_and(|a| group.name.as_str() <= a)
                        || pattern.is_some_and(|p| !group.name.contains(p))
                    {
                        continue;
                    }
                    if groups.len() == limit {
                        next = groups
                            .last()
                            .and_then(|g: &Value| g.get("logGroupName"))
                            .cloned();
                        break;
                    }
                    groups.push(self.group_view(&scope, &group));
                }
                let mut out = json!({ "logGroups": groups });
                if let Some(next) = next {
                    out["nextToken"] = next;
                }
                Ok(out)
            }
            "CreateLogStream" => {
                let name = group_name(input).unwrap_or_default();
                let stream = text(input, "logStreamName").unwrap_or("").to_owned();
                context.authz.check(
                    &action,
                    &format!("{}:log-stream:{stream}", scope.group_arn(&name)),
                    None,
                )?;
                let gkey = scope.group_key(&name);
                let _guard = self.write_lock.lock().expect("lock");
                self.group(&gkey)?.ok_or_else(group_missing)?;
                let skey = stream_key(&gkey, &stream);
                if self.read_json::<Stream>(STREAMS, &skey)?.is_some() {
                    return Err(ServiceError::client(
                        "ResourceAlreadyExistsException",
                        "The specified log stream already exists",
                    ));
                }
                let record = Stream {
                    name: stream,
                    created_ms: now_ms(),
                    first_event_ms: None,
                    last_event_ms: None,
                    last_ingestion_ms: None,
                    next_sequence: 0,
                    stored_bytes: 0,
                };
                self.put(STREAMS, &skey, &record)?;
                Ok(json!({}))
            }
            "DescribeLogStreams" => {
                let name = group_name(input).unwrap_or_default();
                context
                    .authz
                    .check(&action, &scope.group_arn(&name), None)?;
                let gkey = scope.group_key(&name);
                self.group(&gkey)?.ok_or_else(group_missing)?;
                let prefix = text(input, "logStreamNamePrefix").unwrap_or("");
                let by_time = text(input, "orderBy") == Some("LastEventTime");
                if by_time && !prefix.is_empty() {
                    return Err(ServiceError::client(
                        "InvalidParameterException",
                        "Cannot order by LastEventTime with a logStreamNamePrefix.",
                    ));
                }
                let descending = input
                    .get("descending")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(50) as usize;
                let offset: usize = text(input, "nextToken")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let mut streams = self.streams_of(&gkey)?;
                streams.retain(|s| s.name.starts_with(prefix));
                if by_time {
                    streams.sort_by_key(|s| s.last_event_ms.unwrap_or(0));
                }
                if descending {
                    streams.reverse();
                }
                let total = streams.len();
                let page: Vec<Value> = streams
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|s| {
                        let mut view = json!({
                            "logStreamName": s.name,
                            "creationTime": s.created_ms,
                            "arn": format!("{}:log-stream:{}", scope.group_arn(&name), s.name),
                            "storedBytes": 0,
                            "uploadSequenceToken": s.next_sequence.to_string(),
                        });
                        if let Some(t) = s.first_event_ms {
                            view["firstEventTimestamp"] = json!(t);
                        }
                        if let Some(t) = s.last_event_ms {
                            view["lastEventTimestamp"] = json!(t);
                        }
                        if let Some(t) = s.last_ingestion_ms {
                            view["lastIngestionTime"] = json!(t);
                        }
                        view
                    })
                    .collect();
                let mut out = json!({ "logStreams": page });
                if offset + limit < total {
                    out["nextToken"] = json!((offset + limit).to_string());
                }
                Ok(out)
            }
            "PutLogEvents" => {
                let name = group_name(input).unwrap_or_default();
                let stream = text(input, "logStreamName").unwrap_or("").to_owned();
                context.authz.check(
                    &action,
                    &format!("{}:log-stream:{stream}", scope.group_arn(&name)),
                    None,
                )?;
                let events: Vec<(u64, String)> = input
                    .get("logEvents")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .map(|e| {
                                (
                                    e.get("timestamp").and_then(Value::as_u64).unwrap_or(0),
                                    e.get("message")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if events.windows(2).any(|w| w[1].0 < w[0].0) {
                    return Err(ServiceError::client(
                        "InvalidParameterException",
                        "Log events in a single PutLogEvents request must be in chronological order.",
                    ));
                }
                let gkey = scope.group_key(&name);
                let skey = stream_key(&gkey, &stream);
                let _guard = self.write_lock.lock().expect("lock");
                self.group(&gkey)?.ok_or_else(group_missing)?;
                let mut record: Stream =
                    self.read_json(STREAMS, &skey)?.ok_or_else(stream_missing)?;
                let write = self.db.begin_write().map_err(failed)?;
                append_events(&write, &skey, &mut record, &events).map_err(failed)?;
                {
                    let mut streams = write.open_table(STREAMS).map_err(failed)?;
                    let text = serde_json::to_string(&record).map_err(failed)?;
                    streams
                        .insert(skey.as_str(), text.as_str())
                        .map_err(failed)?;
                }
                write.commit().map_err(failed)?;
                Ok(json!({ "nextSequenceToken": format!("{:056}", record.next_sequence) }))
            }
            "GetLogEvents" => {
                let name = group_name(input).unwrap_or_default();
                let stream = text(input, "logStreamName").unwrap_or("").to_owned();
                context
                    .authz
                    .check(&action, &scope.group_arn(&name), None)?;
                let gkey = scope.group_key(&name);
                let group = self.group(&gkey)?.ok_or_else(group_missing)?;
                let skey = stream_key(&gkey, &stream);
                self.read_json::<Stream>(STREAMS, &skey)?
                    .ok_or_else(stream_missing)?;
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(10_000) as usize;
                let from_head = input
                    .get("startFromHead")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let token = text(input, "nextToken");
                let mut events = self.events_of(&skey, &group, input)?;
                let (start, end) = match token.and_then(|t| t.split_once('/')) {
                    Some(("f", n)) => {
                        let n: usize = n.parse().unwrap_or(0);
                        (n.min(events.len()), (n + limit).min(events.len()))
                    }
                    Some(("b", n)) => {
                        let n: usize = n.parse::<usize>().unwrap_or(0).min(events.len());
                        (n.saturating_sub(limit), n)
                    }
                    _ if from_head => (0, limit.min(events.len())),
                    _ => (events.len().saturating_sub(limit), events.len()),
                };
                let page: Vec<Value> = events
                    .drain(start..end)
                    .map(|(_, e)| json!({"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion}))
                    .collect();
                Ok(json!({
                    "events": page,
                    "nextForwardToken": format!("f/{end:056}"),
                    "nextBackwardToken": format!("b/{start:056}"),
                }))
            }
            "FilterLogEvents" => {
                let name = group_name(input).unwrap_or_default();
                context
                    .authz
                    .check(&action, &scope.group_arn(&name), None)?;
                let gkey = scope.group_key(&name);
                let group = self.group(&gkey)?.ok_or_else(group_missing)?;
                let pattern = filter::Pattern::parse(text(input, "filterPattern").unwrap_or(""));
                let names: Option<Vec<&str>> = input
                    .get("logStreamNames")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_str).collect());
                let prefix = text(input, "logStreamNamePrefix").unwrap_or("");
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(10_000) as usize;
                let offset: usize = text(input, "nextToken")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let mut matches = Vec::new();
                for stream in self.streams_of(&gkey)? {
                    if !stream.name.starts_with(prefix)
                        || names
                            .as_ref()
                            .is_some_and(|n| !n.contains(&stream.name.as_str()))
                    {
                        continue;
                    }
                    let skey = stream_key(&gkey, &stream.name);
                    for (sequence, event) in self.events_of(&skey, &group, input)? {
                        if pattern.matches(&event.message) {
                            matches.push((stream.name.clone(), sequence, event));
                        }
                    }
                }
                matches.sort_by_key(|(_, sequence, event)| (event.timestamp, *sequence));
                let total = matches.len();
                let page: Vec<Value> = matches
                    .into_iter()
                    .skip(offset)
                    .take(limit)
                    .map(|(stream, sequence, e)| {
                        json!({
                            "logStreamName": stream,
                            "timestamp": e.timestamp,
                            "message": e.message,
                            "ingestionTime": e.ingestion,
                            "eventId": format!("{:020}{sequence:016}", e.timestamp),
                        })
                    })
                    .collect();
                let mut out = json!({ "events": page, "searchedLogStreams": [] });
                if offset + limit < total {
                    out["nextToken"] = json!((offset + limit).to_string());
                }
                Ok(out)
            }
            other => {
                context.authz.check(&action, "*", None)?;
                Err(ServiceError::client(
                    "InvalidOperationException",
                    format!("{other} is not supported by Millrace"),
                ))
            }
        }
    }

    fn group_view(&self, scope: &Scope<'_>, group: &Group) -> Value {
        let arn = scope.group_arn(&group.name);
        let mut view = json!({
            "logGroupName": group.name,
            "creationTime": group.created_ms,
            "metricFilterCount": 0,
            "arn": format!("{arn}:*"),
            "logGroupArn": arn,
            "storedBytes": 0,
            "logGroupClass": "STANDARD",
        });
        if let Some(days) = group.retention_days {
            view["retentionInDays"] = json!(days);
        }
        view
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &str>,
        key: &str,
        value: &T,
    ) -> Result<(), ServiceError> {
        let text = serde_json::to_string(value).map_err(failed)?;
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut table = write.open_table(table).map_err(failed)?;
            table.insert(key, text.as_str()).map_err(failed)?;
        }
        write.commit().map_err(failed)
    }

    fn streams_of(&self, group_key: &str) -> Result<Vec<Stream>, ServiceError> {
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(STREAMS).map_err(failed)?;
        let start = format!("{group_key}\0");
        let mut out = Vec::new();
        for entry in table.range(start.as_str()..).map_err(failed)? {
            let (key, value) = entry.map_err(failed)?;
            if !key.value().starts_with(&start) {
                break;
            }
            if let Ok(stream) = serde_json::from_str(value.value()) {
                out.push(stream);
            }
        }
        Ok(out)
    }

    /// A stream's events within the request's time range and the group's retention.
    fn events_of(
        &self,
        stream_key: &str,
        group: &Group,
        input: &Value,
    ) -> Result<Vec<(u64, Event)>, ServiceError> {
        let start_time = input.get("startTime").and_then(Value::as_u64).unwrap_or(0);
        let end_time = input
            .get("endTime")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let retained_from = group
            .retention_days
            .map_or(0, |days| now_ms().saturating_sub(days as u64 * DAY_MS));
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(EVENTS).map_err(failed)?;
        let mut out = Vec::new();
        for entry in table
            .range((stream_key, 0u64)..=(stream_key, u64::MAX))
            .map_err(failed)?
        {
            let (key, value) = entry.map_err(failed)?;
            let Ok(event) = serde_json::from_str::<Event>(value.value()) else {
                continue;
            };
            if event.timestamp >= start_time.max(retained_from) && event.timestamp < end_time {
                out.push((key.value().1, event));
            }
        }
        Ok(out)
    }

    /// Deletes a group's events older than its retention (hidden from reads already).
    fn sweep_group(&self, group_key: &str, group: &Group) -> Result<(), ServiceError> {
        let Some(days) = group.retention_days else {
            return Ok(());
        };
        let cutoff = now_ms().saturating_sub(days as u64 * DAY_MS);
        let streams: Vec<String> = self
            .streams_of(group_key)?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut events = write.open_table(EVENTS).map_err(failed)?;
            for stream in streams {
                let skey = stream_key(group_key, &stream);
                events
                    .retain_in(
                        (skey.as_str(), 0u64)..=(skey.as_str(), u64::MAX),
                        |_, value| {
                            serde_json::from_str::<Event>(value)
                                .map_or(true, |event| event.timestamp >= cutoff)
                        },
                    )
                    .map_err(failed)?;
            }
        }
        write.commit().map_err(failed)
    }

    /// Sweeps every group with a retention policy (at startup).
    pub fn sweep_expired(&self) -> Result<(), String> {
        let groups: Vec<(String, Group)> = {
            let read = self.db.begin_read().map_err(|e| e.to_string())?;
            let table = read.open_table(GROUPS).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(|e| e.to_string())? {
                let (key, value) = entry.map_err(|e| e.to_string())?;
                if let Ok(group) = serde_json::from_str::<Group>(value.value()) {
                    out.push((key.value().to_owned(), group));
                }
            }
            out
        };
        for (key, group) in groups {
            self.sweep_group(&key, &group)
                .map_err(|e| e.message.unwrap_or(e.code))?;
        }
        Ok(())
    }

    fn delete_group(&self, group_key: &str) -> Result<(), ServiceError> {
        let streams: Vec<String> = self
            .streams_of(group_key)?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut groups = write.open_table(GROUPS).map_err(failed)?;
            groups.remove(group_key).map_err(failed)?;
            let mut table = write.open_table(STREAMS).map_err(failed)?;
            let mut events = write.open_table(EVENTS).map_err(failed)?;
            for stream in streams {
                let skey = stream_key(group_key, &stream);
                table.remove(skey.as_str()).map_err(failed)?;
                events
                    .retain_in((skey.as_str(), 0u64)..=(skey.as_str(), u64::MAX), |_, _| {
                        false
                    })
                    .map_err(failed)?;
            }
        }
        write.commit().map_err(failed)
    }
}

fn append_events(
    write: &redb::WriteTransaction,
    stream_key: &str,
    record: &mut Stream,
    events: &[(u64, String)],
) -> Result<(), String> {
    let ingestion = now_ms();
    let mut table = write.open_table(EVENTS).map_err(|e| e.to_string())?;
    for (timestamp, message) in events {
        let event = Event {
            timestamp: *timestamp,
            message: message.clone(),
            ingestion,
        };
        let text = serde_json::to_string(&event).unwrap_or_default();
        table
            .insert((stream_key, record.next_sequence), text.as_str())
            .map_err(|e| e.to_string())?;
        record.next_sequence += 1;
        record.stored_bytes += message.len() as u64;
        record.first_event_ms = Some(
            record
                .first_event_ms
                .map_or(*timestamp, |t| t.min(*timestamp)),
        );
        record.last_event_ms = Some(
            record
                .last_event_ms
                .map_or(*timestamp, |t| t.max(*timestamp)),
        );
    }
    record.last_ingestion_ms = Some(ingestion);
    Ok(())
}

impl JsonService for Logs {
    fn model(&self) -> &'static ServiceModel {
        &millrace_wire::generated::logs_model::LOGS
    }
    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(async move { self.run(&context, operation, &input) })
    }
    fn audits(&self, operation: &str) -> bool {
        !matches!(
            operation,
            "PutLogEvents" | "GetLogEvents" | "FilterLogEvents"
        )
    }
}
