//! What the item operations share: placeholders, the choice between expression and legacy
//! parameters, key and item checks against the table's schema, projections and consumed
//! capacity.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use crate::error::{validation, DynamoError};
use crate::evaluate::project;
use crate::expression::{self, Condition, Kind, Path, Placeholders, Step};
use crate::legacy;
use crate::store::{key_of, ItemKey, KeySchema, TableMeta};
use crate::value::{item_from_json, item_size, Item, Value, MAX_ITEM_BYTES};

/// Reads `ExpressionAttributeNames` / `ExpressionAttributeValues`.
pub fn placeholders(input: &Json) -> Result<Placeholders, DynamoError> {
    let mut names = BTreeMap::new();
    if let Some(json) = input.get("ExpressionAttributeNames") {
        let map = json.as_object().cloned().unwrap_or_default();
        if map.is_empty() {
            return Err(validation("ExpressionAttributeNames must not be empty"));
        }
        for (alias, name) in map {
            names.insert(alias, name.as_str().unwrap_or_default().to_owned());
        }
    }
    let mut values = BTreeMap::new();
    if let Some(json) = input.get("ExpressionAttributeValues") {
        let map = json.as_object().cloned().unwrap_or_default();
        if map.is_empty() {
            return Err(validation("ExpressionAttributeValues must not be empty"));
        }
        for (alias, value) in map {
            let value = Value::from_json(&value).map_err(|error| match error {
                DynamoError::Validation(message) => validation(format!(
                    "ExpressionAttributeValues contains invalid value: {message} for key {alias}"
                )),
                other => other,
            })?;
            values.insert(alias, value);
        }
    }
    Ok(Placeholders::new(names, values))
}

/// Refuses a request that mixes the two styles, or placeholders without expressions.
pub fn check_styles(
    input: &Json,
    expressions: &[&str],
    legacy: &[&str],
) -> Result<(), DynamoError> {
    let present = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .filter(|n| input.get(**n).is_some())
            .map(|n| n.to_string())
            .collect()
    };
    let used_expressions = present(expressions);
    let used_legacy = present(legacy);
    if !used_expressions.is_empty() && !used_legacy.is_empty() {
        return Err(validation(format!(
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {{{}}} Expression parameters: {{{}}}",
            used_legacy.join(", "),
            used_expressions.join(", ")
        )));
    }
    if used_expressions.is_empty() {
        if input.get("ExpressionAttributeNames").is_some() {
            return Err(validation(
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        if input.get("ExpressionAttributeValues").is_some() {
            return Err(validation(
                "ExpressionAttributeValues can only be specified when using expressions",
            ));
        }
    }
    Ok(())
}

/// The write condition: `ConditionExpression` or `Expected`.
pub fn write_condition(
    input: &Json,
    placeholders: &Placeholders,
) -> Result<Option<Condition>, DynamoError> {
    if let Some(text) = input.get("ConditionExpression").and_then(Json::as_str) {
        return expression::parse_condition(text, Kind::Condition, placeholders).map(Some);
    }
    match input.get("Expected") {
        Some(expected) => legacy::expected(
            expected,
            input.get("ConditionalOperator").and_then(Json::as_str),
        ),
        None => Ok(None),
    }
}

/// The projection: `ProjectionExpression` or `AttributesToGet`.
pub fn projection(
    input: &Json,
    placeholders: &Placeholders,
) -> Result<Option<Vec<Path>>, DynamoError> {
    if let Some(text) = input.get("ProjectionExpression").and_then(Json::as_str) {
        return expression::parse_projection(text, placeholders).map(Some);
    }
    Ok(input.get("AttributesToGet").map(legacy::attributes_to_get))
}

pub fn apply_projection(item: &Item, paths: Option<&Vec<Path>>) -> Item {
    match paths {
        Some(paths) => project(item, paths),
        None => item.clone(),
    }
}

fn empty_key_value(name: &str, value: &Value) -> Option<DynamoError> {
    let kind = match value {
        Value::S(s) if s.is_empty() => "string",
        Value::B(b) if b.is_empty() => "binary",
        _ => return None,
    };
    Some(validation(format!(
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {kind} value. Key: {name}"
    )))
}

/// Checks a `Key` parameter: exactly the key attributes, with the right types.
pub fn key_from_json(meta: &TableMeta, json: Option<&Json>) -> Result<ItemKey, DynamoError> {
    let mismatch = || validation("The provided key element does not match the schema");
    let key = item_from_json(json.unwrap_or(&Json::Null)).map_err(|_| mismatch())?;
    check_key_item(meta, &key)
}

pub fn check_key_item(meta: &TableMeta, key: &Item) -> Result<ItemKey, DynamoError> {
    let mismatch = || validation("The provided key element does not match the schema");
    let names = meta.key.names();
    if key.len() != names.len() {
        return Err(mismatch());
    }
    for name in &names {
        let value = key.get(*name).ok_or_else(mismatch)?;
        if value.type_name() != meta.key_type(name).name() {
            return Err(mismatch());
        }
        if let Some(error) = empty_key_value(name, value) {
            return Err(error);
        }
    }
    key_of(key, &meta.key).ok_or_else(mismatch)
}

/// Checks a whole item for PutItem (and the result of UpdateItem): keys, index keys, size.
pub fn check_item(meta: &TableMeta, item: &Item, updating: bool) -> Result<ItemKey, DynamoError> {
    for name in meta.key.names() {
        let Some(value) = item.get(name) else {
            return Err(validation(format!(
                "One or more parameter values were invalid: Missing the key {name} in the item"
            )));
        };
        let expected = meta.key_type(name).name();
        if value.type_name() != expected {
            return Err(validation(format!(
                "One or more parameter values were invalid: Type mismatch for key {name} expected: {expected} actual: {}",
                value.type_name()
            )));
        }
        if let Some(error) = empty_key_value(name, value) {
            return Err(error);
        }
    }
    for index in &meta.indexes {
        for name in index.key.names() {
            let Some(value) = item.get(name) else {
                continue;
            };
            let expected = meta.key_type(name).name();
            if value.type_name() != expected {
                return Err(validation(format!(
                    "One or more parameter values were invalid: Type mismatch for Index Key {name} Expected: {expected} Actual: {} IndexName: {}",
                    value.type_name(),
                    index.name
                )));
            }
            if matches!(value, Value::S(s) if s.is_empty()) {
                return Err(validation(format!(
                    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: {}, IndexKey: {name}",
                    index.name
                )));
            }
        }
    }
    if item_size(item) > MAX_ITEM_BYTES {
        return Err(validation(if updating {
            "Item size to update has exceeded the maximum allowed size"
        } else {
            "Item size has exceeded the maximum allowed size"
        }));
    }
    key_of(item, &meta.key)
        .ok_or_else(|| validation("The provided key element does not match the schema"))
}

/// The key attributes of `item` (for `LastEvaluatedKey`), including an index's.
pub fn key_attributes(item: &Item, schemas: &[&KeySchema]) -> Json {
    let mut out = BTreeMap::new();
    for schema in schemas {
        for name in schema.names() {
            if let Some(value) = item.get(name) {
                out.insert(name.to_owned(), value.clone());
            }
        }
    }
    crate::value::item_to_json(&out)
}

/// `ConsumedCapacity` when the caller asked for it.
pub fn consumed(input: &Json, table: &str, units: f64) -> Option<Json> {
    match input.get("ReturnConsumedCapacity").and_then(Json::as_str) {
        Some("TOTAL") => Some(json!({"TableName": table, "CapacityUnits": units})),
        Some("INDEXES") => Some(json!({
            "TableName": table,
            "CapacityUnits": units,
            "Table": {"CapacityUnits": units},
        })),
        _ => None,
    }
}

/// Write units of an item: one per started KB.
pub fn write_units(item: Option<&Item>) -> f64 {
    let size = item.map(item_size).unwrap_or(0);
    size.div_ceil(1024).max(1) as f64
}

/// Read units: one per started 4 KB, half for eventually consistent reads.
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// The top-level names of paths, for errors that name primary-key attributes.
pub fn first_names(condition: &Condition, out: &mut Vec<String>) {
    use crate::expression::Operand;
    fn operand(op: &Operand, out: &mut Vec<String>) {
        match op {
            Operand::Path(p) | Operand::Size(p) => {
                if let Some(Step::Name(n)) = p.first() {
                    out.push(n.clone());
                }
            }
            _ => {}
        }
    }
    match condition {
        Condition::Compare(a, _, b)
        | Condition::BeginsWith(a, b)
        | Condition::Contains(a, b)
        | Condition::NotContains(a, b) => {
            operand(a, out);
            operand(b, out);
        }
        Condition::Between(a, b, c) => {
            operand(a, out);
            operand(b, out);
            operand(c, out);
        }
        Condition::In(a, options) => {
            operand(a, out);
            for o in options {
                operand(o, out);
            }
        }
        Condition::Exists(p) | Condition::NotExists(p) | Condition::AttributeType(p, _) => {
            if let Some(Step::Name(n)) = p.first() {
                out.push(n.clone());
            }
        }
        Condition::And(a, b) | Condition::Or(a, b) => {
            first_names(a, out);
            first_names(b, out);
        }
        Condition::Not(a) => first_names(a, out),
    }
}
