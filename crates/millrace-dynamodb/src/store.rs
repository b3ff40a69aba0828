//! Tables and items in memory, written through to one [`DocumentStore`] file: every change is
//! committed durably before the state in memory changes and the caller is answered.
//!
//! Keys: `ddb/t/<account>/<region>/<table>` holds a table's description (JSON), and
//! `ddb/i/<account>/<region>/<table>/<hex key>` one item (wire JSON). One mutex serialises
//! every change, which makes each single-item operation atomic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use millrace_catalog::DocumentStore;
use serde::{Deserialize, Serialize};

use crate::error::DynamoError;
use crate::number::Number;
use crate::value::{item_from_json, item_size, item_to_json, Item, Value};

/// The type of a key attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    pub fn parse(text: &str) -> Option<KeyType> {
        match text {
            "S" => Some(KeyType::S),
            "N" => Some(KeyType::N),
            "B" => Some(KeyType::B),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }
}

/// A hash key and an optional range key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub hash: String,
    pub range: Option<String>,
}

impl KeySchema {
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.hash.as_str()];
        if let Some(range) = &self.range {
            names.push(range);
        }
        names
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub key: KeySchema,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
    pub non_key_attributes: Vec<String>,
    pub read_capacity: i64,
    pub write_capacity: i64,
    pub arn: String,
}

/// What a table is, as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableMeta {
    pub name: String,
    pub arn: String,
    pub id: String,
    pub created_seconds: f64,
    pub key: KeySchema,
    pub attributes: BTreeMap<String, KeyType>,
    pub billing_mode: String,
    pub read_capacity: i64,
    pub write_capacity: i64,
    pub indexes: Vec<Index>,
    pub tags: BTreeMap<String, String>,
    pub point_in_time_recovery: bool,
    pub deletion_protection: bool,
    pub pay_per_request_since: Option<f64>,
}

impl TableMeta {
    pub fn key_type(&self, name: &str) -> KeyType {
        self.attributes.get(name).copied().unwrap_or(KeyType::S)
    }
}

/// A key attribute's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyValue {
    S(String),
    N(Number),
    B(Vec<u8>),
}

impl KeyValue {
    pub fn from_value(value: &Value) -> Option<KeyValue> {
        match value {
            Value::S(s) => Some(KeyValue::S(s.clone())),
            Value::N(n) => Some(KeyValue::N(n.clone())),
            Value::B(b) => Some(KeyValue::B(b.clone())),
            _ => None,
        }
    }

    /// Bytes that identify the value (type tag first).
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            KeyValue::S(s) => {
                out.push(b'S');
                out.extend_from_slice(s.as_bytes());
            }
            KeyValue::N(n) => {
                out.push(b'N');
                out.extend_from_slice(n.to_text().as_bytes());
            }
            KeyValue::B(b) => {
                out.push(b'B');
                out.extend_from_slice(b);
            }
        }
    }
}

/// An item's primary key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemKey {
    pub hash: KeyValue,
    pub range: Option<KeyValue>,
}

impl ItemKey {
    /// The key as a document-store key suffix: hex of the tagged, length-prefixed parts.
    fn document_suffix(&self) -> String {
        let mut bytes = Vec::new();
        let mut hash = Vec::new();
        self.hash.encode(&mut hash);
        bytes.extend_from_slice(&(hash.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&hash);
        if let Some(range) = &self.range {
            range.encode(&mut bytes);
        }
        hex::encode(bytes)
    }

    /// The Scan segment of the item among `total` (by a hash of its partition key).
    pub fn segment(&self, total: u32) -> u32 {
        let mut bytes = Vec::new();
        self.hash.encode(&mut bytes);
        // FNV-1a: stable across restarts and versions.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        (hash % u64::from(total.max(1))) as u32
    }
}

/// One table's description and items.
pub struct Table {
    pub meta: TableMeta,
    pub items: BTreeMap<ItemKey, Item>,
    pub size_bytes: usize,
}

/// (account, region, table name).
pub type TableId = (String, String, String);

#[derive(Default)]
pub struct State {
    pub tables: BTreeMap<TableId, Table>,
}

pub struct Store {
    documents: DocumentStore,
    state: Mutex<State>,
}

fn storage(error: impl std::fmt::Display) -> DynamoError {
    DynamoError::Internal(error.to_string())
}

fn table_document(id: &TableId) -> String {
    format!("ddb/t/{}/{}/{}", id.0, id.1, id.2)
}

fn item_prefix(id: &TableId) -> String {
    format!("ddb/i/{}/{}/{}/", id.0, id.1, id.2)
}

/// The primary key of `item` under `schema` (the caller has validated it).
pub fn key_of(item: &Item, schema: &KeySchema) -> Option<ItemKey> {
    let hash = KeyValue::from_value(item.get(&schema.hash)?)?;
    let range = match &schema.range {
        Some(name) => Some(KeyValue::from_value(item.get(name)?)?),
        None => None,
    };
    Some(ItemKey { hash, range })
}

impl Store {
    /// Opens the file and loads every table.
    pub fn open(path: &Path) -> Result<Store, DynamoError> {
        let documents = DocumentStore::open(path).map_err(storage)?;
        let mut state = State::default();
        for (key, bytes) in documents.scan("ddb/t/").map_err(storage)? {
            let meta: TableMeta = serde_json::from_slice(&bytes)
                .map_err(|e| storage(format!("decode table document {key}: {e}")))?;
            let mut parts = key["ddb/t/".len()..].splitn(3, '/');
            let (Some(account), Some(region), Some(_)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(storage(format!("malformed table document key {key}")));
            };
            let id = (account.to_owned(), region.to_owned(), meta.name.clone());
            let mut table = Table {
                meta,
                items: BTreeMap::new(),
                size_bytes: 0,
            };
            for (item_key, item_bytes) in documents.scan(&item_prefix(&id)).map_err(storage)? {
                let json: serde_json::Value = serde_json::from_slice(&item_bytes)
                    .map_err(|e| storage(format!("decode item {item_key}: {e}")))?;
                let item = item_from_json(&json)
                    .map_err(|e| storage(format!("decode item {item_key}: {e}")))?;
                let Some(key) = key_of(&item, &table.meta.key) else {
                    return Err(storage(format!("item {item_key} lacks its key")));
                };
                table.size_bytes += item_size(&item);
                table.items.insert(key, item);
            }
            state.tables.insert(id, table);
        }
        Ok(Store {
            documents,
            state: Mutex::new(state),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a table's description (create or update).
    pub fn put_table(&self, id: &TableId, meta: &TableMeta) -> Result<(), DynamoError> {
        let bytes = serde_json::to_vec(meta).map_err(storage)?;
        self.documents
            .write(&[(table_document(id).as_str(), Some(&bytes))])
            .map_err(storage)
    }

    /// Removes a table and every item in one transaction.
    pub fn delete_table(&self, id: &TableId, table: &Table) -> Result<(), DynamoError> {
        let prefix = item_prefix(id);
        let keys: Vec<String> = table
            .items
            .keys()
            .map(|key| format!("{prefix}{}", key.document_suffix()))
            .collect();
        let document = table_document(id);
        let mut changes: Vec<(&str, Option<&[u8]>)> = vec![(document.as_str(), None)];
        changes.extend(keys.iter().map(|k| (k.as_str(), None)));
        self.documents.write(&changes).map_err(storage)
    }

    /// Writes item changes (`None` deletes) in one transaction.
    pub fn write_items(
        &self,
        id: &TableId,
        changes: &[(&ItemKey, Option<&Item>)],
    ) -> Result<(), DynamoError> {
        let prefix = item_prefix(id);
        let mut encoded: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for (key, item) in changes {
            let document = format!("{prefix}{}", key.document_suffix());
            let bytes = match item {
                Some(item) => Some(serde_json::to_vec(&item_to_json(item)).map_err(storage)?),
                None => None,
            };
            encoded.push((document, bytes));
        }
        let batch: Vec<(&str, Option<&[u8]>)> = encoded
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        self.documents.write(&batch).map_err(storage)
    }
}

impl Table {
    /// Replaces (or with `None` removes) an item in memory, after it was stored.
    pub fn apply(&mut self, key: ItemKey, item: Option<Item>) {
        if let Some(old) = self.items.remove(&key) {
            self.size_bytes -= item_size(&old);
        }
        if let Some(item) = item {
            self.size_bytes += item_size(&item);
            self.items.insert(key, item);
        }
    }
}
