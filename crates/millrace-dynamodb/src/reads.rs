//! Scan (with parallel segments) and Query (on the table or a global secondary index), with
//! filters, projections, `Select`, `Limit` and paging by `ExclusiveStartKey`.

use serde_json::{json, Value as Json};

use crate::error::{table_not_found, validation, DynamoError};
use crate::evaluate::evaluate;
use crate::expression::{self, Comparator, Condition, Kind, Operand, Path, Step};
use crate::legacy;
use crate::request::{
    apply_projection, check_styles, consumed, first_names, key_attributes, placeholders,
    projection, read_units,
};
use crate::store::{Index, KeySchema, KeyValue, Store, Table};
use crate::value::{item_from_json, item_size, item_to_json, Item, Value};

/// Pages stop after about this many bytes of items read, as DynamoDB's do.
const PAGE_BYTES: usize = 1024 * 1024;

type SortKey = Vec<Option<KeyValue>>;

fn sort_key(item: &Item, schemas: &[&KeySchema]) -> SortKey {
    let mut out = Vec::new();
    for schema in schemas {
        out.push(item.get(&schema.hash).and_then(KeyValue::from_value));
        if let Some(range) = &schema.range {
            out.push(item.get(range).and_then(KeyValue::from_value));
        }
    }
    out
}

/// What a read works on: the table, or one index of it.
struct Source<'a> {
    table: &'a Table,
    index: Option<&'a Index>,
}

impl<'a> Source<'a> {
    fn open(table: &'a Table, input: &Json) -> Result<Source<'a>, DynamoError> {
        let index = match input.get("IndexName").and_then(Json::as_str) {
            None => None,
            Some(name) => Some(
                table
                    .meta
                    .indexes
                    .iter()
                    .find(|i| i.name == name)
                    .ok_or_else(|| {
                        validation(format!(
                            "The table does not have the specified index: {name}"
                        ))
                    })?,
            ),
        };
        if index.is_some() && input.get("ConsistentRead").and_then(Json::as_bool) == Some(true) {
            return Err(validation(
                "Consistent reads are not supported on global secondary indexes",
            ));
        }
        Ok(Source { table, index })
    }

    fn schemas(&self) -> Vec<&'a KeySchema> {
        match self.index {
            Some(index) => vec![&index.key, &self.table.meta.key],
            None => vec![&self.table.meta.key],
        }
    }

    /// The key this source is queried by.
    fn key(&self) -> &'a KeySchema {
        self.index.map_or(&self.table.meta.key, |i| &i.key)
    }

    /// Every item of the source in key order, with its sort key.
    fn items(&self) -> Vec<(SortKey, &'a Item)> {
        let schemas = self.schemas();
        let mut out: Vec<(SortKey, &'a Item)> = self
            .table
            .items
            .values()
            .filter(|item| {
                self.index
                    .is_none_or(|i| i.key.names().iter().all(|n| item.contains_key(*n)))
            })
            .map(|item| (sort_key(item, &schemas), item))
            .collect();
        if self.index.is_some() {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        out
    }

    /// The item as the source holds it (an index keeps only its projected attributes).
    fn stored(&self, item: &Item) -> Item {
        let Some(index) = self.index else {
            return item.clone();
        };
        if index.projection == "ALL" {
            return item.clone();
        }
        let mut keep: Vec<&str> = self.table.meta.key.names();
        keep.extend(index.key.names());
        keep.extend(index.non_key_attributes.iter().map(String::as_str));
        item.iter()
            .filter(|(name, _)| keep.contains(&name.as_str()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

/// The shared parameters of Scan and Query.
struct ReadPlan {
    filter: Option<Condition>,
    paths: Option<Vec<Path>>,
    count_only: bool,
    limit: Option<usize>,
    start: Option<SortKey>,
}

fn read_plan(
    input: &Json,
    source: &Source<'_>,
    key_condition: Option<(&str, &mut Option<Condition>)>,
    legacy_filter: &str,
) -> Result<ReadPlan, DynamoError> {
    let placeholders = placeholders(input)?;
    if let Some((text, slot)) = key_condition {
        *slot = Some(expression::parse_condition(
            text,
            Kind::KeyCondition,
            &placeholders,
        )?);
    }
    let filter = match input.get("FilterExpression").and_then(Json::as_str) {
        Some(text) => Some(expression::parse_condition(
            text,
            Kind::Filter,
            &placeholders,
        )?),
        None => match input.get(legacy_filter) {
            Some(json) => legacy::filter(
                json,
                input.get("ConditionalOperator").and_then(Json::as_str),
            )?,
            None => None,
        },
    };
    let paths = projection(input, &placeholders)?;
    placeholders.check_all_used()?;
    if legacy_filter == "QueryFilter" {
        if let Some(filter) = &filter {
            let mut names = Vec::new();
            first_names(filter, &mut names);
            let keys = source.key().names();
            if let Some(name) = names.iter().find(|n| keys.contains(&n.as_str())) {
                return Err(validation(format!(
                    "Filter Expression can only contain non-primary key attributes: Primary key attribute: {name}"
                )));
            }
        }
    }
    let select = input.get("Select").and_then(Json::as_str);
    if select == Some("SPECIFIC_ATTRIBUTES") && paths.is_none() {
        return Err(validation(
            "One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES requires AttributesToGet or ProjectionExpression",
        ));
    }
    if paths.is_some()
        && matches!(
            select,
            Some("ALL_ATTRIBUTES" | "ALL_PROJECTED_ATTRIBUTES" | "COUNT")
        )
    {
        return Err(validation(format!(
            "One or more parameter values were invalid: Cannot specify the AttributesToGet when choosing to get only the {}",
            select.unwrap_or_default()
        )));
    }
    if let (Some(index), Some("ALL_ATTRIBUTES")) = (source.index, select) {
        if index.projection != "ALL" {
            return Err(validation(format!(
                "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {} because its projection type is not ALL",
                index.name
            )));
        }
    }
    let start = match input.get("ExclusiveStartKey") {
        None => None,
        Some(json) => {
            let key = item_from_json(json)?;
            let schemas = source.schemas();
            let complete = schemas
                .iter()
                .all(|s| s.names().iter().all(|n| key.contains_key(*n)));
            if !complete {
                return Err(validation(
                    "The provided starting key is invalid: The provided key element does not match the schema",
                ));
            }
            Some(sort_key(&key, &schemas))
        }
    };
    Ok(ReadPlan {
        filter,
        paths,
        count_only: select == Some("COUNT"),
        limit: input
            .get("Limit")
            .and_then(Json::as_u64)
            .map(|l| l as usize),
        start,
    })
}

/// Reads candidates in order: filter, project, page.
fn run(
    input: &Json,
    source: &Source<'_>,
    plan: &ReadPlan,
    candidates: Vec<(SortKey, &Item)>,
    forward: bool,
    filter_kind: &str,
) -> Result<Json, DynamoError> {
    let mut items = Vec::new();
    let mut passed = 0usize;
    let mut scanned = 0usize;
    let mut bytes = 0usize;
    let mut last: Option<&Item> = None;
    let mut more = false;
    let ordered: Box<dyn Iterator<Item = &(SortKey, &Item)>> = if forward {
        Box::new(candidates.iter())
    } else {
        Box::new(candidates.iter().rev())
    };
    let mut ordered = ordered
        .skip_while(|(key, _)| match &plan.start {
            Some(start) => {
                if forward {
                    key <= start
                } else {
                    key >= start
                }
            }
            None => false,
        })
        .peekable();
    while let Some((_, item)) = ordered.next() {
        let stored = source.stored(item);
        scanned += 1;
        bytes += item_size(&stored);
        let keep = match &plan.filter {
            Some(filter) => evaluate(filter, &stored, filter_kind)?,
            None => true,
        };
        if keep {
            passed += 1;
        }
        if keep && !plan.count_only {
            items.push(item_to_json(&apply_projection(
                &stored,
                plan.paths.as_ref(),
            )));
        }
        last = Some(item);
        let full = plan.limit.is_some_and(|l| scanned >= l) || bytes >= PAGE_BYTES;
        if full {
            more = ordered.peek().is_some();
            break;
        }
    }
    let mut out = json!({ "Count": passed, "ScannedCount": scanned });
    if !plan.count_only {
        out["Items"] = Json::Array(items);
    }
    if more {
        if let Some(item) = last {
            out["LastEvaluatedKey"] = key_attributes(item, &source.schemas());
        }
    }
    if let Some(capacity) = consumed(input, &source.table.meta.name, read_units(bytes, false)) {
        out["ConsumedCapacity"] = capacity;
    }
    Ok(out)
}

pub fn scan(store: &Store, account: &str, region: &str, input: &Json) -> Result<Json, DynamoError> {
    check_styles(
        input,
        &["FilterExpression", "ProjectionExpression"],
        &["ScanFilter", "AttributesToGet", "ConditionalOperator"],
    )?;
    let segment = input.get("Segment").and_then(Json::as_u64);
    let total = input.get("TotalSegments").and_then(Json::as_u64);
    let segment = match (segment, total) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ))
        }
        (None, Some(_)) => {
            return Err(validation(
                "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
            ))
        }
        (Some(segment), Some(total)) => {
            if segment >= total {
                return Err(validation(format!(
                    "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {segment} is not less than TotalSegments: {total}"
                )));
            }
            Some((segment as u32, total as u32))
        }
    };
    let name = input.get("TableName").and_then(Json::as_str).unwrap_or("");
    let state = store.lock();
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let table = state.tables.get(&id).ok_or_else(table_not_found)?;
    let source = Source::open(table, input)?;
    let plan = read_plan(input, &source, None, "ScanFilter")?;
    let mut candidates = source.items();
    if let Some((segment, total)) = segment {
        let schema = &table.meta.key;
        candidates.retain(|(_, item)| {
            crate::store::key_of(item, schema).is_some_and(|k| k.segment(total) == segment)
        });
    }
    run(input, &source, &plan, candidates, true, "FilterExpression")
}

/// The parts of a key condition: the partition key value and a sort-key condition.
fn key_condition_parts(
    condition: Condition,
    key: &KeySchema,
) -> Result<(Value, Option<Condition>), DynamoError> {
    fn flatten(condition: Condition, out: &mut Vec<Condition>) -> Result<(), DynamoError> {
        match condition {
            Condition::And(a, b) => {
                flatten(*a, out)?;
                flatten(*b, out)
            }
            Condition::Or(..) => Err(validation(
                "Invalid operator used in KeyConditionExpression: OR",
            )),
            Condition::Not(..) => Err(validation(
                "Invalid operator used in KeyConditionExpression: NOT",
            )),
            other => {
                out.push(other);
                Ok(())
            }
        }
    }
    let mut parts = Vec::new();
    flatten(condition, &mut parts)?;
    if parts.len() > 2 {
        return Err(validation("Conditions can be of length 1 or 2 only"));
    }
    let subject = |condition: &Condition| -> Option<String> {
        let path = match condition {
            Condition::Compare(Operand::Path(p), _, Operand::Value(_))
            | Condition::Between(Operand::Path(p), Operand::Value(_), Operand::Value(_))
            | Condition::BeginsWith(Operand::Path(p), Operand::Value(_)) => p,
            _ => return None,
        };
        match path.as_slice() {
            [Step::Name(name)] => Some(name.clone()),
            _ => None,
        }
    };
    let mut hash = None;
    let mut range = None;
    for part in parts {
        let Some(name) = subject(&part) else {
            return Err(validation("Query key condition not supported"));
        };
        if name == key.hash {
            let Condition::Compare(_, Comparator::Eq, Operand::Value(value)) = part else {
                return Err(validation("Query key condition not supported"));
            };
            hash = Some(value);
        } else if key.range.as_deref() == Some(name.as_str()) {
            if matches!(part, Condition::Compare(_, Comparator::Ne, _)) {
                return Err(validation(
                    "Unsupported operator on KeyConditionExpression: operator: <>",
                ));
            }
            range = Some(part);
        } else {
            return Err(validation(format!(
                "Query condition missed key schema element: {}",
                key.hash
            )));
        }
    }
    let hash = hash.ok_or_else(|| {
        validation(format!(
            "Query condition missed key schema element: {}",
            key.hash
        ))
    })?;
    Ok((hash, range))
}

pub fn query(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    check_styles(
        input,
        &[
            "KeyConditionExpression",
            "FilterExpression",
            "ProjectionExpression",
        ],
        &[
            "KeyConditions",
            "QueryFilter",
            "AttributesToGet",
            "ConditionalOperator",
        ],
    )?;
    let name = input.get("TableName").and_then(Json::as_str).unwrap_or("");
    let state = store.lock();
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let table = state.tables.get(&id).ok_or_else(table_not_found)?;
    let source = Source::open(table, input)?;
    let mut key_condition = None;
    let expression_text = input.get("KeyConditionExpression").and_then(Json::as_str);
    let plan = read_plan(
        input,
        &source,
        expression_text.map(|t| (t, &mut key_condition)),
        "QueryFilter",
    )?;
    if key_condition.is_none() {
        key_condition = match input.get("KeyConditions") {
            Some(json) => legacy::filter(json, None)?,
            None => None,
        };
    }
    let Some(key_condition) = key_condition else {
        return Err(validation(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.",
        ));
    };
    let key = source.key();
    let (hash, range) = key_condition_parts(key_condition, key)?;
    let hash_path: Path = vec![Step::Name(key.hash.clone())];
    let mut candidates = Vec::new();
    for (sort, item) in source.items() {
        if crate::evaluate::resolve(item, &hash_path) != Some(&hash) {
            continue;
        }
        if let Some(range) = &range {
            if !evaluate(range, item, "KeyConditionExpression")? {
                continue;
            }
        }
        candidates.push((sort, item));
    }
    let forward = input
        .get("ScanIndexForward")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    run(
        input,
        &source,
        &plan,
        candidates,
        forward,
        "FilterExpression",
    )
}
