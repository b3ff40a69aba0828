//! Tags on streams: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream and the
//! resource-ARN forms TagResource, UntagResource and ListTagsForResource.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::streams::StreamRef;
use super::{resource_target, stream_target, Context};
use crate::error::ApiError;
use crate::json::{decode, encode};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    tags: BTreeMap<String, String>,
}

pub fn add_tags_to_stream(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: AddTagsInput = decode("AddTagsToStream", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context.engine.add_tags(&region, &name, &input.tags)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoveTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    tag_keys: Vec<String>,
}

pub fn remove_tags_from_stream(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: RemoveTagsInput = decode("RemoveTagsFromStream", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context
        .engine
        .remove_tags(&region, &name, &input.tag_keys)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsInput {
    #[serde(flatten)]
    stream: StreamRef,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

fn tag_list(tags: &[(String, String)]) -> serde_json::Value {
    tags.iter()
        .map(|(key, value)| json!({ "Key": key, "Value": value }))
        .collect()
}

pub fn list_tags_for_stream(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: ListTagsInput = decode("ListTagsForStream", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    let (tags, has_more) = context.engine.list_tags(
        &region,
        &name,
        input.exclusive_start_tag_key.as_deref(),
        input.limit,
    )?;
    Ok(encode(
        &json!({ "Tags": tag_list(&tags), "HasMoreTags": has_more }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    tags: BTreeMap<String, String>,
}

pub async fn tag_resource(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: TagResourceInput = decode("TagResource", body)?;
    if is_queue_arn(&input.resource_arn) {
        queue_tags(context, &input.resource_arn, &input.tags, &[]).await?;
        return Ok(Vec::new());
    }
    let (region, name) = resource_target(context, &input.resource_arn)?;
    context.engine.add_tags(&region, &name, &input.tags)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    tag_keys: Vec<String>,
}

pub async fn untag_resource(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: UntagResourceInput = decode("UntagResource", body)?;
    if is_queue_arn(&input.resource_arn) {
        queue_tags(
            context,
            &input.resource_arn,
            &BTreeMap::new(),
            &input.tag_keys,
        )
        .await?;
        return Ok(Vec::new());
    }
    let (region, name) = resource_target(context, &input.resource_arn)?;
    context
        .engine
        .remove_tags(&region, &name, &input.tag_keys)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
}

pub async fn list_tags_for_resource(
    context: &Context<'_>,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let input: ResourceInput = decode("ListTagsForResource", body)?;
    if is_queue_arn(&input.resource_arn) {
        let tags = queue_tags(context, &input.resource_arn, &BTreeMap::new(), &[]).await?;
        let list: Vec<_> = tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        return Ok(encode(&json!({ "Tags": list })));
    }
    let (region, name) = resource_target(context, &input.resource_arn)?;
    let (tags, _) = context.engine.list_tags(&region, &name, None, Some(50))?;
    Ok(encode(&json!({ "Tags": tag_list(&tags) })))
}

/// Whether a tagging call names a queue (`arn:<partition>:kinesis:<region>:<account>:queue/<id>`).
fn is_queue_arn(arn: &str) -> bool {
    arn.splitn(6, ':')
        .nth(5)
        .is_some_and(|resource| resource.starts_with("queue/"))
}

/// Tags of a queue, changed by `millrace-queues` once the call is authorized on the queue ARN.
async fn queue_tags(
    context: &Context<'_>,
    arn: &str,
    add: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<BTreeMap<String, String>, ApiError> {
    context.authz.check(context.engine, arn, None)?;
    let queues = context.queues.of(context.engine)?;
    Ok(queues.change_tags(arn, add, remove).await?)
}
