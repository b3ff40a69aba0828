//! Decoding request bodies into typed inputs, and the JSON conventions for timestamps.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

/// Parses, type-checks and constraint-checks a request body against the model, then
/// deserializes it into `T`.
pub fn decode<T: DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T, ApiError> {
    let value = validate(operation, body)?;
    serde_json::from_value(value).map_err(|error| {
        tracing::debug!(%error, "validated body did not fit the typed input");
        ApiError::serialization(None)
    })
}

/// Parses a request body and checks it against the model: the service's exact
/// SerializationException or ValidationException, or the parsed document.
pub fn validate(operation: &str, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| ApiError::serialization(None))?;
    millrace_wire::validate::validate_input(operation, &value)?;
    Ok(value)
}

/// Serializes an output shape.
pub fn encode<T: Serialize>(output: &T) -> Vec<u8> {
    serde_json::to_vec(output).expect("output shapes serialize")
}

/// Epoch seconds (with a millisecond fraction) as the JSON protocol sends timestamps.
pub fn seconds(epoch_ms: u64) -> f64 {
    epoch_ms as f64 / 1000.0
}

/// A JSON timestamp (epoch seconds, any fraction) as epoch milliseconds.
pub fn millis(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    }
}
