//! The HTTP front end of Millrace: AWS JSON 1.1 over HTTP/1.1 and cleartext HTTP/2, request
//! routing by `X-Amz-Target`, authentication-header checks, and the mapping of engine errors
//! onto AWS error codes, statuses and messages.
//!
//! This is the only crate that knows HTTP and AWS error JSON. Following mini-redis, `serve`
//! runs on a listener the caller has bound and stops when the shutdown future resolves.
#![deny(clippy::unwrap_used)]

mod auth;
mod dispatch;
mod error;
mod handlers;
mod json;
mod rate_limit;
mod response;
mod server;
pub mod tls;

pub use millrace_engine::{Engine, EngineConfig, FsyncPolicy};
pub use server::{serve, ServerConfig};
