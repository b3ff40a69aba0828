//! A Kinesis producer library with the KPL's semantics, usable against AWS and Millrace: user
//! records aggregated in the KPL format only among records bound for the same shard, collected
//! into PutRecords calls, rate-limited per shard, retried with backoff and jitter, expired after
//! `RecordTtl`; a bounded buffer; flush and clean shutdown; and de-aggregation for consumers.
//!
//! It is a client of the public Kinesis API only (awsJson1.1 over HTTP, SigV4 from
//! `millrace-wire`).
#![deny(clippy::unwrap_used)]

pub mod aggregation;
pub mod client;
pub mod config;
pub use millrace_client::credentials;
pub mod producer;

pub use aggregation::{deaggregate, Aggregator, DeaggregationError, UserRecord};
pub use client::{ApiError, ClientConfig, KinesisClient, ShardInfo};
pub use config::{MetricsGranularity, MetricsLevel, ProducerConfig, WhenFull};
pub use millrace_wire::sigv4::Credentials;
pub use producer::{hash_key, Attempt, MetricsSnapshot, Producer, PutError, PutOutcome};
