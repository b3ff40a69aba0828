//! First pass: does every member have a JSON type its shape accepts? (SerializationException)
//!
//! Texts are Coral's (Jackson's) as recorded against real Kinesis, see the wire notes §1.2. The
//! first mismatch wins; members are visited in model order, depth first, since the parsed body
//! no longer says which came first in the document. Unknown members and `null`s are ignored.
//!
//! Combinations the notes do not list, and the text chosen for them:
//! - a JSON boolean where a blob or a timestamp is expected: `class java.lang.Boolean can not be
//!   converted to a Blob` / `... to milliseconds since epoch` (same form as the recorded ones);
//! - a number where a timestamp is expected is accepted (epoch seconds);
//! - a string where a boolean is expected: `true`, `false`, `1`, `0`, `yes` and `no` (any case)
//!   convert, as observed by kinesalite; anything else is reported upper-cased, as AWS does;
//! - `float`/`double` members follow the integer texts with the Java class name (`an Double`).

use serde_json::{Map, Value};

use super::blob;
use crate::model::{Member, ServiceModel, Shape, ShapeKind};

const START_OF_LIST: &str = "Start of list found where not expected";
const START_OF_STRUCTURE: &str = "Start of structure or map found where not expected.";
const NUMBER_CLASS: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";

/// Checks the members of a structure; `Err` holds the SerializationException message.
pub(super) fn check_members(
    model: &ServiceModel,
    members: &[Member],
    fields: &Map<String, Value>,
) -> Result<(), String> {
    for member in members {
        let Some(value) = fields.get(member.name) else {
            continue;
        };
        let Some(shape) = model.shape(member.shape) else {
            continue;
        };
        check_value(model, shape, value)?;
    }
    Ok(())
}

fn check_value(model: &ServiceModel, shape: &Shape, value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    match shape.kind {
        ShapeKind::Structure(members) => match value {
            Value::Object(fields) => check_members(model, members, fields),
            Value::Array(_) => Err(START_OF_LIST.to_owned()),
            _ => Err("Expected null".to_owned()),
        },
        ShapeKind::List(member) => match value {
            Value::Array(items) => {
                let Some(member_shape) = model.shape(member) else {
                    return Ok(());
                };
                for item in items {
                    check_value(model, member_shape, item)?;
                }
                Ok(())
            }
            Value::Object(_) => Err(START_OF_STRUCTURE.to_owned()),
            _ => Err("Expected list or null".to_owned()),
        },
        ShapeKind::Map {
            value: value_shape, ..
        } => match value {
            // Keys are JSON strings by construction; only the values can have the wrong type.
            Value::Object(entries) => {
                let Some(value_shape) = model.shape(value_shape) else {
                    return Ok(());
                };
                for entry in entries.values() {
                    check_value(model, value_shape, entry)?;
                }
                Ok(())
            }
            Value::Array(_) => Err(START_OF_LIST.to_owned()),
            _ => Err("Expected map or null".to_owned()),
        },
        _ => check_scalar(shape.kind, value),
    }
}

fn check_scalar(kind: ShapeKind, value: &Value) -> Result<(), String> {
    match value {
        Value::Array(_) => return Err(START_OF_LIST.to_owned()),
        Value::Object(_) => return Err(START_OF_STRUCTURE.to_owned()),
        _ => {}
    }
    match kind {
        ShapeKind::String => match value {
            Value::Bool(_) => {
                Err("class java.lang.Boolean can not be converted to an String".to_owned())
            }
            Value::Number(_) => Err(format!("{NUMBER_CLASS} can not be converted to an String")),
            _ => Ok(()),
        },
        ShapeKind::Boolean => match value {
            Value::Number(_) => Err(format!("{NUMBER_CLASS} can not be converted to an Boolean")),
            Value::String(text) if boolean_from_text(text).is_none() => Err(format!(
                "'{}' can not be converted to an Boolean",
                text.to_uppercase()
            )),
            _ => Ok(()),
        },
        ShapeKind::Integer | ShapeKind::Long | ShapeKind::Float | ShapeKind::Double => {
            let java_class = match kind {
                ShapeKind::Integer => "Integer",
                ShapeKind::Long => "Long",
                ShapeKind::Float => "Float",
                _ => "Double",
            };
            match value {
                Value::Bool(_) => Err(format!(
                    "class java.lang.Boolean can not be converted to an {java_class}"
                )),
                Value::String(_) => Err(format!(
                    "class java.lang.String can not be converted to an {java_class}"
                )),
                _ => Ok(()),
            }
        }
        ShapeKind::Timestamp => match value {
            Value::Bool(_) => Err(
                "class java.lang.Boolean can not be converted to milliseconds since epoch"
                    .to_owned(),
            ),
            Value::String(_) => Err(
                "class java.lang.String can not be converted to milliseconds since epoch"
                    .to_owned(),
            ),
            _ => Ok(()),
        },
        ShapeKind::Blob => match value {
            Value::Bool(_) => {
                Err("class java.lang.Boolean can not be converted to a Blob".to_owned())
            }
            Value::Number(_) => Err(format!("{NUMBER_CLASS} can not be converted to a Blob")),
            Value::String(encoded) => blob::base64_error(encoded).map_or(Ok(()), Err),
            _ => Ok(()),
        },
        // Aggregates are handled by the caller.
        ShapeKind::Structure(_) | ShapeKind::List(_) | ShapeKind::Map { .. } => Ok(()),
    }
}

/// The boolean a JSON string converts to, if Coral converts it at all.
pub(super) fn boolean_from_text(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}
