//! Black-box tests of the `millrace` binary through the official Rust AWS SDK.
#![allow(clippy::print_stderr)]

mod auth;
mod capacity;
mod channels;
mod common;
mod crash;
mod errors;
mod fanout;
mod producer;
mod reshard;
mod round_trip;
