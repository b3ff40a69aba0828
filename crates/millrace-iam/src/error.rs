//! Errors of the IAM and STS operations, with the code and HTTP status the models give them.

/// An error as IAM or STS report it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IamError {
    /// The awsQuery error code (`NoSuchEntity`, `AccessDenied`, ...).
    pub code: &'static str,
    pub status: u16,
    pub message: String,
    /// Server-side failure (`Receiver` in the XML error), not the caller's.
    pub server_fault: bool,
}

impl IamError {
    fn sender(code: &'static str, status: u16, message: impl Into<String>) -> IamError {
        IamError {
            code,
            status,
            message: message.into(),
            server_fault: false,
        }
    }

    pub fn no_such_entity(message: impl Into<String>) -> IamError {
        IamError::sender("NoSuchEntity", 404, message)
    }

    pub fn already_exists(message: impl Into<String>) -> IamError {
        IamError::sender("EntityAlreadyExists", 409, message)
    }

    pub fn delete_conflict(message: impl Into<String>) -> IamError {
        IamError::sender("DeleteConflict", 409, message)
    }

    pub fn limit_exceeded(message: impl Into<String>) -> IamError {
        IamError::sender("LimitExceeded", 409, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> IamError {
        IamError::sender("InvalidInput", 400, message)
    }

    pub fn malformed_policy(message: impl Into<String>) -> IamError {
        IamError::sender("MalformedPolicyDocument", 400, message)
    }

    pub fn validation(message: impl Into<String>) -> IamError {
        IamError::sender("ValidationError", 400, message)
    }

    pub fn access_denied(message: impl Into<String>) -> IamError {
        IamError::sender("AccessDenied", 403, message)
    }

    pub fn internal(detail: String) -> IamError {
        tracing::error!(%detail, "identity store failed");
        IamError {
            code: "ServiceFailure",
            status: 500,
            message: "An internal error occurred.".into(),
            server_fault: true,
        }
    }

    pub(crate) fn storage(error: millrace_catalog::CatalogError) -> IamError {
        IamError::internal(format!("{error:#}"))
    }
}
