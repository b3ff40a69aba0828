//! A Kinesis consumer library with the Java KCL's semantics and lease-table schema: workers
//! take, renew and steal shard leases kept in a DynamoDB table, read their shards by polling or enhanced fan-out, de-aggregate KPL records,
//! hand records to a [`RecordProcessor`], checkpoint in the lease, and finish parent shards
//! before their children. It is a client of the public Kinesis and DynamoDB APIs (signed
//! JSON over HTTP), so it works against Millrace or any endpoint that speaks them; it knows
//! nothing of Millrace's engine.
#![deny(clippy::unwrap_used)]

pub mod aws;
pub mod fanout;
pub mod lease;
pub mod processor;
pub mod worker;

pub use aws::{AwsClient, AwsError, ClientConfig, Credentials, Endpoint};
pub use lease::{Lease, LeaseTable, SHARD_END};
pub use processor::{
    BoxFuture, CheckpointError, Checkpointer, InitializeInput, PreparedCheckpoint,
    ProcessRecordsInput, ProcessorError, ProcessorFactory, Record, RecordProcessor,
};
pub use worker::{InitialPosition, Retrieval, Worker, WorkerConfig};
