//! The Prometheus text exposition (format 0.0.4) of the Kinesis metrics since start.
//!
//! Mapping: `AWS/Kinesis` metric `A.B` → `kinesis_a_b` in snake case; Count and Bytes metrics are
//! counters of their Sum (`kinesis_incoming_bytes_total`); Milliseconds metrics are summaries
//! without quantiles (`kinesis_put_records_latency_milliseconds_sum` / `_count`). Labels:
//! `account`, `region`, `stream`, and `shard` (only for streams with enhanced monitoring) or
//! `consumer`. Process metrics follow (`process_*`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::Metrics;

/// `PutRecords.TotalRecords` → `put_records_total_records`.
pub fn snake_name(metric: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in metric.chars() {
        if c == '.' {
            out.push('_');
            previous_lower = false;
        } else if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus name of a metric and whether it is a summary.
fn prometheus_name(metric: &str, unit: &str) -> (String, bool) {
    let base = format!("kinesis_{}", snake_name(metric));
    if unit == "Milliseconds" {
        let name = if base.ends_with("_milliseconds") {
            base
        } else {
            format!("{base}_milliseconds")
        };
        (name, true)
    } else {
        (format!("{base}_total"), false)
    }
}

/// Renders every metric.
pub fn render(metrics: &Metrics) -> String {
    let mut families: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    for (key, unit, stat) in metrics.recorder().totals() {
        let (name, summary) = prometheus_name(&key.metric, &unit);
        let mut labels = format!(
            "account=\"{}\",region=\"{}\"",
            escape(&key.account),
            escape(&key.region)
        );
        for (dimension, label) in [
            ("StreamName", "stream"),
            ("ShardId", "shard"),
            ("ConsumerName", "consumer"),
        ] {
            if let Some(value) = key.dimension(dimension) {
                let _ = write!(labels, ",{label}=\"{}\"", escape(value));
            }
        }
        let family = families
            .entry(name.clone())
            .or_insert((summary, Vec::new()));
        if summary {
            family
                .1
                .push(format!("{name}_sum{{{labels}}} {}", stat.sum));
            family
                .1
                .push(format!("{name}_count{{{labels}}} {}", stat.count));
        } else {
            family.1.push(format!("{name}{{{labels}}} {}", stat.sum));
        }
    }
    let mut out = String::new();
    for (name, (summary, lines)) in families {
        let family = if summary {
            name.clone()
        } else {
            name.trim_end_matches("_total").to_owned()
        };
        let _ = writeln!(
            out,
            "# TYPE {family} {}",
            if summary { "summary" } else { "counter" }
        );
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str(&process_metrics());
    out
}

fn process_metrics() -> String {
    let mut out = String::new();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: utime is field 14, stime 15, rss 24.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = 100.0;
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    if let (Some(user), Some(system)) = (number(11), number(12)) {
        let _ = writeln!(out, "# TYPE process_cpu_seconds counter");
        let _ = writeln!(out, "process_cpu_seconds_total {}", (user + system) / ticks);
    }
    if let Some(rss) = number(21) {
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * 4096.0);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# TYPE process_open_fds gauge");
        let _ = writeln!(out, "process_open_fds {}", entries.count());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        assert_eq!(
            snake_name("PutRecords.TotalRecords"),
            "put_records_total_records"
        );
        assert_eq!(
            prometheus_name("IncomingBytes", "Bytes").0,
            "kinesis_incoming_bytes_total"
        );
        assert_eq!(
            prometheus_name("GetRecords.IteratorAgeMilliseconds", "Milliseconds"),
            (
                "kinesis_get_records_iterator_age_milliseconds".to_owned(),
                true
            )
        );
        assert_eq!(
            prometheus_name("PutRecords.Latency", "Milliseconds").0,
            "kinesis_put_records_latency_milliseconds"
        );
    }
}
