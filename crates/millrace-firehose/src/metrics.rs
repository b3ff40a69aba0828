//! `AWS/Firehose` metrics with the service's names, per `DeliveryStreamName`: counted in memory
//! per minute and handed to the metrics layer ([`MetricsSink`]) once the minute is over (and at
//! shutdown), so the hot paths never write to storage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One minute's statistics of one metric of one delivery stream.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    pub account: String,
    pub region: String,
    pub stream: String,
    pub metric: &'static str,
    pub unit: &'static str,
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// Where finished minutes go (the CloudWatch store, in `millrace serve`).
pub trait MetricsSink: Send + Sync {
    fn publish(&self, points: Vec<MetricPoint>);
}

type Key = (String, String, String, &'static str, i64);
/// Unit, count, sum, minimum, maximum.
type Accumulated = (&'static str, f64, f64, f64, f64);

#[derive(Default)]
pub(crate) struct Meter {
    sink: Option<Arc<dyn MetricsSink>>,
    open: Mutex<BTreeMap<Key, Accumulated>>,
}

/// Who a measurement belongs to.
pub(crate) struct Scope<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub stream: &'a str,
}

impl Meter {
    pub(crate) fn new(sink: Option<Arc<dyn MetricsSink>>) -> Meter {
        Meter {
            sink,
            open: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn record(
        &self,
        scope: &Scope<'_>,
        metric: &'static str,
        unit: &'static str,
        value: f64,
    ) {
        if self.sink.is_none() {
            return;
        }
        let minute = (crate::now_ms() / 60_000) as i64;
        let key = (
            scope.account.to_owned(),
            scope.region.to_owned(),
            scope.stream.to_owned(),
            metric,
            minute,
        );
        let mut open = self.open.lock().expect("metrics lock");
        let entry = open
            .entry(key)
            .or_insert((unit, 0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        entry.1 += 1.0;
        entry.2 += value;
        entry.3 = entry.3.min(value);
        entry.4 = entry.4.max(value);
    }

    /// Publishes the minutes before the current one (every minute with `all`).
    pub(crate) fn flush(&self, all: bool) {
        let Some(sink) = &self.sink else {
            return;
        };
        let current = (crate::now_ms() / 60_000) as i64;
        let finished: Vec<(Key, Accumulated)> = {
            let mut open = self.open.lock().expect("metrics lock");
            let keys: Vec<Key> = open
                .keys()
                .filter(|key| all || key.4 < current)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|key| open.remove(&key).map(|value| (key, value)))
                .collect()
        };
        if finished.is_empty() {
            return;
        }
        let points = finished
            .into_iter()
            .map(
                |((account, region, stream, metric, minute), (unit, count, sum, min, max))| {
                    MetricPoint {
                        account,
                        region,
                        stream,
                        metric,
                        unit,
                        minute,
                        count,
                        sum,
                        min,
                        max,
                    }
                },
            )
            .collect();
        sink.publish(points);
    }
}
