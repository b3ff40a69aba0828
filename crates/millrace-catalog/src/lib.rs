//! Stream metadata: streams, shards, tags, resource policies and account settings.
//!
//! Stored in a transactional embedded database (redb) so that every control-plane change commits
//! atomically and durably. Records are versioned JSON documents owned by this crate; the catalog
//! knows nothing about HTTP or the wire format.
#![deny(clippy::unwrap_used)]

pub mod documents;
pub mod error;
pub mod record;
pub mod store;

pub use documents::{DocumentChange, DocumentStore};
pub use error::CatalogError;
pub use record::{
    ConsumerRecord, EncryptionRecord, NewShardRecord, PendingReshard, ReshardStep, ShardRecord,
    StreamMode, StreamRecord, StreamStatus,
};
pub use store::{Catalog, MetadataStore};
