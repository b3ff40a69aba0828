//! Domain vocabulary of Millrace: shard ids, hash keys and ranges, sequence numbers and limits.
//!
//! This crate knows no IO, no wire format and no storage; it only gives names and rules to values.
#![deny(clippy::unwrap_used)]

pub mod hash_key;
pub mod limits;
pub mod sequence_number;
pub mod shard_id;

pub use hash_key::{partition_key_hash, HashKeyRange};
pub use sequence_number::{encoded_shard_name, OlderLayout, SequenceNumber};
pub use shard_id::ShardId;
