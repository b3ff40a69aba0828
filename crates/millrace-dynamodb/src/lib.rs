//! The DynamoDB-compatible lease-table store: the subset of `DynamoDB_20120810` (awsJson1_0)
//! that the Kinesis Client Library and its lock client call, served on Millrace's endpoint.
//!
//! Tables, global secondary indexes and items live in one redb [`DocumentStore`] file; each
//! single-item operation is atomic (one lock) and durable before it is answered. Expressions
//! (condition, filter, key condition, update, projection) and the legacy conditional
//! parameters share one evaluator. This crate knows nothing of HTTP, SigV4 or the Kinesis
//! engine: the server hands it model-checked JSON and an authorizer.
//!
//! [`DocumentStore`]: millrace_catalog::DocumentStore
#![deny(clippy::unwrap_used)]

mod error;
mod evaluate;
mod expression;
mod items;
mod legacy;
mod number;
mod reads;
mod request;
mod reserved;
mod store;
mod tables;
mod value;

use std::path::Path;
use std::sync::Arc;

use millrace_service::{BoxFuture, CallContext, JsonService, ServiceError};
use millrace_wire::model::ServiceModel;
use serde_json::Value as Json;

pub use error::DynamoError;

/// The lease-table service.
pub struct DynamoDb {
    store: Arc<store::Store>,
}

impl DynamoDb {
    /// Opens (or creates) the store file, e.g. `<data dir>/dynamodb.redb`.
    pub fn open(path: &Path) -> Result<DynamoDb, DynamoError> {
        Ok(DynamoDb {
            store: Arc::new(store::Store::open(path)?),
        })
    }
}

/// The resources an operation touches, for authorization: table (or index) ARNs, or `*`.
fn resources(operation: &str, input: &Json, account: &str, region: &str) -> Vec<String> {
    let table = |name: &str| tables::table_arn(account, region, name);
    match operation {
        "ListTables" => vec!["*".to_owned()],
        "BatchGetItem" | "BatchWriteItem" => input
            .get("RequestItems")
            .and_then(Json::as_object)
            .map(|m| m.keys().map(|name| table(name)).collect())
            .unwrap_or_default(),
        "TagResource" | "UntagResource" | "ListTagsOfResource" => vec![input
            .get("ResourceArn")
            .and_then(Json::as_str)
            .unwrap_or("*")
            .to_owned()],
        _ => {
            let name = input.get("TableName").and_then(Json::as_str).unwrap_or("");
            match input.get("IndexName").and_then(Json::as_str) {
                Some(index) if matches!(operation, "Query" | "Scan") => {
                    vec![format!("{}/index/{index}", table(name))]
                }
                _ => vec![table(name)],
            }
        }
    }
}

fn run(
    store: &store::Store,
    operation: &str,
    account: &str,
    region: &str,
    input: &Json,
) -> Result<Json, DynamoError> {
    match operation {
        "CreateTable" => tables::create_table(store, account, region, input),
        "DescribeTable" => tables::describe_table(store, account, region, input),
        "UpdateTable" => tables::update_table(store, account, region, input),
        "DeleteTable" => tables::delete_table(store, account, region, input),
        "ListTables" => Ok(tables::list_tables(store, account, region, input)),
        "UpdateContinuousBackups" => {
            tables::update_continuous_backups(store, account, region, input)
        }
        "DescribeContinuousBackups" => {
            tables::describe_continuous_backups(store, account, region, input)
        }
        "TagResource" => tables::tag_resource(store, account, region, input, false),
        "UntagResource" => tables::tag_resource(store, account, region, input, true),
        "ListTagsOfResource" => tables::list_tags(store, account, region, input),
        "GetItem" => items::get_item(store, account, region, input),
        "PutItem" => items::put_item(store, account, region, input),
        "UpdateItem" => items::update_item(store, account, region, input),
        "DeleteItem" => items::delete_item(store, account, region, input),
        "BatchGetItem" => items::batch_get_item(store, account, region, input),
        "BatchWriteItem" => items::batch_write_item(store, account, region, input),
        "Scan" => reads::scan(store, account, region, input),
        "Query" => reads::query(store, account, region, input),
        _ => Err(DynamoError::Validation(format!(
            "The operation {operation} is not supported by this server"
        ))),
    }
}

/// The operations served; the others of the model answer a ValidationException.
pub const OPERATIONS: &[&str] = &[
    "CreateTable",
    "DescribeTable",
    "UpdateTable",
    "DeleteTable",
    "ListTables",
    "UpdateContinuousBackups",
    "DescribeContinuousBackups",
    "TagResource",
    "UntagResource",
    "ListTagsOfResource",
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchGetItem",
    "BatchWriteItem",
    "Scan",
    "Query",
];

impl JsonService for DynamoDb {
    fn model(&self) -> &'static ServiceModel {
        &millrace_wire::generated::dynamodb_model::DYNAMODB
    }

    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Json,
    ) -> BoxFuture<'a, Result<Json, ServiceError>> {
        Box::pin(async move {
            let account = context.caller.account.clone();
            let region = context.region.to_owned();
            let action = format!("dynamodb:{operation}");
            for resource in resources(operation, &input, &account, &region) {
                context.authz.check(&action, &resource, None)?;
            }
            let store = self.store.clone();
            let operation = operation.to_owned();
            let outcome = tokio::task::spawn_blocking(move || {
                run(&store, &operation, &account, &region, &input)
            })
            .await
            .unwrap_or_else(|error| Err(DynamoError::Internal(error.to_string())));
            if let Err(DynamoError::Internal(detail)) = &outcome {
                tracing::error!(%detail, "dynamodb store failure");
            }
            outcome.map_err(|e| e.to_service())
        })
    }
}
