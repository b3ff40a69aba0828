//! Request checking against the model, as Kinesis does before running an operation.
//!
//! Two passes over the parsed JSON body (wire notes §1.2, §1.5 steps 7–8): member types first,
//! where the first mismatch becomes a `SerializationException`; then every model constraint,
//! where all violations (at most ten) become one `ValidationException`. The texts are AWS's.

mod blob;
mod constraints;
mod java_hash;
mod type_check;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::generated::kinesis_model::KINESIS;
use crate::model::{ServiceModel, ShapeKind};

/// Why a request body was rejected before the operation ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// 400 `SerializationException`; `message` is `None` when AWS sends none (e.g. the body is
    /// not a JSON object). The message goes in the body's `Message` key (capital M).
    #[error("request body does not deserialize: {}", .message.as_deref().unwrap_or("no message"))]
    Serialization { message: Option<String> },
    /// 400 `ValidationException` with the full `1 validation error detected: ...` text.
    #[error("request fails model constraints: {message}")]
    Validation { message: String },
}

impl InputError {
    /// The AWS error code for `__type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            InputError::Serialization { .. } => "SerializationException",
            InputError::Validation { .. } => "ValidationException",
        }
    }

    /// The AWS message, if the error has one.
    pub fn message(&self) -> Option<&str> {
        match self {
            InputError::Serialization { message } => message.as_deref(),
            InputError::Validation { message } => Some(message),
        }
    }
}

/// Checks a parsed JSON request body for Kinesis operation `operation` (e.g. `PutRecords`)
/// against the model: first member types (→ [`InputError::Serialization`]), then all
/// constraints (→ [`InputError::Validation`], all violations at once, at most 10 entries).
///
/// A body that is not a JSON object is a `Serialization` error without message. An operation
/// the model does not know has nothing to check and passes; route with [`operation_exists`].
pub fn validate_input(operation: &str, body: &Value) -> Result<(), InputError> {
    validate_input_for(&KINESIS, operation, body)
}

/// [`validate_input`] against another service's model.
pub fn validate_input_for(
    model: &ServiceModel,
    operation: &str,
    body: &Value,
) -> Result<(), InputError> {
    let Value::Object(fields) = body else {
        return Err(InputError::Serialization { message: None });
    };
    let Some(input) = model.input_shape(operation) else {
        return Ok(());
    };
    let ShapeKind::Structure(members) = input.kind else {
        return Ok(());
    };

    type_check::check_members(model, members, fields).map_err(|message| {
        InputError::Serialization {
            message: Some(message),
        }
    })?;

    let mut checker = constraints::Checker::new(model);
    checker.check_members(members, fields, "");
    let entries = checker.into_entries();
    if entries.is_empty() {
        return Ok(());
    }
    let plural = if entries.len() == 1 { "" } else { "s" };
    Err(InputError::Validation {
        message: format!(
            "{} validation error{plural} detected: {}",
            entries.len(),
            entries.join("; ")
        ),
    })
}

/// Whether the Kinesis model has an operation called `operation` (exact, case-sensitive).
pub fn operation_exists(operation: &str) -> bool {
    KINESIS.operation(operation).is_some()
}

/// `name` with its first character lower-cased, as AWS writes member paths (`StreamName` →
/// `streamName`).
pub fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
