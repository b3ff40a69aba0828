//! The `Principal` and `NotPrincipal` elements: who a statement of a resource-based policy is
//! about.
//!
//! Matching rules, with the callers they match:
//! - `"*"`: everyone, service principals too.
//! - `{"AWS": "*"}`: every IAM caller (not service principals).
//! - `{"AWS": "123456789012"}` or `{"AWS": "arn:aws:iam::123456789012:root"}`: every caller of
//!   that account (root, users, roles, sessions), as in AWS.
//! - `{"AWS": "arn:aws:iam::A:user/U"}` and other IAM/STS ARNs: the caller with exactly that
//!   ARN. A role ARN also matches the sessions of that role (callers whose
//!   [`Principal::source_role_arn`](crate::Principal::source_role_arn) is that ARN). AWS itself
//!   translates a role ARN into the role's unique id and so matches its sessions; matching the
//!   session ARN (`arn:aws:sts::A:assumed-role/R/S`) is also supported.
//! - `{"Service": "firehose.amazonaws.com"}`: the service principal of that name.
//! - `{"Federated": …}` and `{"CanonicalUser": …}` are accepted but match no caller, since
//!   Millrace has neither web identity federation nor canonical users.
//!
//! `NotPrincipal` is the complement: the statement applies to every caller that none of its
//! entries matches, with the same matching rules (so listing an account exempts all of its
//! callers).

use serde_json::Value;

use crate::error::PolicyError;
use crate::request::Principal;

/// The entries of one `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalSet {
    entries: Vec<PrincipalEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalEntry {
    Everyone,
    AnyAws,
    Account(String),
    Arn(String),
    Service(String),
    Unsupported,
}

impl PrincipalSet {
    pub(crate) fn parse(value: &Value) -> Result<PrincipalSet, PolicyError> {
        let object = match value {
            Value::String(text) if text == "*" => {
                return Ok(PrincipalSet {
                    entries: vec![PrincipalEntry::Everyone],
                })
            }
            Value::String(text) => return Err(PolicyError::InvalidPrincipal(format!("{text:?}"))),
            Value::Object(object) if !object.is_empty() => object,
            _ => return Err(PolicyError::syntax("principal is not \"*\" or an object")),
        };
        let mut entries = Vec::new();
        for (kind, values) in object {
            for text in principal_values(values)? {
                entries.push(parse_entry(kind, text)?);
            }
        }
        Ok(PrincipalSet { entries })
    }

    /// Whether any entry names `principal`.
    pub(crate) fn matches(&self, principal: &Principal) -> bool {
        self.entries
            .iter()
            .any(|entry| entry_matches(entry, principal))
    }
}

fn principal_values(value: &Value) -> Result<Vec<&str>, PolicyError> {
    let not_strings = || PolicyError::syntax("principal values are not strings");
    match value {
        Value::String(text) => Ok(vec![text.as_str()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().ok_or_else(not_strings))
            .collect(),
        _ => Err(not_strings()),
    }
}

fn parse_entry(kind: &str, text: &str) -> Result<PrincipalEntry, PolicyError> {
    let invalid = || PolicyError::InvalidPrincipal(format!("{kind:?}:{text:?}"));
    match kind {
        "AWS" => parse_aws_entry(text).ok_or_else(invalid),
        "Service" if text == "*" || is_service_name(text) => {
            Ok(PrincipalEntry::Service(text.to_ascii_lowercase()))
        }
        "Service" => Err(invalid()),
        "Federated" | "CanonicalUser" if !text.is_empty() => Ok(PrincipalEntry::Unsupported),
        "Federated" | "CanonicalUser" => Err(invalid()),
        _ => Err(PolicyError::syntax("unknown principal type")),
    }
}

fn is_service_name(text: &str) -> bool {
    !text.is_empty()
        && text.contains('.')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.chars().all(|c| c.is_ascii_digit())
}

fn parse_aws_entry(text: &str) -> Option<PrincipalEntry> {
    if text == "*" {
        return Some(PrincipalEntry::AnyAws);
    }
    if is_account_id(text) {
        return Some(PrincipalEntry::Account(text.to_owned()));
    }
    let fields: Vec<&str> = text.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = fields.as_slice() else {
        return None;
    };
    let well_formed = *arn == "arn"
        && !partition.is_empty()
        && matches!(*service, "iam" | "sts")
        && region.is_empty()
        && is_account_id(account)
        && !resource.is_empty()
        && !resource.contains(['*', '?']);
    if !well_formed {
        return None;
    }
    if *service == "iam" && *resource == "root" {
        return Some(PrincipalEntry::Account((*account).to_owned()));
    }
    Some(PrincipalEntry::Arn(text.to_owned()))
}

fn entry_matches(entry: &PrincipalEntry, principal: &Principal) -> bool {
    let service = principal.service_name();
    let is_service = service.is_some();
    match entry {
        PrincipalEntry::Everyone => true,
        PrincipalEntry::AnyAws => !is_service,
        PrincipalEntry::Account(account) => !is_service && principal.account == account,
        PrincipalEntry::Arn(arn) => {
            !is_service && (principal.arn == arn || principal.source_role_arn == Some(arn))
        }
        PrincipalEntry::Service(name) => {
            service.is_some_and(|service| name == "*" || service.eq_ignore_ascii_case(name))
        }
        PrincipalEntry::Unsupported => false,
    }
}
