//! A small transactional document store for the services beside Data Streams (identities,
//! sessions, later keys and metrics settings): string keys, opaque byte values, one redb file.
//!
//! Each service owns its key prefix (`iam/…`, `sts/…`) and its value format; the store only
//! promises that every `write` commits atomically and durably before it returns.

use std::path::Path;

use redb::{Database, TableDefinition};

use crate::error::CatalogError;

const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

type DbError = Box<dyn std::error::Error + Send + Sync>;

fn boxed<E: std::error::Error + Send + Sync + 'static>(error: E) -> DbError {
    Box::new(error)
}

/// One change of a batch: store `Some(value)` at the key, or remove it (`None`).
pub type DocumentChange<'a> = (&'a str, Option<&'a [u8]>);

/// A redb file of keyed documents.
pub struct DocumentStore {
    db: Database,
}

impl DocumentStore {
    /// Opens or creates the file.
    pub fn open(path: &Path) -> Result<DocumentStore, CatalogError> {
        let db = Database::create(path)
            .map_err(boxed)
            .map_err(CatalogError::database("open document store"))?;
        let store = DocumentStore { db };
        store.write(&[])?;
        Ok(store)
    }

    /// The document at `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CatalogError> {
        let read = || -> Result<Option<Vec<u8>>, DbError> {
            let txn = self.db.begin_read().map_err(boxed)?;
            let table = txn.open_table(DOCUMENTS).map_err(boxed)?;
            Ok(table.get(key).map_err(boxed)?.map(|v| v.value().to_vec()))
        };
        read().map_err(CatalogError::database("read document"))
    }

    /// Every document whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, CatalogError> {
        let read = || -> Result<Vec<(String, Vec<u8>)>, DbError> {
            let txn = self.db.begin_read().map_err(boxed)?;
            let table = txn.open_table(DOCUMENTS).map_err(boxed)?;
            let mut rows = Vec::new();
            for row in table.range(prefix..).map_err(boxed)? {
                let (key, value) = row.map_err(boxed)?;
                if !key.value().starts_with(prefix) {
                    break;
                }
                rows.push((key.value().to_owned(), value.value().to_vec()));
            }
            Ok(rows)
        };
        read().map_err(CatalogError::database("scan documents"))
    }

    /// Applies every change in one durable transaction.
    pub fn write(&self, changes: &[DocumentChange<'_>]) -> Result<(), CatalogError> {
        let run = || -> Result<(), DbError> {
            let txn = self.db.begin_write().map_err(boxed)?;
            {
                let mut table = txn.open_table(DOCUMENTS).map_err(boxed)?;
                for (key, value) in changes {
                    match value {
                        Some(value) => {
                            table.insert(*key, *value).map_err(boxed)?;
                        }
                        None => {
                            table.remove(*key).map_err(boxed)?;
                        }
                    }
                }
            }
            txn.commit().map_err(boxed)?;
            Ok(())
        };
        run().map_err(CatalogError::database("write documents"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_commit_together_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("documents.redb");
        {
            let store = DocumentStore::open(&path).expect("open");
            store
                .write(&[
                    ("iam/a", Some(b"1")),
                    ("iam/b", Some(b"2")),
                    ("sts/x", Some(b"3")),
                ])
                .expect("write");
            store.write(&[("iam/a", None)]).expect("delete");
        }
        let store = DocumentStore::open(&path).expect("reopen");
        assert_eq!(store.get("iam/a").expect("get"), None);
        assert_eq!(store.get("iam/b").expect("get").as_deref(), Some(&b"2"[..]));
        let iam: Vec<String> = store
            .scan("iam/")
            .expect("scan")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(iam, ["iam/b"]);
    }
}
