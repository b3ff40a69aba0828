//! AWS wire layer: the shape models generated from the AWS models (Kinesis, IAM, STS, DynamoDB), request
//! checking with AWS's exact SerializationException and ValidationException texts, the CBOR body
//! format (transcoded to and from the JSON documents the server works with), event-stream
//! framing, and the awsQuery protocol of IAM and STS (form-encoded requests decoded into the same
//! JSON documents, XML replies and errors), and the SigV4 signing core that the server verifies
//! with and the clients sign with. A pure codec: no IO.
#![deny(clippy::unwrap_used)]

pub mod cbor;
pub mod event_stream;
pub mod generated;
pub mod model;
pub mod pattern;
pub mod query;
pub mod sigv4;
pub mod timestamp;
pub mod validate;
pub mod xml;

pub use cbor::CborError;
pub use query::{action_of, decode_request, QueryError};
pub use validate::{lower_first, operation_exists, validate_input, validate_input_for, InputError};
pub use xml::{encode_error, encode_response, ErrorKind};
