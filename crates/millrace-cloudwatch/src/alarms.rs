//! Metric alarms: PutMetricAlarm, DescribeAlarms, DescribeAlarmsForMetric, DeleteAlarms,
//! SetAlarmState, DescribeAlarmHistory, Enable/DisableAlarmActions, and their evaluation.
//!
//! An alarm is kept as its `MetricAlarm` document (`a/<account>\x1f<region>\x1f<name>`), its
//! history as `AlarmHistoryItem`s (`h/<account>\x1f<region>\x1f<name>\x1f<ms>\x1f<n>`), both in
//! the metrics document store. Every change is durable before the operation answers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use millrace_catalog::DocumentStore;
use millrace_service::{CallContext, ServiceError};
use serde_json::{json, Value};

use crate::ops::{dimensions_of, Scope};
use crate::series::SeriesKey;
use crate::store::StoreError;
use crate::{invalid_combination, invalid_value, Metrics};

/// The alarms of every account, by store key.
pub struct Alarms {
    alarms: Mutex<BTreeMap<String, Value>>,
    sequence: AtomicU64,
}

fn alarm_key(scope: Scope<'_>, name: &str) -> String {
    format!("a/{}\u{1f}{}\u{1f}{name}", scope.account, scope.region)
}

fn scope_prefix(scope: Scope<'_>) -> String {
    format!("a/{}\u{1f}{}\u{1f}", scope.account, scope.region)
}

fn alarm_arn(scope: Scope<'_>, name: &str) -> String {
    format!(
        "arn:aws:cloudwatch:{}:{}:alarm:{name}",
        scope.region, scope.account
    )
}

impl Alarms {
    pub fn load(documents: &DocumentStore) -> Result<Alarms, StoreError> {
        let mut alarms = BTreeMap::new();
        for (key, value) in documents.scan("a/")? {
            let alarm: Value = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            alarms.insert(key, alarm);
        }
        Ok(Alarms {
            alarms: Mutex::new(alarms),
            sequence: AtomicU64::new(0),
        })
    }

    fn history_key(&self, key: &str, ms: i64) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!("h/{}\u{1f}{ms:015}\u{1f}{n:08}", &key[2..])
    }
}

fn iso(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A `dd/MM/yy HH:mm:ss` time as alarm reasons print it.
fn reason_time(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    let (y, m, d) = millrace_wire::timestamp::civil_from_days(days);
    format!(
        "{d:02}/{m:02}/{:02} {:02}:{:02}:{:02}",
        y % 100,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn names_of(input: &Value) -> Vec<String> {
    input
        .get("AlarmNames")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Authorizes an alarm operation on the ARNs of the alarms it names.
pub fn authorize(
    context: &CallContext<'_>,
    operation: &str,
    input: &Value,
) -> Result<(), ServiceError> {
    let scope = Scope {
        account: &context.caller.account,
        region: context.region,
    };
    let action = format!("cloudwatch:{operation}");
    let mut names = names_of(input);
    if let Some(name) = input.get("AlarmName").and_then(Value::as_str) {
        names.push(name.to_owned());
    }
    if names.is_empty() {
        return context.authz.check(&action, "*", None);
    }
    for name in names {
        context
            .authz
            .check(&action, &alarm_arn(scope, &name), None)?;
    }
    Ok(())
}

fn not_found(message: String) -> ServiceError {
    crate::error("ResourceNotFound", message).with_status(404)
}

fn store_failed(error: impl std::fmt::Display) -> ServiceError {
    tracing::error!(%error, "failed to store an alarm");
    ServiceError::internal("InternalServiceError")
}

pub fn call(
    metrics: &Metrics,
    scope: Scope<'_>,
    operation: &str,
    input: &Value,
) -> Result<Value, ServiceError> {
    match operation {
        "PutMetricAlarm" => put_metric_alarm(metrics, scope, input),
        "DescribeAlarms" => describe_alarms(metrics, scope, input),
        "DescribeAlarmsForMetric" => describe_alarms_for_metric(metrics, scope, input),
        "DeleteAlarms" => delete_alarms(metrics, scope, input),
        "SetAlarmState" => set_alarm_state(metrics, scope, input),
        "DescribeAlarmHistory" => describe_alarm_history(metrics, scope, input),
        "EnableAlarmActions" => alarm_actions(metrics, scope, input, true),
        _ => alarm_actions(metrics, scope, input, false),
    }
}

fn put_metric_alarm(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let name = input["AlarmName"].as_str().unwrap_or("").to_owned();
    if let Some(queries) = input.get("Metrics").and_then(Value::as_array) {
        if input.get("MetricName").is_some() || input.get("Statistic").is_some() {
            return Err(invalid_combination(
                "MetricName, Namespace, Statistic and Dimensions cannot be set together with Metrics.",
            ));
        }
        let returned = queries
            .iter()
            .filter(|q| q.get("ReturnData").and_then(Value::as_bool) != Some(false))
            .count();
        if returned != 1 {
            return Err(invalid_value(
                "Exactly one element of the Metrics list must have ReturnData set to true.",
            ));
        }
    } else if input.get("MetricName").is_none() || input.get("Namespace").is_none() {
        return Err(crate::missing("The parameter MetricName is required."));
    }
    let has_statistic = input.get("Statistic").is_some();
    let has_extended = input.get("ExtendedStatistic").is_some();
    if input.get("Metrics").is_none() && has_statistic == has_extended {
        return Err(invalid_combination(
            "Exactly one of Statistic or ExtendedStatistic must be specified.",
        ));
    }
    if let Some(extended) = input.get("ExtendedStatistic").and_then(Value::as_str) {
        if crate::stat::parse_percentile(extended).is_none() {
            return Err(invalid_value(format!(
                "The value {extended} for parameter ExtendedStatistic is not supported."
            )));
        }
    }
    let evaluation_periods = input["EvaluationPeriods"].as_i64().unwrap_or(1);
    let datapoints = input
        .get("DatapointsToAlarm")
        .and_then(Value::as_i64)
        .unwrap_or(evaluation_periods);
    if datapoints > evaluation_periods {
        return Err(invalid_value(
            "DatapointsToAlarm must be less than or equal to EvaluationPeriods.",
        ));
    }
    let period = input.get("Period").and_then(Value::as_i64).unwrap_or(60);
    if period < 60 && ![10, 30].contains(&period) || period >= 60 && period % 60 != 0 {
        return Err(invalid_value(
            "The parameter Period must be 10, 30 or a multiple of 60.",
        ));
    }
    if input.get("ThresholdMetricId").is_some() {
        return Err(invalid_combination(
            "Anomaly detection alarms (ThresholdMetricId) are not supported by this server.",
        ));
    }
    if input.get("Threshold").is_none() {
        return Err(crate::missing("The parameter Threshold is required."));
    }
    let now = crate::now_ms();
    let key = alarm_key(scope, &name);
    let mut alarms = metrics
        .alarms
        .alarms
        .lock()
        .expect("alarms are never poisoned");
    let previous = alarms.get(&key).cloned();
    let mut alarm = input.clone();
    let object = alarm.as_object_mut().expect("inputs are objects");
    object.remove("Tags");
    object.insert("AlarmArn".into(), json!(alarm_arn(scope, &name)));
    object.insert("AlarmConfigurationUpdatedTimestamp".into(), json!(iso(now)));
    object.entry("ActionsEnabled").or_insert(json!(true));
    object.entry("Dimensions").or_insert(json!([]));
    for list in ["OKActions", "AlarmActions", "InsufficientDataActions"] {
        object.entry(list).or_insert(json!([]));
    }
    object.insert("EvaluationPeriods".into(), json!(evaluation_periods));
    object.insert("Period".into(), json!(period));
    match &previous {
        Some(old) => {
            for field in [
                "StateValue",
                "StateReason",
                "StateReasonData",
                "StateUpdatedTimestamp",
                "StateTransitionedTimestamp",
            ] {
                if let Some(value) = old.get(field) {
                    object.insert(field.into(), value.clone());
                }
            }
        }
        None => {
            object.insert("StateValue".into(), json!("INSUFFICIENT_DATA"));
            object.insert(
                "StateReason".into(),
                json!("Unchecked: Initial alarm creation"),
            );
            object.insert("StateUpdatedTimestamp".into(), json!(iso(now)));
            object.insert("StateTransitionedTimestamp".into(), json!(iso(now)));
        }
    }
    let summary = if previous.is_some() {
        format!("Alarm \"{name}\" updated")
    } else {
        format!("Alarm \"{name}\" created")
    };
    let history = json!({
        "AlarmName": name,
        "AlarmType": "MetricAlarm",
        "Timestamp": iso(now),
        "HistoryItemType": "ConfigurationUpdate",
        "HistorySummary": summary,
        "HistoryData": json!({"type": if previous.is_some() {"Update"} else {"Create"}, "version": "1.0"}).to_string(),
    });
    let history_key = metrics.alarms.history_key(&key, now);
    let alarm_bytes = serde_json::to_vec(&alarm).expect("alarms serialize");
    let history_bytes = serde_json::to_vec(&history).expect("history serializes");
    metrics
        .store()
        .documents()
        .write(&[
            (&key, Some(&alarm_bytes)),
            (&history_key, Some(&history_bytes)),
        ])
        .map_err(store_failed)?;
    alarms.insert(key, alarm);
    Ok(json!({}))
}

fn page(
    list: Vec<Value>,
    input: &Value,
    max_default: usize,
) -> Result<(Vec<Value>, Option<String>), ServiceError> {
    let max = input
        .get("MaxRecords")
        .and_then(Value::as_u64)
        .map(|m| m as usize)
        .unwrap_or(max_default);
    let start: usize = match input.get("NextToken").and_then(Value::as_str) {
        Some(token) => token.parse().map_err(|_| {
            crate::error(
                "InvalidNextToken",
                "The service couldn't process the provided token.",
            )
        })?,
        None => 0,
    };
    let next = (start + max < list.len()).then(|| (start + max).to_string());
    Ok((list.into_iter().skip(start).take(max).collect(), next))
}

fn scope_alarms(metrics: &Metrics, scope: Scope<'_>) -> Vec<Value> {
    let prefix = scope_prefix(scope);
    metrics
        .alarms
        .alarms
        .lock()
        .expect("alarms are never poisoned")
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| v.clone())
        .collect()
}

fn describe_alarms(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let names = names_of(input);
    let prefix = input.get("AlarmNamePrefix").and_then(Value::as_str);
    let state = input.get("StateValue").and_then(Value::as_str);
    let action_prefix = input.get("ActionPrefix").and_then(Value::as_str);
    let types_exclude_metric = input
        .get("AlarmTypes")
        .and_then(Value::as_array)
        .is_some_and(|l| !l.iter().any(|t| t == "MetricAlarm"));
    if !names.is_empty() && prefix.is_some() {
        return Err(invalid_combination(
            "AlarmNames and AlarmNamePrefix cannot be specified together.",
        ));
    }
    let list: Vec<Value> = scope_alarms(metrics, scope)
        .into_iter()
        .filter(|_| !types_exclude_metric)
        .filter(|a| {
            let name = a["AlarmName"].as_str().unwrap_or("");
            (names.is_empty() || names.iter().any(|n| n == name))
                && prefix.is_none_or(|p| name.starts_with(p))
                && state.is_none_or(|s| a["StateValue"] == s)
                && action_prefix.is_none_or(|p| {
                    ["OKActions", "AlarmActions", "InsufficientDataActions"]
                        .iter()
                        .any(|l| {
                            a[*l].as_array().is_some_and(|l| {
                                l.iter()
                                    .any(|x| x.as_str().is_some_and(|x| x.starts_with(p)))
                            })
                        })
                })
        })
        .collect();
    let (alarms, next) = page(list, input, 50)?;
    let mut out = json!({"MetricAlarms": alarms, "CompositeAlarms": []});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

fn describe_alarms_for_metric(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let wanted_dims = {
        let mut d = dimensions_of(input.get("Dimensions"));
        d.sort();
        d
    };
    let list: Vec<Value> = scope_alarms(metrics, scope)
        .into_iter()
        .filter(|a| {
            let mut dims = dimensions_of(a.get("Dimensions"));
            dims.sort();
            a["MetricName"] == input["MetricName"]
                && a["Namespace"] == input["Namespace"]
                && ["Statistic", "ExtendedStatistic", "Period", "Unit"]
                    .iter()
                    .all(|f| input.get(*f).is_none_or(|v| a.get(*f) == Some(v)))
                && (input.get("Dimensions").is_none() || dims == wanted_dims)
        })
        .collect();
    Ok(json!({"MetricAlarms": list}))
}

fn delete_alarms(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let names = names_of(input);
    let mut alarms = metrics
        .alarms
        .alarms
        .lock()
        .expect("alarms are never poisoned");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !alarms.contains_key(&alarm_key(scope, n)))
        .collect();
    if !missing.is_empty() {
        return Err(not_found(format!(
            "The following alarms were not found: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let keys: Vec<String> = names.iter().map(|n| alarm_key(scope, n)).collect();
    let changes: Vec<(&str, Option<&[u8]>)> = keys.iter().map(|k| (k.as_str(), None)).collect();
    metrics
        .store()
        .documents()
        .write(&changes)
        .map_err(store_failed)?;
    for key in keys {
        alarms.remove(&key);
    }
    Ok(json!({}))
}

/// Changes an alarm's state (if it differs) and records the transition and its actions.
fn transition(
    metrics: &Metrics,
    key: &str,
    alarm: &mut Value,
    state: &str,
    reason: &str,
    reason_data: Option<&str>,
    now: i64,
) -> Result<(), ServiceError> {
    let old = alarm["StateValue"]
        .as_str()
        .unwrap_or("INSUFFICIENT_DATA")
        .to_owned();
    let name = alarm["AlarmName"].as_str().unwrap_or("").to_owned();
    alarm["StateValue"] = json!(state);
    alarm["StateReason"] = json!(reason);
    if let Some(data) = reason_data {
        alarm["StateReasonData"] = json!(data);
    }
    alarm["StateUpdatedTimestamp"] = json!(iso(now));
    if old != state {
        alarm["StateTransitionedTimestamp"] = json!(iso(now));
    }
    let mut items = vec![json!({
        "AlarmName": name,
        "AlarmType": "MetricAlarm",
        "Timestamp": iso(now),
        "HistoryItemType": "StateUpdate",
        "HistorySummary": format!("Alarm updated from {old} to {state}"),
        "HistoryData": json!({
            "version": "1.0",
            "oldState": {"stateValue": old},
            "newState": {"stateValue": state, "stateReason": reason},
        }).to_string(),
    })];
    let list = match state {
        "ALARM" => "AlarmActions",
        "OK" => "OKActions",
        _ => "InsufficientDataActions",
    };
    if alarm["ActionsEnabled"].as_bool().unwrap_or(true) {
        for action in alarm[list].as_array().cloned().unwrap_or_default() {
            let action = action.as_str().unwrap_or("");
            items.push(json!({
                "AlarmName": name,
                "AlarmType": "MetricAlarm",
                "Timestamp": iso(now),
                "HistoryItemType": "Action",
                "HistorySummary": format!("Failed to execute action {action}. Received error: \"this server does not perform this action\""),
                "HistoryData": json!({"actionState": "Failed", "notificationResource": action, "stateUpdateTimestamp": now, "error": "this server does not perform this action"}).to_string(),
            }));
        }
    }
    let alarm_bytes = serde_json::to_vec(alarm).expect("alarms serialize");
    let encoded: Vec<(String, Vec<u8>)> = items
        .iter()
        .map(|item| {
            (
                metrics.alarms.history_key(key, now),
                serde_json::to_vec(item).expect("history serializes"),
            )
        })
        .collect();
    let mut changes: Vec<(&str, Option<&[u8]>)> = vec![(key, Some(&alarm_bytes))];
    changes.extend(
        encoded
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice()))),
    );
    metrics
        .store()
        .documents()
        .write(&changes)
        .map_err(store_failed)
}

fn set_alarm_state(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let name = input["AlarmName"].as_str().unwrap_or("");
    let state = input["StateValue"].as_str().unwrap_or("");
    let reason = input["StateReason"].as_str().unwrap_or("");
    let reason_data = input.get("StateReasonData").and_then(Value::as_str);
    if let Some(data) = reason_data {
        if serde_json::from_str::<Value>(data).is_err() {
            return Err(crate::error(
                "InvalidFormat",
                "StateReasonData is not valid JSON.",
            ));
        }
    }
    let key = alarm_key(scope, name);
    let mut alarms = metrics
        .alarms
        .alarms
        .lock()
        .expect("alarms are never poisoned");
    let Some(alarm) = alarms.get(&key) else {
        return Err(not_found(format!("Alarm {name} not found")));
    };
    let mut alarm = alarm.clone();
    transition(
        metrics,
        &key,
        &mut alarm,
        state,
        reason,
        reason_data,
        crate::now_ms(),
    )?;
    alarms.insert(key, alarm);
    Ok(json!({}))
}

fn describe_alarm_history(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let prefix = match input.get("AlarmName").and_then(Value::as_str) {
        Some(name) => format!(
            "h/{}\u{1f}{}\u{1f}{name}\u{1f}",
            scope.account, scope.region
        ),
        None => format!("h/{}\u{1f}{}\u{1f}", scope.account, scope.region),
    };
    let item_type = input.get("HistoryItemType").and_then(Value::as_str);
    let start = input.get("StartDate").and_then(Value::as_f64);
    let end = input.get("EndDate").and_then(Value::as_f64);
    let rows = metrics
        .store()
        .documents()
        .scan(&prefix)
        .map_err(store_failed)?;
    let mut items: Vec<Value> = rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<Value>(&v).ok())
        .filter(|item| item_type.is_none_or(|t| item["HistoryItemType"] == t))
        .filter(|item| {
            let t = item["Timestamp"].as_f64().unwrap_or(0.0);
            start.is_none_or(|s| t >= s) && end.is_none_or(|e| t <= e)
        })
        .collect();
    // Newest first unless asked otherwise.
    items.sort_by(|a, b| {
        b["Timestamp"]
            .as_f64()
            .partial_cmp(&a["Timestamp"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if input.get("ScanBy").and_then(Value::as_str) == Some("TimestampAscending") {
        items.reverse();
    }
    let (items, next) = page(items, input, 100)?;
    let mut out = json!({"AlarmHistoryItems": items});
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

fn alarm_actions(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
    enabled: bool,
) -> Result<Value, ServiceError> {
    let mut alarms = metrics
        .alarms
        .alarms
        .lock()
        .expect("alarms are never poisoned");
    let mut changed = Vec::new();
    for name in names_of(input) {
        let key = alarm_key(scope, &name);
        if let Some(alarm) = alarms.get(&key) {
            let mut alarm = alarm.clone();
            alarm["ActionsEnabled"] = json!(enabled);
            changed.push((key, alarm));
        }
    }
    let encoded: Vec<(String, Vec<u8>)> = changed
        .iter()
        .map(|(k, a)| (k.clone(), serde_json::to_vec(a).expect("alarms serialize")))
        .collect();
    let changes: Vec<(&str, Option<&[u8]>)> = encoded
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
        .collect();
    metrics
        .store()
        .documents()
        .write(&changes)
        .map_err(store_failed)?;
    for (key, alarm) in changed {
        alarms.insert(key, alarm);
    }
    Ok(json!({}))
}

fn compare(operator: &str, value: f64, threshold: f64) -> bool {
    match operator {
        "GreaterThanOrEqualToThreshold" => value >= threshold,
        "GreaterThanThreshold" => value > threshold,
        "LessThanThreshold" => value < threshold,
        "LessThanOrEqualToThreshold" => value <= threshold,
        _ => false,
    }
}

fn operator_text(operator: &str) -> &'static str {
    match operator {
        "GreaterThanOrEqualToThreshold" => "greater than or equal to",
        "GreaterThanThreshold" => "greater than",
        "LessThanThreshold" => "less than",
        _ => "less than or equal to",
    }
}

/// Evaluates every alarm once: the last `EvaluationPeriods` periods, the running one included.
pub fn evaluate_all(metrics: &Metrics, now: i64) {
    let keys: Vec<(String, Value)> = metrics
        .alarms
        .alarms
        .lock()
        .expect("alarms are never poisoned")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, alarm) in keys {
        let Some((state, reason, data)) = evaluate(metrics, &key, &alarm, now) else {
            continue;
        };
        if alarm["StateValue"] == state.as_str() {
            continue;
        }
        let mut alarms = metrics
            .alarms
            .alarms
            .lock()
            .expect("alarms are never poisoned");
        let Some(current) = alarms.get(&key) else {
            continue;
        };
        let mut updated = current.clone();
        if let Err(error) = transition(
            metrics,
            &key,
            &mut updated,
            &state,
            &reason,
            Some(&data),
            now,
        ) {
            tracing::error!(code = %error.code, "failed to record an alarm transition");
            continue;
        }
        alarms.insert(key, updated);
    }
}

fn evaluate(
    metrics: &Metrics,
    key: &str,
    alarm: &Value,
    now: i64,
) -> Option<(String, String, String)> {
    let mut parts = key[2..].splitn(3, '\u{1f}');
    let account = parts.next()?;
    let region = parts.next()?;
    let period = alarm_period(alarm);
    let n = alarm["EvaluationPeriods"].as_i64().unwrap_or(1).max(1);
    let m = alarm
        .get("DatapointsToAlarm")
        .and_then(Value::as_i64)
        .unwrap_or(n);
    let threshold = alarm["Threshold"].as_f64().unwrap_or(0.0);
    let operator = alarm["ComparisonOperator"].as_str().unwrap_or("");
    let statistic = alarm
        .get("Statistic")
        .or_else(|| alarm.get("ExtendedStatistic"))
        .and_then(Value::as_str)
        .unwrap_or("Average");
    let treat = alarm
        .get("TreatMissingData")
        .and_then(Value::as_str)
        .unwrap_or("missing");
    let now_s = now.div_euclid(1000);
    let current = now_s.div_euclid(period) * period;
    let first = current - (n - 1) * period;
    let values = match alarm.get("Metrics") {
        Some(queries) => math_values(
            metrics,
            Scope { account, region },
            queries,
            first,
            current + period,
            period,
            n,
        ),
        None => metric_values(metrics, account, region, alarm, statistic, first, period, n),
    };
    judge(
        &values, n, m, threshold, operator, statistic, treat, period, now_s,
    )
}

/// The alarm's period: its own, or that of its metric math queries.
fn alarm_period(alarm: &Value) -> i64 {
    let from_queries = alarm
        .get("Metrics")
        .and_then(Value::as_array)
        .and_then(|queries| {
            queries.iter().find_map(|q| {
                q.get("MetricStat")
                    .and_then(|s| s.get("Period"))
                    .or_else(|| q.get("Period"))
                    .and_then(Value::as_i64)
            })
        });
    from_queries
        .or_else(|| alarm["Period"].as_i64())
        .unwrap_or(60)
        .max(60)
}

/// The values of a metric math alarm's returned query in each of the `n` periods from `first`.
fn math_values(
    metrics: &Metrics,
    scope: Scope<'_>,
    queries: &Value,
    first: i64,
    end: i64,
    period: i64,
    n: i64,
) -> Vec<(i64, Option<f64>)> {
    let input = json!({
        "MetricDataQueries": queries,
        "StartTime": first as f64,
        "EndTime": end as f64,
    });
    let result = crate::ops::call(metrics, scope, "GetMetricData", input).ok();
    let series: BTreeMap<i64, f64> = result
        .as_ref()
        .and_then(|r| r["MetricDataResults"].as_array())
        .and_then(|results| results.first())
        .map(|r| {
            let times = r["Timestamps"].as_array().cloned().unwrap_or_default();
            let values = r["Values"].as_array().cloned().unwrap_or_default();
            times
                .iter()
                .zip(values.iter())
                .filter_map(|(t, v)| Some((t.as_f64()? as i64, v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    (0..n)
        .map(|i| {
            let start = first + i * period;
            (start, series.get(&start).copied())
        })
        .collect()
}

/// The values of a single-metric alarm's statistic in each of the `n` periods from `first`.
#[allow(clippy::too_many_arguments)]
fn metric_values(
    metrics: &Metrics,
    account: &str,
    region: &str,
    alarm: &Value,
    statistic: &str,
    first: i64,
    period: i64,
    n: i64,
) -> Vec<(i64, Option<f64>)> {
    let current = first + (n - 1) * period;
    let series = SeriesKey::new(
        account,
        region,
        alarm["Namespace"].as_str().unwrap_or(""),
        alarm["MetricName"].as_str().unwrap_or(""),
        dimensions_of(alarm.get("Dimensions")),
    );
    let points = metrics.datapoints(
        &series,
        first.div_euclid(60),
        (current + period).div_euclid(60),
    );
    let unit = alarm.get("Unit").and_then(Value::as_str);
    let mut values: Vec<(i64, Option<f64>)> = Vec::new();
    for i in 0..n {
        let start = first + i * period;
        let mut stat: Option<crate::Stat> = None;
        for (minute, (point_unit, s)) in
            points.range(start.div_euclid(60)..(start + period).div_euclid(60))
        {
            let _ = minute;
            if unit.is_some_and(|u| u != point_unit) {
                continue;
            }
            match &mut stat {
                Some(total) => total.merge(s),
                None => stat = Some(s.clone()),
            }
        }
        values.push((start, stat.and_then(|s| s.statistic(statistic))));
    }
    values
}

/// The state `M` of `N` periods call for, with its reason and reason data.
#[allow(clippy::too_many_arguments)]
fn judge(
    values: &[(i64, Option<f64>)],
    n: i64,
    m: i64,
    threshold: f64,
    operator: &str,
    statistic: &str,
    treat: &str,
    period: i64,
    now_s: i64,
) -> Option<(String, String, String)> {
    let present: Vec<(i64, f64)> = values
        .iter()
        .filter_map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    let missing = values.len() - present.len();
    let mut breaching = present
        .iter()
        .filter(|(_, v)| compare(operator, *v, threshold))
        .count();
    let mut considered = present.len();
    match treat {
        "breaching" => {
            breaching += missing;
            considered += missing;
        }
        "notBreaching" => considered += missing,
        _ => {}
    }
    let data = json!({
        "version": "1.0",
        "queryDate": now_s,
        "statistic": statistic,
        "period": period,
        "recentDatapoints": present.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        "threshold": threshold,
        "evaluatedDatapoints": present.iter().map(|(t, v)| json!({"timestamp": t, "value": v})).collect::<Vec<_>>(),
    })
    .to_string();
    if considered == 0 {
        if treat == "ignore" {
            return None;
        }
        return Some((
            "INSUFFICIENT_DATA".into(),
            format!(
                "Insufficient Data: {n} datapoint{} {} unknown.",
                if n == 1 { "" } else { "s" },
                if n == 1 { "was" } else { "were" }
            ),
            data,
        ));
    }
    let listed: Vec<String> = present
        .iter()
        .rev()
        .map(|(t, v)| format!("{v:?} ({})", reason_time(*t)))
        .collect();
    let state = if breaching as i64 >= m { "ALARM" } else { "OK" };
    let verb = if state == "ALARM" { "was" } else { "was not" };
    let reason = format!(
        "Threshold Crossed: {} datapoint{} [{}] {verb} {} the threshold ({threshold:?}).",
        present.len(),
        if present.len() == 1 { "" } else { "s" },
        listed.join(", "),
        operator_text(operator),
    );
    Some((state.into(), reason, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_times_are_day_month_year() {
        assert_eq!(reason_time(0), "01/01/70 00:00:00");
        assert_eq!(reason_time(1_796_110_200), "01/12/26 07:30:00");
    }

    #[test]
    fn comparisons() {
        assert!(compare("GreaterThanThreshold", 2.0, 1.0));
        assert!(!compare("GreaterThanThreshold", 1.0, 1.0));
        assert!(compare("LessThanOrEqualToThreshold", 1.0, 1.0));
    }
}
