//! The engine's error catalogue, mirroring the Kinesis error list.

/// A failed engine call. Every variant but `Internal` carries the message the client sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    ExpiredIterator(String),
    #[error("{0}")]
    ProvisionedThroughputExceeded(String),
    #[error("{0}")]
    ExpiredNextToken(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    /// The stream's KMS key is disabled.
    #[error("{0}")]
    KmsDisabled(String),
    /// The stream's KMS key is pending deletion.
    #[error("{0}")]
    KmsInvalidState(String),
    /// The stream's KMS key does not exist.
    #[error("{0}")]
    KmsNotFound(String),
    /// The caller may not use the stream's KMS key.
    #[error("{0}")]
    KmsAccessDenied(String),
    /// KMS refused for rate.
    #[error("{0}")]
    KmsThrottling(String),
    /// A failure of the server itself; the message is for the log, not the client.
    #[error("internal failure: {0}")]
    Internal(String),
}

impl From<millrace_log::LogError> for Error {
    fn from(error: millrace_log::LogError) -> Error {
        Error::Internal(format!("{error:#}"))
    }
}

impl From<millrace_catalog::CatalogError> for Error {
    fn from(error: millrace_catalog::CatalogError) -> Error {
        Error::Internal(format!("{error:#}"))
    }
}
