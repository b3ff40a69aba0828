//! The redb-backed metadata store and the trait the engine uses to reach it.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use crate::error::CatalogError;
use crate::record::StreamRecord;

const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");
const POLICIES: TableDefinition<&str, &str> = TableDefinition::new("resource_policies");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

/// Any failure inside a redb transaction, before it gets its context.
type DbError = Box<dyn std::error::Error + Send + Sync>;

/// What the engine needs from a metadata store; a cluster backend implements the same.
pub trait MetadataStore: Send + Sync {
    /// Every stored stream, in every region.
    fn all_streams(&self) -> Result<Vec<StreamRecord>, CatalogError>;
    /// Writes (inserts or replaces) a stream record atomically and durably.
    fn put_stream(&self, record: &StreamRecord) -> Result<(), CatalogError>;
    /// Removes a stream record atomically and durably.
    fn delete_stream(&self, region: &str, name: &str) -> Result<(), CatalogError>;
    /// Reads a resource policy.
    fn policy(&self, arn: &str) -> Result<Option<String>, CatalogError>;
    /// Stores or removes (`None`) a resource policy.
    fn set_policy(&self, arn: &str, policy: Option<&str>) -> Result<(), CatalogError>;
    /// Reads an opaque setting.
    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, CatalogError>;
    /// Stores an opaque setting.
    fn set_setting(&self, key: &str, value: &[u8]) -> Result<(), CatalogError>;
}

/// The embedded metadata store, one redb file in the data directory.
pub struct Catalog {
    db: Database,
}

fn stream_key(region: &str, name: &str) -> String {
    format!("{region}/{name}")
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(error: E) -> DbError {
    Box::new(error)
}

impl Catalog {
    /// Opens or creates the database file.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let db = Database::create(path)
            .map_err(boxed)
            .map_err(CatalogError::database("open metadata database"))?;
        let catalog = Catalog { db };
        catalog.write("create tables", |txn| {
            txn.open_table(STREAMS).map_err(boxed)?;
            txn.open_table(POLICIES).map_err(boxed)?;
            txn.open_table(SETTINGS).map_err(boxed)?;
            Ok(())
        })?;
        Ok(catalog)
    }

    fn write(
        &self,
        context: &'static str,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<(), DbError>,
    ) -> Result<(), CatalogError> {
        let run = || {
            let txn = self.db.begin_write().map_err(boxed)?;
            change(&txn)?;
            txn.commit().map_err(boxed)?;
            Ok(())
        };
        run().map_err(CatalogError::database(context))
    }
}

impl MetadataStore for Catalog {
    fn all_streams(&self) -> Result<Vec<StreamRecord>, CatalogError> {
        let read = || -> Result<Vec<(String, Vec<u8>)>, DbError> {
            let txn = self.db.begin_read().map_err(boxed)?;
            let table = txn.open_table(STREAMS).map_err(boxed)?;
            let mut rows = Vec::new();
            for row in table.iter().map_err(boxed)? {
                let (key, value) = row.map_err(boxed)?;
                rows.push((key.value().to_owned(), value.value().to_vec()));
            }
            Ok(rows)
        };
        let rows = read().map_err(CatalogError::database("list streams"))?;
        rows.into_iter()
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes)
                    .map_err(|source| CatalogError::Corrupt { key, source })
            })
            .collect()
    }

    fn put_stream(&self, record: &StreamRecord) -> Result<(), CatalogError> {
        let key = stream_key(&record.region, &record.name);
        let bytes = serde_json::to_vec(record).expect("stream records always serialize");
        self.write("store stream", |txn| {
            let mut table = txn.open_table(STREAMS).map_err(boxed)?;
            table
                .insert(key.as_str(), bytes.as_slice())
                .map_err(boxed)?;
            Ok(())
        })
    }

    fn delete_stream(&self, region: &str, name: &str) -> Result<(), CatalogError> {
        let key = stream_key(region, name);
        self.write("delete stream", |txn| {
            let mut table = txn.open_table(STREAMS).map_err(boxed)?;
            table.remove(key.as_str()).map_err(boxed)?;
            Ok(())
        })
    }

    fn policy(&self, arn: &str) -> Result<Option<String>, CatalogError> {
        let read = || -> Result<Option<String>, DbError> {
            let txn = self.db.begin_read().map_err(boxed)?;
            let table = txn.open_table(POLICIES).map_err(boxed)?;
            Ok(table.get(arn).map_err(boxed)?.map(|v| v.value().to_owned()))
        };
        read().map_err(CatalogError::database("read resource policy"))
    }

    fn set_policy(&self, arn: &str, policy: Option<&str>) -> Result<(), CatalogError> {
        self.write("store resource policy", |txn| {
            let mut table = txn.open_table(POLICIES).map_err(boxed)?;
            match policy {
                Some(policy) => {
                    table.insert(arn, policy).map_err(boxed)?;
                }
                None => {
                    table.remove(arn).map_err(boxed)?;
                }
            }
            Ok(())
        })
    }

    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, CatalogError> {
        let read = || -> Result<Option<Vec<u8>>, DbError> {
            let txn = self.db.begin_read().map_err(boxed)?;
            let table = txn.open_table(SETTINGS).map_err(boxed)?;
            Ok(table.get(key).map_err(boxed)?.map(|v| v.value().to_vec()))
        };
        read().map_err(CatalogError::database("read setting"))
    }

    fn set_setting(&self, key: &str, value: &[u8]) -> Result<(), CatalogError> {
        self.write("store setting", |txn| {
            let mut table = txn.open_table(SETTINGS).map_err(boxed)?;
            table.insert(key, value).map_err(boxed)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::*;

    fn sample(name: &str) -> StreamRecord {
        StreamRecord {
            version: STREAM_RECORD_VERSION,
            incarnation: 7,
            region: "us-east-1".into(),
            name: name.into(),
            status: StreamStatus::Active,
            status_until_ms: 0,
            created_ms: 1,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            shards: vec![],
            next_shard_index: 0,
            tags: Default::default(),
            encryption: EncryptionRecord::default(),
            shard_level_metrics: vec![],
            max_record_size_kib: 1024,
            warm_throughput_mibps: None,
            record_distribution_strategy: None,
            scaling_history_ms: vec![],
            consumers: vec![],
            pending_reshard: None,
        }
    }

    #[test]
    fn streams_policies_and_settings_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.redb");
        {
            let catalog = Catalog::open(&path).expect("open");
            catalog.put_stream(&sample("a")).expect("put a");
            catalog.put_stream(&sample("b")).expect("put b");
            catalog.delete_stream("us-east-1", "a").expect("delete a");
            catalog.set_policy("arn:x", Some("{}")).expect("policy");
            catalog.set_setting("k", b"v").expect("setting");
        }
        let catalog = Catalog::open(&path).expect("reopen");
        let names: Vec<String> = catalog
            .all_streams()
            .expect("list")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["b"]);
        assert_eq!(
            catalog.policy("arn:x").expect("read").as_deref(),
            Some("{}")
        );
        assert_eq!(
            catalog.setting("k").expect("read").as_deref(),
            Some(&b"v"[..])
        );
        catalog.set_policy("arn:x", None).expect("remove policy");
        assert_eq!(catalog.policy("arn:x").expect("read"), None);
    }

    #[test]
    fn effective_status_follows_the_clock() {
        let mut record = sample("s");
        record.status = StreamStatus::Creating;
        record.status_until_ms = 100;
        assert_eq!(record.effective_status(99), Some(StreamStatus::Creating));
        assert_eq!(record.effective_status(100), Some(StreamStatus::Active));
        record.status = StreamStatus::Deleting;
        assert_eq!(record.effective_status(100), None);
    }

    #[test]
    fn a_pending_reshard_keeps_the_stream_updating_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.redb");
        let mut record = sample("s");
        record.status = StreamStatus::Updating;
        record.status_until_ms = 100;
        record.pending_reshard = Some(PendingReshard {
            apply_at_ms: 100,
            steps: vec![ReshardStep {
                close: vec![0],
                create: vec![NewShardRecord {
                    starting_hash_key: "0".into(),
                    ending_hash_key: "9".into(),
                    parent: 0,
                    adjacent_parent: None,
                }],
            }],
        });
        assert_eq!(record.effective_status(1_000), Some(StreamStatus::Updating));
        Catalog::open(&path)
            .expect("open")
            .put_stream(&record)
            .expect("put");
        let stored = Catalog::open(&path)
            .expect("reopen")
            .all_streams()
            .expect("list");
        assert_eq!(stored, [record.clone()]);
        record.pending_reshard = None;
        assert_eq!(record.effective_status(1_000), Some(StreamStatus::Active));
        // Records without the field (written before it existed) read as having none.
        let mut json = serde_json::to_value(&record).expect("json");
        json.as_object_mut()
            .expect("object")
            .remove("pending_reshard");
        let old: StreamRecord = serde_json::from_value(json).expect("old record");
        assert_eq!(old.pending_reshard, None);
    }
}
