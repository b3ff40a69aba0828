//! The single-item operations (GetItem, PutItem, UpdateItem, DeleteItem) and their batch
//! forms. Each runs under the store's lock and is stored durably before it answers.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

use crate::error::{table_not_found, validation, DynamoError};
use crate::evaluate::{apply_updates, check_actions, evaluate, touched_attributes};
use crate::expression::{self, Placeholders};
use crate::legacy;
use crate::request::{
    apply_projection, check_item, check_key_item, check_styles, consumed, key_from_json,
    placeholders, projection, read_units, write_condition, write_units,
};
use crate::store::{ItemKey, State, Store, Table, TableId};
use crate::value::{item_from_json, item_size, item_to_json, Item};

fn table_id(account: &str, region: &str, input: &Json) -> TableId {
    let name = input.get("TableName").and_then(Json::as_str).unwrap_or("");
    (account.to_owned(), region.to_owned(), name.to_owned())
}

fn table<'a>(state: &'a mut State, id: &TableId) -> Result<&'a mut Table, DynamoError> {
    state.tables.get_mut(id).ok_or_else(table_not_found)
}

fn return_values<'a>(input: &'a Json, allowed: &[&str]) -> Result<&'a str, DynamoError> {
    let value = input
        .get("ReturnValues")
        .and_then(Json::as_str)
        .unwrap_or("NONE");
    if !allowed.contains(&value) {
        return Err(validation("Return values set to invalid value"));
    }
    Ok(value)
}

/// Evaluates the write condition; on failure, the error carries the old item when asked.
fn check_condition(
    input: &Json,
    placeholders: &Placeholders,
    old: Option<&Item>,
) -> Result<(), DynamoError> {
    let condition = write_condition(input, placeholders)?;
    let Some(condition) = condition else {
        return Ok(());
    };
    let empty = Item::new();
    let kind = if input.get("Expected").is_some() {
        "Expected"
    } else {
        "ConditionExpression"
    };
    if evaluate(&condition, old.unwrap_or(&empty), kind)? {
        return Ok(());
    }
    let wants_item = input
        .get("ReturnValuesOnConditionCheckFailure")
        .and_then(Json::as_str)
        == Some("ALL_OLD");
    Err(DynamoError::ConditionFailed(
        old.filter(|_| wants_item).map(item_to_json),
    ))
}

fn with_capacity(mut out: Json, input: &Json, table: &str, units: f64) -> Json {
    if let Some(capacity) = consumed(input, table, units) {
        out["ConsumedCapacity"] = capacity;
    }
    out
}

pub fn get_item(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    check_styles(input, &["ProjectionExpression"], &["AttributesToGet"])?;
    let placeholders = placeholders(input)?;
    let paths = projection(input, &placeholders)?;
    placeholders.check_all_used()?;
    let id = table_id(account, region, input);
    let mut state = store.lock();
    let table = table(&mut state, &id)?;
    let key = key_from_json(&table.meta, input.get("Key"))?;
    let consistent = input
        .get("ConsistentRead")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let mut out = json!({});
    let mut bytes = 0;
    if let Some(item) = table.items.get(&key) {
        bytes = item_size(item);
        out["Item"] = item_to_json(&apply_projection(item, paths.as_ref()));
    }
    Ok(with_capacity(
        out,
        input,
        &id.2,
        read_units(bytes, consistent),
    ))
}

pub fn put_item(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    check_styles(
        input,
        &["ConditionExpression"],
        &["Expected", "ConditionalOperator"],
    )?;
    let returning = return_values(input, &["NONE", "ALL_OLD"])?;
    let placeholders = placeholders(input)?;
    let item = item_from_json(input.get("Item").unwrap_or(&Json::Null))?;
    write_condition(input, &placeholders)?;
    placeholders.check_all_used()?;
    let id = table_id(account, region, input);
    let mut state = store.lock();
    let table = table(&mut state, &id)?;
    let key = check_item(&table.meta, &item, false)?;
    let old = table.items.get(&key).cloned();
    check_condition(input, &placeholders, old.as_ref())?;
    store.write_items(&id, &[(&key, Some(&item))])?;
    let units = write_units(Some(&item));
    table.apply(key, Some(item));
    let mut out = json!({});
    if returning == "ALL_OLD" {
        if let Some(old) = old {
            out["Attributes"] = item_to_json(&old);
        }
    }
    Ok(with_capacity(out, input, &id.2, units))
}

pub fn delete_item(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    check_styles(
        input,
        &["ConditionExpression"],
        &["Expected", "ConditionalOperator"],
    )?;
    let returning = return_values(input, &["NONE", "ALL_OLD"])?;
    let placeholders = placeholders(input)?;
    write_condition(input, &placeholders)?;
    placeholders.check_all_used()?;
    let id = table_id(account, region, input);
    let mut state = store.lock();
    let table = table(&mut state, &id)?;
    let key = key_from_json(&table.meta, input.get("Key"))?;
    let old = table.items.get(&key).cloned();
    check_condition(input, &placeholders, old.as_ref())?;
    if old.is_some() {
        store.write_items(&id, &[(&key, None)])?;
        table.apply(key, None);
    }
    let units = write_units(old.as_ref());
    let mut out = json!({});
    if returning == "ALL_OLD" {
        if let Some(old) = old {
            out["Attributes"] = item_to_json(&old);
        }
    }
    Ok(with_capacity(out, input, &id.2, units))
}

fn pick(item: &Item, names: &[String]) -> Item {
    names
        .iter()
        .filter_map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
        .collect()
}

pub fn update_item(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    check_styles(
        input,
        &["ConditionExpression", "UpdateExpression"],
        &["Expected", "ConditionalOperator", "AttributeUpdates"],
    )?;
    let returning = return_values(
        input,
        &["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"],
    )?;
    let placeholders = placeholders(input)?;
    let actions = match (
        input.get("UpdateExpression").and_then(Json::as_str),
        input.get("AttributeUpdates"),
    ) {
        (Some(text), _) => expression::parse_update(text, &placeholders)?,
        (None, Some(updates)) => legacy::attribute_updates(updates)?,
        (None, None) => Vec::new(),
    };
    write_condition(input, &placeholders)?;
    placeholders.check_all_used()?;
    let id = table_id(account, region, input);
    let mut state = store.lock();
    let table = table(&mut state, &id)?;
    let key = key_from_json(&table.meta, input.get("Key"))?;
    check_actions(&actions, &table.meta.key.names())?;
    let old = table.items.get(&key).cloned();
    check_condition(input, &placeholders, old.as_ref())?;
    let base: Item = match &old {
        Some(item) => item.clone(),
        None => {
            let key_item = item_from_json(input.get("Key").unwrap_or(&Json::Null))?;
            check_key_item(&table.meta, &key_item)?;
            key_item
        }
    };
    let new = apply_updates(&base, &actions)?;
    check_item(&table.meta, &new, true)?;
    store.write_items(&id, &[(&key, Some(&new))])?;
    let units = write_units(Some(&new));
    let touched = touched_attributes(&actions);
    let attributes = match returning {
        "ALL_OLD" => old.clone(),
        "ALL_NEW" => Some(new.clone()),
        "UPDATED_OLD" => old.as_ref().map(|o| pick(o, &touched)),
        "UPDATED_NEW" => Some(pick(&new, &touched)),
        _ => None,
    };
    table.apply(key, Some(new));
    let mut out = json!({});
    if let Some(attributes) = attributes.filter(|a| !a.is_empty()) {
        out["Attributes"] = item_to_json(&attributes);
    }
    Ok(with_capacity(out, input, &id.2, units))
}

/// The writes of one table in a batch: key and new item (`None` deletes).
type WritePlan = Vec<(ItemKey, Option<Item>)>;

fn duplicates() -> DynamoError {
    validation("Provided list of item keys contains duplicates")
}

pub fn batch_get_item(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let requests = input
        .get("RequestItems")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let total: usize = requests
        .values()
        .map(|r| r.get("Keys").and_then(Json::as_array).map_or(0, Vec::len))
        .sum();
    if total > 100 {
        return Err(validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    let mut state = store.lock();
    let mut responses = Map::new();
    let mut capacities = Vec::new();
    for (name, request) in &requests {
        check_styles(request, &["ProjectionExpression"], &["AttributesToGet"])?;
        let placeholders = placeholders(request)?;
        let paths = projection(request, &placeholders)?;
        placeholders.check_all_used()?;
        let id = (account.to_owned(), region.to_owned(), name.clone());
        let table = table(&mut state, &id)?;
        let mut keys: Vec<ItemKey> = Vec::new();
        for key in request
            .get("Keys")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let key = key_from_json(&table.meta, Some(key))?;
            if keys.contains(&key) {
                return Err(duplicates());
            }
            keys.push(key);
        }
        let mut items = Vec::new();
        let mut bytes = 0;
        for key in &keys {
            if let Some(item) = table.items.get(key) {
                bytes += item_size(item);
                items.push(item_to_json(&apply_projection(item, paths.as_ref())));
            }
        }
        let consistent = request
            .get("ConsistentRead")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        if let Some(capacity) = consumed(input, name, read_units(bytes, consistent)) {
            capacities.push(capacity);
        }
        responses.insert(name.clone(), Json::Array(items));
    }
    let mut out = json!({ "Responses": responses, "UnprocessedKeys": {} });
    if !capacities.is_empty() {
        out["ConsumedCapacity"] = Json::Array(capacities);
    }
    Ok(out)
}

pub fn batch_write_item(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let requests = input
        .get("RequestItems")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let total: usize = requests
        .values()
        .map(|r| r.as_array().map_or(0, Vec::len))
        .sum();
    if total > 25 {
        return Err(validation(
            "Too many items requested for the BatchWriteItem call",
        ));
    }
    let mut state = store.lock();
    // Check every request first: a bad one changes nothing.
    let mut plans: Vec<(TableId, WritePlan)> = Vec::new();
    for (name, writes) in &requests {
        let id = (account.to_owned(), region.to_owned(), name.clone());
        let table = table(&mut state, &id)?;
        let mut plan: WritePlan = Vec::new();
        for write in writes.as_array().into_iter().flatten() {
            let (key, item) = if let Some(put) = write.get("PutRequest") {
                let item = item_from_json(put.get("Item").unwrap_or(&Json::Null))?;
                (check_item(&table.meta, &item, false)?, Some(item))
            } else if let Some(delete) = write.get("DeleteRequest") {
                (key_from_json(&table.meta, delete.get("Key"))?, None)
            } else {
                return Err(validation(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                ));
            };
            if plan.iter().any(|(k, _)| *k == key) {
                return Err(duplicates());
            }
            plan.push((key, item));
        }
        plans.push((id, plan));
    }
    let mut capacities = Vec::new();
    for (id, plan) in plans {
        let changes: Vec<(&ItemKey, Option<&Item>)> =
            plan.iter().map(|(k, i)| (k, i.as_ref())).collect();
        store.write_items(&id, &changes)?;
        let units: f64 = plan.iter().map(|(_, i)| write_units(i.as_ref())).sum();
        if let Some(capacity) = consumed(input, &id.2, units) {
            capacities.push(capacity);
        }
        let table = table(&mut state, &id)?;
        for (key, item) in plan {
            table.apply(key, item);
        }
    }
    let mut out = json!({ "UnprocessedItems": BTreeMap::<String, Json>::new() });
    if !capacities.is_empty() {
        out["ConsumedCapacity"] = Json::Array(capacities);
    }
    Ok(out)
}
