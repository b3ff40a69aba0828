//! One-minute datapoints kept durably: one document per series and hour (the hour's minutes),
//! and one index document per series (for ListMetrics), in a `millrace-catalog` document store.
//!
//! Keys: `d/<series>\x1e<hour>` → `{"<minute of hour>": Stat}`, `s/<series>` → [`SeriesInfo`].
//! A write merges into what is stored, in one transaction per flush.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, RwLock};

use millrace_catalog::DocumentStore;
use serde::{Deserialize, Serialize};

use crate::series::SeriesKey;
use crate::stat::Stat;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metrics store: {0}")]
    Catalog(#[from] millrace_catalog::CatalogError),
    #[error("metrics store document {key} does not parse: {reason}")]
    Corrupt { key: String, reason: String },
}

/// What the index keeps of a series.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub key: SeriesKey,
    pub unit: String,
    /// The last minute (epoch minutes) with a datapoint, as last persisted.
    pub last_minute: i64,
}

type HourDoc = BTreeMap<u8, (String, Stat)>;

/// The durable datapoints.
pub struct MetricStore {
    documents: DocumentStore,
    /// Serialises read-modify-write of hour documents.
    write_lock: Mutex<()>,
    series: RwLock<BTreeMap<String, SeriesInfo>>,
}

fn data_prefix(series: &str) -> String {
    format!("d/{series}\u{1e}")
}

fn data_key(series: &str, hour: i64) -> String {
    format!("d/{series}\u{1e}{hour:012}")
}

impl MetricStore {
    pub fn open(path: &Path) -> Result<MetricStore, StoreError> {
        let documents = DocumentStore::open(path)?;
        let mut series = BTreeMap::new();
        for (key, value) in documents.scan("s/")? {
            let info: SeriesInfo = parse(&key, &value)?;
            series.insert(info.key.encoded(), info);
        }
        Ok(MetricStore {
            documents,
            write_lock: Mutex::new(()),
            series: RwLock::new(series),
        })
    }

    /// Merges datapoints `(series, unit, epoch minute, stat)` into the store, durably.
    pub fn merge(&self, points: &[(SeriesKey, String, i64, Stat)]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let _guard = self
            .write_lock
            .lock()
            .expect("store lock is never poisoned");
        let mut hours: HashMap<String, HourDoc> = HashMap::new();
        let mut index_changes: BTreeMap<String, SeriesInfo> = BTreeMap::new();
        {
            let series = self.series.read().expect("series index is never poisoned");
            for (key, unit, minute, stat) in points {
                let encoded = key.encoded();
                let doc_key = data_key(&encoded, minute.div_euclid(60));
                if !hours.contains_key(&doc_key) {
                    let existing = match self.documents.get(&doc_key)? {
                        Some(bytes) => parse(&doc_key, &bytes)?,
                        None => HourDoc::new(),
                    };
                    hours.insert(doc_key.clone(), existing);
                }
                let doc = hours.get_mut(&doc_key).expect("inserted above");
                let slot = doc
                    .entry(minute.rem_euclid(60) as u8)
                    .or_insert_with(|| (unit.clone(), Stat::set(0.0, 0.0, 0.0, 0.0)));
                slot.1.merge(stat);
                let known = index_changes
                    .get(&encoded)
                    .or_else(|| series.get(&encoded))
                    .map(|info| info.last_minute);
                // The index is rewritten when a series is new or its last minute moved by an
                // hour, which is all RecentlyActive needs (three hours).
                if known.is_none_or(|last| *minute >= last + 60) {
                    index_changes.insert(
                        encoded,
                        SeriesInfo {
                            key: key.clone(),
                            unit: unit.clone(),
                            last_minute: *minute.max(&known.unwrap_or(i64::MIN)),
                        },
                    );
                }
            }
        }
        let encoded_hours: Vec<(String, Vec<u8>)> = hours
            .into_iter()
            .map(|(key, doc)| (key, serde_json::to_vec(&doc).expect("stats serialize")))
            .collect();
        let encoded_index: Vec<(String, Vec<u8>)> = index_changes
            .iter()
            .map(|(key, info)| {
                (
                    format!("s/{key}"),
                    serde_json::to_vec(info).expect("series info serializes"),
                )
            })
            .collect();
        let changes: Vec<(&str, Option<&[u8]>)> = encoded_hours
            .iter()
            .chain(encoded_index.iter())
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        self.documents.write(&changes)?;
        let mut series = self.series.write().expect("series index is never poisoned");
        for (key, info) in index_changes {
            series.insert(key, info);
        }
        Ok(())
    }

    /// The stored datapoints of a series in `[start, end)` (epoch minutes).
    pub fn range(
        &self,
        key: &SeriesKey,
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<i64, (String, Stat)>, StoreError> {
        let encoded = key.encoded();
        let mut out = BTreeMap::new();
        let prefix = data_prefix(&encoded);
        for (doc_key, bytes) in self.documents.scan(&prefix)? {
            let Some(hour) = doc_key[prefix.len()..].parse::<i64>().ok() else {
                continue;
            };
            if hour * 60 + 59 < start || hour * 60 >= end {
                continue;
            }
            let doc: HourDoc = parse(&doc_key, &bytes)?;
            for (offset, point) in doc {
                let minute = hour * 60 + i64::from(offset);
                if minute >= start && minute < end {
                    out.insert(minute, point);
                }
            }
        }
        Ok(out)
    }

    /// Every series of an account and region.
    pub fn series(&self, account: &str, region: &str) -> Vec<SeriesInfo> {
        self.series
            .read()
            .expect("series index is never poisoned")
            .values()
            .filter(|info| info.key.account == account && info.key.region == region)
            .cloned()
            .collect()
    }

    /// Removes hour documents that end before `minute`, and series without data since.
    pub fn prune(&self, minute: i64) -> Result<usize, StoreError> {
        let _guard = self
            .write_lock
            .lock()
            .expect("store lock is never poisoned");
        let mut removed: Vec<String> = Vec::new();
        for (key, _) in self.documents.scan("d/")? {
            let hour = key
                .rsplit('\u{1e}')
                .next()
                .and_then(|h| h.parse::<i64>().ok());
            if hour.is_some_and(|hour| hour * 60 + 60 <= minute) {
                removed.push(key);
            }
        }
        let stale: Vec<String> = self
            .series
            .read()
            .expect("series index is never poisoned")
            .iter()
            .filter(|(_, info)| info.last_minute + 60 < minute)
            .map(|(key, _)| key.clone())
            .collect();
        let index_keys: Vec<String> = stale.iter().map(|k| format!("s/{k}")).collect();
        let changes: Vec<(&str, Option<&[u8]>)> = removed
            .iter()
            .chain(index_keys.iter())
            .map(|k| (k.as_str(), None))
            .collect();
        self.documents.write(&changes)?;
        let mut series = self.series.write().expect("series index is never poisoned");
        for key in &stale {
            series.remove(key);
        }
        Ok(removed.len())
    }

    /// The document store itself, for the alarms kept beside the datapoints.
    pub fn documents(&self) -> &DocumentStore {
        &self.documents
    }
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        key: key.to_owned(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapoints_merge_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics.redb");
        let key = SeriesKey::new("1", "r", "NS", "M", vec![("D".into(), "v".into())]);
        {
            let store = MetricStore::open(&path).expect("open");
            store
                .merge(&[
                    (key.clone(), "Count".into(), 100, Stat::single(2.0)),
                    (key.clone(), "Count".into(), 100, Stat::single(3.0)),
                    (key.clone(), "Count".into(), 161, Stat::single(4.0)),
                ])
                .expect("merge");
        }
        let store = MetricStore::open(&path).expect("reopen");
        let points = store.range(&key, 0, 1000).expect("range");
        assert_eq!(points.len(), 2);
        assert_eq!(points[&100].1.sum, 5.0);
        assert_eq!(points[&161].1.sum, 4.0);
        assert_eq!(store.range(&key, 101, 161).expect("range").len(), 0);
        assert_eq!(store.series("1", "r").len(), 1);
        assert_eq!(store.prune(150).expect("prune"), 1);
        assert_eq!(store.range(&key, 0, 1000).expect("range").len(), 1);
    }
}
