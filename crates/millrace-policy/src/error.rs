//! The one error type of this crate: why a policy document was refused.
//!
//! The `Display` text of each variant is the message IAM puts in its `MalformedPolicyDocument`
//! error, so the server can pass it through unchanged. These messages keep AWS's wording
//! (capitals, trailing periods), which is why they break the usual lowercase rule.

/// A policy document that IAM would refuse with `MalformedPolicyDocument`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not JSON, or its structure is not a policy (wrong types, unknown or
    /// conflicting elements). `reason` says what was wrong, for logs; it is not part of the
    /// message.
    #[error("Syntax errors in policy.")]
    Syntax {
        /// What was wrong, for logs and tests.
        reason: &'static str,
    },
    /// `Version` is neither `2012-10-17` nor `2008-10-17`.
    #[error("The policy failed legacy parsing")]
    UnsupportedVersion,
    /// An identity policy names a `Principal` or `NotPrincipal`.
    #[error("Policy document should not specify a principal.")]
    PrincipalNotAllowed,
    /// A resource-based (or trust) policy statement names no `Principal` or `NotPrincipal`.
    #[error("Missing required field Principal")]
    MissingPrincipal,
    /// A principal that is neither `*`, an account id, an IAM/STS ARN nor a service name.
    /// Holds the offending entry as AWS prints it, e.g. `"AWS":"alice"`.
    #[error("Invalid principal in policy: {0}")]
    InvalidPrincipal(String),
    /// A statement without `Effect`.
    #[error("Missing required field Effect")]
    MissingEffect,
    /// An `Effect` other than `Allow` or `Deny`.
    #[error("Invalid effect: {0}")]
    InvalidEffect(String),
    /// A statement without `Action` or `NotAction`, or with an empty list.
    #[error("Policy statement must contain actions.")]
    MissingActions,
    /// A statement without `Resource` or `NotResource` (where one is required), or with an
    /// empty list.
    #[error("Policy statement must contain resources.")]
    MissingResources,
    /// A trust policy statement with `Resource` or `NotResource`.
    #[error("Has prohibited field Resource")]
    ResourceNotAllowed,
    /// A resource that is neither `*` nor shaped like an ARN.
    #[error("Resource {0} must be in ARN format or \"*\".")]
    ResourceNotArn(String),
    /// An action or condition key without a `service:` prefix.
    #[error("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")]
    MissingVendor,
    /// An action or condition key with more than one `:`.
    #[error("Actions/Condition can contain only one colon.")]
    TooManyColons,
    /// A `Sid` with characters other than ASCII letters and digits (identity policies only).
    #[error(
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"
    )]
    InvalidSid,
    /// Two statements with the same `Sid`.
    #[error("Statement IDs (SID) in a single policy must be unique.")]
    DuplicateSid,
    /// An unknown condition operator (or a qualifier or `IfExists` where none may go).
    #[error("Invalid Condition type : {0}.")]
    InvalidConditionOperator(String),
}

impl PolicyError {
    pub(crate) fn syntax(reason: &'static str) -> PolicyError {
        PolicyError::Syntax { reason }
    }
}
