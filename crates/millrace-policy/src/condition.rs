//! The `Condition` element: `{ operator: { key: value or [values] } }`.
//!
//! Evaluation follows the IAM documentation:
//! - a statement's conditions are AND'ed, across operators and across keys of one operator;
//!   the values listed for one key are OR'ed;
//! - a key that is absent from the request makes the condition false, except that a negated
//!   operator (`StringNotEquals`, `StringNotLike`, `NumericNotEquals`, `DateNotEquals`,
//!   `ArnNotEquals`, `ArnNotLike`, `NotIpAddress`, …) is then true, and an `…IfExists`
//!   operator is then true;
//! - without a set qualifier, a negated operator is the negation of its positive form, so for a
//!   key with several values `StringNotEquals` holds when no request value equals any policy
//!   value;
//! - `ForAnyValue:` holds when at least one request value satisfies the operator, and is false
//!   for an absent key; `ForAllValues:` holds when every request value does, and is true for an
//!   absent key (or one with no values);
//! - `Null` holds with `true` when the key is absent and with `false` when it is present.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::PolicyError;
use crate::request::{key_values, Request};
use crate::typed_values::{decode_base64, parse_date_millis, parse_number, IpNetwork};
use crate::variables::Template;
use crate::wildcard::{arn_matches, glob_str, Token};

/// One operator applied to one key, with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    test: Test,
    /// The `Not` forms: the negation of `test`.
    negated: bool,
    if_exists: bool,
    qualifier: Option<SetQualifier>,
    key: String,
    values: Vec<Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

/// The positive comparison behind an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Comparison),
    Date(Comparison),
    Bool,
    BinaryEquals,
    IpAddress,
    /// `ArnEquals` and `ArnLike`, which IAM evaluates alike.
    ArnLike,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl Comparison {
    fn holds<T: PartialOrd>(self, request_value: T, policy_value: T) -> bool {
        match self {
            Comparison::Equals => request_value == policy_value,
            Comparison::LessThan => request_value < policy_value,
            Comparison::LessThanEquals => request_value <= policy_value,
            Comparison::GreaterThan => request_value > policy_value,
            Comparison::GreaterThanEquals => request_value >= policy_value,
        }
    }
}

/// Operator names (without qualifier or `IfExists`) → test and whether it is negated.
const OPERATORS: &[(&str, Test, bool)] = &[
    ("StringEquals", Test::StringEquals, false),
    ("StringNotEquals", Test::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        Test::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Test::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", Test::StringLike, false),
    ("StringNotLike", Test::StringLike, true),
    ("NumericEquals", Test::Numeric(Comparison::Equals), false),
    ("NumericNotEquals", Test::Numeric(Comparison::Equals), true),
    (
        "NumericLessThan",
        Test::Numeric(Comparison::LessThan),
        false,
    ),
    (
        "NumericLessThanEquals",
        Test::Numeric(Comparison::LessThanEquals),
        false,
    ),
    (
        "NumericGreaterThan",
        Test::Numeric(Comparison::GreaterThan),
        false,
    ),
    (
        "NumericGreaterThanEquals",
        Test::Numeric(Comparison::GreaterThanEquals),
        false,
    ),
    ("DateEquals", Test::Date(Comparison::Equals), false),
    ("DateNotEquals", Test::Date(Comparison::Equals), true),
    ("DateLessThan", Test::Date(Comparison::LessThan), false),
    (
        "DateLessThanEquals",
        Test::Date(Comparison::LessThanEquals),
        false,
    ),
    (
        "DateGreaterThan",
        Test::Date(Comparison::GreaterThan),
        false,
    ),
    (
        "DateGreaterThanEquals",
        Test::Date(Comparison::GreaterThanEquals),
        false,
    ),
    ("Bool", Test::Bool, false),
    ("BinaryEquals", Test::BinaryEquals, false),
    ("IpAddress", Test::IpAddress, false),
    ("NotIpAddress", Test::IpAddress, true),
    ("ArnEquals", Test::ArnLike, false),
    ("ArnLike", Test::ArnLike, false),
    ("ArnNotEquals", Test::ArnLike, true),
    ("ArnNotLike", Test::ArnLike, true),
    ("Null", Test::Null, false),
];

/// Parses a whole `Condition` element into its conditions.
pub(crate) fn parse_conditions(
    value: &Value,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = value else {
        return Err(PolicyError::syntax("condition is not an object"));
    };
    let mut conditions = Vec::new();
    for (operator, keys) in operators {
        let (test, negated, if_exists, qualifier) = parse_operator(operator)?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::syntax(
                "condition operator does not hold an object",
            ));
        };
        parse_keys(keys, variables, |key, values| {
            conditions.push(Condition {
                test,
                negated,
                if_exists,
                qualifier,
                key,
                values,
            });
        })?;
    }
    Ok(conditions)
}

fn parse_keys(
    keys: &Map<String, Value>,
    variables: bool,
    mut add: impl FnMut(String, Vec<Template>),
) -> Result<(), PolicyError> {
    for (key, values) in keys {
        let Some((vendor, _)) = key.split_once(':') else {
            return Err(PolicyError::MissingVendor);
        };
        if vendor.is_empty() {
            return Err(PolicyError::MissingVendor);
        }
        let values = match values {
            Value::Array(items) => items
                .iter()
                .map(scalar_text)
                .collect::<Result<Vec<_>, _>>()?,
            scalar => vec![scalar_text(scalar)?],
        };
        let values = values
            .iter()
            .map(|text| Template::parse(text, variables))
            .collect();
        add(key.to_lowercase(), values);
    }
    Ok(())
}

/// A condition value as text: strings as they are, numbers and booleans as written.
fn scalar_text(value: &Value) -> Result<String, PolicyError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(PolicyError::syntax(
            "condition value is not a string, number or boolean",
        )),
    }
}

fn parse_operator(name: &str) -> Result<(Test, bool, bool, Option<SetQualifier>), PolicyError> {
    let invalid = || PolicyError::InvalidConditionOperator(name.to_owned());
    let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Some(SetQualifier::ForAnyValue), rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Some(SetQualifier::ForAllValues), rest)
    } else {
        (None, name)
    };
    let (if_exists, base) = match rest.strip_suffix("IfExists") {
        Some(base) => (true, base),
        None => (false, rest),
    };
    let &(_, test, negated) = OPERATORS
        .iter()
        .find(|(operator, _, _)| *operator == base)
        .ok_or_else(invalid)?;
    if test == Test::Null && (if_exists || qualifier.is_some()) {
        return Err(invalid());
    }
    Ok((test, negated, if_exists, qualifier))
}

/// A policy value made ready to compare, once per evaluation.
enum Prepared {
    Text(String),
    Pattern(Vec<Token>),
    Number(f64),
    Date(i64),
    Network(IpNetwork),
    Binary(Vec<u8>, String),
}

impl Condition {
    /// Whether this condition holds for `request`.
    pub(crate) fn holds(&self, request: &Request) -> bool {
        let request_values = key_values(request, &self.key);
        if self.test == Test::Null {
            let present = request_values.is_some();
            return self.values.iter().any(|value| {
                match value.raw().to_ascii_lowercase().as_str() {
                    "true" => !present,
                    "false" => present,
                    _ => false,
                }
            });
        }
        let Some(request_values) = request_values else {
            if self.if_exists {
                return true;
            }
            return match self.qualifier {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => self.negated,
            };
        };
        let prepared: Vec<Prepared> = self
            .values
            .iter()
            .filter_map(|value| self.prepare(value, request))
            .collect();
        let satisfies = |request_value: &&str| {
            let matches_any = prepared
                .iter()
                .any(|policy_value| self.compare(request_value, policy_value));
            matches_any != self.negated
        };
        match self.qualifier {
            Some(SetQualifier::ForAnyValue) => request_values.iter().any(satisfies),
            Some(SetQualifier::ForAllValues) => request_values.iter().all(satisfies),
            None => {
                let matches_any = request_values.iter().any(|request_value| {
                    prepared
                        .iter()
                        .any(|policy_value| self.compare(request_value, policy_value))
                });
                matches_any != self.negated
            }
        }
    }

    /// Reads a policy value for this condition's test, replacing variables for the string and
    /// ARN tests. `None` for a value that can never match (unparsable, or an unresolved
    /// variable).
    fn prepare(&self, value: &Template, request: &Request) -> Option<Prepared> {
        let raw = value.raw();
        Some(match self.test {
            Test::StringEquals => Prepared::Text(value.to_text(request)?),
            Test::StringEqualsIgnoreCase => Prepared::Text(value.to_text(request)?.to_lowercase()),
            Test::StringLike | Test::ArnLike => Prepared::Pattern(value.to_pattern(request)?),
            Test::Bool => Prepared::Text(raw.to_ascii_lowercase()),
            Test::Numeric(_) => Prepared::Number(parse_number(raw)?),
            Test::Date(_) => Prepared::Date(parse_date_millis(raw)?),
            Test::IpAddress => Prepared::Network(IpNetwork::parse(raw)?),
            Test::BinaryEquals => Prepared::Binary(decode_base64(raw)?, raw.to_owned()),
            Test::Null => return None,
        })
    }

    /// The positive comparison of one request value with one policy value.
    fn compare(&self, request_value: &str, policy_value: &Prepared) -> bool {
        match (self.test, policy_value) {
            (Test::StringEquals, Prepared::Text(text)) => request_value == text,
            (Test::StringEqualsIgnoreCase, Prepared::Text(text)) => {
                request_value.to_lowercase() == *text
            }
            (Test::StringLike, Prepared::Pattern(pattern)) => glob_str(pattern, request_value),
            (Test::ArnLike, Prepared::Pattern(pattern)) => arn_matches(pattern, request_value),
            (Test::Bool, Prepared::Text(text)) => request_value.eq_ignore_ascii_case(text),
            (Test::Numeric(comparison), Prepared::Number(number)) => {
                parse_number(request_value).is_some_and(|value| comparison.holds(value, *number))
            }
            (Test::Date(comparison), Prepared::Date(millis)) => parse_date_millis(request_value)
                .is_some_and(|value| comparison.holds(value, *millis)),
            (Test::IpAddress, Prepared::Network(network)) => request_value
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|address| network.contains(address)),
            (Test::BinaryEquals, Prepared::Binary(bytes, raw)) => {
                match decode_base64(request_value) {
                    Some(request_bytes) => request_bytes == *bytes,
                    None => request_value == raw,
                }
            }
            _ => false,
        }
    }
}
