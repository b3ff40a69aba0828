//! Second pass: model constraints (required, length, value range, pattern, enum), reported as
//! ValidationException entries `Value <v> at '<path>' failed to satisfy constraint: <c>`.
//!
//! Runs only on bodies that passed the type pass, so every present member has an accepted JSON
//! type. Members are visited in model order, depth first; a member's own constraints come before
//! its children's, and for strings the pattern comes before the length bounds (as recorded from
//! AWS). Collection stops at [`MAX_ENTRIES`], so a 501-record PutRecords does not do 500 checks
//! for nothing.
//!
//! Choices the wire notes leave open:
//! - lists of scalars and maps get one entry for the whole collection (`Member must satisfy
//!   constraint: [...]`, `Map keys ...`, `Map value ...`) listing every constraint of the element
//!   shape, length maximum first, as AWS prints them for `TagKeys` and `Tags`; combinations AWS
//!   was never seen printing continue with value bounds, pattern, then enum;
//! - a structure printed inside a list value is `<java package>.<Shape>@<hex>`, the default
//!   `toString()` recorded for PutRecords entries, with the model class's `hashCode()`
//!   (`java_hash.rs`);
//! - `null` list elements count toward the list length, print as `null` and are not checked;
//!   `null` map values are treated as absent (not counted, not printed);
//! - lengths of strings count chars (Unicode scalar values).

use serde_json::{Map, Number, Value};

use super::{blob, lower_first, type_check};
use crate::model::{Member, ServiceModel, Shape, ShapeKind};
use crate::pattern;

/// AWS lists at most this many violations, and `N` in "N validation errors" counts those.
pub(super) const MAX_ENTRIES: usize = 10;

/// Enums whose values AWS lists in an order other than the model's: (service id, shape, order).
const ENUM_ORDER_OVERRIDES: &[(&str, &str, &[&str])] = &[(
    "Kinesis",
    "ShardIteratorType",
    &[
        "AFTER_SEQUENCE_NUMBER",
        "LATEST",
        "AT_TIMESTAMP",
        "AT_SEQUENCE_NUMBER",
        "TRIM_HORIZON",
    ],
)];

/// The enum values of `shape` in the order AWS prints them.
pub(super) fn enum_print_order(model: &ServiceModel, shape: &Shape) -> &'static [&'static str] {
    ENUM_ORDER_OVERRIDES
        .iter()
        .find(|(service, name, _)| *service == model.service_id && *name == shape.name)
        .map_or(shape.enum_values, |(_, _, order)| order)
}

#[cfg(test)]
pub(super) fn enum_order_overrides(
) -> &'static [(&'static str, &'static str, &'static [&'static str])] {
    ENUM_ORDER_OVERRIDES
}

/// Collects constraint violations into ValidationException entries.
pub(super) struct Checker<'m> {
    model: &'m ServiceModel,
    entries: Vec<String>,
}

impl<'m> Checker<'m> {
    pub(super) fn new(model: &'m ServiceModel) -> Checker<'m> {
        Checker {
            model,
            entries: Vec::new(),
        }
    }

    pub(super) fn into_entries(self) -> Vec<String> {
        self.entries
    }

    fn is_full(&self) -> bool {
        self.entries.len() >= MAX_ENTRIES
    }

    /// Adds an entry; `value` is the printed value, `None` for a missing member.
    fn report(&mut self, value: Option<&str>, path: &str, constraint: &str) {
        if self.is_full() {
            return;
        }
        let value = match value {
            Some(text) => format!("'{text}'"),
            None => "null".to_owned(),
        };
        self.entries.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// Checks the members of a structure whose path is `prefix` (empty at the top level).
    pub(super) fn check_members(
        &mut self,
        members: &[Member],
        fields: &Map<String, Value>,
        prefix: &str,
    ) {
        for member in members {
            if self.is_full() {
                return;
            }
            // The path is built only where it is reported or extended: a valid scalar, the
            // common case, costs no allocation.
            let path = || {
                let name = lower_first(member.name);
                if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}.{name}")
                }
            };
            match fields.get(member.name).filter(|value| !value.is_null()) {
                None if member.required => {
                    self.report(None, &path(), "Member must not be null");
                }
                None => {}
                Some(value) => match self.model.shape(member.shape) {
                    Some(shape) if is_scalar(shape) => self.check_scalar(shape, value, path),
                    Some(shape) => self.check_value(shape, value, &path()),
                    None => {}
                },
            }
        }
    }

    fn check_scalar(&mut self, shape: &Shape, value: &Value, path: impl FnOnce() -> String) {
        let violations = scalar_violations(self.model, shape, value);
        if violations.is_empty() {
            return;
        }
        let text = value_text(self.model, shape, value);
        let path = path();
        for constraint in &violations {
            self.report(Some(&text), &path, constraint);
        }
    }

    fn check_value(&mut self, shape: &Shape, value: &Value, path: &str) {
        match shape.kind {
            ShapeKind::Structure(members) => {
                if let Value::Object(fields) = value {
                    self.check_members(members, fields, path);
                }
            }
            ShapeKind::List(member) => {
                if let Value::Array(items) = value {
                    self.check_list(shape, member, items, value, path);
                }
            }
            ShapeKind::Map {
                key,
                value: value_shape,
            } => {
                if let Value::Object(entries) = value {
                    self.check_map(shape, key, value_shape, entries, value, path);
                }
            }
            _ => self.check_scalar(shape, value, || path.to_owned()),
        }
    }

    fn check_list(
        &mut self,
        shape: &Shape,
        member: usize,
        items: &[Value],
        value: &Value,
        path: &str,
    ) {
        let mut own = Vec::new();
        length_violations(shape, items.len(), &mut own);
        if !own.is_empty() {
            let text = value_text(self.model, shape, value);
            for constraint in &own {
                self.report(Some(&text), path, constraint);
            }
        }
        let Some(member_shape) = self.model.shape(member) else {
            return;
        };
        if member_shape.kind.is_scalar() {
            let any_invalid = has_constraints(member_shape)
                && items.iter().any(|item| {
                    !item.is_null() && !scalar_violations(self.model, member_shape, item).is_empty()
                });
            if any_invalid && !self.is_full() {
                let constraint = format!(
                    "Member must satisfy constraint: [{}]",
                    constraint_summary(self.model, member_shape)
                );
                self.report(
                    Some(&value_text(self.model, shape, value)),
                    path,
                    &constraint,
                );
            }
            return;
        }
        for (index, item) in items.iter().enumerate() {
            if self.is_full() {
                return;
            }
            if !item.is_null() {
                self.check_value(member_shape, item, &format!("{path}.{}.member", index + 1));
            }
        }
    }

    fn check_map(
        &mut self,
        shape: &Shape,
        key: usize,
        value_shape: usize,
        entries: &Map<String, Value>,
        value: &Value,
        path: &str,
    ) {
        let present = entries.values().filter(|entry| !entry.is_null()).count();
        let mut own = Vec::new();
        length_violations(shape, present, &mut own);
        if !own.is_empty() {
            let text = value_text(self.model, shape, value);
            for constraint in &own {
                self.report(Some(&text), path, constraint);
            }
        }

        if let Some(key_shape) = self.model.shape(key) {
            let any_invalid = has_constraints(key_shape)
                && entries
                    .iter()
                    .filter(|(_, entry)| !entry.is_null())
                    .any(|(name, _)| !string_violations(self.model, key_shape, name).is_empty());
            if any_invalid && !self.is_full() {
                let constraint = format!(
                    "Map keys must satisfy constraint: [{}]",
                    constraint_summary(self.model, key_shape)
                );
                self.report(
                    Some(&value_text(self.model, shape, value)),
                    path,
                    &constraint,
                );
            }
        }

        let Some(value_shape) = self.model.shape(value_shape) else {
            return;
        };
        if value_shape.kind.is_scalar() {
            let any_invalid = has_constraints(value_shape)
                && entries.values().any(|entry| {
                    !entry.is_null()
                        && !scalar_violations(self.model, value_shape, entry).is_empty()
                });
            if any_invalid && !self.is_full() {
                let constraint = format!(
                    "Map value must satisfy constraint: [{}]",
                    constraint_summary(self.model, value_shape)
                );
                self.report(
                    Some(&value_text(self.model, shape, value)),
                    path,
                    &constraint,
                );
            }
            return;
        }
        for (name, entry) in entries {
            if self.is_full() {
                return;
            }
            if !entry.is_null() {
                self.check_value(value_shape, entry, &format!("{path}.{name}.member"));
            }
        }
    }
}

fn has_constraints(shape: &Shape) -> bool {
    shape.min.is_some()
        || shape.max.is_some()
        || shape.pattern.is_some()
        || !shape.enum_values.is_empty()
}

/// Shapes [`Checker::check_value`] checks without looking inside.
fn is_scalar(shape: &Shape) -> bool {
    !matches!(
        shape.kind,
        ShapeKind::Structure(_) | ShapeKind::List(_) | ShapeKind::Map { .. }
    )
}

/// Constraint texts `value` (a scalar of `shape`'s kind) violates, in reporting order.
fn scalar_violations(model: &ServiceModel, shape: &Shape, value: &Value) -> Vec<String> {
    let mut violations = Vec::new();
    match (shape.kind, value) {
        (ShapeKind::String, Value::String(text)) => {
            violations = string_violations(model, shape, text);
        }
        (ShapeKind::Blob, Value::String(encoded)) => {
            length_violations(shape, blob::decoded_len(encoded), &mut violations);
        }
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(number)) => {
            let number = integer_value(number, shape.kind);
            if shape.min.is_some_and(|min| number < min) {
                violations.push(value_min_text(shape.min));
            }
            if shape.max.is_some_and(|max| number > max) {
                violations.push(value_max_text(shape.max));
            }
        }
        (ShapeKind::Float | ShapeKind::Double, Value::Number(number)) => {
            let number = number.as_f64().unwrap_or(0.0);
            if shape.min.is_some_and(|min| number < min as f64) {
                violations.push(value_min_text(shape.min));
            }
            if shape.max.is_some_and(|max| number > max as f64) {
                violations.push(value_max_text(shape.max));
            }
        }
        _ => {}
    }
    violations
}

fn string_violations(model: &ServiceModel, shape: &Shape, text: &str) -> Vec<String> {
    let mut violations = Vec::new();
    if let Some(pattern) = shape.pattern {
        if !pattern::matches_whole(pattern, text) {
            violations.push(format!(
                "Member must satisfy regular expression pattern: {pattern}"
            ));
        }
    }
    if shape.min.is_some() || shape.max.is_some() {
        length_violations(shape, text.chars().count(), &mut violations);
    }
    if !shape.enum_values.is_empty() && !shape.enum_values.contains(&text) {
        violations.push(enum_text(model, shape));
    }
    violations
}

fn length_violations(shape: &Shape, length: usize, violations: &mut Vec<String>) {
    let length = i64::try_from(length).unwrap_or(i64::MAX);
    if let Some(min) = shape.min.filter(|&min| length < min) {
        violations.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(max) = shape.max.filter(|&max| length > max) {
        violations.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
}

fn value_min_text(min: Option<i64>) -> String {
    format!(
        "Member must have value greater than or equal to {}",
        min.unwrap_or_default()
    )
}

fn value_max_text(max: Option<i64>) -> String {
    format!(
        "Member must have value less than or equal to {}",
        max.unwrap_or_default()
    )
}

fn enum_text(model: &ServiceModel, shape: &Shape) -> String {
    format!(
        "Member must satisfy enum value set: [{}]",
        enum_print_order(model, shape).join(", ")
    )
}

/// Every constraint of an element shape, as listed inside `Member must satisfy constraint: [...]`.
fn constraint_summary(model: &ServiceModel, shape: &Shape) -> String {
    let mut parts = Vec::new();
    let numeric = matches!(
        shape.kind,
        ShapeKind::Integer | ShapeKind::Long | ShapeKind::Float | ShapeKind::Double
    );
    if numeric {
        if shape.max.is_some() {
            parts.push(value_max_text(shape.max));
        }
        if shape.min.is_some() {
            parts.push(value_min_text(shape.min));
        }
    } else {
        if let Some(max) = shape.max {
            parts.push(format!(
                "Member must have length less than or equal to {max}"
            ));
        }
        if let Some(min) = shape.min {
            parts.push(format!(
                "Member must have length greater than or equal to {min}"
            ));
        }
    }
    if let Some(pattern) = shape.pattern {
        parts.push(format!(
            "Member must satisfy regular expression pattern: {pattern}"
        ));
    }
    if !shape.enum_values.is_empty() {
        parts.push(enum_text(model, shape));
    }
    parts.join(", ")
}

/// A JSON number as Coral sees an integer or long member: fractions truncated, out-of-range
/// values clamped (`100000000000` is an Integer `2147483647`).
pub(super) fn integer_value(number: &Number, kind: ShapeKind) -> i64 {
    let wide = if let Some(value) = number.as_i64() {
        value
    } else if number.is_u64() {
        i64::MAX
    } else {
        // `as` saturates, which is the clamping wanted here.
        number.as_f64().map_or(0, |value| value.trunc() as i64)
    };
    if kind == ShapeKind::Integer {
        wide.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
    } else {
        wide
    }
}

/// How AWS prints a value of `shape` in an entry (Java `toString()` of the unmarshalled value).
fn value_text(model: &ServiceModel, shape: &Shape, value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::String(text) => match shape.kind {
            ShapeKind::Blob => {
                let length = blob::decoded_len(text);
                format!("java.nio.HeapByteBuffer[pos=0 lim={length} cap={length}]")
            }
            ShapeKind::Boolean => type_check::boolean_from_text(text)
                .map_or_else(|| text.clone(), |flag| flag.to_string()),
            _ => text.clone(),
        },
        Value::Number(number) => match shape.kind {
            ShapeKind::Integer | ShapeKind::Long => integer_value(number, shape.kind).to_string(),
            ShapeKind::Float | ShapeKind::Double => {
                java_double_text(number.as_f64().unwrap_or(0.0))
            }
            _ => number.to_string(),
        },
        Value::Array(items) => {
            let element_shape = match shape.kind {
                ShapeKind::List(member) => model.shape(member),
                _ => None,
            };
            let parts: Vec<String> = items
                .iter()
                .map(|item| match element_shape {
                    Some(element_shape) => value_text(model, element_shape, item),
                    None => item.to_string(),
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(fields) => match shape.kind {
            ShapeKind::Structure(_) => format!(
                "{}.{}@{:x}",
                model.java_package,
                shape.name,
                super::java_hash::value_hash(model, shape, value) as u32
            ),
            ShapeKind::Map {
                value: value_shape, ..
            } => {
                let value_shape = model.shape(value_shape);
                let parts: Vec<String> = fields
                    .iter()
                    .filter(|(_, entry)| !entry.is_null())
                    .map(|(name, entry)| match value_shape {
                        Some(value_shape) => {
                            format!("{name}={}", value_text(model, value_shape, entry))
                        }
                        None => format!("{name}={entry}"),
                    })
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            _ => value.to_string(),
        },
    }
}

/// Java's `Double.toString`: `1.0`, `0.5`, `1.0E10`, `1.5E-5`.
fn java_double_text(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        return format!("{value:?}");
    }
    let text = format!("{value:E}");
    match text.split_once('E') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => {
            format!("{mantissa}.0E{exponent}")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_texts() {
        assert_eq!(java_double_text(1.0), "1.0");
        assert_eq!(java_double_text(0.5), "0.5");
        assert_eq!(java_double_text(-34.56), "-34.56");
        assert_eq!(java_double_text(1e10), "1.0E10");
        assert_eq!(java_double_text(1.5e-5), "1.5E-5");
        assert_eq!(java_double_text(0.0), "0.0");
    }

    #[test]
    fn integer_clamping_and_truncation() {
        let number = |text: &str| -> Number { serde_json::from_str(text).expect("number") };
        assert_eq!(
            integer_value(&number("100000000000"), ShapeKind::Integer),
            2147483647
        );
        assert_eq!(
            integer_value(&number("-100000000000"), ShapeKind::Integer),
            -2147483648
        );
        assert_eq!(integer_value(&number("1.9"), ShapeKind::Integer), 1);
        assert_eq!(integer_value(&number("-1.9"), ShapeKind::Integer), -1);
        assert_eq!(
            integer_value(&number("1e300"), ShapeKind::Integer),
            2147483647
        );
        assert_eq!(
            integer_value(&number("18446744073709551615"), ShapeKind::Long),
            i64::MAX
        );
        assert_eq!(
            integer_value(&number("100000000000"), ShapeKind::Long),
            100000000000
        );
        assert_eq!(integer_value(&number("-1e300"), ShapeKind::Long), i64::MIN);
    }
}
