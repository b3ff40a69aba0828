//! The service's errors, with its messages.

use millrace_service::ServiceError;

pub fn invalid_argument(message: impl Into<String>) -> ServiceError {
    ServiceError::client("InvalidArgumentException", message)
}

pub fn not_found(name: &str, account: &str) -> ServiceError {
    ServiceError::client(
        "ResourceNotFoundException",
        format!("Firehose {name} under account {account} not found."),
    )
}

pub fn in_use(message: impl Into<String>) -> ServiceError {
    ServiceError::client("ResourceInUseException", message)
}

/// A storage failure: logged with its detail, reported without it.
pub fn internal(detail: impl std::fmt::Display) -> ServiceError {
    tracing::error!(%detail, "firehose storage failure");
    ServiceError::internal("ServiceUnavailableException").with_status(503)
}
