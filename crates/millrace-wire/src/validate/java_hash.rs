//! The `hashCode()` of an unmarshalled request value, as Java computes it for the service's model
//! classes, so that a structure printed in a ValidationException (`<package>.<Shape>@<hex>`, the
//! default `toString()`) carries AWS's hex part.
//!
//! A model class hashes as `Arrays.hashCode(new Object[] {classNameHashCode, member values in
//! model order})`, where `classNameHashCode` is `Arrays.hashCode(new Object[] {fully qualified
//! class name})`; this reproduces the recorded `PutRecordsRequestEntry@c965e310` of an entry with
//! an empty partition key and empty data. Members hash as their Java types do: `String`, the
//! `ByteBuffer` of a blob, `Integer`, `Long`, `Boolean`, `Double`, `Float`, `Date` (epoch
//! milliseconds), `List`, `Map`, absent members as 0.

use base64::Engine as _;
use serde_json::Value;

use crate::model::{ServiceModel, Shape, ShapeKind};

fn combine(hash: i32, element: i32) -> i32 {
    hash.wrapping_mul(31).wrapping_add(element)
}

/// `String.hashCode()`: over UTF-16 code units.
pub(super) fn string_hash(text: &str) -> i32 {
    text.encode_utf16()
        .fold(0i32, |hash, unit| combine(hash, i32::from(unit)))
}

/// `ByteBuffer.hashCode()` of a buffer holding `bytes`: from the last byte to the first, signed.
fn bytes_hash(bytes: &[u8]) -> i32 {
    bytes
        .iter()
        .rev()
        .fold(1i32, |hash, &byte| combine(hash, i32::from(byte as i8)))
}

fn long_hash(value: i64) -> i32 {
    (value ^ ((value as u64) >> 32) as i64) as i32
}

/// The Java `hashCode()` of `value` unmarshalled as `shape`.
pub(super) fn value_hash(model: &ServiceModel, shape: &Shape, value: &Value) -> i32 {
    match (value, shape.kind) {
        (Value::Null, _) => 0,
        (Value::String(text), ShapeKind::Blob) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default();
            bytes_hash(&bytes)
        }
        (Value::String(text), _) => string_hash(text),
        (Value::Bool(flag), _) => {
            if *flag {
                1231
            } else {
                1237
            }
        }
        (Value::Number(number), ShapeKind::Integer) => {
            super::constraints::integer_value(number, ShapeKind::Integer) as i32
        }
        (Value::Number(number), ShapeKind::Long) => {
            long_hash(super::constraints::integer_value(number, ShapeKind::Long))
        }
        (Value::Number(number), ShapeKind::Float) => {
            (number.as_f64().unwrap_or(0.0) as f32).to_bits() as i32
        }
        (Value::Number(number), ShapeKind::Timestamp) => {
            long_hash((number.as_f64().unwrap_or(0.0) * 1000.0).round() as i64)
        }
        (Value::Number(number), _) => {
            let bits = number.as_f64().unwrap_or(0.0).to_bits();
            (bits ^ (bits >> 32)) as i32
        }
        (Value::Array(items), ShapeKind::List(element)) => {
            let element = model.shape(element);
            items.iter().fold(1i32, |hash, item| {
                combine(hash, element.map_or(0, |e| value_hash(model, e, item)))
            })
        }
        (Value::Object(fields), ShapeKind::Map { key, value: entry }) => {
            let (key, entry) = (model.shape(key), model.shape(entry));
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .fold(0i32, |sum, (name, v)| {
                    let key_hash = key.map_or(0, |_| string_hash(name));
                    let value_hash = entry.map_or(0, |e| value_hash(model, e, v));
                    sum.wrapping_add(key_hash ^ value_hash)
                })
        }
        (Value::Object(fields), ShapeKind::Structure(members)) => {
            let class = format!("{}.{}", model.java_package, shape.name);
            let class_hash = combine(1, string_hash(&class));
            members.iter().fold(combine(1, class_hash), |hash, member| {
                let member_hash = match (fields.get(member.name), model.shape(member.shape)) {
                    (Some(v), Some(member_shape)) => value_hash(model, member_shape, v),
                    _ => 0,
                };
                combine(hash, member_hash)
            })
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hashes() {
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("a"), 97);
        assert_eq!(string_hash("hello"), 99_162_322);
        assert_eq!(bytes_hash(&[]), 1);
        assert_eq!(bytes_hash(&[0]), 31);
        assert_eq!(bytes_hash(&[0xff]), 30);
        assert_eq!(long_hash(1 << 32), 1);
    }
}
