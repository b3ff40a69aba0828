//! CPU time and resident memory of a process, read from `/proc/<pid>/stat` and `/proc/<pid>/status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSnapshot {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Current resident set size in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size over the process's life in KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// Clock ticks per second for `/proc/<pid>/stat` times: `getconf CLK_TCK`, else Linux's usual 100.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// Parses utime + stime (fields 14 and 15) from a `stat` line; the command name may hold spaces and parentheses,
/// so fields are counted after the last `)`.
fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn kib_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads a process's counters; `None` once the process is gone. `pid` may be `"self"`.
pub fn read(pid: &str) -> Option<ProcSnapshot> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSnapshot {
        cpu_seconds: cpu_ticks_from_stat(&stat)? as f64 / clock_ticks_per_second(),
        rss_kib: kib_field(&status, "VmRSS:").unwrap_or(0),
        peak_rss_kib: kib_field(&status, "VmHWM:").unwrap_or(0),
    })
}

/// Measures one process over a run: CPU seconds used since `start`, and the highest RSS seen by a sampler
/// that reads it every 100 ms (next to the lifetime peak the kernel keeps).
pub struct ProcessMeter {
    pid: String,
    start: ProcSnapshot,
    sampled_peak_kib: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl ProcessMeter {
    pub fn start(pid: &str) -> anyhow::Result<ProcessMeter> {
        let start = read(pid).ok_or_else(|| anyhow::anyhow!("cannot read /proc/{pid}"))?;
        let sampled_peak_kib = Arc::new(AtomicU64::new(start.rss_kib));
        let sampler = {
            let pid = pid.to_owned();
            let peak = Arc::clone(&sampled_peak_kib);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    match read(&pid) {
                        Some(now) => {
                            peak.fetch_max(now.rss_kib, Ordering::Relaxed);
                        }
                        None => return,
                    }
                }
            })
        };
        Ok(ProcessMeter {
            pid: pid.to_owned(),
            start,
            sampled_peak_kib,
            sampler,
        })
    }

    /// Stops sampling and describes the run; `records` scales CPU time to seconds per million records.
    pub fn finish(self, records: u64) -> Value {
        self.sampler.abort();
        let end = read(&self.pid).unwrap_or_default();
        let cpu_seconds = (end.cpu_seconds - self.start.cpu_seconds).max(0.0);
        let sampled_peak = self
            .sampled_peak_kib
            .load(Ordering::Relaxed)
            .max(end.rss_kib);
        json!({
            "pid": self.pid,
            "cpu_seconds": round3(cpu_seconds),
            "cpu_seconds_per_million_records": if records > 0 {
                Value::from(round3(cpu_seconds * 1e6 / records as f64))
            } else {
                Value::Null
            },
            "rss_mb": round3(end.rss_kib as f64 / 1024.0),
            "peak_rss_mb_during_run": round3(sampled_peak as f64 / 1024.0),
            "peak_rss_mb_lifetime": round3(end.peak_rss_kib as f64 / 1024.0),
        })
    }
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "4242 (node (worker) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 11 0";
        assert_eq!(cpu_ticks_from_stat(stat), Some(325));
        assert_eq!(cpu_ticks_from_stat("garbage"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tmillrace\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(102_400));
        assert_eq!(kib_field(status, "VmHWM:"), Some(204_800));
        assert_eq!(kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = read("self").expect("/proc/self exists on Linux");
        assert!(me.rss_kib > 0);
    }
}
