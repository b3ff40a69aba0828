//! Kinesis wire layer: the request-shape model generated from the AWS model, and request checking
//! with AWS's exact SerializationException and ValidationException texts.
#![deny(clippy::unwrap_used)]

pub mod generated;
pub mod model;
pub mod pattern;
pub mod validate;

pub use validate::{lower_first, operation_exists, validate_input, InputError};
pub mod event_stream;
