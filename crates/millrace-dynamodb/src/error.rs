//! The errors the lease-table service answers with, and their one mapping to DynamoDB's
//! `__type`, HTTP status and message.

use millrace_service::ServiceError;
use serde_json::Value as Json;

const PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// A request DynamoDB refuses as invalid (`ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// A body member of the wrong JSON type (`SerializationException`).
    #[error("{0}")]
    Serialization(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    /// A condition was false; carries the item when the caller asked for it.
    #[error("the conditional request failed")]
    ConditionFailed(Option<Json>),
    #[error("{0}")]
    LimitExceeded(String),
    /// The store failed; the detail is logged, not sent.
    #[error("store: {0}")]
    Internal(String),
}

/// A `ValidationException` with `message`.
pub fn validation(message: impl Into<String>) -> DynamoError {
    DynamoError::Validation(message.into())
}

impl DynamoError {
    pub fn to_service(&self) -> ServiceError {
        match self {
            DynamoError::Validation(message) => {
                ServiceError::client("com.amazon.coral.validate#ValidationException", message)
            }
            DynamoError::Serialization(message) => {
                ServiceError::client("com.amazon.coral.service#SerializationException", message)
            }
            DynamoError::NotFound(message) => {
                ServiceError::client(&format!("{PREFIX}ResourceNotFoundException"), message)
            }
            DynamoError::InUse(message) => {
                ServiceError::client(&format!("{PREFIX}ResourceInUseException"), message)
            }
            DynamoError::LimitExceeded(message) => {
                ServiceError::client(&format!("{PREFIX}LimitExceededException"), message)
            }
            DynamoError::ConditionFailed(item) => {
                let error = ServiceError::client(
                    &format!("{PREFIX}ConditionalCheckFailedException"),
                    "The conditional request failed",
                );
                match item {
                    Some(item) => error.with_field("Item", item.clone()),
                    None => error,
                }
            }
            DynamoError::Internal(_) => {
                ServiceError::internal(&format!("{PREFIX}InternalServerError"))
            }
        }
    }
}

/// DynamoDB's text for a table that does not exist (data-plane operations).
pub fn table_not_found() -> DynamoError {
    DynamoError::NotFound("Requested resource not found".into())
}
