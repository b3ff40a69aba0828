//! awsQuery replies (IAM, STS): the JSON document of an operation's output written as the XML
//! the SDKs parse, and the XML error envelope.
//!
//! A reply is `<{Op}Response xmlns="{namespace}"><{Op}Result>…</{Op}Result><ResponseMetadata>
//! <RequestId>…</RequestId></ResponseMetadata></{Op}Response>`, the result element named by the
//! operation's `resultWrapper` and left out when the operation has no output. Members are
//! written in model order under their wire names; members the model does not know, and `null`s,
//! are left out. Lists are `<member>` elements (or the list member's `locationName`; flattened
//! lists repeat the member's element), maps `<entry><key>…</key><value>…</value></entry>`.
//!
//! Scalars: strings and blobs (already base64 in the JSON document) as text; booleans `true` /
//! `false` (a JSON string `true` / `false` is accepted too); numbers as JSON prints them, an
//! integral float at an integer position without its `.0`; timestamps as ISO-8601 UTC
//! (`2026-12-01T08:00:00Z`, `.mmm` when there is a fraction), from a JSON number of epoch
//! seconds (what the JSON protocol uses) or an RFC 3339 string (normalised to UTC; a string that
//! does not parse is written as it is). A value of the wrong JSON type for its shape (an object
//! where a string is expected, …) is left out.
//!
//! Text is escaped for XML 1.0: `&`, `<`, `>` as entities, `"` too in attributes, carriage
//! returns as `&#xD;` so that parsers keep them, and characters XML 1.0 cannot carry at all
//! (other control characters, U+FFFE, U+FFFF) as U+FFFD. What the service itself encodes inside
//! the text (IAM sends policy documents URL-encoded) is the handler's business.

use serde_json::Value;

use crate::model::{Member, ServiceModel, Shape, ShapeKind};
use crate::query::MAX_DEPTH;
use crate::timestamp;

/// `Error/Type` of an awsQuery error: whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client's (4xx).
    Sender,
    /// The service's (5xx).
    Receiver,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Sender => "Sender",
            ErrorKind::Receiver => "Receiver",
        }
    }
}

/// The `Content-Type` of awsQuery replies.
pub const CONTENT_TYPE: &str = "text/xml";

/// The XML reply of operation `operation` with output document `output`. An operation the model
/// does not know, or one without output shape, gets a reply without result element.
pub fn encode_response(
    model: &ServiceModel,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push('<');
    out.push_str(operation);
    out.push_str("Response xmlns=\"");
    escape_into(&mut out, model.xml_namespace, true);
    out.push_str("\">");
    let found = model.operation(operation);
    let output_shape = found
        .and_then(|operation| operation.output)
        .and_then(|index| model.shape(index));
    if let Some(shape) = output_shape {
        let wrapper = found
            .and_then(|operation| operation.result_wrapper)
            .map_or_else(|| format!("{operation}Result"), str::to_owned);
        out.push('<');
        out.push_str(&wrapper);
        out.push('>');
        if let (ShapeKind::Structure(members), Value::Object(_)) = (shape.kind, output) {
            Writer {
                model,
                out: &mut out,
            }
            .members(members, output, 0);
        }
        out.push_str("</");
        out.push_str(&wrapper);
        out.push('>');
    }
    out.push_str("<ResponseMetadata><RequestId>");
    escape_into(&mut out, request_id, false);
    out.push_str("</RequestId></ResponseMetadata></");
    out.push_str(operation);
    out.push_str("Response>");
    out.into_bytes()
}

/// The XML error reply: `<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type>
/// <Code>…</Code><Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>`, the
/// form IAM and STS send and botocore's query parser reads (`Error/Code`, `Error/Message`,
/// `RequestId`).
pub fn encode_error(
    model: &ServiceModel,
    kind: ErrorKind,
    code: &str,
    message: &str,
    request_id: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(256 + message.len());
    out.push_str("<ErrorResponse xmlns=\"");
    escape_into(&mut out, model.xml_namespace, true);
    out.push_str("\"><Error><Type>");
    out.push_str(kind.as_str());
    out.push_str("</Type><Code>");
    escape_into(&mut out, code, false);
    out.push_str("</Code><Message>");
    escape_into(&mut out, message, false);
    out.push_str("</Message></Error><RequestId>");
    escape_into(&mut out, request_id, false);
    out.push_str("</RequestId></ErrorResponse>");
    out.into_bytes()
}

struct Writer<'a> {
    model: &'a ServiceModel,
    out: &'a mut String,
}

impl Writer<'_> {
    fn members(&mut self, members: &[Member], value: &Value, depth: usize) {
        let Value::Object(fields) = value else {
            return;
        };
        for member in members {
            let Some(shape) = self.model.shape(member.shape) else {
                continue;
            };
            if let Some(field) = fields.get(member.name) {
                self.element(shape, member.name, field, depth);
            }
        }
    }

    /// `<name>value</name>` for a value of `shape` (for a flattened list or map: one element
    /// per item or entry).
    fn element(&mut self, shape: &Shape, name: &str, value: &Value, depth: usize) {
        if value.is_null() || depth >= MAX_DEPTH {
            return;
        }
        match shape.kind {
            ShapeKind::Structure(members) => {
                if value.is_object() {
                    self.open(name);
                    self.members(members, value, depth + 1);
                    self.close(name);
                }
            }
            ShapeKind::List(item) => {
                let (Value::Array(items), Some(item_shape)) = (value, self.model.shape(item))
                else {
                    return;
                };
                if shape.flattened {
                    let item_name = shape.member_name.unwrap_or(name);
                    for item in items {
                        self.element(item_shape, item_name, item, depth + 1);
                    }
                    return;
                }
                let item_name = shape.member_name.unwrap_or("member");
                self.open(name);
                for item in items {
                    self.element(item_shape, item_name, item, depth + 1);
                }
                self.close(name);
            }
            ShapeKind::Map { key, value: target } => {
                let (Value::Object(entries), Some(key_shape), Some(value_shape)) =
                    (value, self.model.shape(key), self.model.shape(target))
                else {
                    return;
                };
                let (key_name, value_name) = shape.entry_names.unwrap_or(("key", "value"));
                if !shape.flattened {
                    self.open(name);
                }
                for (entry_key, entry_value) in entries {
                    if entry_value.is_null() {
                        continue;
                    }
                    self.open(if shape.flattened { name } else { "entry" });
                    self.element(
                        key_shape,
                        key_name,
                        &Value::String(entry_key.clone()),
                        depth + 1,
                    );
                    self.element(value_shape, value_name, entry_value, depth + 1);
                    self.close(if shape.flattened { name } else { "entry" });
                }
                if !shape.flattened {
                    self.close(name);
                }
            }
            _ => {
                if let Some(text) = scalar_text(shape.kind, value) {
                    self.open(name);
                    escape_into(self.out, &text, false);
                    self.close(name);
                }
            }
        }
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }
}

/// The text of a scalar, or `None` when the JSON value has no meaning for the shape's type.
fn scalar_text(kind: ShapeKind, value: &Value) -> Option<String> {
    match (kind, value) {
        (ShapeKind::Boolean, Value::Bool(flag)) => Some(flag.to_string()),
        (ShapeKind::Boolean, Value::String(text)) => match text.to_ascii_lowercase().as_str() {
            "true" => Some("true".to_owned()),
            "false" => Some("false".to_owned()),
            _ => None,
        },
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(number)) => {
            if number.is_i64() || number.is_u64() {
                Some(number.to_string())
            } else {
                number
                    .as_f64()
                    .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                    .map(|float| (float as i64).to_string())
                    .or_else(|| Some(number.to_string()))
            }
        }
        (ShapeKind::Float | ShapeKind::Double, Value::Number(number)) => Some(number.to_string()),
        (ShapeKind::Timestamp, Value::Number(number)) => {
            number.as_f64().and_then(timestamp::format_iso8601)
        }
        (ShapeKind::Timestamp, Value::String(text)) => Some(
            timestamp::parse_iso8601(text)
                .and_then(timestamp::format_iso8601)
                .unwrap_or_else(|| text.clone()),
        ),
        (ShapeKind::String | ShapeKind::Blob, Value::String(text)) => Some(text.clone()),
        // A number or boolean where a string is expected is written as JSON prints it.
        (ShapeKind::String, Value::Number(number)) => Some(number.to_string()),
        (ShapeKind::String, Value::Bool(flag)) => Some(flag.to_string()),
        _ => None,
    }
}

/// Appends `text` escaped for XML 1.0 character data (`attribute`: also `"`).
fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
