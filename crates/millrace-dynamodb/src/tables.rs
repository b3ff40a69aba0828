//! The table operations: CreateTable, DescribeTable, UpdateTable (billing, throughput, adding
//! and deleting global secondary indexes), DeleteTable, ListTables, the continuous-backup
//! settings and tags.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use crate::error::{validation, DynamoError};
use crate::store::{Index, KeySchema, KeyType, Store, Table, TableId, TableMeta};

pub fn table_arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:dynamodb:{region}:{account}:table/{name}")
}

fn now_seconds() -> f64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (elapsed.as_millis() as f64) / 1000.0
}

fn not_found(name: &str) -> DynamoError {
    DynamoError::NotFound(format!(
        "Requested resource not found: Table: {name} not found"
    ))
}

fn invalid(message: impl std::fmt::Display) -> DynamoError {
    validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

fn text<'a>(json: &'a Json, name: &str) -> &'a str {
    json.get(name).and_then(Json::as_str).unwrap_or("")
}

fn key_schema(json: Option<&Json>) -> Result<KeySchema, DynamoError> {
    let elements = json.and_then(Json::as_array).cloned().unwrap_or_default();
    let mut hash = None;
    let mut range = None;
    for (index, element) in elements.iter().enumerate() {
        let name = text(element, "AttributeName").to_owned();
        let kind = text(element, "KeyType");
        match (index, kind) {
            (0, "HASH") => hash = Some(name),
            (0, _) => {
                return Err(validation(
                    "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
                ))
            }
            (1, "RANGE") => range = Some(name),
            _ => {
                return Err(validation(
                    "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type",
                ))
            }
        }
    }
    let hash = hash.ok_or_else(|| {
        validation("Invalid KeySchema: Some index key attribute have no definition")
    })?;
    if range.as_deref() == Some(hash.as_str()) {
        return Err(validation(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name",
        ));
    }
    Ok(KeySchema { hash, range })
}

fn capacity(json: Option<&Json>) -> Option<(i64, i64)> {
    let json = json?;
    Some((
        json.get("ReadCapacityUnits").and_then(Json::as_i64)?,
        json.get("WriteCapacityUnits").and_then(Json::as_i64)?,
    ))
}

fn index_from_json(
    json: &Json,
    billing_mode: &str,
    account: &str,
    region: &str,
    table: &str,
) -> Result<Index, DynamoError> {
    let name = text(json, "IndexName").to_owned();
    let key = key_schema(json.get("KeySchema"))?;
    let projection = json.get("Projection").cloned().unwrap_or(Json::Null);
    let projection_type = projection
        .get("ProjectionType")
        .and_then(Json::as_str)
        .unwrap_or("ALL")
        .to_owned();
    let non_key_attributes: Vec<String> = projection
        .get("NonKeyAttributes")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if projection_type != "INCLUDE" && !non_key_attributes.is_empty() {
        return Err(invalid(format!(
            "ProjectionType is {projection_type}, but NonKeyAttributes is specified"
        )));
    }
    let throughput = capacity(json.get("ProvisionedThroughput"));
    let (read_capacity, write_capacity) = match (billing_mode, throughput) {
        ("PAY_PER_REQUEST", Some(_)) => {
            return Err(invalid(
                "ProvisionedThroughput should not be specified for index: ".to_owned()
                    + &name
                    + " when BillingMode is PAY_PER_REQUEST",
            ))
        }
        ("PAY_PER_REQUEST", None) => (0, 0),
        (_, Some(pair)) => pair,
        (_, None) => {
            return Err(invalid(format!(
                "ProvisionedThroughput must be specified for index: {name}"
            )))
        }
    };
    Ok(Index {
        arn: format!("{}/index/{name}", table_arn(account, region, table)),
        name,
        key,
        projection: projection_type,
        non_key_attributes,
        read_capacity,
        write_capacity,
    })
}

fn attribute_definitions(json: Option<&Json>) -> BTreeMap<String, KeyType> {
    let mut out = BTreeMap::new();
    for definition in json.and_then(Json::as_array).into_iter().flatten() {
        if let Some(kind) = KeyType::parse(text(definition, "AttributeType")) {
            out.insert(text(definition, "AttributeName").to_owned(), kind);
        }
    }
    out
}

/// Checks that the definitions are exactly the key attributes of the table and its indexes.
fn check_definitions(meta: &TableMeta) -> Result<(), DynamoError> {
    let mut used: Vec<&str> = meta.key.names();
    for index in &meta.indexes {
        for name in index.key.names() {
            if !used.contains(&name) {
                used.push(name);
            }
        }
    }
    let defined: Vec<&str> = meta.attributes.keys().map(String::as_str).collect();
    let missing: Vec<&str> = used
        .iter()
        .copied()
        .filter(|n| !meta.attributes.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            missing.join(", "),
            defined.join(", ")
        )));
    }
    if defined.len() != used.len() {
        return Err(invalid(format!(
            "Some AttributeDefinitions are not used. AttributeDefinitions: [{}], keys used: [{}]",
            defined.join(", "),
            used.join(", ")
        )));
    }
    Ok(())
}

fn table_capacity(billing_mode: &str, json: Option<&Json>) -> Result<(i64, i64), DynamoError> {
    match (billing_mode, capacity(json)) {
        ("PAY_PER_REQUEST", Some(_)) => Err(invalid(
            "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
        )),
        ("PAY_PER_REQUEST", None) => Ok((0, 0)),
        (_, Some(pair)) => Ok(pair),
        (_, None) => Err(invalid(
            "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        )),
    }
}

pub fn create_table(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let name = text(input, "TableName").to_owned();
    if input.get("LocalSecondaryIndexes").is_some() {
        return Err(validation(
            "LocalSecondaryIndexes are not supported by this server",
        ));
    }
    let billing_mode = input
        .get("BillingMode")
        .and_then(Json::as_str)
        .unwrap_or("PROVISIONED")
        .to_owned();
    let key = key_schema(input.get("KeySchema"))?;
    let (read_capacity, write_capacity) =
        table_capacity(&billing_mode, input.get("ProvisionedThroughput"))?;
    let mut indexes = Vec::new();
    for index in input
        .get("GlobalSecondaryIndexes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let index = index_from_json(index, &billing_mode, account, region, &name)?;
        if indexes.iter().any(|i: &Index| i.name == index.name) {
            return Err(invalid(format!("Duplicate index name: {}", index.name)));
        }
        indexes.push(index);
    }
    let mut tags = BTreeMap::new();
    for tag in input
        .get("Tags")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        tags.insert(text(tag, "Key").to_owned(), text(tag, "Value").to_owned());
    }
    let created = now_seconds();
    let meta = TableMeta {
        arn: table_arn(account, region, &name),
        id: uuid::Uuid::new_v4().to_string(),
        created_seconds: created,
        name: name.clone(),
        key,
        attributes: attribute_definitions(input.get("AttributeDefinitions")),
        pay_per_request_since: (billing_mode == "PAY_PER_REQUEST").then_some(created),
        billing_mode,
        read_capacity,
        write_capacity,
        indexes,
        tags,
        point_in_time_recovery: false,
        deletion_protection: input
            .get("DeletionProtectionEnabled")
            .and_then(Json::as_bool)
            .unwrap_or(false),
    };
    check_definitions(&meta)?;
    let id: TableId = (account.to_owned(), region.to_owned(), name.clone());
    let mut state = store.lock();
    if state.tables.contains_key(&id) {
        return Err(DynamoError::InUse(format!("Table already exists: {name}")));
    }
    store.put_table(&id, &meta)?;
    let table = Table {
        meta,
        items: BTreeMap::new(),
        size_bytes: 0,
    };
    let description = describe(&table, "ACTIVE");
    state.tables.insert(id, table);
    Ok(json!({ "TableDescription": description }))
}

fn key_schema_json(key: &KeySchema) -> Json {
    let mut out = vec![json!({"AttributeName": key.hash, "KeyType": "HASH"})];
    if let Some(range) = &key.range {
        out.push(json!({"AttributeName": range, "KeyType": "RANGE"}));
    }
    Json::Array(out)
}

fn throughput_json(read: i64, write: i64) -> Json {
    json!({"NumberOfDecreasesToday": 0, "ReadCapacityUnits": read, "WriteCapacityUnits": write})
}

/// The TableDescription of `table`.
pub fn describe(table: &Table, status: &str) -> Json {
    let meta = &table.meta;
    let definitions: Vec<Json> = meta
        .attributes
        .iter()
        .map(|(name, kind)| json!({"AttributeName": name, "AttributeType": kind.name()}))
        .collect();
    let mut out = json!({
        "AttributeDefinitions": definitions,
        "TableName": meta.name,
        "KeySchema": key_schema_json(&meta.key),
        "TableStatus": status,
        "CreationDateTime": meta.created_seconds,
        "ProvisionedThroughput": throughput_json(meta.read_capacity, meta.write_capacity),
        "TableSizeBytes": table.size_bytes,
        "ItemCount": table.items.len(),
        "TableArn": meta.arn,
        "TableId": meta.id,
        "DeletionProtectionEnabled": meta.deletion_protection,
    });
    if let Some(since) = meta
        .pay_per_request_since
        .filter(|_| meta.billing_mode == "PAY_PER_REQUEST")
    {
        out["BillingModeSummary"] = json!({
            "BillingMode": "PAY_PER_REQUEST",
            "LastUpdateToPayPerRequestDateTime": since,
        });
    }
    if !meta.indexes.is_empty() {
        let indexes: Vec<Json> = meta
            .indexes
            .iter()
            .map(|index| {
                let members: Vec<&crate::value::Item> = table
                    .items
                    .values()
                    .filter(|item| index.key.names().iter().all(|n| item.contains_key(*n)))
                    .collect();
                let mut projection = json!({"ProjectionType": index.projection});
                if index.projection == "INCLUDE" {
                    projection["NonKeyAttributes"] = json!(index.non_key_attributes);
                }
                json!({
                    "IndexName": index.name,
                    "KeySchema": key_schema_json(&index.key),
                    "Projection": projection,
                    "IndexStatus": "ACTIVE",
                    "ProvisionedThroughput": throughput_json(index.read_capacity, index.write_capacity),
                    "IndexSizeBytes": members.iter().map(|i| crate::value::item_size(i)).sum::<usize>(),
                    "ItemCount": members.len(),
                    "IndexArn": index.arn,
                })
            })
            .collect();
        out["GlobalSecondaryIndexes"] = Json::Array(indexes);
    }
    out
}

pub fn describe_table(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let name = text(input, "TableName");
    let state = store.lock();
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let table = state.tables.get(&id).ok_or_else(|| not_found(name))?;
    Ok(json!({ "Table": describe(table, "ACTIVE") }))
}

pub fn delete_table(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let name = text(input, "TableName");
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let mut state = store.lock();
    let table = state.tables.get(&id).ok_or_else(|| not_found(name))?;
    if table.meta.deletion_protection {
        return Err(validation(
            "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first.",
        ));
    }
    store.delete_table(&id, table)?;
    let table = state.tables.remove(&id).expect("the table was just found");
    Ok(json!({ "TableDescription": describe(&table, "DELETING") }))
}

pub fn list_tables(store: &Store, account: &str, region: &str, input: &Json) -> Json {
    let start = input.get("ExclusiveStartTableName").and_then(Json::as_str);
    let limit = input
        .get("Limit")
        .and_then(Json::as_u64)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let state = store.lock();
    let names: Vec<&String> = state
        .tables
        .keys()
        .filter(|(a, r, _)| a == account && r == region)
        .map(|(_, _, name)| name)
        .filter(|name| start.is_none_or(|s| name.as_str() > s))
        .collect();
    let page: Vec<&String> = names.iter().take(limit).copied().collect();
    let mut out = json!({ "TableNames": page });
    if names.len() > limit {
        out["LastEvaluatedTableName"] = json!(page.last());
    }
    out
}

pub fn update_table(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let name = text(input, "TableName");
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let mut state = store.lock();
    let table = state.tables.get_mut(&id).ok_or_else(|| not_found(name))?;
    let mut meta = table.meta.clone();
    for (attribute, kind) in attribute_definitions(input.get("AttributeDefinitions")) {
        if let Some(existing) = meta.attributes.get(&attribute) {
            if *existing != kind {
                return Err(invalid(format!(
                    "Cannot change the type of existing attribute definition {attribute}"
                )));
            }
        }
        meta.attributes.insert(attribute, kind);
    }
    if let Some(mode) = input.get("BillingMode").and_then(Json::as_str) {
        if mode != meta.billing_mode && mode == "PAY_PER_REQUEST" {
            meta.pay_per_request_since = Some(now_seconds());
        }
        meta.billing_mode = mode.to_owned();
        if mode == "PAY_PER_REQUEST" {
            meta.read_capacity = 0;
            meta.write_capacity = 0;
        }
    }
    if let Some(json) = input.get("ProvisionedThroughput") {
        let (read, write) = table_capacity(&meta.billing_mode, Some(json))?;
        meta.read_capacity = read;
        meta.write_capacity = write;
    } else if meta.billing_mode == "PROVISIONED" && meta.read_capacity == 0 {
        return Err(invalid(
            "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        ));
    }
    for update in input
        .get("GlobalSecondaryIndexUpdates")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(create) = update.get("Create") {
            let index = index_from_json(create, &meta.billing_mode, account, region, name)?;
            if meta.indexes.iter().any(|i| i.name == index.name) {
                return Err(invalid(format!(
                    "Attempting to create an index which already exists: {}",
                    index.name
                )));
            }
            meta.indexes.push(index);
        } else if let Some(delete) = update.get("Delete") {
            let index_name = text(delete, "IndexName");
            let before = meta.indexes.len();
            meta.indexes.retain(|i| i.name != index_name);
            if meta.indexes.len() == before {
                return Err(DynamoError::NotFound(format!(
                    "Requested resource not found: Index: {index_name} not found"
                )));
            }
        } else if let Some(change) = update.get("Update") {
            let index_name = text(change, "IndexName");
            let Some(index) = meta.indexes.iter_mut().find(|i| i.name == index_name) else {
                return Err(DynamoError::NotFound(format!(
                    "Requested resource not found: Index: {index_name} not found"
                )));
            };
            if let Some((read, write)) = capacity(change.get("ProvisionedThroughput")) {
                index.read_capacity = read;
                index.write_capacity = write;
            }
        }
    }
    if let Some(protection) = input
        .get("DeletionProtectionEnabled")
        .and_then(Json::as_bool)
    {
        meta.deletion_protection = protection;
    }
    // Definitions no key uses any more are dropped, as DynamoDB does after an index is deleted.
    let mut used: Vec<String> = meta.key.names().iter().map(|s| s.to_string()).collect();
    for index in &meta.indexes {
        used.extend(index.key.names().iter().map(|s| s.to_string()));
    }
    meta.attributes.retain(|name, _| used.contains(name));
    check_definitions(&meta)?;
    store.put_table(&id, &meta)?;
    table.meta = meta;
    Ok(json!({ "TableDescription": describe(table, "ACTIVE") }))
}

fn backups_json(meta: &TableMeta) -> Json {
    let status = if meta.point_in_time_recovery {
        "ENABLED"
    } else {
        "DISABLED"
    };
    json!({
        "ContinuousBackupsDescription": {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": { "PointInTimeRecoveryStatus": status },
        }
    })
}

/// UpdateContinuousBackups: the setting is recorded and reported; no backups are taken.
pub fn update_continuous_backups(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let name = text(input, "TableName");
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let mut state = store.lock();
    let table = state
        .tables
        .get_mut(&id)
        .ok_or_else(|| DynamoError::NotFound(format!("Table not found: {name}")))?;
    let mut meta = table.meta.clone();
    meta.point_in_time_recovery = input
        .pointer("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    store.put_table(&id, &meta)?;
    table.meta = meta;
    Ok(backups_json(&table.meta))
}

pub fn describe_continuous_backups(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let name = text(input, "TableName");
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let state = store.lock();
    let table = state
        .tables
        .get(&id)
        .ok_or_else(|| DynamoError::NotFound(format!("Table not found: {name}")))?;
    Ok(backups_json(&table.meta))
}

/// The table an ARN names, for the tag operations.
pub fn table_of_arn(arn: &str) -> Option<&str> {
    arn.split_once(":table/").map(|(_, name)| name)
}

pub fn tag_resource(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
    remove: bool,
) -> Result<Json, DynamoError> {
    let arn = text(input, "ResourceArn");
    let name = table_of_arn(arn).unwrap_or_default();
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let mut state = store.lock();
    let table = state.tables.get_mut(&id).ok_or_else(|| {
        DynamoError::NotFound(format!(
            "Requested resource not found: ResourcArn: {arn} not found"
        ))
    })?;
    let mut meta = table.meta.clone();
    if remove {
        for key in input
            .get("TagKeys")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(key) = key.as_str() {
                meta.tags.remove(key);
            }
        }
    } else {
        for tag in input
            .get("Tags")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            meta.tags
                .insert(text(tag, "Key").to_owned(), text(tag, "Value").to_owned());
        }
    }
    store.put_table(&id, &meta)?;
    table.meta = meta;
    Ok(json!({}))
}

pub fn list_tags(
    store: &Store,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    let arn = text(input, "ResourceArn");
    let name = table_of_arn(arn).unwrap_or_default();
    let id = (account.to_owned(), region.to_owned(), name.to_owned());
    let state = store.lock();
    let table = state.tables.get(&id).ok_or_else(|| {
        DynamoError::NotFound(format!(
            "Requested resource not found: ResourcArn: {arn} not found"
        ))
    })?;
    let tags: Vec<Json> = table
        .meta
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({ "Tags": tags }))
}
