//! JSON documents to CBOR, guided by an output, error or event shape.
//!
//! The writer is small enough to keep here rather than go through `minicbor`'s `Encoder`: it
//! only ever writes definite lengths, the smallest integer heads and 8-byte floats.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Number, Value};

use super::TimestampUnit;
use super::{element_shape, kind_of, member_shape, CborError, MAX_DEPTH};
use crate::model::{ServiceModel, Shape, ShapeKind};

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
const FLOAT64: u8 = 0xfb;
/// RFC 8949 tag 1; AWS puts an integer of epoch milliseconds in it.
const TIMESTAMP_TAG: u64 = 1;

/// Encodes `value`, whose shape is `root`, as one CBOR data item.
pub(super) fn document(
    model: &ServiceModel,
    root: Option<&'static Shape>,
    value: &Value,
    unit: TimestampUnit,
) -> Result<Vec<u8>, CborError> {
    let mut writer = Writer {
        out: Vec::new(),
        model,
        unit,
    };
    match writer.value(value, root, 0) {
        Ok(()) => Ok(writer.out),
        Err(CborError::Unencodable { path, reason }) if path.is_empty() => {
            Err(CborError::Unencodable {
                path: "the top level".to_owned(),
                reason,
            })
        }
        Err(err) => Err(err),
    }
}

struct Writer<'m> {
    out: Vec<u8>,
    model: &'m ServiceModel,
    unit: TimestampUnit,
}

impl Writer<'_> {
    /// Writes `value` of shape `shape`; `depth` is the number of arrays and objects around it.
    fn value(
        &mut self,
        value: &Value,
        shape: Option<&'static Shape>,
        depth: usize,
    ) -> Result<(), CborError> {
        match value {
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                self.scalar(value, kind_of(shape))?;
            }
            Value::Array(elements) => {
                if depth >= MAX_DEPTH {
                    return Err(CborError::TooDeep { limit: MAX_DEPTH });
                }
                let element_shape = element_shape(self.model, shape);
                self.head(MAJOR_ARRAY, elements.len() as u64);
                for (index, element) in elements.iter().enumerate() {
                    self.value(element, element_shape, depth + 1)
                        .map_err(|err| within(err, &index.to_string()))?;
                }
            }
            Value::Object(members) => {
                if depth >= MAX_DEPTH {
                    return Err(CborError::TooDeep { limit: MAX_DEPTH });
                }
                self.head(MAJOR_MAP, members.len() as u64);
                for (key, member) in members {
                    self.text(key);
                    self.value(member, member_shape(self.model, shape, key), depth + 1)
                        .map_err(|err| within(err, key))?;
                }
            }
        }
        Ok(())
    }

    /// Writes a value that is not an array or an object. Kept out of [`Writer::value`] so that
    /// the frames of the recursion through arrays and objects stay small.
    #[inline(never)]
    fn scalar(&mut self, value: &Value, kind: Option<ShapeKind>) -> Result<(), CborError> {
        match value {
            Value::Null => self.out.push(NULL),
            Value::Bool(flag) => self.out.push(if *flag { TRUE } else { FALSE }),
            Value::Number(number) => self.number(number, kind)?,
            Value::String(text) => match kind {
                Some(ShapeKind::Blob) => {
                    let bytes = STANDARD
                        .decode(text)
                        .map_err(|err| unencodable(format!("blob is not base64: {err}")))?;
                    self.head(MAJOR_BYTES, bytes.len() as u64);
                    self.out.extend_from_slice(&bytes);
                }
                _ => self.text(text),
            },
            // Containers are written by `value`.
            Value::Array(_) | Value::Object(_) => {}
        }
        Ok(())
    }

    fn number(&mut self, number: &Number, kind: Option<ShapeKind>) -> Result<(), CborError> {
        match kind {
            Some(ShapeKind::Timestamp) if self.unit == TimestampUnit::Seconds => {
                // Smithy RPC v2: tag 1 and the seconds, an integer when whole.
                self.head(MAJOR_TAG, TIMESTAMP_TAG);
                let whole = number.as_i64().or_else(|| {
                    number
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                });
                match whole {
                    Some(whole) => self.integer(i128::from(whole)),
                    None => self.number(number, None),
                }
            }
            Some(ShapeKind::Timestamp) => {
                let millis = millis_from_seconds(number)
                    .ok_or_else(|| unencodable(format!("timestamp {number} is out of range")))?;
                self.head(MAJOR_TAG, TIMESTAMP_TAG);
                self.integer(millis)
            }
            _ if number.is_u64() || number.is_i64() => {
                let int = number
                    .as_u64()
                    .map(i128::from)
                    .or_else(|| number.as_i64().map(i128::from))
                    .ok_or_else(|| unencodable(format!("number {number} is not an integer")))?;
                self.integer(int)
            }
            Some(ShapeKind::Integer | ShapeKind::Long) => {
                let value = number.as_f64().unwrap_or(f64::NAN);
                match integral(value) {
                    Some(int) => self.integer(int),
                    None => {
                        self.float(value);
                        Ok(())
                    }
                }
            }
            _ => {
                self.float(number.as_f64().unwrap_or(f64::NAN));
                Ok(())
            }
        }
    }

    /// An integer with the smallest head: major type 0 for `value >= 0`, else major type 1.
    fn integer(&mut self, value: i128) -> Result<(), CborError> {
        let (major, argument) = if value >= 0 {
            (MAJOR_UNSIGNED, u64::try_from(value))
        } else {
            (MAJOR_NEGATIVE, u64::try_from(-1 - value))
        };
        let argument = argument
            .map_err(|_| unencodable(format!("integer {value} is out of the cbor range")))?;
        self.head(major, argument);
        Ok(())
    }

    fn float(&mut self, value: f64) {
        self.out.push(FLOAT64);
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn text(&mut self, text: &str) {
        self.head(MAJOR_TEXT, text.len() as u64);
        self.out.extend_from_slice(text.as_bytes());
    }

    /// The initial byte of major type `major` with `argument` in its smallest encoding.
    fn head(&mut self, major: u8, argument: u64) {
        let major = major << 5;
        if let Ok(small) = u8::try_from(argument) {
            if small < 24 {
                self.out.push(major | small);
            } else {
                self.out.extend_from_slice(&[major | 24, small]);
            }
        } else if let Ok(short) = u16::try_from(argument) {
            self.out.push(major | 25);
            self.out.extend_from_slice(&short.to_be_bytes());
        } else if let Ok(word) = u32::try_from(argument) {
            self.out.push(major | 26);
            self.out.extend_from_slice(&word.to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

/// Epoch seconds (integer or with a fraction) as epoch milliseconds, rounded to the nearest.
fn millis_from_seconds(seconds: &Number) -> Option<i128> {
    if let Some(unsigned) = seconds.as_u64() {
        return i128::from(unsigned).checked_mul(1000);
    }
    if let Some(signed) = seconds.as_i64() {
        return i128::from(signed).checked_mul(1000);
    }
    integral((seconds.as_f64()? * 1000.0).round())
}

/// `value` as an integer, if it is a whole number within the range of CBOR integers.
fn integral(value: f64) -> Option<i128> {
    // 2^64: CBOR integers run from -2^64 to 2^64 - 1.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    let whole = value.is_finite() && value.fract() == 0.0;
    (whole && (-LIMIT..LIMIT).contains(&value)).then_some(value as i128)
}

fn unencodable(reason: String) -> CborError {
    CborError::Unencodable {
        path: String::new(),
        reason,
    }
}

/// `err` with `segment` put in front of its member path.
#[inline(never)]
fn within(err: CborError, segment: &str) -> CborError {
    match err {
        CborError::Unencodable { path, reason } => CborError::Unencodable {
            path: if path.is_empty() {
                segment.to_owned()
            } else {
                format!("{segment}.{path}")
            },
            reason,
        },
        other => other,
    }
}
