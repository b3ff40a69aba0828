//! The CBOR body format (`application/x-amz-cbor-1.1`, wire notes §1.3), as a transcoder to and
//! from the JSON documents the rest of the server works with.
//!
//! The Java SDK and the KCL send Kinesis requests as CBOR maps with the same members as the JSON
//! protocol. Instead of a second set of handlers, requests are turned into the JSON document the
//! JSON protocol would have carried ([`request_to_json`]) and JSON responses, errors and
//! event-stream payloads are re-encoded as CBOR ([`response_to_cbor`], [`error_to_cbor`],
//! [`event_payload_to_cbor`]). Only blobs and timestamps differ between the two formats, so the
//! conversion is guided by the operation's input or output shape from the generated model.
//!
//! Decisions (one line each; the tests in `cbor/tests.rs` pin them):
//!
//! | where | CBOR | JSON |
//! |---|---|---|
//! | blob, input | byte string (definite or indefinite) | base64 string (standard, padded) |
//! | blob, input | text string | passed through unchanged: request checking then reports bad base64 with AWS's text |
//! | blob, output | byte string, definite length | base64 string; invalid base64 is [`CborError::Unencodable`] |
//! | timestamp, input | tag 1 + integer, or an untagged integer: epoch **milliseconds** | number of seconds, `millis / 1000` as `f64` |
//! | timestamp, input | a float, tagged 1 or not: epoch **seconds** (RFC 8949 §3.4.2; the Java SDK never sends floats) | the same number |
//! | timestamp, output | tag 1 (`0xc1`) + smallest integer of milliseconds, rounded | number of seconds, any fraction |
//! | tag 1 + integer where the model has no timestamp (unknown member) | milliseconds, as above | seconds |
//! | other tags, input | ignored (content mapped as if untagged) | |
//! | byte string where the model has no blob | | base64 string |
//! | integer map key, input | | decimal string key |
//! | `undefined`, input | | `null` (absent) |
//! | integer, output | smallest encoding; an integral float at an integer/long position becomes an integer | |
//! | other float, output | 8-byte float (`0xfb`) | |
//!
//! Output always uses definite lengths; input accepts indefinite-length maps, arrays and strings.
//! Members the model does not know are mapped naturally in both directions.
//!
//! Untrusted input: decoding never allocates from a declared length (a definite length larger
//! than the bytes left is rejected at once), nesting is limited to [`MAX_DEPTH`] maps and arrays
//! (the recursion is bounded by it, so deep input cannot overflow the stack), and a document may
//! hold at most [`MAX_ITEMS`] data items.

mod decode;
mod encode;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::generated::kinesis_model::KINESIS;
use crate::model::{ServiceModel, Shape, ShapeKind};

/// The canonical `Content-Type` of CBOR requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// The deepest nesting of maps and arrays accepted, in both directions. The deepest Kinesis
/// shapes nest 7 (input, `CreateChannel`) and 8 (output, `UpdateChannel`) levels; the limit
/// bounds the recursion, about 3 KiB of stack a level in a debug build and under 1 KiB optimised.
pub const MAX_DEPTH: usize = 64;

/// The most data items (map keys and values, array elements, scalars) one CBOR document may hold.
/// A PutRecords request with 500 records has about 3,500; the limit bounds the memory a small
/// body of one-byte items can make the decoder use.
pub const MAX_ITEMS: usize = 1 << 20;

/// Why a body could not be transcoded.
///
/// Every error of [`request_to_json`] means the request is not acceptable CBOR: the server
/// answers `SerializationException` without a message, as AWS does for an unparseable body.
/// Errors of the encoders mean the server produced something the model cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The body is not well-formed CBOR: empty, truncated, a reserved initial byte, a stray
    /// break, invalid UTF-8, a length longer than the body, or bytes after the top-level item.
    #[error("malformed cbor at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: String },
    /// Maps and arrays nest deeper than [`MAX_DEPTH`].
    #[error("cbor nesting is deeper than {limit}")]
    TooDeep { limit: usize },
    /// The document holds more than [`MAX_ITEMS`] data items.
    #[error("cbor body has more than {limit} data items")]
    TooManyItems { limit: usize },
    /// Well-formed CBOR that has no JSON counterpart: a map key that is neither a text string nor
    /// an integer, a simple value other than false/true/null/undefined, a NaN or infinite float.
    #[error("cbor item at byte {offset} has no json equivalent: {what}")]
    Unrepresentable { offset: usize, what: &'static str },
    /// The JSON body handed to an encoder does not parse.
    #[error("json body does not parse: {reason}")]
    InvalidJson { reason: String },
    /// A JSON value cannot take the form its shape asks for (a blob that is not base64, a
    /// timestamp outside the range of epoch milliseconds). `path` is the member path.
    #[error("json value at {path} cannot be encoded: {reason}")]
    Unencodable { path: String, reason: String },
    /// [`event_payload_to_cbor`] was given a shape name the model does not have.
    #[error("shape {name} is not in the model")]
    UnknownShape { name: String },
}

/// Decodes the CBOR body of a Kinesis request for `operation` (e.g. `PutRecords`) into the JSON
/// document the JSON protocol would have carried, guided by the operation's input shape.
///
/// An operation the model does not know is mapped without a shape (the server rejects it
/// anyway). The result is ready for [`crate::validate::validate_input`].
pub fn request_to_json(operation: &str, cbor: &[u8]) -> Result<Value, CborError> {
    request_to_json_for(&KINESIS, operation, cbor)
}

/// [`request_to_json`] against another service's model.
pub fn request_to_json_for(
    model: &ServiceModel,
    operation: &str,
    cbor: &[u8],
) -> Result<Value, CborError> {
    decode::document(
        model,
        model.input_shape(operation),
        cbor,
        TimestampUnit::Millis,
    )
}

/// Re-encodes the JSON response body of `operation` as CBOR, guided by the operation's output
/// shape. An empty (or all-whitespace) body stays empty: operations without output answer with
/// an empty body in both formats.
pub fn response_to_cbor(operation: &str, json: &[u8]) -> Result<Vec<u8>, CborError> {
    response_to_cbor_for(&KINESIS, operation, json)
}

/// [`response_to_cbor`] against another service's model.
pub fn response_to_cbor_for(
    model: &ServiceModel,
    operation: &str,
    json: &[u8],
) -> Result<Vec<u8>, CborError> {
    let Some(value) = parse_json(json)? else {
        return Ok(Vec::new());
    };
    encode::document(
        model,
        model.output_shape(operation),
        &value,
        TimestampUnit::Millis,
    )
}

/// Re-encodes a JSON error body (`{"__type": ..., "message": ...}`, or `"Message"`) as a CBOR
/// map with the same keys. An empty body stays empty.
pub fn error_to_cbor(json: &[u8]) -> Result<Vec<u8>, CborError> {
    let Some(value) = parse_json(json)? else {
        return Ok(Vec::new());
    };
    encode::document(&KINESIS, None, &value, TimestampUnit::Millis)
}

/// Encodes one event-stream payload (e.g. a `SubscribeToShardEvent`, an exception event's
/// `{"message": ...}` or the `initial-response` `{}`) as CBOR, guided by the shape called
/// `shape_name`.
pub fn event_payload_to_cbor(shape_name: &str, json: &Value) -> Result<Vec<u8>, CborError> {
    event_payload_to_cbor_for(&KINESIS, shape_name, json)
}

/// [`event_payload_to_cbor`] against another service's model.
pub fn event_payload_to_cbor_for(
    model: &ServiceModel,
    shape_name: &str,
    json: &Value,
) -> Result<Vec<u8>, CborError> {
    let shape = model
        .shape_named(shape_name)
        .ok_or_else(|| CborError::UnknownShape {
            name: shape_name.to_owned(),
        })?;
    encode::document(model, Some(shape), json, TimestampUnit::Millis)
}

/// What a tag-1 timestamp holds: Kinesis's CBOR 1.1 puts epoch milliseconds there, Smithy RPC
/// v2 CBOR (CloudWatch) epoch seconds (an integer, or a float with a fraction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampUnit {
    Millis,
    Seconds,
}

/// Decodes a Smithy RPC v2 CBOR request body into the JSON document of the model's JSON
/// protocol (timestamps in seconds, blobs in base64).
pub fn rpc_v2_request_to_json(
    model: &ServiceModel,
    operation: &str,
    cbor: &[u8],
) -> Result<Value, CborError> {
    decode::document(
        model,
        model.input_shape(operation),
        cbor,
        TimestampUnit::Seconds,
    )
}

/// Encodes the JSON reply of `operation` as a Smithy RPC v2 CBOR body; with an operation the
/// model does not have (errors), the document is encoded as it is.
pub fn rpc_v2_response_to_cbor(
    model: &ServiceModel,
    operation: &str,
    json: &Value,
) -> Result<Vec<u8>, CborError> {
    encode::document(
        model,
        model.output_shape(operation),
        json,
        TimestampUnit::Seconds,
    )
}

/// The parsed JSON body, or `None` when it is empty or only whitespace.
fn parse_json(json: &[u8]) -> Result<Option<Value>, CborError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|err| CborError::InvalidJson {
            reason: err.to_string(),
        })
}

/// The shape of the value under `key` in a value of shape `parent`: a structure's member called
/// `key`, or a map's value shape. `None` when the model says nothing about it.
fn member_shape(model: &ServiceModel, parent: Option<&Shape>, key: &str) -> Option<&'static Shape> {
    match parent?.kind {
        ShapeKind::Structure(members) => {
            let member = members.iter().find(|member| member.name == key)?;
            model.shape(member.shape)
        }
        ShapeKind::Map { value, .. } => model.shape(value),
        _ => None,
    }
}

/// The shape of the elements of a value of shape `parent`, if it is a list.
fn element_shape(model: &ServiceModel, parent: Option<&Shape>) -> Option<&'static Shape> {
    match parent?.kind {
        ShapeKind::List(element) => model.shape(element),
        _ => None,
    }
}

/// The kind of `shape`, if there is one.
fn kind_of(shape: Option<&Shape>) -> Option<ShapeKind> {
    shape.map(|shape| shape.kind)
}
