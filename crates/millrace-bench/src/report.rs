//! Shared counters, latency percentiles, progress lines on stderr, and the JSON result of a run.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::proc_stats::{round3, ProcessMeter};

/// Totals the workers add to while the run goes.
#[derive(Default)]
pub struct Totals {
    pub requests: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub failed_records: AtomicU64,
    pub errors: AtomicU64,
}

impl Totals {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Latency samples of one worker, in microseconds.
#[derive(Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn record(&mut self, elapsed: Duration) {
        self.0
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// p50/p90/p99/max in milliseconds (nearest-rank percentiles).
    pub fn summary(mut self) -> Value {
        if self.0.is_empty() {
            return json!({"count": 0});
        }
        self.0.sort_unstable();
        let samples = &self.0;
        let at = |fraction: f64| {
            let rank = ((fraction * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            round3(f64::from(samples[rank - 1]) / 1000.0)
        };
        json!({
            "count": samples.len(),
            "p50_ms": at(0.50),
            "p90_ms": at(0.90),
            "p99_ms": at(0.99),
            "max_ms": round3(f64::from(samples[samples.len() - 1]) / 1000.0),
        })
    }
}

/// Writes one progress line to stderr (the result itself goes to stdout).
pub fn progress(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "[millrace-bench] {line}");
}

/// Prints records/s once a second until dropped.
pub struct ProgressTicker {
    handle: tokio::task::JoinHandle<()>,
}

impl ProgressTicker {
    pub fn start(label: &'static str, totals: Arc<Totals>) -> ProgressTicker {
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            let mut last_records = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let records = Totals::get(&totals.records);
                progress(&format!(
                    "{label}: {:>5.1} s, {records} records, {} rec/s, {} failed, {} errors",
                    started.elapsed().as_secs_f64(),
                    records - last_records,
                    Totals::get(&totals.failed_records),
                    Totals::get(&totals.errors),
                ));
                last_records = records;
            }
        });
        ProgressTicker { handle }
    }
}

impl Drop for ProgressTicker {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Measures the server (when its pid is known) and this process across a run.
pub struct RunMeters {
    server: Option<ProcessMeter>,
    client: Option<ProcessMeter>,
}

impl RunMeters {
    pub fn start(server_pid: Option<u32>) -> anyhow::Result<RunMeters> {
        let server = match server_pid {
            Some(pid) => Some(ProcessMeter::start(&pid.to_string())?),
            None => None,
        };
        Ok(RunMeters {
            server,
            client: ProcessMeter::start("self").ok(),
        })
    }

    pub fn finish(self, records: u64) -> (Value, Value) {
        let server = self.server.map_or(Value::Null, |m| m.finish(records));
        let client = self.client.map_or(Value::Null, |m| m.finish(records));
        (server, client)
    }
}

/// Assembles the JSON result every workload prints.
pub fn throughput_result(
    workload: &str,
    endpoint: &str,
    parameters: Value,
    elapsed: Duration,
    totals: &Totals,
    latencies: Latencies,
    meters: RunMeters,
) -> Map<String, Value> {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let records = Totals::get(&totals.records);
    let bytes = Totals::get(&totals.bytes);
    let (server, client) = meters.finish(records);
    let mut result = Map::new();
    result.insert("workload".into(), workload.into());
    result.insert("endpoint".into(), endpoint.into());
    result.insert("parameters".into(), parameters);
    result.insert("duration_s".into(), round3(seconds).into());
    result.insert("requests".into(), Totals::get(&totals.requests).into());
    result.insert("records".into(), records.into());
    result.insert("bytes".into(), bytes.into());
    result.insert(
        "failed_records".into(),
        Totals::get(&totals.failed_records).into(),
    );
    result.insert("errors".into(), Totals::get(&totals.errors).into());
    result.insert(
        "records_per_s".into(),
        (records as f64 / seconds).round().into(),
    );
    result.insert(
        "mb_per_s".into(),
        round3(bytes as f64 / seconds / 1e6).into(),
    );
    result.insert("latency".into(), latencies.summary());
    result.insert("server".into(), server);
    result.insert("client".into(), client);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut latencies = Latencies::default();
        for micros in 1..=1000u64 {
            latencies.record(Duration::from_micros(micros * 1000));
        }
        let summary = latencies.summary();
        assert_eq!(summary["count"], 1000);
        assert_eq!(summary["p50_ms"], 500.0);
        assert_eq!(summary["p90_ms"], 900.0);
        assert_eq!(summary["p99_ms"], 990.0);
        assert_eq!(summary["max_ms"], 1000.0);
    }

    #[test]
    fn empty_latencies_report_a_zero_count() {
        assert_eq!(Latencies::default().summary(), json!({"count": 0}));
    }
}
