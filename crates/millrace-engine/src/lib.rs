//! Kinesis Data Streams semantics as a Rust API: streams and shards, routing by hash key,
//! sequence numbers, shard iterators, retention and limits.
//!
//! **API boundary:** the server calls `Engine` methods with domain values and maps
//! `Error` variants onto AWS error codes. The engine does no HTTP and knows no JSON.
//!
//! **Invariant:** a record is visible to readers only once it is acknowledged-durable under the
//! configured fsync policy, so no reader ever sees a record that a crash could take back.
#![deny(clippy::unwrap_used)]

mod autoscale;
mod clock;
mod committer;
pub mod config;
mod control;
mod data;
pub mod encryption;
pub mod error;
mod fanout;
mod listing;
mod open_files;
mod positions;
mod record_codec;
mod registry;
mod reshard;
mod retention;
pub mod storage;
mod throughput;
mod token;
pub mod view;

pub use config::{EngineConfig, FsyncPolicy};
pub use control::{CreateStreamRequest, ListStreamsPage};
pub use data::{
    ChildShard, GetRecordsOutput, IteratorRequest, IteratorType, PreparedRecords, PutEntry,
    PutFailure, PutOutcome, ReadRecord,
};
pub use error::Error;
pub use fanout::{ConsumerTarget, ConsumerView, Subscription, SubscriptionEvent};
pub use listing::{ListShardsRequest, ShardFilter, ShardFilterType};
pub use positions::{PositionedRecord, ShardPositions, StreamPositions};
pub use registry::Engine;
pub use reshard::ScalingOutcome;
pub use view::{AccountSettingsView, LimitsView, ShardView, StreamView};
