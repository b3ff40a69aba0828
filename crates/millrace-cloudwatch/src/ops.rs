//! The metric operations: PutMetricData, GetMetricStatistics, GetMetricData, ListMetrics; alarm
//! operations are passed on to [`crate::alarms`].

use std::collections::{BTreeMap, BTreeSet};

use millrace_service::ServiceError;
use serde_json::{json, Map, Value};

use crate::expression::{self, Series};
use crate::series::SeriesKey;
use crate::stat::{parse_percentile, Stat};
use crate::{invalid_combination, invalid_value, missing, Metrics};

/// The account and region a request works in.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

pub fn call(
    metrics: &Metrics,
    scope: Scope<'_>,
    operation: &str,
    input: Value,
) -> Result<Value, ServiceError> {
    match operation {
        "PutMetricData" => put_metric_data(metrics, scope, &input),
        "GetMetricStatistics" => get_metric_statistics(metrics, scope, &input),
        "GetMetricData" => get_metric_data(metrics, scope, &input),
        "ListMetrics" => list_metrics(metrics, scope, &input),
        "PutMetricAlarm"
        | "DescribeAlarms"
        | "DescribeAlarmsForMetric"
        | "DeleteAlarms"
        | "SetAlarmState"
        | "DescribeAlarmHistory"
        | "EnableAlarmActions"
        | "DisableAlarmActions" => crate::alarms::call(metrics, scope, operation, &input),
        other => Err(ServiceError::client(
            "InvalidAction",
            format!("{other} is not supported by this server."),
        )),
    }
}

fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Dimensions as `(name, value)` pairs.
pub(crate) fn dimensions_of(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|d| {
                    (
                        str_of(d, "Name").unwrap_or("").to_owned(),
                        str_of(d, "Value").unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn dimensions_json(dimensions: &[(String, String)]) -> Value {
    dimensions
        .iter()
        .map(|(n, v)| json!({"Name": n, "Value": v}))
        .collect()
}

/// Epoch seconds (the JSON documents carry timestamps as numbers of seconds).
fn seconds(value: &Value, key: &str) -> Result<f64, ServiceError> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| missing(format!("The parameter {key} is required.")))
}

const TWO_WEEKS_S: f64 = 14.0 * 24.0 * 3600.0;

fn put_metric_data(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let namespace = str_of(input, "Namespace").unwrap_or("");
    if namespace.starts_with("AWS/") {
        return Err(invalid_value(
            "The value AWS/ for parameter Namespace is invalid.",
        ));
    }
    let data = input
        .get("MetricData")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if data.is_empty() {
        return Err(missing("The parameter MetricData is required."));
    }
    let now_s = crate::now_ms() as f64 / 1000.0;
    let mut points = Vec::new();
    for (index, datum) in data.iter().enumerate() {
        let member = format!("MetricData.member.{}", index + 1);
        let name = str_of(datum, "MetricName").unwrap_or("");
        let unit = str_of(datum, "Unit").unwrap_or("None").to_owned();
        let timestamp = datum
            .get("Timestamp")
            .and_then(Value::as_f64)
            .unwrap_or(now_s);
        if timestamp < now_s - TWO_WEEKS_S {
            return Err(invalid_value(format!(
                "The parameter {member}.Timestamp must specify a time no more than two weeks in the past."
            )));
        }
        if timestamp > now_s + 2.0 * 3600.0 {
            return Err(invalid_value(format!(
                "The parameter {member}.Timestamp must specify a time no more than two hours in the future."
            )));
        }
        let value = datum.get("Value").and_then(Value::as_f64);
        let set = datum.get("StatisticValues");
        let values = datum.get("Values").and_then(Value::as_array);
        let stat = match (value, set, values) {
            (Some(_), Some(_), _) => {
                return Err(invalid_combination(format!(
                    "The parameters {member}.Value and {member}.StatisticValues are mutually exclusive and you have specified both."
                )))
            }
            (Some(_), None, Some(_)) => {
                return Err(invalid_combination(format!(
                    "The parameters {member}.Value and {member}.Values are mutually exclusive and you have specified both."
                )))
            }
            (Some(value), None, None) => Stat::single(value),
            (None, Some(set), _) => {
                let get = |k: &str| set.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                let stat = Stat::set(get("SampleCount"), get("Sum"), get("Minimum"), get("Maximum"));
                if stat.min > stat.max {
                    return Err(invalid_value(format!(
                        "The parameter {member}.StatisticValues.Maximum must be greater than {member}.StatisticValues.Minimum."
                    )));
                }
                stat
            }
            (None, None, Some(values)) => {
                let counts = datum.get("Counts").and_then(Value::as_array);
                if counts.is_some_and(|c| c.len() != values.len()) {
                    return Err(invalid_value(format!(
                        "The parameters {member}.Values and {member}.Counts must be of the same size."
                    )));
                }
                let mut stat = Stat::set(0.0, 0.0, 0.0, 0.0);
                for (i, v) in values.iter().enumerate() {
                    let count = counts
                        .and_then(|c| c.get(i))
                        .and_then(Value::as_f64)
                        .unwrap_or(1.0);
                    stat.merge(&Stat::repeated(v.as_f64().unwrap_or(0.0), count));
                }
                stat
            }
            (None, None, None) => {
                return Err(missing(format!(
                    "The parameter {member}.Value is required."
                )))
            }
        };
        let key = SeriesKey::new(
            scope.account,
            scope.region,
            namespace,
            name,
            dimensions_of(datum.get("Dimensions")),
        );
        let minute = (timestamp * 1000.0) as i64;
        points.push((key, unit, minute.div_euclid(60_000), stat));
    }
    metrics.store().merge(&points).map_err(|error| {
        tracing::error!(%error, "failed to store metric data");
        ServiceError::internal("InternalServiceError")
    })?;
    Ok(json!({}))
}

/// One period's merged statistics, keyed by the period's start (epoch seconds). Periods start at
/// the request's StartTime rounded down to the minute, as CloudWatch aligns them.
fn periods(
    points: &BTreeMap<i64, (String, Stat)>,
    origin_s: i64,
    period_s: i64,
    unit: Option<&str>,
) -> BTreeMap<i64, (String, Stat)> {
    let mut out: BTreeMap<i64, (String, Stat)> = BTreeMap::new();
    for (minute, (point_unit, stat)) in points {
        if unit.is_some_and(|u| u != point_unit) {
            continue;
        }
        let start = origin_s + (minute * 60 - origin_s).div_euclid(period_s) * period_s;
        out.entry(start)
            .or_insert_with(|| (point_unit.clone(), Stat::set(0.0, 0.0, 0.0, 0.0)))
            .1
            .merge(stat);
    }
    out
}

fn check_period(period: i64, name: &str) -> Result<(), ServiceError> {
    if period <= 0
        || (period >= 60 && period % 60 != 0)
        || (period < 60 && ![1, 5, 10, 20, 30].contains(&period))
    {
        return Err(invalid_value(format!(
            "The parameter {name} must be a multiple of 60."
        )));
    }
    Ok(())
}

/// Datapoints are kept per minute: a period shorter than that reads whole minutes.
fn minutes_of(start_s: f64, end_s: f64) -> (i64, i64) {
    (
        (start_s / 60.0).floor() as i64,
        (end_s / 60.0).ceil() as i64,
    )
}

fn get_metric_statistics(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let start = seconds(input, "StartTime")?;
    let end = seconds(input, "EndTime")?;
    let period = input.get("Period").and_then(Value::as_i64).unwrap_or(60);
    let statistics: Vec<String> = input
        .get("Statistics")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let extended: Vec<String> = input
        .get("ExtendedStatistics")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if statistics.is_empty() && extended.is_empty() {
        return Err(missing(
            "Must specify either Statistics or ExtendedStatistics for this request.",
        ));
    }
    for name in &extended {
        if parse_percentile(name).is_none() {
            return Err(invalid_value(format!(
                "The value {name} for parameter ExtendedStatistics is not supported."
            )));
        }
    }
    if start >= end {
        return Err(invalid_value(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    check_period(period, "Period")?;
    let period = period.max(60);
    let requested = ((end - start) / period as f64).ceil() as i64;
    if requested > 1440 {
        return Err(invalid_combination(format!(
            "You have requested up to {requested} datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
        )));
    }
    let name = str_of(input, "MetricName").unwrap_or("");
    let key = SeriesKey::new(
        scope.account,
        scope.region,
        str_of(input, "Namespace").unwrap_or(""),
        name,
        dimensions_of(input.get("Dimensions")),
    );
    let (first, last) = minutes_of(start, end);
    let points = metrics.datapoints(&key, first, last);
    let unit = str_of(input, "Unit");
    let mut datapoints = Vec::new();
    for (period_start, (point_unit, stat)) in periods(&points, first * 60, period, unit) {
        let mut point = Map::new();
        point.insert("Timestamp".into(), json!(period_start as f64));
        for statistic in &statistics {
            if let Some(value) = stat.statistic(statistic) {
                point.insert(statistic.clone(), json!(value));
            }
        }
        if !extended.is_empty() {
            let mut values = Map::new();
            for p in &extended {
                if let Some(value) = stat.statistic(p) {
                    values.insert(p.clone(), json!(value));
                }
            }
            point.insert("ExtendedStatistics".into(), Value::Object(values));
        }
        point.insert("Unit".into(), json!(point_unit));
        datapoints.push(Value::Object(point));
    }
    Ok(json!({"Label": name, "Datapoints": datapoints}))
}

/// The series a `MetricStat` names, per period start (epoch seconds).
pub(crate) fn metric_stat_series(
    metrics: &Metrics,
    scope: Scope<'_>,
    stat_spec: &Value,
    start: f64,
    end: f64,
) -> Result<(String, Series), ServiceError> {
    let metric = stat_spec.get("Metric").cloned().unwrap_or(Value::Null);
    let period = stat_spec
        .get("Period")
        .and_then(Value::as_i64)
        .unwrap_or(60);
    check_period(period, "Period")?;
    let period = period.max(60);
    let statistic = str_of(stat_spec, "Stat").unwrap_or("Average");
    let known = matches!(
        statistic,
        "SampleCount" | "Sum" | "Minimum" | "Maximum" | "Average"
    ) || parse_percentile(statistic).is_some();
    if !known {
        return Err(invalid_value(format!(
            "The value {statistic} for parameter MetricDataQueries.member.Stat is not supported."
        )));
    }
    let name = str_of(&metric, "MetricName").unwrap_or("").to_owned();
    let key = SeriesKey::new(
        scope.account,
        scope.region,
        str_of(&metric, "Namespace").unwrap_or(""),
        &name,
        dimensions_of(metric.get("Dimensions")),
    );
    let (first, last) = minutes_of(start, end);
    let points = metrics.datapoints(&key, first, last);
    let mut series = Series::new();
    for (period_start, (_, stat)) in periods(&points, first * 60, period, str_of(stat_spec, "Unit"))
    {
        if let Some(value) = stat.statistic(statistic) {
            series.insert(period_start, value);
        }
    }
    Ok((name, series))
}

fn get_metric_data(
    metrics: &Metrics,
    scope: Scope<'_>,
    input: &Value,
) -> Result<Value, ServiceError> {
    let start = seconds(input, "StartTime")?;
    let end = seconds(input, "EndTime")?;
    if start >= end {
        return Err(invalid_value(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    let queries = input
        .get("MetricDataQueries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ascending = str_of(input, "ScanBy") == Some("TimestampAscending");
    let mut ids = BTreeSet::new();
    for query in &queries {
        let id = str_of(query, "Id").unwrap_or("");
        if !ids.insert(id.to_owned()) {
            return Err(invalid_value(
                "The values for parameter id in MetricDataQueries are not unique.",
            ));
        }
        let has_stat = query.get("MetricStat").is_some();
        let has_expression = query.get("Expression").is_some();
        if has_stat == has_expression {
            return Err(invalid_value(format!(
                "Exactly one element of the metrics list should have either MetricStat or Expression. Id: {id}"
            )));
        }
    }
    // Metric stats first, then expressions in order (each may use any earlier result).
    let mut results: BTreeMap<String, (String, Series)> = BTreeMap::new();
    for query in queries.iter().filter(|q| q.get("MetricStat").is_some()) {
        let id = str_of(query, "Id").unwrap_or("").to_owned();
        let (name, series) = metric_stat_series(metrics, scope, &query["MetricStat"], start, end)?;
        results.insert(id, (name, series));
    }
    let mut pending: Vec<&Value> = queries
        .iter()
        .filter(|q| q.get("Expression").is_some())
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        for query in pending {
            let id = str_of(query, "Id").unwrap_or("").to_owned();
            let text = str_of(query, "Expression").unwrap_or("");
            let period = query
                .get("Period")
                .and_then(Value::as_i64)
                .unwrap_or(60)
                .max(60);
            let available: BTreeMap<String, Series> = results
                .iter()
                .map(|(k, (_, s))| (k.clone(), s.clone()))
                .collect();
            match expression::evaluate(text, &available, period, start, end) {
                Ok(series) => {
                    results.insert(id, (text.to_owned(), series));
                }
                Err(expression::Error::UnknownId(_)) => next.push(query),
                Err(expression::Error::Syntax(message)) => {
                    return Err(invalid_value(format!(
                        "Error in expression '{id}': {message}"
                    )))
                }
            }
        }
        if next.len() == before {
            let id = str_of(next[0], "Id").unwrap_or("");
            return Err(invalid_value(format!(
                "Error in expression '{id}': Unrecognized identifier or circular reference"
            )));
        }
        pending = next;
    }
    let mut out = Vec::new();
    for query in &queries {
        if query.get("ReturnData").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let id = str_of(query, "Id").unwrap_or("");
        let Some((name, series)) = results.get(id) else {
            continue;
        };
        let label = str_of(query, "Label").unwrap_or(name);
        let mut points: Vec<(i64, f64)> = series
            .iter()
            .filter(|(t, v)| (**t as f64) < end && v.is_finite())
            .map(|(t, v)| (*t, *v))
            .collect();
        if !ascending {
            points.reverse();
        }
        out.push(json!({
            "Id": id,
            "Label": label,
            "Timestamps": points.iter().map(|(t, _)| *t as f64).collect::<Vec<_>>(),
            "Values": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": "Complete",
        }));
    }
    Ok(json!({"MetricDataResults": out, "Messages": []}))
}

const LIST_PAGE: usize = 500;

fn list_metrics(metrics: &Metrics, scope: Scope<'_>, input: &Value) -> Result<Value, ServiceError> {
    let namespace = str_of(input, "Namespace");
    let name = str_of(input, "MetricName");
    let filters: Vec<(String, Option<String>)> = input
        .get("Dimensions")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|d| {
                    (
                        str_of(d, "Name").unwrap_or("").to_owned(),
                        str_of(d, "Value").map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let recent = str_of(input, "RecentlyActive") == Some("PT3H");
    let now_minute = crate::now_ms().div_euclid(60_000);
    let start: usize = match str_of(input, "NextToken") {
        Some(token) => token.parse().map_err(|_| {
            crate::error(
                "InvalidNextToken",
                "The service couldn't process the provided token.",
            )
        })?,
        None => 0,
    };
    let matching: Vec<_> = metrics
        .series(scope.account, scope.region)
        .into_iter()
        .filter(|info| namespace.is_none_or(|n| n == info.key.namespace))
        .filter(|info| name.is_none_or(|n| n == info.key.metric))
        .filter(|info| {
            filters
                .iter()
                .all(|(fname, fvalue)| match info.key.dimension(fname) {
                    Some(value) => fvalue.as_deref().is_none_or(|v| v == value),
                    None => false,
                })
        })
        .filter(|info| !recent || info.last_minute + 180 >= now_minute)
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(LIST_PAGE)
        .map(|info| {
            json!({
                "Namespace": info.key.namespace,
                "MetricName": info.key.metric,
                "Dimensions": dimensions_json(&info.key.dimensions),
            })
        })
        .collect();
    let mut out = json!({"Metrics": page});
    if start + LIST_PAGE < matching.len() {
        out["NextToken"] = json!((start + LIST_PAGE).to_string());
    }
    Ok(out)
}
