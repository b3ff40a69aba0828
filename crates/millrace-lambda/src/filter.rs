//! FilterCriteria: event filter patterns over a Kinesis record (`data` parsed as JSON when it
//! is JSON, and the record's metadata). A pattern is a JSON object whose keys must all match;
//! a leaf is a list of alternatives: exact values, `prefix`, `suffix`, `equals-ignore-case`,
//! `anything-but`, `exists` and `numeric` ranges. A record passes when any filter matches.

use serde_json::Value;

/// The patterns of a mapping's `FilterCriteria` (unparseable ones are refused at the API).
pub struct Filters(Vec<Value>);

impl Filters {
    /// `None` when the criteria hold no filter.
    pub fn of(criteria: Option<&Value>) -> Result<Option<Filters>, String> {
        let Some(list) = criteria
            .and_then(|c| c.get("Filters"))
            .and_then(Value::as_array)
        else {
            return Ok(None);
        };
        let mut patterns = Vec::new();
        for filter in list {
            let Some(text) = filter.get("Pattern").and_then(Value::as_str) else {
                continue;
            };
            let pattern: Value = serde_json::from_str(text)
                .map_err(|_| format!("Invalid filter pattern definition: {text}"))?;
            if !pattern.is_object() {
                return Err(format!("Invalid filter pattern definition: {text}"));
            }
            patterns.push(pattern);
        }
        Ok((!patterns.is_empty()).then_some(Filters(patterns)))
    }

    /// Whether a record passes: `document` is the record as the filter sees it.
    pub fn matches(&self, document: &Value) -> bool {
        self.0
            .iter()
            .any(|pattern| object_matches(pattern, Some(document)))
    }
}

fn object_matches(pattern: &Value, value: Option<&Value>) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(key, rule)| {
        let field = value.and_then(|v| v.get(key));
        match rule {
            Value::Object(_) => object_matches(rule, field),
            Value::Array(alternatives) => alternatives.iter().any(|alt| leaf_matches(alt, field)),
            _ => false,
        }
    })
}

fn leaf_matches(rule: &Value, value: Option<&Value>) -> bool {
    if let Some(Value::Array(items)) = value {
        if !matches!(rule, Value::Object(o) if o.contains_key("exists")) {
            return items.iter().any(|item| leaf_matches(rule, Some(item)));
        }
    }
    match rule {
        Value::Object(operator) => {
            let Some((name, argument)) = operator.iter().next() else {
                return false;
            };
            match name.as_str() {
                "exists" => argument.as_bool() == Some(value.is_some()),
                "prefix" => {
                    matches!((value, argument), (Some(Value::String(v)), Value::String(p)) if v.starts_with(p.as_str()))
                }
                "suffix" => {
                    matches!((value, argument), (Some(Value::String(v)), Value::String(s)) if v.ends_with(s.as_str()))
                }
                "equals-ignore-case" => {
                    matches!((value, argument), (Some(Value::String(v)), Value::String(s)) if v.eq_ignore_ascii_case(s))
                }
                "anything-but" => match value {
                    None => false,
                    Some(v) => match argument {
                        Value::Array(list) => !list.iter().any(|a| a == v),
                        Value::Object(inner) => match inner.get("prefix") {
                            Some(Value::String(p)) => {
                                !v.as_str().is_some_and(|s| s.starts_with(p.as_str()))
                            }
                            _ => false,
                        },
                        scalar => scalar != v,
                    },
                },
                "numeric" => {
                    let Some(number) = value.and_then(Value::as_f64) else {
                        return false;
                    };
                    let Some(terms) = argument.as_array() else {
                        return false;
                    };
                    terms.chunks(2).all(|pair| {
                        let (Some(op), Some(bound)) = (
                            pair.first().and_then(Value::as_str),
                            pair.get(1).and_then(Value::as_f64),
                        ) else {
                            return false;
                        };
                        match op {
                            "=" => number == bound,
                            "<" => number < bound,
                            "<=" => number <= bound,
                            ">" => number > bound,
                            ">=" => number >= bound,
                            _ => false,
                        }
                    })
                }
                _ => false,
            }
        }
        scalar => value == Some(scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filters(pattern: &str) -> Filters {
        Filters::of(Some(&json!({"Filters": [{"Pattern": pattern}]})))
            .expect("valid")
            .expect("some")
    }

    #[test]
    fn data_patterns() {
        let record = json!({"partitionKey": "user-1", "data": {"kind": "order", "amount": 12, "tags": ["a", "b"]}});
        assert!(filters(r#"{"data": {"kind": ["order"]}}"#).matches(&record));
        assert!(!filters(r#"{"data": {"kind": ["refund"]}}"#).matches(&record));
        assert!(
            filters(r#"{"data": {"amount": [{"numeric": [">", 10, "<=", 12]}]}}"#).matches(&record)
        );
        assert!(!filters(r#"{"data": {"amount": [{"numeric": [">", 12]}]}}"#).matches(&record));
        assert!(filters(r#"{"data": {"kind": [{"prefix": "ord"}]}}"#).matches(&record));
        assert!(filters(r#"{"data": {"tags": ["b"]}}"#).matches(&record));
        assert!(filters(r#"{"data": {"missing": [{"exists": false}]}}"#).matches(&record));
        assert!(!filters(r#"{"data": {"kind": [{"exists": false}]}}"#).matches(&record));
        assert!(filters(r#"{"data": {"kind": [{"anything-but": ["refund"]}]}}"#).matches(&record));
        assert!(filters(r#"{"partitionKey": ["user-1"]}"#).matches(&record));
        assert!(!filters(r#"{"data": {"kind": ["order"]}}"#).matches(&json!({"partitionKey": "x"})));
        assert!(Filters::of(Some(&json!({"Filters": [{"Pattern": "not json"}]}))).is_err());
    }
}
