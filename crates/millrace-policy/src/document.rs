//! Policy documents: parsing and checking the JSON, and matching statements against requests.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::condition::{parse_conditions, Condition};
use crate::error::PolicyError;
use crate::principal::PrincipalSet;
use crate::request::Request;
use crate::variables::Template;
use crate::wildcard::{self, arn_matches, ActionPattern, ARN_PREFIX_FIELDS};

/// The policy language version (`Version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// `2012-10-17`, the current version: policy variables are replaced.
    V2012_10_17,
    /// `2008-10-17`, also what a document without `Version` gets: `${…}` is literal text.
    V2008_10_17,
}

/// The effect a statement has when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementEffect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// A parsed, checked policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    version: PolicyVersion,
    id: Option<String>,
    statements: Vec<Statement>,
}

/// One statement of a [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    sid: Option<String>,
    effect: StatementEffect,
    principal: Option<Negatable<PrincipalSet>>,
    action: Negatable<Vec<ActionPattern>>,
    /// `None` when the document names no resource (trust policies): any resource.
    resource: Option<Negatable<Vec<Template>>>,
    conditions: Vec<Condition>,
}

/// An element and its `Not…` twin: `Action`/`NotAction` and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Negatable<T> {
    negated: bool,
    value: T,
}

/// What kind of document is being parsed, which decides the rules on `Principal` and `Resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No rule on `Principal`; `Resource` required.
    Any,
    /// Identity-based policy: no `Principal`; `Resource` required; alphanumeric `Sid`.
    Identity,
    /// Resource-based policy: `Principal` required; `Resource` optional (absent: any resource),
    /// so that role trust policies, which have none, parse too.
    Resource,
    /// Role trust policy: `Principal` required, no `Resource`.
    Trust,
}

const POLICY_FIELDS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_FIELDS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Parses a policy document of any kind. `Principal` and `NotPrincipal` may be present or
    /// not; `Resource` or `NotResource` is required.
    ///
    /// Prefer [`Policy::parse_identity`] or [`Policy::parse_resource`], which also enforce the
    /// rules on principals of their kind of policy.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        parse(json, Kind::Any)
    }

    /// Parses an identity-based policy (attached to a user, group or role): no statement may
    /// name a `Principal` or `NotPrincipal`, and a `Sid` must be alphanumeric.
    pub fn parse_identity(json: &str) -> Result<Policy, PolicyError> {
        parse(json, Kind::Identity)
    }

    /// Parses a resource-based policy (such as a stream's resource policy): every statement
    /// must name a `Principal` or `NotPrincipal`.
    ///
    /// `Resource`/`NotResource` may be left out, and a statement without them applies to any
    /// resource, so a role trust policy parses here too. Use [`Policy::parse_trust`] to refuse
    /// `Resource` in a trust policy as IAM does, and [`Policy::names_every_resource`] to demand
    /// it in a stream policy.
    pub fn parse_resource(json: &str) -> Result<Policy, PolicyError> {
        parse(json, Kind::Resource)
    }

    /// Parses a role trust policy: every statement must name a `Principal` or `NotPrincipal`
    /// and none may name a `Resource`; its statements apply to any resource.
    pub fn parse_trust(json: &str) -> Result<Policy, PolicyError> {
        parse(json, Kind::Trust)
    }

    /// The policy language version.
    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Whether every statement has `Resource` or `NotResource`, which IAM requires of every
    /// policy but a trust policy.
    pub fn names_every_resource(&self) -> bool {
        self.statements.iter().all(|s| s.resource.is_some())
    }

    /// Whether the document's effect depends only on the principal, action and resource (no
    /// conditions, no variables taken from the request), so a decision may be cached.
    pub fn is_context_free(&self) -> bool {
        self.statements.iter().all(|s| {
            s.conditions.is_empty()
                && s.resource
                    .as_ref()
                    .is_none_or(|r| r.value.iter().all(|t| !t.depends_on_request()))
        })
    }

    /// Whether some statement names a `Principal` or `NotPrincipal`.
    pub fn has_principal(&self) -> bool {
        self.statements.iter().any(|s| s.principal.is_some())
    }

    /// The effect of this document alone on `request`: `Deny` if any applicable statement
    /// denies, else `Allow` if one allows. With `check_principal`, a statement applies only if
    /// its `Principal`/`NotPrincipal` matches the caller, and one without either never applies.
    pub(crate) fn effect_on(&self, request: &Request, check_principal: bool) -> crate::Effect {
        let mut allowed = false;
        for statement in &self.statements {
            if !statement.applies(request, check_principal) {
                continue;
            }
            match statement.effect {
                StatementEffect::Deny => return crate::Effect::Deny,
                StatementEffect::Allow => allowed = true,
            }
        }
        if allowed {
            crate::Effect::Allow
        } else {
            crate::Effect::NotApplicable
        }
    }
}

impl Statement {
    /// The `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> StatementEffect {
        self.effect
    }

    fn applies(&self, request: &Request, check_principal: bool) -> bool {
        if check_principal {
            let Some(principal) = &self.principal else {
                return false;
            };
            if principal.value.matches(&request.principal) == principal.negated {
                return false;
            }
        }
        let action_named = self
            .action
            .value
            .iter()
            .any(|pattern| pattern.matches(request.action));
        if action_named == self.action.negated {
            return false;
        }
        if let Some(resource) = &self.resource {
            let resource_named = resource.value.iter().any(|template| {
                template
                    .to_pattern(request)
                    .is_some_and(|pattern| arn_matches(&pattern, request.resource))
            });
            if resource_named == resource.negated {
                return false;
            }
        }
        self.conditions
            .iter()
            .all(|condition| condition.holds(request))
    }
}

fn parse(json: &str, kind: Kind) -> Result<Policy, PolicyError> {
    let document: Value =
        serde_json::from_str(json).map_err(|_| PolicyError::syntax("not valid JSON"))?;
    let Value::Object(document) = document else {
        return Err(PolicyError::syntax("document is not an object"));
    };
    check_fields(&document, POLICY_FIELDS)?;
    let version = match document.get("Version") {
        None => PolicyVersion::V2008_10_17,
        Some(Value::String(version)) => match version.as_str() {
            "2012-10-17" => PolicyVersion::V2012_10_17,
            "2008-10-17" => PolicyVersion::V2008_10_17,
            _ => return Err(PolicyError::UnsupportedVersion),
        },
        Some(_) => return Err(PolicyError::syntax("Version is not a string")),
    };
    let id = optional_string(&document, "Id")?;
    let statements = match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(statement @ Value::Object(_)) => vec![statement],
        Some(_) => return Err(PolicyError::syntax("Statement is not an object or array")),
        None => return Err(PolicyError::syntax("no Statement")),
    };
    let variables = version == PolicyVersion::V2012_10_17;
    let mut sids = HashSet::new();
    let mut parsed = Vec::with_capacity(statements.len());
    for statement in statements {
        let statement = parse_statement(statement, kind, variables)?;
        if let Some(sid) = statement.sid.as_deref().filter(|sid| !sid.is_empty()) {
            if !sids.insert(sid.to_owned()) {
                return Err(PolicyError::DuplicateSid);
            }
        }
        parsed.push(statement);
    }
    Ok(Policy {
        version,
        id,
        statements: parsed,
    })
}

fn check_fields(object: &Map<String, Value>, allowed: &[&str]) -> Result<(), PolicyError> {
    if object.keys().all(|key| allowed.contains(&key.as_str())) {
        Ok(())
    } else {
        Err(PolicyError::syntax("unknown element"))
    }
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, PolicyError> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(PolicyError::syntax("element is not a string")),
    }
}

/// Reads an element and its `Not…` twin, of which at most one may be present.
fn negatable<'v>(
    object: &'v Map<String, Value>,
    field: &str,
    not_field: &str,
) -> Result<Option<Negatable<&'v Value>>, PolicyError> {
    match (object.get(field), object.get(not_field)) {
        (Some(_), Some(_)) => Err(PolicyError::syntax("element given with its Not form")),
        (Some(value), None) => Ok(Some(Negatable {
            negated: false,
            value,
        })),
        (None, Some(value)) => Ok(Some(Negatable {
            negated: true,
            value,
        })),
        (None, None) => Ok(None),
    }
}

/// A string or a list of strings. An empty list gives an empty vector.
fn string_list(value: &Value) -> Result<Vec<&str>, PolicyError> {
    let not_strings = || PolicyError::syntax("element is not a string or a list of strings");
    match value {
        Value::String(text) => Ok(vec![text.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(not_strings))
            .collect(),
        _ => Err(not_strings()),
    }
}

fn parse_statement(value: &Value, kind: Kind, variables: bool) -> Result<Statement, PolicyError> {
    let Value::Object(object) = value else {
        return Err(PolicyError::syntax("statement is not an object"));
    };
    check_fields(object, STATEMENT_FIELDS)?;

    let sid = optional_string(object, "Sid")?;
    if kind == Kind::Identity {
        let alphanumeric = sid
            .as_deref()
            .is_none_or(|sid| sid.chars().all(|c| c.is_ascii_alphanumeric()));
        if !alphanumeric {
            return Err(PolicyError::InvalidSid);
        }
    }

    let effect = match object.get("Effect") {
        None => return Err(PolicyError::MissingEffect),
        Some(Value::String(effect)) if effect == "Allow" => StatementEffect::Allow,
        Some(Value::String(effect)) if effect == "Deny" => StatementEffect::Deny,
        Some(Value::String(effect)) => return Err(PolicyError::InvalidEffect(effect.clone())),
        Some(_) => return Err(PolicyError::syntax("Effect is not a string")),
    };

    let principal = match negatable(object, "Principal", "NotPrincipal")? {
        Some(_) if kind == Kind::Identity => return Err(PolicyError::PrincipalNotAllowed),
        None if matches!(kind, Kind::Resource | Kind::Trust) => {
            return Err(PolicyError::MissingPrincipal)
        }
        None => None,
        Some(element) => Some(Negatable {
            negated: element.negated,
            value: PrincipalSet::parse(element.value)?,
        }),
    };

    let action = negatable(object, "Action", "NotAction")?.ok_or(PolicyError::MissingActions)?;
    let action_patterns = string_list(action.value)?
        .into_iter()
        .map(parse_action)
        .collect::<Result<Vec<_>, _>>()?;
    if action_patterns.is_empty() {
        return Err(PolicyError::MissingActions);
    }

    let resource = match negatable(object, "Resource", "NotResource")? {
        Some(_) if kind == Kind::Trust => return Err(PolicyError::ResourceNotAllowed),
        None if matches!(kind, Kind::Trust | Kind::Resource) => None,
        None => return Err(PolicyError::MissingResources),
        Some(element) => {
            let templates = string_list(element.value)?
                .into_iter()
                .map(|resource| parse_resource(resource, variables))
                .collect::<Result<Vec<_>, _>>()?;
            if templates.is_empty() {
                return Err(PolicyError::MissingResources);
            }
            Some(Negatable {
                negated: element.negated,
                value: templates,
            })
        }
    };

    let conditions = match object.get("Condition") {
        None => Vec::new(),
        Some(condition) => parse_conditions(condition, variables)?,
    };

    Ok(Statement {
        sid,
        effect,
        principal,
        action: Negatable {
            negated: action.negated,
            value: action_patterns,
        },
        resource,
        conditions,
    })
}

fn parse_action(action: &str) -> Result<ActionPattern, PolicyError> {
    if action == "*" {
        return Ok(ActionPattern::Any);
    }
    let (service, name) = action.split_once(':').ok_or(PolicyError::MissingVendor)?;
    if service.is_empty() {
        return Err(PolicyError::MissingVendor);
    }
    if name.contains(':') {
        return Err(PolicyError::TooManyColons);
    }
    Ok(ActionPattern::Scoped {
        service: wildcard::compile(&service.to_lowercase()),
        name: wildcard::compile(&name.to_lowercase()),
    })
}

/// Checks that `resource` is `*` or has the six fields of an ARN, and reads its variables.
fn parse_resource(resource: &str, variables: bool) -> Result<Template, PolicyError> {
    let is_arn = resource.starts_with("arn:") && resource.matches(':').count() >= ARN_PREFIX_FIELDS;
    if resource != "*" && !is_arn {
        return Err(PolicyError::ResourceNotArn(resource.to_owned()));
    }
    Ok(Template::parse(resource, variables))
}
