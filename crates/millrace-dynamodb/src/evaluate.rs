//! Evaluating parsed expressions against an item: conditions, update actions and
//! projections.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::error::{validation, DynamoError};
use crate::expression::{path_text, Comparator, Condition, Operand, Path, Step, UpdateAction};
use crate::number::Number;
use crate::value::{Item, Value};

/// The value at `path` in `item`, if there is one.
pub fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a Value> {
    let mut steps = path.iter();
    let Some(Step::Name(first)) = steps.next() else {
        return None;
    };
    let mut current = item.get(first)?;
    for step in steps {
        current = match (step, current) {
            (Step::Name(name), Value::M(map)) => map.get(name)?,
            (Step::Index(index), Value::L(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

fn operand_error(kind: &str, operator: &str, value: &Value) -> DynamoError {
    validation(format!(
        "Invalid {kind}: Incorrect operand type for operator or function; operator or function: {operator}, operand type: {}",
        value.operand_type()
    ))
}

/// The value of a condition operand (None when the path is absent).
fn condition_operand(
    item: &Item,
    operand: &Operand,
    kind: &str,
) -> Result<Option<Value>, DynamoError> {
    Ok(match operand {
        Operand::Path(path) => resolve(item, path).cloned(),
        Operand::Value(value) => Some(value.clone()),
        Operand::Size(path) => match resolve(item, path) {
            None => None,
            Some(value) => {
                let length = match value {
                    Value::S(s) => s.chars().count(),
                    Value::B(b) => b.len(),
                    Value::Ss(items) => items.len(),
                    Value::Ns(items) => items.len(),
                    Value::Bs(items) => items.len(),
                    Value::L(items) => items.len(),
                    Value::M(map) => map.len(),
                    other => return Err(operand_error(kind, "size", other)),
                };
                Some(Value::N(
                    Number::parse(&length.to_string()).expect("lengths are numbers"),
                ))
            }
        },
        _ => None,
    })
}

/// Orders two scalars of the same type (S, N, B); anything else is incomparable.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::S(x), Value::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::N(x), Value::N(y)) => Some(x.cmp(y)),
        (Value::B(x), Value::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn compare(a: Option<&Value>, comparator: Comparator, b: Option<&Value>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return comparator == Comparator::Ne;
    };
    match comparator {
        Comparator::Eq => a == b,
        Comparator::Ne => a != b,
        Comparator::Lt => order(a, b) == Some(Ordering::Less),
        Comparator::Le => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
        Comparator::Gt => order(a, b) == Some(Ordering::Greater),
        Comparator::Ge => matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::S(s), Value::S(part)) => s.contains(part.as_str()),
        (Value::B(b), Value::B(part)) => {
            part.is_empty() || b.windows(part.len()).any(|w| w == part.as_slice())
        }
        (Value::Ss(items), Value::S(s)) => items.contains(s),
        (Value::Ns(items), Value::N(n)) => items.contains(n),
        (Value::Bs(items), Value::B(b)) => items.contains(b),
        (Value::L(items), value) => items.contains(value),
        _ => false,
    }
}

/// Whether `condition` holds for `item` (an absent item is an empty one).
pub fn evaluate(condition: &Condition, item: &Item, kind: &str) -> Result<bool, DynamoError> {
    let value = |operand: &Operand| condition_operand(item, operand, kind);
    Ok(match condition {
        Condition::Compare(left, comparator, right) => {
            compare(value(left)?.as_ref(), *comparator, value(right)?.as_ref())
        }
        Condition::Between(subject, low, high) => {
            match (value(subject)?, value(low)?, value(high)?) {
                (Some(x), Some(l), Some(h)) => {
                    if order(&l, &h) == Some(Ordering::Greater) {
                        return Err(validation(format!(
                            "Invalid {kind}: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower operand: {}, upper operand: {}",
                            describe(&l),
                            describe(&h)
                        )));
                    }
                    matches!(order(&x, &l), Some(Ordering::Greater | Ordering::Equal))
                        && matches!(order(&x, &h), Some(Ordering::Less | Ordering::Equal))
                }
                _ => false,
            }
        }
        Condition::In(subject, options) => match value(subject)? {
            None => false,
            Some(x) => {
                let mut found = false;
                for option in options {
                    if value(option)?.as_ref() == Some(&x) {
                        found = true;
                        break;
                    }
                }
                found
            }
        },
        Condition::Exists(path) => resolve(item, path).is_some(),
        Condition::NotExists(path) => resolve(item, path).is_none(),
        Condition::AttributeType(path, operand) => {
            let wanted = match value(operand)? {
                Some(Value::S(name)) => name,
                Some(other) => return Err(operand_error(kind, "attribute_type", &other)),
                None => return Ok(false),
            };
            const TYPES: &[&str] = &["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];
            if !TYPES.contains(&wanted.as_str()) {
                return Err(validation(format!(
                    "Invalid {kind}: Invalid attribute type name found; type: {wanted}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}"
                )));
            }
            resolve(item, path).map(Value::type_name) == Some(wanted.as_str())
        }
        Condition::BeginsWith(subject, prefix) => match (value(subject)?, value(prefix)?) {
            (Some(Value::S(s)), Some(Value::S(p))) => s.starts_with(p.as_str()),
            (Some(Value::B(b)), Some(Value::B(p))) => b.starts_with(&p),
            (_, Some(Value::S(_) | Value::B(_))) | (_, None) => false,
            (_, Some(other)) => return Err(operand_error(kind, "begins_with", &other)),
        },
        Condition::Contains(subject, needle) => match (value(subject)?, value(needle)?) {
            (Some(h), Some(n)) => contains(&h, &n),
            _ => false,
        },
        Condition::NotContains(subject, needle) => match (value(subject)?, value(needle)?) {
            (Some(h), Some(n)) => !contains(&h, &n),
            _ => false,
        },
        Condition::And(a, b) => evaluate(a, item, kind)? && evaluate(b, item, kind)?,
        Condition::Or(a, b) => evaluate(a, item, kind)? || evaluate(b, item, kind)?,
        Condition::Not(inner) => !evaluate(inner, item, kind)?,
    })
}

fn describe(value: &Value) -> String {
    match value {
        Value::S(s) => format!("{{S:{s}}}"),
        Value::N(n) => format!("{{N:{}}}", n.to_text()),
        other => format!("{{{}}}", other.type_name()),
    }
}

/// The value of an update operand, computed against the item before the update.
fn update_operand(item: &Item, operand: &Operand) -> Result<Value, DynamoError> {
    const KIND: &str = "UpdateExpression";
    let missing = || {
        validation("The provided expression refers to an attribute that does not exist in the item")
    };
    match operand {
        Operand::Path(path) => resolve(item, path).cloned().ok_or_else(missing),
        Operand::Value(value) => Ok(value.clone()),
        Operand::Size(_) => Err(validation(
            "Invalid UpdateExpression: The function is not allowed in an update expression; function: size",
        )),
        Operand::IfNotExists(path, fallback) => match resolve(item, path) {
            Some(value) => Ok(value.clone()),
            None => update_operand(item, fallback),
        },
        Operand::ListAppend(first, second) => {
            let a = update_operand(item, first)?;
            let b = update_operand(item, second)?;
            match (a, b) {
                (Value::L(mut a), Value::L(b)) => {
                    a.extend(b);
                    Ok(Value::L(a))
                }
                (Value::L(_), other) | (other, _) => {
                    Err(operand_error(KIND, "list_append", &other))
                }
            }
        }
        Operand::Plus(a, b) | Operand::Minus(a, b) => {
            let symbol = if matches!(operand, Operand::Plus(..)) {
                "+"
            } else {
                "-"
            };
            let a = update_operand(item, a)?;
            let b = update_operand(item, b)?;
            match (a, b) {
                (Value::N(a), Value::N(b)) => {
                    let b = if symbol == "-" { b.negated() } else { b };
                    a.add(&b)
                        .map(Value::N)
                        .map_err(|e| validation(e.message("")))
                }
                (Value::N(_), other) | (other, _) => Err(operand_error(KIND, symbol, &other)),
            }
        }
    }
}

/// The top-level attribute each action touches (for `UPDATED_OLD` / `UPDATED_NEW`).
pub fn touched_attributes(actions: &[UpdateAction]) -> Vec<String> {
    let mut names = Vec::new();
    for action in actions {
        let path = match action {
            UpdateAction::Set(path, _)
            | UpdateAction::Remove(path)
            | UpdateAction::Add(path, _)
            | UpdateAction::Delete(path, _) => path,
        };
        if let Some(Step::Name(name)) = path.first() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

fn action_path(action: &UpdateAction) -> &Path {
    match action {
        UpdateAction::Set(path, _)
        | UpdateAction::Remove(path)
        | UpdateAction::Add(path, _)
        | UpdateAction::Delete(path, _) => path,
    }
}

/// Refuses actions on key attributes and actions whose paths overlap.
pub fn check_actions(actions: &[UpdateAction], key_names: &[&str]) -> Result<(), DynamoError> {
    for (index, action) in actions.iter().enumerate() {
        let path = action_path(action);
        if let Some(Step::Name(name)) = path.first() {
            if key_names.contains(&name.as_str()) {
                return Err(validation(format!(
                    "One or more parameter values were invalid: Cannot update attribute {name}. This attribute is part of the key"
                )));
            }
        }
        for earlier in &actions[..index] {
            let other = action_path(earlier);
            let shorter = path.len().min(other.len());
            if path[..shorter] == other[..shorter] {
                return Err(validation(format!(
                    "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    path_text(other),
                    path_text(path)
                )));
            }
        }
    }
    Ok(())
}

fn invalid_path() -> DynamoError {
    validation("The document path provided in the update expression is invalid for update")
}

/// The slot a path names, creating the last step (the parents must exist).
fn assign(item: &mut Item, path: &Path, value: Value) -> Result<(), DynamoError> {
    let (Step::Name(first), rest) = path.split_first().ok_or_else(invalid_path)? else {
        return Err(invalid_path());
    };
    if rest.is_empty() {
        item.insert(first.clone(), value);
        return Ok(());
    }
    let mut current = item.get_mut(first).ok_or_else(invalid_path)?;
    let (last, middle) = rest.split_last().expect("rest is not empty");
    for step in middle {
        current = match (step, current) {
            (Step::Name(name), Value::M(map)) => map.get_mut(name).ok_or_else(invalid_path)?,
            (Step::Index(index), Value::L(items)) => {
                items.get_mut(*index).ok_or_else(invalid_path)?
            }
            _ => return Err(invalid_path()),
        };
    }
    match (last, current) {
        (Step::Name(name), Value::M(map)) => {
            map.insert(name.clone(), value);
        }
        (Step::Index(index), Value::L(items)) => {
            if *index < items.len() {
                items[*index] = value;
            } else {
                items.push(value);
            }
        }
        _ => return Err(invalid_path()),
    }
    Ok(())
}

fn remove(item: &mut Item, path: &Path) -> Result<(), DynamoError> {
    let (Step::Name(first), rest) = path.split_first().ok_or_else(invalid_path)? else {
        return Err(invalid_path());
    };
    if rest.is_empty() {
        item.remove(first);
        return Ok(());
    }
    let Some(mut current) = item.get_mut(first) else {
        return Ok(());
    };
    let (last, middle) = rest.split_last().expect("rest is not empty");
    for step in middle {
        let next = match (step, current) {
            (Step::Name(name), Value::M(map)) => map.get_mut(name),
            (Step::Index(index), Value::L(items)) => items.get_mut(*index),
            _ => return Err(invalid_path()),
        };
        let Some(next) = next else {
            return Ok(());
        };
        current = next;
    }
    match (last, current) {
        (Step::Name(name), Value::M(map)) => {
            map.remove(name);
        }
        (Step::Index(index), Value::L(items)) => {
            if *index < items.len() {
                items.remove(*index);
            }
        }
        _ => return Err(invalid_path()),
    }
    Ok(())
}

fn union<T: PartialEq + Clone>(mut existing: Vec<T>, added: &[T]) -> Vec<T> {
    for item in added {
        if !existing.contains(item) {
            existing.push(item.clone());
        }
    }
    existing
}

fn difference<T: PartialEq>(existing: Vec<T>, removed: &[T]) -> Vec<T> {
    existing
        .into_iter()
        .filter(|x| !removed.contains(x))
        .collect()
}

/// Applies update actions: right-hand sides are computed against the item as it was.
pub fn apply_updates(old: &Item, actions: &[UpdateAction]) -> Result<Item, DynamoError> {
    let mut new = old.clone();
    for action in actions {
        match action {
            UpdateAction::Set(path, operand) => {
                let value = update_operand(old, operand)?;
                assign(&mut new, path, value)?;
            }
            UpdateAction::Remove(path) => remove(&mut new, path)?,
            UpdateAction::Add(path, added) => {
                let current = resolve(old, path).cloned();
                let result = match (current, added) {
                    (None, Value::N(_) | Value::Ss(_) | Value::Ns(_) | Value::Bs(_)) => {
                        added.clone()
                    }
                    (Some(Value::N(a)), Value::N(b)) => {
                        Value::N(a.add(b).map_err(|e| validation(e.message("")))?)
                    }
                    (Some(Value::Ss(a)), Value::Ss(b)) => Value::Ss(union(a, b)),
                    (Some(Value::Ns(a)), Value::Ns(b)) => Value::Ns(union(a, b)),
                    (Some(Value::Bs(a)), Value::Bs(b)) => Value::Bs(union(a, b)),
                    (Some(current), Value::N(_) | Value::Ss(_) | Value::Ns(_) | Value::Bs(_)) => {
                        return Err(operand_error("UpdateExpression", "ADD", &current))
                    }
                    (_, other) => return Err(operand_error("UpdateExpression", "ADD", other)),
                };
                assign(&mut new, path, result)?;
            }
            UpdateAction::Delete(path, removed) => {
                if !matches!(removed, Value::Ss(_) | Value::Ns(_) | Value::Bs(_)) {
                    return Err(operand_error("UpdateExpression", "DELETE", removed));
                }
                let result = match (resolve(old, path).cloned(), removed) {
                    (None, _) => continue,
                    (Some(Value::Ss(a)), Value::Ss(b)) => Value::Ss(difference(a, b)),
                    (Some(Value::Ns(a)), Value::Ns(b)) => Value::Ns(difference(a, b)),
                    (Some(Value::Bs(a)), Value::Bs(b)) => Value::Bs(difference(a, b)),
                    (Some(current), _) => {
                        return Err(operand_error("UpdateExpression", "DELETE", &current))
                    }
                };
                let empty = match &result {
                    Value::Ss(v) => v.is_empty(),
                    Value::Ns(v) => v.is_empty(),
                    Value::Bs(v) => v.is_empty(),
                    _ => false,
                };
                if empty {
                    remove(&mut new, path)?;
                } else {
                    assign(&mut new, path, result)?;
                }
            }
        }
    }
    Ok(new)
}

/// The parts of `item` that `paths` name, nested as in the item.
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out: Item = BTreeMap::new();
    for path in paths {
        let Some(value) = resolve(item, path) else {
            continue;
        };
        let Some(Step::Name(first)) = path.first() else {
            continue;
        };
        if path.len() == 1 {
            out.insert(first.clone(), value.clone());
            continue;
        }
        // Nested projections keep the enclosing maps; list elements are collected in order.
        let mut slot = out
            .entry(first.clone())
            .or_insert_with(|| empty_like(item.get(first)));
        for (depth, step) in path.iter().enumerate().skip(1) {
            let last = depth == path.len() - 1;
            let source = resolve(item, &path[..=depth].to_vec());
            slot = match (step, slot) {
                (Step::Name(name), Value::M(map)) => {
                    let entry = map
                        .entry(name.clone())
                        .or_insert_with(|| empty_like(source));
                    if last {
                        *entry = value.clone();
                    }
                    entry
                }
                (Step::Index(_), Value::L(items)) => {
                    items.push(if last {
                        value.clone()
                    } else {
                        empty_like(source)
                    });
                    items.last_mut().expect("just pushed")
                }
                _ => break,
            };
        }
    }
    out
}

fn empty_like(value: Option<&Value>) -> Value {
    match value {
        Some(Value::L(_)) => Value::L(Vec::new()),
        _ => Value::M(BTreeMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expression::{parse_condition, parse_update, Kind, Placeholders};
    use crate::value::item_from_json;

    fn item(json: &str) -> Item {
        item_from_json(&serde_json::from_str(json).expect("json")).expect("item")
    }

    fn values(json: &str) -> Placeholders {
        let values = item(json).into_iter().collect();
        Placeholders::new(BTreeMap::new(), values)
    }

    fn holds(expression: &str, on: &str) -> bool {
        let p = values(r#"{":a":{"S":"a"},":n":{"N":"5"},":l":{"N":"1"},":h":{"N":"9"}}"#);
        let condition = parse_condition(expression, Kind::Condition, &p).expect("parses");
        evaluate(&condition, &item(on), "ConditionExpression").expect("evaluates")
    }

    #[test]
    fn conditions() {
        let lease = r#"{"k":{"S":"abc"},"c":{"N":"5"},"s":{"SS":["a","b"]}}"#;
        assert!(holds("attribute_exists(k)", lease));
        assert!(holds("attribute_not_exists(zz)", lease));
        assert!(holds("c = :n AND begins_with(k, :a)", lease));
        assert!(holds("c BETWEEN :l AND :h", lease));
        assert!(holds("contains(s, :a)", lease));
        assert!(holds("NOT c < :n", lease));
        assert!(holds("c IN (:l, :n)", lease));
        assert!(holds("size(k) < :n", lease));
        assert!(!holds("k = :n", lease));
        assert!(holds("zz <> :n", lease));
        assert!(!holds("zz = :n OR zz > :n", lease));
    }

    fn update(expression: &str, on: &str) -> Result<Item, DynamoError> {
        let p =
            values(r#"{":one":{"N":"1"},":s":{"SS":["x"]},":l":{"L":[{"S":"z"}]},":v":{"S":"v"}}"#);
        let actions = parse_update(expression, &p).expect("parses");
        check_actions(&actions, &["k"])?;
        apply_updates(&item(on), &actions)
    }

    #[test]
    fn updates() {
        let base = r#"{"k":{"S":"a"},"c":{"N":"1"},"m":{"M":{"x":{"S":"y"}}},"l":{"L":[]}}"#;
        let out = update(
            "SET c = c + :one, m.x = :v, l = list_append(l, :l), n = if_not_exists(n, :one) ADD t :s",
            base,
        )
        .expect("applies");
        assert_eq!(
            crate::value::item_to_json(&out),
            serde_json::json!({
                "k":{"S":"a"},"c":{"N":"2"},"m":{"M":{"x":{"S":"v"}}},
                "l":{"L":[{"S":"z"}]},"n":{"N":"1"},"t":{"SS":["x"]}
            })
        );
        let out = update(
            "DELETE t :s REMOVE c",
            r#"{"k":{"S":"a"},"c":{"N":"1"},"t":{"SS":["x"]}}"#,
        )
        .expect("applies");
        assert_eq!(out.len(), 1);
        assert_eq!(
            update("SET k = :v", base).expect_err("key").to_string(),
            "One or more parameter values were invalid: Cannot update attribute k. This attribute is part of the key"
        );
        assert_eq!(
            update("SET m = :v, m.x = :v", base).expect_err("overlap").to_string(),
            "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [m], path two: [m, x]"
        );
        assert_eq!(
            update("SET c = zz", base).expect_err("missing").to_string(),
            "The provided expression refers to an attribute that does not exist in the item"
        );
        assert_eq!(
            update("ADD m :one", base).expect_err("type").to_string(),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: ADD, operand type: MAP"
        );
    }
}
