//! CBOR request bodies to JSON documents, guided by the operation's input shape.
//!
//! A recursive descent over `minicbor`'s non-allocating [`Decoder`]: strings and byte strings are
//! borrowed from the body and copied only once their bytes are known to be there, and the
//! recursion goes one level per map or array, never deeper than [`MAX_DEPTH`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use minicbor::data::Type;
use minicbor::decode::{Decoder, Error as DecodeError};
use serde_json::{Map, Number, Value};

use super::TimestampUnit;
use super::{element_shape, kind_of, member_shape, CborError, MAX_DEPTH, MAX_ITEMS};
use crate::model::{ServiceModel, Shape, ShapeKind};

/// RFC 8949 tag 1, "epoch-based date/time"; AWS puts epoch milliseconds in it.
const TIMESTAMP_TAG: u64 = 1;

/// Decodes `input`, a single CBOR data item, into JSON; `root` is the shape of that item.
pub(super) fn document(
    model: &ServiceModel,
    root: Option<&'static Shape>,
    input: &[u8],
    unit: TimestampUnit,
) -> Result<Value, CborError> {
    if input.is_empty() {
        return Err(CborError::Malformed {
            offset: 0,
            reason: "empty body".to_owned(),
        });
    }
    let mut reader = Reader {
        decoder: Decoder::new(input),
        model,
        items: 0,
        unit,
    };
    let value = reader.item(root, 0)?;
    let end = reader.decoder.position();
    if end != input.len() {
        return Err(CborError::Malformed {
            offset: end,
            reason: "bytes after the top-level item".to_owned(),
        });
    }
    Ok(value)
}

struct Reader<'b, 'm> {
    decoder: Decoder<'b>,
    model: &'m ServiceModel,
    /// Data items decoded so far, checked against [`MAX_ITEMS`].
    items: usize,
    unit: TimestampUnit,
}

impl Reader<'_, '_> {
    /// Decodes one data item (with any tags in front of it) of shape `shape`; `depth` is the
    /// number of maps and arrays around it.
    fn item(&mut self, shape: Option<&'static Shape>, depth: usize) -> Result<Value, CborError> {
        self.count_item()?;
        let timestamp_tagged = self.skip_tags()?;
        let offset = self.decoder.position();
        match self.datatype()? {
            Type::Array | Type::ArrayIndef => self.array(shape, depth, offset),
            Type::Map | Type::MapIndef => self.map(shape, depth, offset),
            datatype => self.scalar(datatype, shape, timestamp_tagged, offset),
        }
    }

    /// Decodes an item that is not a map or an array, of type `datatype`, at `offset` (after
    /// its tags). Kept out of [`Reader::item`] so that the frames of the recursion through maps
    /// and arrays stay small.
    #[inline(never)]
    fn scalar(
        &mut self,
        datatype: Type,
        shape: Option<&'static Shape>,
        timestamp_tagged: bool,
        offset: usize,
    ) -> Result<Value, CborError> {
        match datatype {
            Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::I8
            | Type::I16
            | Type::I32
            | Type::I64
            | Type::Int => {
                let int = i128::from(self.decoder.int().map_err(|err| malformed(offset, err))?);
                let at_timestamp = matches!(kind_of(shape), Some(ShapeKind::Timestamp));
                if (timestamp_tagged || at_timestamp) && self.unit == TimestampUnit::Millis {
                    Ok(seconds_from_millis(int))
                } else {
                    Ok(integer(int))
                }
            }
            Type::F16 => {
                let value = self.half_float(offset)?;
                float(value, offset)
            }
            Type::F32 | Type::F64 => {
                let value = self.decoder.f64().map_err(|err| malformed(offset, err))?;
                float(value, offset)
            }
            Type::Bool => {
                let value = self.decoder.bool().map_err(|err| malformed(offset, err))?;
                Ok(Value::Bool(value))
            }
            Type::Null => {
                self.decoder.null().map_err(|err| malformed(offset, err))?;
                Ok(Value::Null)
            }
            Type::Undefined => {
                self.decoder
                    .undefined()
                    .map_err(|err| malformed(offset, err))?;
                Ok(Value::Null)
            }
            Type::Simple => Err(CborError::Unrepresentable {
                offset,
                what: "simple value",
            }),
            Type::Bytes | Type::BytesIndef => {
                let bytes = self.byte_string(offset)?;
                Ok(Value::String(STANDARD.encode(bytes)))
            }
            Type::String | Type::StringIndef => Ok(Value::String(self.text_string(offset)?)),
            Type::Array | Type::ArrayIndef | Type::Map | Type::MapIndef => {
                Err(CborError::Malformed {
                    offset,
                    reason: "container decoded as a scalar".to_owned(),
                })
            }
            Type::Break => Err(CborError::Malformed {
                offset,
                reason: "break outside an indefinite-length item".to_owned(),
            }),
            // `skip_tags` consumed every tag, so this is only reached if minicbor changes.
            Type::Tag => Err(CborError::Malformed {
                offset,
                reason: "unexpected tag".to_owned(),
            }),
            Type::Unknown(byte) => Err(CborError::Malformed {
                offset,
                reason: format!("reserved initial byte {byte:#04x}"),
            }),
        }
    }

    fn array(
        &mut self,
        shape: Option<&'static Shape>,
        depth: usize,
        offset: usize,
    ) -> Result<Value, CborError> {
        if depth >= MAX_DEPTH {
            return Err(CborError::TooDeep { limit: MAX_DEPTH });
        }
        let length = self.decoder.array().map_err(|err| malformed(offset, err))?;
        let element = element_shape(self.model, shape);
        let mut elements = Vec::new();
        match length {
            Some(length) => {
                self.check_length(length, 1, offset)?;
                for _ in 0..length {
                    elements.push(self.item(element, depth + 1)?);
                }
            }
            None => {
                while !self.at_break()? {
                    elements.push(self.item(element, depth + 1)?);
                }
            }
        }
        Ok(Value::Array(elements))
    }

    fn map(
        &mut self,
        shape: Option<&'static Shape>,
        depth: usize,
        offset: usize,
    ) -> Result<Value, CborError> {
        if depth >= MAX_DEPTH {
            return Err(CborError::TooDeep { limit: MAX_DEPTH });
        }
        let length = self.decoder.map().map_err(|err| malformed(offset, err))?;
        let mut members = Map::new();
        match length {
            Some(length) => {
                self.check_length(length, 2, offset)?;
                for _ in 0..length {
                    self.entry(shape, depth, &mut members)?;
                }
            }
            None => {
                while !self.at_break()? {
                    self.entry(shape, depth, &mut members)?;
                }
            }
        }
        Ok(Value::Object(members))
    }

    /// Decodes one key and value of a map of shape `shape` into `members` (a later duplicate
    /// key wins, as in `serde_json`).
    fn entry(
        &mut self,
        shape: Option<&'static Shape>,
        depth: usize,
        members: &mut Map<String, Value>,
    ) -> Result<(), CborError> {
        let key = self.key()?;
        let value = self.item(member_shape(self.model, shape, &key), depth + 1)?;
        members.insert(key, value);
        Ok(())
    }

    /// A map key: a text string, or an integer written in decimal (JSON keys are strings).
    #[inline(never)]
    fn key(&mut self) -> Result<String, CborError> {
        self.count_item()?;
        let offset = self.decoder.position();
        match self.datatype()? {
            Type::String | Type::StringIndef => self.text_string(offset),
            Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::I8
            | Type::I16
            | Type::I32
            | Type::I64
            | Type::Int => {
                let int = i128::from(self.decoder.int().map_err(|err| malformed(offset, err))?);
                Ok(int.to_string())
            }
            Type::Break => Err(CborError::Malformed {
                offset,
                reason: "break in a definite-length map".to_owned(),
            }),
            Type::Unknown(byte) => Err(CborError::Malformed {
                offset,
                reason: format!("reserved initial byte {byte:#04x}"),
            }),
            _ => Err(CborError::Unrepresentable {
                offset,
                what: "map key that is not a text string or an integer",
            }),
        }
    }

    /// The bytes of a definite or indefinite-length byte string.
    fn byte_string(&mut self, offset: usize) -> Result<Vec<u8>, CborError> {
        let mut bytes = Vec::new();
        let chunks = self
            .decoder
            .bytes_iter()
            .map_err(|err| malformed(offset, err))?;
        for chunk in chunks {
            bytes.extend_from_slice(chunk.map_err(|err| malformed(offset, err))?);
        }
        Ok(bytes)
    }

    /// The text of a definite or indefinite-length text string (each chunk valid UTF-8).
    fn text_string(&mut self, offset: usize) -> Result<String, CborError> {
        let mut text = String::new();
        let chunks = self
            .decoder
            .str_iter()
            .map_err(|err| malformed(offset, err))?;
        for chunk in chunks {
            text.push_str(chunk.map_err(|err| malformed(offset, err))?);
        }
        Ok(text)
    }

    /// A half-precision float (`0xf9` + 2 bytes), decoded here so that minicbor's `half`
    /// feature (and crate) is not needed.
    fn half_float(&mut self, offset: usize) -> Result<f64, CborError> {
        let input = self.decoder.input();
        let end = offset + 3;
        let Some(&[high, low]) = input.get(offset + 1..end) else {
            return Err(CborError::Malformed {
                offset,
                reason: "truncated half-precision float".to_owned(),
            });
        };
        self.decoder.set_position(end);
        Ok(half_to_f64(u16::from_be_bytes([high, low])))
    }

    /// Consumes the tags in front of the next item; true if one of them is tag 1.
    #[inline(never)]
    fn skip_tags(&mut self) -> Result<bool, CborError> {
        let mut timestamp = false;
        while self.datatype()? == Type::Tag {
            let offset = self.decoder.position();
            let tag = self.decoder.tag().map_err(|err| malformed(offset, err))?;
            timestamp |= tag.as_u64() == TIMESTAMP_TAG;
        }
        Ok(timestamp)
    }

    /// Whether the next byte is the break that ends an indefinite-length item; consumes it.
    fn at_break(&mut self) -> Result<bool, CborError> {
        if self.datatype()? != Type::Break {
            return Ok(false);
        }
        let position = self.decoder.position();
        self.decoder.set_position(position + 1);
        Ok(true)
    }

    /// Rejects a definite length that the rest of the body cannot hold, each entry taking at
    /// least `bytes_per_entry` bytes, before anything is decoded or allocated for it.
    #[inline(never)]
    fn check_length(
        &self,
        length: u64,
        bytes_per_entry: u64,
        offset: usize,
    ) -> Result<(), CborError> {
        let left = self
            .decoder
            .input()
            .len()
            .saturating_sub(self.decoder.position());
        let needed = length.saturating_mul(bytes_per_entry);
        if u64::try_from(left).is_ok_and(|left| needed <= left) {
            return Ok(());
        }
        Err(CborError::Malformed {
            offset,
            reason: format!("declared length {length} is longer than the {left} bytes left"),
        })
    }

    fn count_item(&mut self) -> Result<(), CborError> {
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(CborError::TooManyItems { limit: MAX_ITEMS });
        }
        Ok(())
    }

    fn datatype(&self) -> Result<Type, CborError> {
        let offset = self.decoder.position();
        self.decoder
            .datatype()
            .map_err(|err| malformed(offset, err))
    }
}

fn malformed(offset: usize, err: DecodeError) -> CborError {
    CborError::Malformed {
        offset: err.position().unwrap_or(offset),
        reason: err.to_string(),
    }
}

/// A JSON number for a CBOR integer; one below `i64::MIN` becomes a float, as `serde_json` does
/// for such a number in JSON text.
fn integer(int: i128) -> Value {
    if let Ok(unsigned) = u64::try_from(int) {
        return Value::from(unsigned);
    }
    if let Ok(signed) = i64::try_from(int) {
        return Value::from(signed);
    }
    Number::from_f64(int as f64).map_or(Value::Null, Value::Number)
}

/// Epoch milliseconds as the JSON protocol's epoch seconds.
fn seconds_from_millis(millis: i128) -> Value {
    Number::from_f64(millis as f64 / 1000.0).map_or(Value::Null, Value::Number)
}

fn float(value: f64, offset: usize) -> Result<Value, CborError> {
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or(CborError::Unrepresentable {
            offset,
            what: "NaN or infinite float",
        })
}

/// IEEE 754 binary16 to f64 (RFC 8949 appendix D).
fn half_to_f64(bits: u16) -> f64 {
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + mantissa) * 2f64.powi(exponent - 25),
    };
    if bits & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}
