//! What is being asked: the action, the resource, the caller and the request context.

use std::collections::BTreeMap;

/// One request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The action, `service:Name`, e.g. `kinesis:PutRecord`. Matched without regard to case.
    pub action: &'a str,
    /// The resource ARN, or `*` for actions that name no resource (`kinesis:ListStreams`).
    pub resource: &'a str,
    /// The caller.
    pub principal: Principal<'a>,
    /// The condition keys of the request (`aws:SourceIp`, `aws:SecureTransport`, …).
    pub context: &'a ContextKeys,
}

/// The caller of a request.
///
/// Build one with a struct literal (`..Default::default()` fills the fields that do not apply),
/// or with [`Principal::service`] for a service principal.
/// A few global condition keys are taken from here rather than from the [`ContextKeys`], and
/// take precedence over them: `aws:username`, `aws:userid`, `aws:PrincipalAccount`,
/// `aws:PrincipalArn` and `aws:PrincipalServiceName`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The caller's ARN: `arn:aws:iam::A:user/U`, `arn:aws:iam::A:root`,
    /// `arn:aws:sts::A:assumed-role/R/S`; for a service principal, its name (see
    /// [`Principal::service`]).
    pub arn: &'a str,
    /// The caller's 12-digit account id. Empty for a service principal.
    pub account: &'a str,
    /// The IAM user name (`aws:username`); `None` for roles, sessions and root.
    pub username: Option<&'a str>,
    /// The unique id (`aws:userid`), e.g. `AIDA…` or `AROA…:session`.
    pub userid: Option<&'a str>,
    /// Whether the caller is the account's root user.
    pub is_root: bool,
    /// For an assumed-role session, the ARN of the role it came from
    /// (`arn:aws:iam::A:role/path/R`). A `Principal` naming that role matches the session, and
    /// `aws:PrincipalArn` is this role ARN, as in AWS.
    pub source_role_arn: Option<&'a str>,
}

impl<'a> Principal<'a> {
    /// An AWS service calling on its own behalf, by its service principal name
    /// (`firehose.amazonaws.com`): `arn` holds the name and `account` is empty.
    ///
    /// Such a caller matches only `"*"` and `{"Service": …}` principals, has no identity
    /// policies, and answers `aws:PrincipalServiceName`.
    pub fn service(name: &'a str) -> Principal<'a> {
        Principal {
            arn: name,
            ..Principal::default()
        }
    }

    /// The service principal name, when this caller is a service: its `arn` is not empty and
    /// not an ARN.
    pub fn service_name(&self) -> Option<&'a str> {
        (!self.arn.is_empty() && !self.arn.starts_with("arn:")).then_some(self.arn)
    }
}

/// The condition keys of a request, each with one or more values. Key names ignore case, as
/// IAM condition keys do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextKeys {
    /// Lowercased key name → values.
    values: BTreeMap<String, Vec<String>>,
}

impl ContextKeys {
    /// An empty context.
    pub fn new() -> Self {
        ContextKeys::default()
    }

    /// Sets `key` to the single value `value`, replacing any values it had.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_lowercase(), vec![value.into()]);
    }

    /// Sets `key` to `values` (a multi-valued key such as `aws:TagKeys`), replacing any values
    /// it had. An empty list is the same as a key that is absent.
    pub fn insert_many(&mut self, key: &str, values: Vec<String>) {
        self.values.insert(key.to_lowercase(), values);
    }

    /// Adds `value` to the values of `key`.
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .entry(key.to_lowercase())
            .or_default()
            .push(value.into());
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.values.remove(&key.to_lowercase());
    }

    /// The values of `key`, whatever its case.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values.get(&key.to_lowercase()).map(Vec::as_slice)
    }
}

/// The values of the condition key `key` in `request`: from the principal for the keys it
/// answers, else from the context. `None` when the key is absent or has no values.
pub(crate) fn key_values<'a>(request: &Request<'a>, key: &str) -> Option<Vec<&'a str>> {
    let key = key.to_lowercase();
    let principal = &request.principal;
    let service = principal.service_name();
    let from_principal = match key.as_str() {
        "aws:username" => principal.username,
        "aws:userid" => principal.userid,
        "aws:principalaccount" => non_empty(principal.account),
        "aws:principalarn" if service.is_none() => {
            principal.source_role_arn.or(non_empty(principal.arn))
        }
        "aws:principalservicename" => service,
        _ => None,
    };
    if let Some(value) = from_principal {
        return Some(vec![value]);
    }
    let values = request.context.values.get(&key)?;
    if values.is_empty() {
        return None;
    }
    Some(values.iter().map(String::as_str).collect())
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}
