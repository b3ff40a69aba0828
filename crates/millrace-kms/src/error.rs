//! The crate's error type: what went wrong with a key, in terms a caller can act on.

/// A failed KMS call. Messages of the key-state variants are the client-facing texts.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// `NotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// `DisabledException`.
    #[error("{0}")]
    Disabled(String),
    /// `KMSInvalidStateException` (pending deletion, or a state the operation cannot apply to).
    #[error("{0}")]
    InvalidState(String),
    /// `InvalidCiphertextException`.
    #[error("invalid ciphertext")]
    InvalidCiphertext,
    /// `IncorrectKeyException`: the ciphertext was sealed by another key than the one named.
    #[error("{0}")]
    IncorrectKey(String),
    /// `AlreadyExistsException`.
    #[error("{0}")]
    AlreadyExists(String),
    /// `ValidationException`.
    #[error("{0}")]
    Validation(String),
    /// `NotAuthorizedException` (changes to AWS managed keys and reserved aliases).
    #[error("{0}")]
    NotAuthorized(String),
    /// `TagException`.
    #[error("{0}")]
    Tag(String),
    /// `InvalidMarkerException`.
    #[error("{0}")]
    InvalidMarker(String),
    /// `MalformedPolicyDocumentException`.
    #[error("{0}")]
    MalformedPolicy(String),
    /// `UnsupportedOperationException`.
    #[error("{0}")]
    Unsupported(String),
    /// The root key is missing, wrong or cannot open stored material.
    #[error("master key: {0}")]
    RootKey(String),
    /// A storage or system failure; logged, not sent.
    #[error("internal failure: {0}")]
    Internal(String),
}

impl From<millrace_catalog::CatalogError> for KmsError {
    fn from(error: millrace_catalog::CatalogError) -> KmsError {
        KmsError::Internal(format!("{error:#}"))
    }
}
