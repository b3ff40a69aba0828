//! Attribute values (S, N, B, BOOL, NULL, SS, NS, BS, L, M): parsed from the wire JSON with
//! DynamoDB's checks and texts, compared, sized and written back.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use crate::error::{validation, DynamoError};
use crate::number::Number;

/// An item: attribute name → value.
pub type Item = BTreeMap<String, Value>;

/// One attribute value. Sets keep the order they were given in.
#[derive(Clone, Debug)]
pub enum Value {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    Ss(Vec<String>),
    Ns(Vec<Number>),
    Bs(Vec<Vec<u8>>),
    L(Vec<Value>),
    M(BTreeMap<String, Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            a.len() == b.len() && a.iter().all(|x| b.contains(x))
        }
        match (self, other) {
            (Value::S(a), Value::S(b)) => a == b,
            (Value::N(a), Value::N(b)) => a == b,
            (Value::B(a), Value::B(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (Value::Ss(a), Value::Ss(b)) => same_set(a, b),
            (Value::Ns(a), Value::Ns(b)) => same_set(a, b),
            (Value::Bs(a), Value::Bs(b)) => same_set(a, b),
            (Value::L(a), Value::L(b)) => a == b,
            (Value::M(a), Value::M(b)) => a == b,
            _ => false,
        }
    }
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn number(text: &str) -> Result<Number, DynamoError> {
    Number::parse(text).map_err(|e| validation(e.message(text)))
}

fn binary(text: &str) -> Result<Vec<u8>, DynamoError> {
    BASE64
        .decode(text)
        .map_err(|_| DynamoError::Serialization("Base64 encoded length is invalid".into()))
}

fn strings(value: &Json) -> Result<Vec<&str>, DynamoError> {
    let Json::Array(items) = value else {
        return Err(DynamoError::Serialization(
            "Start of list found where not expected".into(),
        ));
    };
    items
        .iter()
        .map(|item| {
            item.as_str().ok_or_else(|| {
                DynamoError::Serialization("NUMBER_VALUE cannot be converted to String".into())
            })
        })
        .collect()
}

fn no_duplicates<T: PartialEq>(
    items: &[T],
    show: impl Fn(&T) -> String,
) -> Result<(), DynamoError> {
    for (index, item) in items.iter().enumerate() {
        if items[..index].contains(item) {
            let listed: Vec<String> = items.iter().map(show).collect();
            return Err(validation(format!(
                "One or more parameter values were invalid: Input collection [{}] contains duplicates.",
                listed.join(", ")
            )));
        }
    }
    Ok(())
}

fn not_empty<T>(items: &[T], kind: &str) -> Result<(), DynamoError> {
    if items.is_empty() {
        return Err(validation(format!(
            "One or more parameter values were invalid: An {kind} set  may not be empty"
        )));
    }
    Ok(())
}

impl Value {
    /// Parses one wire AttributeValue (`{"S": "x"}`).
    pub fn from_json(json: &Json) -> Result<Value, DynamoError> {
        let Json::Object(members) = json else {
            return Err(DynamoError::Serialization(
                "Unexpected value type in payload".into(),
            ));
        };
        let set: Vec<(&String, &Json)> = members.iter().filter(|(_, v)| !v.is_null()).collect();
        if set.is_empty() {
            return Err(validation(
                "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
            ));
        }
        if set.len() > 1 {
            return Err(validation(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
            ));
        }
        let (kind, body) = set[0];
        let text = || {
            body.as_str().ok_or_else(|| {
                DynamoError::Serialization("Unexpected value type in payload".into())
            })
        };
        Ok(match kind.as_str() {
            "S" => Value::S(text()?.to_owned()),
            "N" => Value::N(number(text()?)?),
            "B" => Value::B(binary(text()?)?),
            "BOOL" => Value::Bool(body.as_bool().ok_or_else(|| {
                DynamoError::Serialization("Unexpected value type in payload".into())
            })?),
            "NULL" => {
                if body.as_bool() != Some(true) {
                    return Err(validation(
                        "One or more parameter values were invalid: Null attribute value types must have the value of true",
                    ));
                }
                Value::Null
            }
            "SS" => {
                let items: Vec<String> = strings(body)?.into_iter().map(str::to_owned).collect();
                not_empty(&items, "string")?;
                no_duplicates(&items, |s| s.clone())?;
                Value::Ss(items)
            }
            "NS" => {
                let items = strings(body)?
                    .into_iter()
                    .map(number)
                    .collect::<Result<Vec<_>, _>>()?;
                not_empty(&items, "number")?;
                no_duplicates(&items, Number::to_text)?;
                Value::Ns(items)
            }
            "BS" => {
                let items = strings(body)?
                    .into_iter()
                    .map(binary)
                    .collect::<Result<Vec<_>, _>>()?;
                not_empty(&items, "binary")?;
                no_duplicates(&items, |b| BASE64.encode(b))?;
                Value::Bs(items)
            }
            "L" => {
                let Json::Array(items) = body else {
                    return Err(DynamoError::Serialization(
                        "Unexpected value type in payload".into(),
                    ));
                };
                Value::L(
                    items
                        .iter()
                        .map(Value::from_json)
                        .collect::<Result<_, _>>()?,
                )
            }
            "M" => Value::M(item_from_json(body)?),
            _ => {
                return Err(DynamoError::Serialization(format!(
                    "Unknown member type {kind} in AttributeValue"
                )))
            }
        })
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::S(s) => json!({ "S": s }),
            Value::N(n) => json!({ "N": n.to_text() }),
            Value::B(b) => json!({ "B": BASE64.encode(b) }),
            Value::Bool(b) => json!({ "BOOL": b }),
            Value::Null => json!({ "NULL": true }),
            Value::Ss(items) => json!({ "SS": items }),
            Value::Ns(items) => {
                json!({ "NS": items.iter().map(Number::to_text).collect::<Vec<_>>() })
            }
            Value::Bs(items) => {
                json!({ "BS": items.iter().map(|b| BASE64.encode(b)).collect::<Vec<_>>() })
            }
            Value::L(items) => json!({ "L": items.iter().map(Value::to_json).collect::<Vec<_>>() }),
            Value::M(map) => json!({ "M": item_to_json(map) }),
        }
    }

    /// The type's short name (`S`, `NS`, `BOOL`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::S(_) => "S",
            Value::N(_) => "N",
            Value::B(_) => "B",
            Value::Bool(_) => "BOOL",
            Value::Null => "NULL",
            Value::Ss(_) => "SS",
            Value::Ns(_) => "NS",
            Value::Bs(_) => "BS",
            Value::L(_) => "L",
            Value::M(_) => "M",
        }
    }

    /// The operand type name as DynamoDB's expression errors print it.
    pub fn operand_type(&self) -> &'static str {
        match self {
            Value::S(_) => "STRING",
            Value::N(_) => "NUMBER",
            Value::B(_) => "BINARY",
            Value::Bool(_) => "BOOLEAN",
            Value::Null => "NULL",
            Value::Ss(_) => "SS",
            Value::Ns(_) => "NS",
            Value::Bs(_) => "BS",
            Value::L(_) => "LIST",
            Value::M(_) => "MAP",
        }
    }

    /// The value's size by DynamoDB's rules (strings and binaries by length, numbers by
    /// significant digits, containers with their overhead).
    pub fn size(&self) -> usize {
        let number_size = |n: &Number| n.significant_digits().div_ceil(2) + 1;
        match self {
            Value::S(s) => s.len(),
            Value::N(n) => number_size(n),
            Value::B(b) => b.len(),
            Value::Bool(_) | Value::Null => 1,
            Value::Ss(items) => items.iter().map(String::len).sum(),
            Value::Ns(items) => items.iter().map(number_size).sum(),
            Value::Bs(items) => items.iter().map(Vec::len).sum(),
            Value::L(items) => 3 + items.iter().map(|v| 1 + v.size()).sum::<usize>(),
            Value::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| 1 + k.len() + v.size())
                    .sum::<usize>()
            }
        }
    }
}

/// Parses a wire AttributeMap.
pub fn item_from_json(json: &Json) -> Result<Item, DynamoError> {
    let Json::Object(members) = json else {
        return Err(DynamoError::Serialization(
            "Unexpected value type in payload".into(),
        ));
    };
    let mut item = BTreeMap::new();
    for (name, value) in members {
        item.insert(name.clone(), Value::from_json(value)?);
    }
    Ok(item)
}

pub fn item_to_json(item: &Item) -> Json {
    let mut out = Map::new();
    for (name, value) in item {
        out.insert(name.clone(), value.to_json());
    }
    Json::Object(out)
}

/// An item's size: each attribute's name plus its value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// The largest item DynamoDB stores.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, String> {
        let json: Json = serde_json::from_str(text).expect("json");
        Value::from_json(&json).map_err(|e| e.to_service().message.unwrap_or_default())
    }

    #[test]
    fn round_trips_every_type() {
        for text in [
            r#"{"S":"x"}"#,
            r#"{"N":"12.5"}"#,
            r#"{"B":"AAE="}"#,
            r#"{"BOOL":true}"#,
            r#"{"NULL":true}"#,
            r#"{"SS":["a","b"]}"#,
            r#"{"NS":["1","2"]}"#,
            r#"{"BS":["AA=="]}"#,
            r#"{"L":[{"S":"a"},{"N":"1"}]}"#,
            r#"{"M":{"k":{"L":[]}}}"#,
        ] {
            let value = parse(text).expect("parses");
            let expected: Json = serde_json::from_str(text).expect("json");
            assert_eq!(value.to_json(), expected, "{text}");
        }
    }

    #[test]
    fn refusals_use_dynamodb_texts() {
        assert_eq!(
            parse("{}").expect_err("refused"),
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        );
        assert_eq!(
            parse(r#"{"S":"a","N":"1"}"#).expect_err("refused"),
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"
        );
        assert_eq!(
            parse(r#"{"SS":[]}"#).expect_err("refused"),
            "One or more parameter values were invalid: An string set  may not be empty"
        );
        assert_eq!(
            parse(r#"{"SS":["a","a"]}"#).expect_err("refused"),
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates."
        );
        assert_eq!(
            parse(r#"{"N":"x1"}"#).expect_err("refused"),
            "The parameter cannot be converted to a numeric value: x1"
        );
        assert_eq!(
            parse(r#"{"NS":["1","1.0"]}"#).expect_err("refused"),
            "One or more parameter values were invalid: Input collection [1, 1] contains duplicates."
        );
    }

    #[test]
    fn sets_compare_unordered() {
        assert_eq!(
            parse(r#"{"SS":["a","b"]}"#).expect("a"),
            parse(r#"{"SS":["b","a"]}"#).expect("b")
        );
        assert_ne!(
            parse(r#"{"L":[{"S":"a"},{"S":"b"}]}"#).expect("a"),
            parse(r#"{"L":[{"S":"b"},{"S":"a"}]}"#).expect("b")
        );
    }
}
