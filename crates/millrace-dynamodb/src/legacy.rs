//! The legacy conditional parameters (`Expected`, `AttributeUpdates`, `KeyConditions`,
//! `ScanFilter` / `QueryFilter`, `AttributesToGet`), turned into the same conditions and
//! update actions that expressions parse into.

use serde_json::Value as Json;

use crate::error::{validation, DynamoError};
use crate::expression::{Comparator, Condition, Operand, Path, Step, UpdateAction};
use crate::value::Value;

fn invalid(message: String) -> DynamoError {
    validation(format!(
        "1 validation error detected: One or more parameter values were invalid: {message}"
    ))
}

fn values(json: Option<&Json>) -> Result<Vec<Value>, DynamoError> {
    match json {
        None => Ok(Vec::new()),
        Some(Json::Array(items)) => items.iter().map(Value::from_json).collect(),
        Some(_) => Err(DynamoError::Serialization(
            "Unexpected value type in payload".into(),
        )),
    }
}

/// One attribute's comparison (`ComparisonOperator` with `AttributeValueList`).
fn comparison(name: &str, operator: &str, arguments: Vec<Value>) -> Result<Condition, DynamoError> {
    let path: Path = vec![Step::Name(name.to_owned())];
    let subject = || Operand::Path(path.clone());
    let wanted = match operator {
        "NULL" | "NOT_NULL" => 0..=0,
        "BETWEEN" => 2..=2,
        "IN" => 1..=usize::MAX,
        _ => 1..=1,
    };
    if !wanted.contains(&arguments.len()) {
        return Err(validation(format!(
            "One or more parameter values were invalid: Invalid number of argument(s) for the {operator} ComparisonOperator"
        )));
    }
    let mut arguments = arguments.into_iter().map(Operand::Value);
    let mut next = || arguments.next().expect("argument count was checked");
    let condition = match operator {
        "EQ" | "NE" | "LE" | "LT" | "GE" | "GT" => {
            let comparator = match operator {
                "EQ" => Comparator::Eq,
                "NE" => Comparator::Ne,
                "LE" => Comparator::Le,
                "LT" => Comparator::Lt,
                "GE" => Comparator::Ge,
                _ => Comparator::Gt,
            };
            Condition::Compare(subject(), comparator, next())
        }
        "NULL" => Condition::NotExists(path),
        "NOT_NULL" => Condition::Exists(path),
        "CONTAINS" => Condition::Contains(subject(), next()),
        "NOT_CONTAINS" => Condition::NotContains(subject(), next()),
        "BEGINS_WITH" => Condition::BeginsWith(subject(), next()),
        "BETWEEN" => {
            let low = next();
            Condition::Between(subject(), low, next())
        }
        "IN" => Condition::In(subject(), arguments.collect()),
        other => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"
            )))
        }
    };
    Ok(condition)
}

fn combine(conditions: Vec<Condition>, operator: Option<&str>) -> Option<Condition> {
    let or = operator == Some("OR");
    conditions.into_iter().reduce(|a, b| {
        if or {
            Condition::Or(Box::new(a), Box::new(b))
        } else {
            Condition::And(Box::new(a), Box::new(b))
        }
    })
}

/// `Expected` with `ConditionalOperator`.
pub fn expected(json: &Json, operator: Option<&str>) -> Result<Option<Condition>, DynamoError> {
    let Json::Object(entries) = json else {
        return Ok(None);
    };
    let mut conditions = Vec::new();
    for (name, entry) in entries {
        let value = entry.get("Value").map(Value::from_json).transpose()?;
        let exists = entry.get("Exists").and_then(Json::as_bool);
        let comparison_operator = entry.get("ComparisonOperator").and_then(Json::as_str);
        let list = entry.get("AttributeValueList");
        if list.is_some() && comparison_operator.is_none() {
            return Err(invalid(format!(
                "AttributeValueList can only be used with a ComparisonOperator for Attribute: {name}"
            )));
        }
        if let Some(operator) = comparison_operator {
            if exists.is_some() {
                return Err(invalid(format!(
                    "Exists and ComparisonOperator cannot be used together for Attribute: {name}"
                )));
            }
            let mut arguments = values(list)?;
            if let Some(value) = value {
                arguments.insert(0, value);
            }
            conditions.push(comparison(name, operator, arguments)?);
            continue;
        }
        let path = vec![Step::Name(name.clone())];
        let condition = match (exists, value) {
            (Some(false), None) => Condition::NotExists(path),
            (Some(false), Some(_)) => {
                return Err(invalid(format!(
                    "Value cannot be used when Exists is false for Attribute: {name}"
                )))
            }
            (Some(true), None) => {
                return Err(invalid(format!(
                    "Value must be provided when Exists is true for Attribute: {name}"
                )))
            }
            (None, None) => {
                return Err(invalid(format!(
                    "Value must be provided when Exists is null for Attribute: {name}"
                )))
            }
            (_, Some(value)) => {
                Condition::Compare(Operand::Path(path), Comparator::Eq, Operand::Value(value))
            }
        };
        conditions.push(condition);
    }
    Ok(combine(conditions, operator))
}

/// `ScanFilter`, `QueryFilter` and `KeyConditions`: name → `{ComparisonOperator, AttributeValueList}`.
pub fn filter(json: &Json, operator: Option<&str>) -> Result<Option<Condition>, DynamoError> {
    let Json::Object(entries) = json else {
        return Ok(None);
    };
    let mut conditions = Vec::new();
    for (name, entry) in entries {
        let comparison_operator = entry
            .get("ComparisonOperator")
            .and_then(Json::as_str)
            .unwrap_or("EQ");
        let arguments = values(entry.get("AttributeValueList"))?;
        conditions.push(comparison(name, comparison_operator, arguments)?);
    }
    Ok(combine(conditions, operator))
}

/// `AttributeUpdates`: name → `{Value, Action}`.
pub fn attribute_updates(json: &Json) -> Result<Vec<UpdateAction>, DynamoError> {
    let Json::Object(entries) = json else {
        return Ok(Vec::new());
    };
    let mut actions = Vec::new();
    for (name, entry) in entries {
        let path = vec![Step::Name(name.clone())];
        let value = entry.get("Value").map(Value::from_json).transpose()?;
        let action = entry.get("Action").and_then(Json::as_str).unwrap_or("PUT");
        let update = match (action, value) {
            ("PUT", Some(value)) => UpdateAction::Set(path, Operand::Value(value)),
            ("PUT", None) => {
                return Err(invalid(format!(
                    "Only DELETE action is allowed when no attribute value is specified: {name}"
                )))
            }
            ("DELETE", None) => UpdateAction::Remove(path),
            ("DELETE", Some(value)) => {
                if !matches!(value, Value::Ss(_) | Value::Ns(_) | Value::Bs(_)) {
                    return Err(invalid(format!(
                        "DELETE action with value is not supported for the type {}",
                        value.type_name()
                    )));
                }
                UpdateAction::Delete(path, value)
            }
            ("ADD", Some(Value::L(items))) => UpdateAction::Set(
                path.clone(),
                Operand::ListAppend(
                    Box::new(Operand::IfNotExists(
                        path,
                        Box::new(Operand::Value(Value::L(Vec::new()))),
                    )),
                    Box::new(Operand::Value(Value::L(items))),
                ),
            ),
            ("ADD", Some(value)) => {
                if !matches!(
                    value,
                    Value::N(_) | Value::Ss(_) | Value::Ns(_) | Value::Bs(_)
                ) {
                    return Err(invalid(format!(
                        "ADD action is not supported for the type {}",
                        value.type_name()
                    )));
                }
                UpdateAction::Add(path, value)
            }
            ("ADD", None) => {
                return Err(invalid(format!(
                    "Only DELETE action is allowed when no attribute value is specified: {name}"
                )))
            }
            (other, _) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'attributeUpdates.{name}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]"
                )))
            }
        };
        actions.push(update);
    }
    Ok(actions)
}

/// `AttributesToGet` as projection paths.
pub fn attributes_to_get(json: &Json) -> Vec<Path> {
    match json {
        Json::Array(names) => names
            .iter()
            .filter_map(Json::as_str)
            .map(|name| vec![Step::Name(name.to_owned())])
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::evaluate;
    use crate::value::item_from_json;
    use serde_json::json;

    #[test]
    fn expected_maps_to_conditions() {
        let item =
            item_from_json(&json!({"owner": {"S": "w1"}, "counter": {"N": "3"}})).expect("item");
        let check = |expected_json: Json, operator: Option<&str>| {
            let condition = expected(&expected_json, operator)
                .expect("valid")
                .expect("some");
            evaluate(&condition, &item, "Expected").expect("evaluates")
        };
        assert!(check(json!({"owner": {"Value": {"S": "w1"}}}), None));
        assert!(!check(json!({"owner": {"Exists": false}}), None));
        assert!(check(
            json!({"gone": {"Exists": false}, "counter": {"Value": {"N": "3"}, "Exists": true}}),
            None
        ));
        assert!(check(
            json!({"counter": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "2"}]}}),
            None
        ));
        assert!(check(
            json!({"owner": {"Value": {"S": "x"}}, "counter": {"ComparisonOperator": "NOT_NULL"}}),
            Some("OR")
        ));
        let error = expected(&json!({"owner": {"Exists": true}}), None).expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "1 validation error detected: One or more parameter values were invalid: Value must be provided when Exists is true for Attribute: owner"
        );
    }
}
