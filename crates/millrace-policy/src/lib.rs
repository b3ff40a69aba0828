//! AWS IAM policy documents: parsing, checking and evaluation, following AWS's documented
//! policy evaluation logic. Pure: no IO, no clock (pass `aws:CurrentTime` in the context).
//!
//! - [`Policy::parse_identity`], [`Policy::parse_resource`] (and [`Policy::parse`],
//!   [`Policy::parse_trust`]) read a document, refusing what IAM refuses with
//!   `MalformedPolicyDocument`; the [`PolicyError`] message is IAM's.
//! - [`evaluate`] gives the effect of a set of identity policies on a [`Request`],
//!   [`evaluate_resource_policy`] that of a resource-based policy, and [`authorize`] combines
//!   both into a [`Decision`] the way AWS does within one account and across accounts.
//!
//! Matching, in short (details on the items that do it):
//! - actions ignore case, resources do not; both take `*` and `?` wildcards, and in ARNs the
//!   first five `:`-separated fields are matched one by one;
//! - `NotAction`, `NotResource` and `NotPrincipal` apply a statement to everything they do not
//!   name;
//! - policy variables (`${aws:username}`, `${key, 'default'}`, `${*}`…) in `Resource` and in
//!   string and ARN condition values, for `"Version": "2012-10-17"` only;
//! - conditions as described in the `condition` module: AND across operators and keys, OR across
//!   the values of one key, `…IfExists`, `ForAnyValue:`/`ForAllValues:`, `Null`.
//!
//! ```
//! use millrace_policy::{authorize, ContextKeys, Decision, Policy, Principal, Request};
//!
//! let policy = Policy::parse_identity(
//!     r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
//!         "Action": "kinesis:Put*", "Resource": "arn:aws:kinesis:*:*:stream/${aws:username}-*"}}"#,
//! )?;
//! let mut context = ContextKeys::new();
//! context.insert("aws:SecureTransport", "true");
//! let request = Request {
//!     action: "kinesis:PutRecord",
//!     resource: "arn:aws:kinesis:us-east-1:111122223333:stream/alice-events",
//!     principal: Principal {
//!         arn: "arn:aws:iam::111122223333:user/alice",
//!         account: "111122223333",
//!         username: Some("alice"),
//!         ..Default::default()
//!     },
//!     context: &context,
//! };
//! assert_eq!(authorize(&[&policy], None, &request, "111122223333"), Decision::Allow);
//! # Ok::<(), millrace_policy::PolicyError>(())
//! ```
#![deny(clippy::unwrap_used)]

mod condition;
mod document;
mod error;
mod principal;
mod request;
mod typed_values;
mod variables;
mod wildcard;

#[cfg(test)]
mod tests;

pub use document::{Policy, PolicyVersion, Statement, StatementEffect};
pub use error::PolicyError;
pub use request::{ContextKeys, Principal, Request};

/// The outcome of one set of policies for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Some applicable statement allows and none denies.
    Allow,
    /// Some applicable statement denies (an explicit deny).
    Deny,
    /// No statement applies (an implicit deny).
    NotApplicable,
}

/// The effect of identity-based policies (those attached to the caller) on `request`.
///
/// A statement applies when its action, resource and conditions match; `Principal` and
/// `NotPrincipal`, if a document has them, are ignored. Any applicable `Deny` wins over every
/// `Allow`.
pub fn evaluate(policies: &[&Policy], request: &Request) -> Effect {
    let mut allowed = false;
    for policy in policies {
        match policy.effect_on(request, false) {
            Effect::Deny => return Effect::Deny,
            Effect::Allow => allowed = true,
            Effect::NotApplicable => {}
        }
    }
    if allowed {
        Effect::Allow
    } else {
        Effect::NotApplicable
    }
}

/// The effect of a resource-based policy on `request`.
///
/// A statement applies only when, besides its action, resource and conditions, its `Principal`
/// names the caller (or its `NotPrincipal` does not); a statement with neither never applies.
pub fn evaluate_resource_policy(policy: &Policy, request: &Request) -> Effect {
    policy.effect_on(request, true)
}

/// The final answer for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// An identity-based policy denies it explicitly.
    ExplicitDenyIdentity,
    /// The resource-based policy denies it explicitly.
    ExplicitDenyResource,
    /// No identity-based policy allows it, and the resource policy does not either (same
    /// account) or does (cross-account, where that is not enough).
    NoIdentityAllow,
    /// Cross-account: the identity-based policies allow it, but there is no resource policy or
    /// it does not allow the caller. Also a service principal the resource policy does not
    /// allow.
    NoResourceAllow,
    /// Cross-account: neither the identity-based policies nor the resource policy allow it.
    NoAllow,
}

/// Decides `request` against the caller's identity-based policies and the resource's policy,
/// as AWS does:
///
/// 1. An explicit `Deny` in any of them denies (identity policies are looked at first).
/// 2. Same account (`request.principal.account == resource_account`): allowed when the
///    identity policies **or** the resource policy allow.
/// 3. Another account: allowed only when the identity policies **and** the resource policy
///    allow.
///
/// The root user needs no identity policy: its identity side always allows (in AWS the root
/// user has every permission its account can grant). It is still bound by an explicit `Deny`
/// in the resource policy (and in any identity policy passed for it), and across accounts it
/// still needs the resource policy to allow it.
///
/// A service principal ([`Principal::service`]) has no identity policies; only the resource
/// policy decides: `Allow`, `ExplicitDenyResource` or `NoResourceAllow`.
pub fn authorize(
    identity: &[&Policy],
    resource_policy: Option<&Policy>,
    request: &Request,
    resource_account: &str,
) -> Decision {
    let identity_effect = evaluate(identity, request);
    let resource_effect = resource_policy.map_or(Effect::NotApplicable, |p| {
        evaluate_resource_policy(p, request)
    });
    if identity_effect == Effect::Deny {
        return Decision::ExplicitDenyIdentity;
    }
    if resource_effect == Effect::Deny {
        return Decision::ExplicitDenyResource;
    }
    let resource_allows = resource_effect == Effect::Allow;
    if request.principal.service_name().is_some() {
        return if resource_allows {
            Decision::Allow
        } else {
            Decision::NoResourceAllow
        };
    }
    let identity_allows = identity_effect == Effect::Allow || request.principal.is_root;
    let same_account = request.principal.account == resource_account;
    match (same_account, identity_allows, resource_allows) {
        (true, true, _) | (true, _, true) => Decision::Allow,
        (true, false, false) => Decision::NoIdentityAllow,
        (false, true, true) => Decision::Allow,
        (false, true, false) => Decision::NoResourceAllow,
        (false, false, true) => Decision::NoIdentityAllow,
        (false, false, false) => Decision::NoAllow,
    }
}
