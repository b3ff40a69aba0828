//! awsQuery requests (IAM, STS): an `application/x-www-form-urlencoded` body with `Action`,
//! `Version` and the operation's parameters, turned into the JSON document of the operation's
//! input shape and checked by the same validator as the JSON services.
//!
//! Parameter names follow the model: a structure member is `Prefix.Member`, a list item
//! `List.member.N` (flattened lists: `List.N`; the list member's `locationName` replaces
//! `member`), a map entry `Map.entry.N.key` / `Map.entry.N.value` (flattened: `Map.N.key`).
//! Items are ordered by `N`, which need not be contiguous. `List=` with an empty value is the
//! empty list (botocore sends that for `[]`).
//!
//! Values become JSON types by their shape: strings and blobs (base64, checked by the validator)
//! stay strings; integers and longs must be decimal integers (an `integer` within 32 bits);
//! floats and doubles decimal numbers; booleans `true` or `false` (any case); timestamps ISO-8601
//! date-times (or a number of epoch seconds), given to the handlers as epoch seconds, as in the
//! JSON protocol.
//!
//! Decisions where the service's behaviour is not recorded (the texts are ours):
//! - no `Action` → `MissingAction`, `Missing Action` (AWS's list of common query errors has the
//!   code; the message is a guess);
//! - an `Action` the model does not have, or a `Version` other than the model's →
//!   `InvalidAction`, `Could not find operation X for version V` (as AWS answers query services);
//!   a missing `Version` is accepted, since one version is served;
//! - a percent sign not followed by two hex digits, a body that is not UTF-8 once decoded, or a
//!   value that does not convert to its shape's type → `MalformedQueryString` (status 404, as
//!   AWS's list of common errors gives it), e.g. `Value abc for parameter DurationSeconds is not
//!   a valid integer`;
//! - a blob that is not valid base64 → `MalformedQueryString` with the validator's Coral text
//!   (`'x' can not be converted to a Blob: ...`);
//! - model constraints, including missing required members → `ValidationError` with the exact
//!   `1 validation error detected: Value ... at 'roleArn' failed to satisfy constraint: ...`
//!   text IAM and STS send (member paths in lowerCamel, list items as `tags.1.member.key`);
//! - parameters the model does not know are ignored, as are values given to a structure, list or
//!   map name itself; when a name occurs twice the first value wins.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::model::{Member, Operation, ServiceModel, Shape, ShapeKind};
use crate::timestamp;
use crate::validate::{validate_input_for, InputError};
use crate::xml::ErrorKind;

/// Structures, lists and maps nest at most this deep; deeper parameters are ignored (the models
/// are not recursive this deep, and the bound keeps recursive shapes from exhausting the stack).
pub const MAX_DEPTH: usize = 32;

/// Why an awsQuery request was rejected before the operation ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// 400 `MissingAction`: the body has no `Action` parameter.
    #[error("request has no action")]
    MissingAction,
    /// 400 `InvalidAction`: the model has no such operation (in that version).
    #[error("request names an unknown action: {message}")]
    InvalidAction { message: String },
    /// 404 `MalformedQueryString`: the body does not decode, or a value does not convert to its
    /// shape's type.
    #[error("request body is malformed: {message}")]
    MalformedQueryString { message: String },
    /// 400 `ValidationError` with the full `1 validation error detected: ...` text.
    #[error("request fails model constraints: {message}")]
    Validation { message: String },
}

impl QueryError {
    /// The code for `Error/Code`.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::MissingAction => "MissingAction",
            QueryError::InvalidAction { .. } => "InvalidAction",
            QueryError::MalformedQueryString { .. } => "MalformedQueryString",
            QueryError::Validation { .. } => "ValidationError",
        }
    }

    /// The text for `Error/Message`.
    pub fn message(&self) -> &str {
        match self {
            QueryError::MissingAction => "Missing Action",
            QueryError::InvalidAction { message }
            | QueryError::MalformedQueryString { message }
            | QueryError::Validation { message } => message,
        }
    }

    /// The HTTP status of the reply.
    pub fn http_status(&self) -> u16 {
        match self {
            QueryError::MalformedQueryString { .. } => 404,
            _ => 400,
        }
    }

    /// Whose fault it is, for `Error/Type`: always the client's.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Sender
    }
}

/// Decodes an awsQuery request body for `model`: finds the operation named by `Action`, builds
/// the JSON document of its input shape and validates it against the model.
pub fn decode_request(
    model: &'static ServiceModel,
    body: &[u8],
) -> Result<(&'static Operation, Value), QueryError> {
    let pairs = parse_form(body)?;
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in pairs {
        parameters.entry(name).or_insert(value);
    }
    let Some(action) = parameters.get("Action") else {
        return Err(QueryError::MissingAction);
    };
    let version = parameters.get("Version");
    let operation = model
        .operation(action)
        .filter(|_| version.is_none_or(|version| version == model.api_version))
        .ok_or_else(|| QueryError::InvalidAction {
            message: format!(
                "Could not find operation {action} for version {}",
                version.map_or(model.api_version, String::as_str)
            ),
        })?;

    let document = match operation.input.and_then(|index| model.shape(index)) {
        Some(Shape {
            kind: ShapeKind::Structure(members),
            ..
        }) => {
            let decoder = Decoder {
                model,
                parameters: &parameters,
            };
            Value::Object(decoder.members(members, "", 0)?)
        }
        _ => Value::Object(Map::new()),
    };
    validate_input_for(model, operation.name, &document).map_err(|err| match err {
        InputError::Validation { message } => QueryError::Validation { message },
        InputError::Serialization { message } => QueryError::MalformedQueryString {
            message: message.unwrap_or_else(|| "Malformed query string".to_owned()),
        },
    })?;
    Ok((operation, document))
}

/// The decoded value of the first `Action` parameter of a form-encoded body, if it has one: a
/// cheap look for dispatch, without decoding anything else.
pub fn action_of(body: &[u8]) -> Option<String> {
    body.split(|&byte| byte == b'&').find_map(|pair| {
        let (name, value) = split_pair(pair);
        if percent_decode(name).ok()? != "Action" {
            return None;
        }
        percent_decode(value).ok()
    })
}

/// The name and value of each `name=value` pair, percent-decoded with `+` as space, in body order.
/// Empty pairs (`a=1&&b=2`) are skipped; a pair without `=` has an empty value.
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs = Vec::new();
    for pair in body.split(|&byte| byte == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = split_pair(pair);
        pairs.push((percent_decode(name)?, percent_decode(value)?));
    }
    Ok(pairs)
}

fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|&byte| byte == b'=') {
        Some(at) => (&pair[..at], &pair[at + 1..]),
        None => (pair, &[]),
    }
}

fn percent_decode(encoded: &[u8]) -> Result<String, QueryError> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let escape = rest
                    .get(..2)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .filter(|hex| hex.bytes().all(|digit| digit.is_ascii_hexdigit()))
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                let Some(decoded) = escape else {
                    return Err(QueryError::MalformedQueryString {
                        message: "Invalid percent-encoding in the query string".to_owned(),
                    });
                };
                bytes.push(decoded);
                rest = &rest[2..];
            }
            _ => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).map_err(|_| QueryError::MalformedQueryString {
        message: "The query string is not valid UTF-8".to_owned(),
    })
}

/// Builds JSON values from the flat parameter map, guided by shapes.
struct Decoder<'p> {
    model: &'static ServiceModel,
    parameters: &'p BTreeMap<String, String>,
}

impl Decoder<'_> {
    /// The members of a structure whose parameters start with `prefix` (empty or ending in `.`).
    fn members(
        &self,
        members: &[Member],
        prefix: &str,
        depth: usize,
    ) -> Result<Map<String, Value>, QueryError> {
        let mut fields = Map::new();
        for member in members {
            let Some(shape) = self.model.shape(member.shape) else {
                continue;
            };
            let name = format!("{prefix}{}", member.name);
            if let Some(value) = self.value(shape, &name, member.name, depth)? {
                fields.insert(member.name.to_owned(), value);
            }
        }
        Ok(fields)
    }

    /// The value of shape `shape` named `name` (the full parameter name, without a trailing
    /// dot), or `None` if the body has none. `label` names it in error messages.
    fn value(
        &self,
        shape: &Shape,
        name: &str,
        label: &str,
        depth: usize,
    ) -> Result<Option<Value>, QueryError> {
        if depth >= MAX_DEPTH {
            return Ok(None);
        }
        match shape.kind {
            ShapeKind::Structure(members) => {
                let prefix = format!("{name}.");
                if !self.has_prefix(&prefix) {
                    return Ok(None);
                }
                Ok(Some(Value::Object(self.members(
                    members,
                    &prefix,
                    depth + 1,
                )?)))
            }
            ShapeKind::List(item) => {
                let Some(item_shape) = self.model.shape(item) else {
                    return Ok(None);
                };
                let prefix = if shape.flattened {
                    format!("{name}.")
                } else {
                    format!("{name}.{}.", shape.member_name.unwrap_or("member"))
                };
                let indices = self.indices(&prefix);
                if indices.is_empty() {
                    let empty = self.parameters.get(name).is_some_and(String::is_empty);
                    return Ok(empty.then(|| Value::Array(Vec::new())));
                }
                let mut items = Vec::with_capacity(indices.len());
                for segment in indices.values() {
                    let item_name = format!("{prefix}{segment}");
                    if let Some(value) = self.value(item_shape, &item_name, label, depth + 1)? {
                        items.push(value);
                    }
                }
                Ok(Some(Value::Array(items)))
            }
            ShapeKind::Map { key, value } => {
                let (Some(key_shape), Some(value_shape)) =
                    (self.model.shape(key), self.model.shape(value))
                else {
                    return Ok(None);
                };
                let prefix = if shape.flattened {
                    format!("{name}.")
                } else {
                    format!("{name}.entry.")
                };
                let indices = self.indices(&prefix);
                if indices.is_empty() {
                    let empty = self.parameters.get(name).is_some_and(String::is_empty);
                    return Ok(empty.then(|| Value::Object(Map::new())));
                }
                let (key_name, value_name) = shape.entry_names.unwrap_or(("key", "value"));
                let mut entries = Map::new();
                for segment in indices.values() {
                    let entry_key = format!("{prefix}{segment}.{key_name}");
                    let Some(Value::String(entry_name)) =
                        self.value(key_shape, &entry_key, label, depth + 1)?
                    else {
                        continue;
                    };
                    let entry_value = format!("{prefix}{segment}.{value_name}");
                    if entries.contains_key(&entry_name) {
                        continue;
                    }
                    let decoded = self.value(value_shape, &entry_value, label, depth + 1)?;
                    entries.insert(entry_name, decoded.unwrap_or(Value::Null));
                }
                Ok(Some(Value::Object(entries)))
            }
            _ => match self.parameters.get(name) {
                None => Ok(None),
                Some(text) => scalar(shape, text, label).map(Some),
            },
        }
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.parameters
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|(name, _)| name.starts_with(prefix))
    }

    /// The item numbers under `prefix` (`N` in `prefix` + `N` or `prefix` + `N.…`), each with
    /// the first spelling seen, ordered by number. Segments that are not positive numbers are
    /// ignored.
    fn indices(&self, prefix: &str) -> BTreeMap<u64, &str> {
        let mut indices = BTreeMap::new();
        let names = self
            .parameters
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(name, _)| name)
            .take_while(|name| name.starts_with(prefix));
        for name in names {
            let rest = &name[prefix.len()..];
            let segment = rest.split('.').next().unwrap_or(rest);
            let is_number = !segment.is_empty() && segment.bytes().all(|c| c.is_ascii_digit());
            if let Some(number) = is_number
                .then(|| segment.parse::<u64>().ok())
                .flatten()
                .filter(|&n| n > 0)
            {
                indices.entry(number).or_insert(segment);
            }
        }
        indices
    }
}

/// A scalar parameter as the JSON value of its shape's type.
fn scalar(shape: &Shape, text: &str, label: &str) -> Result<Value, QueryError> {
    let malformed = |what: &str| QueryError::MalformedQueryString {
        message: format!("Value {text} for parameter {label} is not a valid {what}"),
    };
    match shape.kind {
        ShapeKind::Integer => text
            .parse::<i32>()
            .map(|number| Value::from(i64::from(number)))
            .map_err(|_| malformed("integer")),
        ShapeKind::Long => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| malformed("long")),
        ShapeKind::Float | ShapeKind::Double => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| malformed("number")),
        ShapeKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(malformed("boolean")),
        },
        ShapeKind::Timestamp => {
            let seconds = timestamp::parse_iso8601(text)
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|seconds| seconds.is_finite())
                })
                .ok_or_else(|| malformed("timestamp"))?;
            Ok(epoch_seconds_value(seconds))
        }
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// Whole seconds as a JSON integer, anything else as a float.
fn epoch_seconds_value(seconds: f64) -> Value {
    if seconds.fract() == 0.0 && seconds.abs() < 9.0e15 {
        Value::from(seconds as i64)
    } else {
        Number::from_f64(seconds).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests;
