//! `lambda.redb`: functions, event source mappings and the mappings' checkpoints, each change
//! one durable transaction (redb commits with an fsync), so an acknowledged change or a
//! checkpoint survives kill -9.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

/// `account/region/name` → the function's record (JSON).
const FUNCTIONS: TableDefinition<&str, &str> = TableDefinition::new("functions");
/// Mapping UUID → the mapping's record (JSON).
const MAPPINGS: TableDefinition<&str, &str> = TableDefinition::new("mappings");
/// `uuid/shardId` → the last sequence number the function completed, or [`SHARD_DONE`].
const CHECKPOINTS: TableDefinition<&str, &str> = TableDefinition::new("checkpoints");

/// The checkpoint of a shard whose every record has been processed (a closed shard's end).
pub const SHARD_DONE: &str = "END";

pub struct Store {
    db: Database,
}

pub type StoreError = String;

fn failed(error: impl std::fmt::Display) -> StoreError {
    error.to_string()
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(failed)?;
        let write = db.begin_write().map_err(failed)?;
        write.open_table(FUNCTIONS).map_err(failed)?;
        write.open_table(MAPPINGS).map_err(failed)?;
        write.open_table(CHECKPOINTS).map_err(failed)?;
        write.commit().map_err(failed)?;
        Ok(Store { db })
    }

    fn put(
        &self,
        table: TableDefinition<&str, &str>,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut table = write.open_table(table).map_err(failed)?;
            match value {
                Some(value) => {
                    table.insert(key, value).map_err(failed)?;
                }
                None => {
                    table.remove(key).map_err(failed)?;
                }
            }
        }
        write.commit().map_err(failed)
    }

    fn all(&self, table: TableDefinition<&str, &str>) -> Result<Vec<(String, String)>, StoreError> {
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(table).map_err(failed)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(failed)? {
            let (key, value) = entry.map_err(failed)?;
            out.push((key.value().to_owned(), value.value().to_owned()));
        }
        Ok(out)
    }

    pub fn put_function(&self, key: &str, record: &str) -> Result<(), StoreError> {
        self.put(FUNCTIONS, key, Some(record))
    }

    pub fn delete_function(&self, key: &str) -> Result<(), StoreError> {
        self.put(FUNCTIONS, key, None)
    }

    pub fn functions(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.all(FUNCTIONS)
    }

    pub fn put_mapping(&self, uuid: &str, record: &str) -> Result<(), StoreError> {
        self.put(MAPPINGS, uuid, Some(record))
    }

    /// Removes a mapping and its checkpoints in one transaction.
    pub fn delete_mapping(&self, uuid: &str) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut mappings = write.open_table(MAPPINGS).map_err(failed)?;
            mappings.remove(uuid).map_err(failed)?;
            let mut checkpoints = write.open_table(CHECKPOINTS).map_err(failed)?;
            let prefix = format!("{uuid}/");
            let keys: Vec<String> = checkpoints
                .range(prefix.as_str()..)
                .map_err(failed)?
                .filter_map(Result::ok)
                .map(|(key, _)| key.value().to_owned())
                .take_while(|key| key.starts_with(&prefix))
                .collect();
            for key in keys {
                checkpoints.remove(key.as_str()).map_err(failed)?;
            }
        }
        write.commit().map_err(failed)
    }

    pub fn mappings(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.all(MAPPINGS)
    }

    pub fn checkpoint(&self, uuid: &str, shard: &str) -> Result<Option<String>, StoreError> {
        let read = self.db.begin_read().map_err(failed)?;
        let table = read.open_table(CHECKPOINTS).map_err(failed)?;
        let key = format!("{uuid}/{shard}");
        Ok(table
            .get(key.as_str())
            .map_err(failed)?
            .map(|value| value.value().to_owned()))
    }

    pub fn set_checkpoint(&self, uuid: &str, shard: &str, value: &str) -> Result<(), StoreError> {
        self.put(CHECKPOINTS, &format!("{uuid}/{shard}"), Some(value))
    }
}
