//! The HTTP front end of Millrace: AWS JSON 1.1 (and CBOR) for Kinesis and awsQuery for IAM and
//! STS over HTTP/1.1, HTTP/2 and TLS, one request path that recognises the protocol, verifies
//! SigV4 and authorizes by IAM policies, and the mapping of errors onto AWS codes, statuses and
//! messages.
//!
//! This is the only crate that knows HTTP and AWS error JSON. Following mini-redis, `serve`
//! runs on a listener the caller has bound and stops when the shutdown future resolves.
#![deny(clippy::unwrap_used)]

pub mod accounts;
pub mod audit;
pub mod auth;
mod authz;
pub mod channels_route;
mod console;
mod dispatch;
mod error;
mod handlers;
mod json;
pub mod kms_keys;
pub use millrace_kms as kms;
pub mod json_services;
mod query;
mod rate_limit;
mod response;
mod rest_json;
pub mod s3_route;
mod server;
mod sigv4;
pub mod tls;

pub use millrace_cloudwatch as cloudwatch;
pub use millrace_engine::{Engine, EngineConfig, FsyncPolicy};
pub use millrace_iam::{Iam, RootCredentials};
pub use millrace_service::JsonService;
pub use server::{serve, Backends, ServerConfig};
