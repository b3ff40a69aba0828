//! Kinesis wire layer: the shape model generated from the AWS model, request checking with AWS's
//! exact SerializationException and ValidationException texts, the CBOR body format (transcoded
//! to and from the JSON documents the server works with) and event-stream framing. A pure codec:
//! no IO.
#![deny(clippy::unwrap_used)]

pub mod cbor;
pub mod event_stream;
pub mod generated;
pub mod model;
pub mod pattern;
pub mod validate;

pub use cbor::CborError;
pub use validate::{lower_first, operation_exists, validate_input, InputError};
