//! Metrics and CloudWatch: the live Kinesis counters ([`recorder`]), one-minute datapoints kept
//! durably ([`store`]), the CloudWatch API over them (GetMetricStatistics, GetMetricData with
//! metric math, ListMetrics, PutMetricData, alarms) as a [`JsonService`], and the Prometheus text
//! exposition ([`prometheus`]).
//!
//! It knows no HTTP: the server decodes every protocol CloudWatch speaks (rpc-v2-cbor,
//! awsJson 1.0, awsQuery) into the model's JSON documents and calls [`CloudWatch`].
#![deny(clippy::unwrap_used)]

pub mod alarms;
pub mod expression;
mod ops;
pub mod prometheus;
pub mod recorder;
pub mod series;
pub mod stat;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use millrace_service::{BoxFuture, CallContext, JsonService, ServiceError};
use millrace_wire::generated::cloudwatch_model::CLOUDWATCH;
use millrace_wire::model::ServiceModel;
use serde_json::Value;

pub use recorder::{KinesisMetric, Recorder};
pub use series::SeriesKey;
pub use stat::Stat;
pub use store::{MetricStore, StoreError};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Settings of the metrics subsystem.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// How long one-minute datapoints are kept.
    pub retention_days: u32,
    /// How often alarms are evaluated (CloudWatch: every minute).
    pub alarm_evaluation: Duration,
}

/// The metrics of one server: live counters, stored datapoints, alarms.
pub struct Metrics {
    recorder: Recorder,
    store: MetricStore,
    /// Queries read (store + live) under the read side; a flush moves live counters into the
    /// store under the write side, so nothing is counted twice or missed.
    flush_lock: RwLock<()>,
    /// The epoch minute the live counters belong to.
    live_minute: AtomicI64,
    config: MetricsConfig,
    pub(crate) alarms: alarms::Alarms,
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Metrics {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, config: MetricsConfig) -> Result<Arc<Metrics>, StoreError> {
        let store = MetricStore::open(path)?;
        let alarms = alarms::Alarms::load(store.documents())?;
        Ok(Arc::new(Metrics {
            recorder: Recorder::default(),
            store,
            flush_lock: RwLock::new(()),
            live_minute: AtomicI64::new(now_ms().div_euclid(60_000)),
            config,
            alarms,
            stop: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
        }))
    }

    /// The live counters the server records into.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn store(&self) -> &MetricStore {
        &self.store
    }

    /// Moves the live counters into the store, as the minute they were counted in.
    pub fn flush(&self) {
        let _guard = self
            .flush_lock
            .write()
            .expect("flush lock is never poisoned");
        let minute = self.live_minute.load(Ordering::Relaxed);
        let points: Vec<(SeriesKey, String, i64, Stat)> = self
            .recorder
            .drain()
            .into_iter()
            .map(|(key, unit, stat)| (key, unit.to_owned(), minute, stat))
            .collect();
        if let Err(error) = self.store.merge(&points) {
            tracing::error!(%error, "failed to store a minute of metrics");
        }
        self.live_minute
            .store(now_ms().div_euclid(60_000).max(minute), Ordering::Relaxed);
    }

    /// Datapoints of a series in `[start, end)` epoch minutes: stored, plus the live minute.
    pub fn datapoints(
        &self,
        key: &SeriesKey,
        start: i64,
        end: i64,
    ) -> BTreeMap<i64, (String, Stat)> {
        let _guard = self
            .flush_lock
            .read()
            .expect("flush lock is never poisoned");
        let mut points = match self.store.range(key, start, end) {
            Ok(points) => points,
            Err(error) => {
                tracing::error!(%error, "failed to read metrics");
                BTreeMap::new()
            }
        };
        let live = self.live_minute.load(Ordering::Relaxed);
        if live >= start && live < end {
            if let Some((unit, stat)) = self.recorder.peek_series(key) {
                points
                    .entry(live)
                    .or_insert_with(|| (unit.to_owned(), Stat::set(0.0, 0.0, 0.0, 0.0)))
                    .1
                    .merge(&stat);
            }
        }
        points
    }

    /// Every series of an account and region, the live ones included, with their unit and
    /// last minute.
    pub fn series(&self, account: &str, region: &str) -> Vec<store::SeriesInfo> {
        let mut all: BTreeMap<SeriesKey, store::SeriesInfo> = self
            .store
            .series(account, region)
            .into_iter()
            .map(|info| (info.key.clone(), info))
            .collect();
        let live = self.live_minute.load(Ordering::Relaxed);
        for (key, unit, _) in self.recorder.peek() {
            if key.account == account && key.region == region {
                all.entry(key.clone())
                    .and_modify(|info| info.last_minute = live)
                    .or_insert(store::SeriesInfo {
                        key,
                        unit: unit.to_owned(),
                        last_minute: live,
                    });
            }
        }
        all.into_values().collect()
    }

    /// Starts the minute flusher (with retention) and the alarm evaluator.
    pub fn start_background(self: &Arc<Self>) {
        let (sender, receiver) = std::sync::mpsc::channel::<()>();
        *self.stop.lock().expect("stop is never poisoned") = Some(sender);
        let metrics = self.clone();
        let flusher = std::thread::Builder::new()
            .name("metrics-flush".into())
            .spawn(move || metrics.run_background(receiver))
            .expect("spawn the metrics thread");
        self.threads
            .lock()
            .expect("threads are never poisoned")
            .push(flusher);
    }

    fn run_background(self: Arc<Self>, stop: std::sync::mpsc::Receiver<()>) {
        let mut last_prune = i64::MIN;
        // The first evaluation comes one interval after start, not at the first tick, so that a
        // state just set by SetAlarmState is not re-evaluated within the server's first moments.
        let mut last_evaluation = now_ms();
        let evaluation_ms = self.config.alarm_evaluation.as_millis().max(100) as i64;
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stop.recv_timeout(Duration::from_millis(200))
        {
            let now = now_ms();
            let minute = now.div_euclid(60_000);
            if minute > self.live_minute.load(Ordering::Relaxed) {
                self.flush();
            }
            if minute >= last_prune + 60 {
                last_prune = minute;
                let keep = i64::from(self.config.retention_days.max(1)) * 24 * 60;
                if let Err(error) = self.store.prune(minute - keep) {
                    tracing::error!(%error, "failed to prune metrics");
                }
            }
            if now >= last_evaluation + evaluation_ms {
                last_evaluation = now;
                alarms::evaluate_all(&self, now);
            }
        }
        self.flush();
    }

    /// Stops the background thread after a last flush.
    pub fn stop(&self) {
        drop(self.stop.lock().expect("stop is never poisoned").take());
        let threads: Vec<_> = self
            .threads
            .lock()
            .expect("threads are never poisoned")
            .drain(..)
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// The CloudWatch API (`GraniteServiceVersion20100801`, signing name `monitoring`).
pub struct CloudWatch {
    metrics: Arc<Metrics>,
}

impl CloudWatch {
    pub fn new(metrics: Arc<Metrics>) -> CloudWatch {
        CloudWatch { metrics }
    }
}

impl JsonService for CloudWatch {
    fn model(&self) -> &'static ServiceModel {
        &CLOUDWATCH
    }
    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(async move {
            let metrics = self.metrics.clone();
            let account = context.caller.account.clone();
            let region = context.region.to_owned();
            let scope = ops::Scope {
                account: &account,
                region: &region,
            };
            // Every operation works on the account's metrics or alarms: authorized on `*`
            // (CloudWatch's metric actions take no resource), alarms on their ARN.
            match operation {
                "PutMetricAlarm"
                | "DeleteAlarms"
                | "SetAlarmState"
                | "EnableAlarmActions"
                | "DisableAlarmActions" => {
                    alarms::authorize(&context, operation, &input)?;
                }
                _ => context
                    .authz
                    .check(&format!("cloudwatch:{operation}"), "*", None)?,
            }
            let _ = &metrics;
            ops::call(&self.metrics, scope, operation, input)
        })
    }
    fn shutdown(&self) {
        self.metrics.stop();
    }
    fn audits(&self, operation: &str) -> bool {
        // CloudTrail logs these as data events, off by default.
        !matches!(
            operation,
            "PutMetricData" | "GetMetricData" | "GetMetricStatistics" | "ListMetrics"
        )
    }
}

/// An error of the CloudWatch model: the JSON `__type` is the shape's name; the server adds the
/// query code (`x-amzn-query-error`) from the model's error trait.
pub(crate) fn error(shape: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::client(shape, message)
}

/// `InvalidParameterValueException` (query code `InvalidParameterValue`).
pub(crate) fn invalid_value(message: impl Into<String>) -> ServiceError {
    error("InvalidParameterValueException", message)
}

/// `InvalidParameterCombinationException` (query code `InvalidParameterCombination`).
pub(crate) fn invalid_combination(message: impl Into<String>) -> ServiceError {
    error("InvalidParameterCombinationException", message)
}

/// `MissingRequiredParameterException` (query code `MissingParameter`).
pub(crate) fn missing(message: impl Into<String>) -> ServiceError {
    error("MissingRequiredParameterException", message)
}
