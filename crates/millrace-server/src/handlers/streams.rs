//! Stream lifecycle and listing: CreateStream, DeleteStream, DescribeStream(Summary),
//! ListStreams, ListShards, retention and DescribeLimits.

use std::collections::BTreeMap;

use millrace_engine::{
    CreateStreamRequest, ListShardsRequest, ShardFilter, ShardFilterType, ShardView, StreamView,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{stream_target, Context};
use crate::error::ApiError;
use crate::json::{decode, encode, millis, seconds};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamModeDetails {
    stream_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: String,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    warm_throughput_mi_bps: Option<i64>,
    max_record_size_in_ki_b: Option<i64>,
    record_distribution_strategy: Option<String>,
}

pub fn create_stream(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: CreateStreamInput = decode("CreateStream", body)?;
    let arn = context
        .engine
        .stream_arn(&context.region, &input.stream_name);
    context.authz.check(context.engine, &arn, None)?;
    context.engine.create_stream(
        &context.region,
        CreateStreamRequest {
            name: input.stream_name,
            shard_count: input.shard_count,
            mode: input.stream_mode_details.map(|d| d.stream_mode),
            tags: input.tags.unwrap_or_default(),
            max_record_size_kib: input.max_record_size_in_ki_b,
            warm_throughput_mibps: input.warm_throughput_mi_bps,
            record_distribution_strategy: input.record_distribution_strategy,
        },
    )?;
    Ok(Vec::new())
}

/// The members that name a stream, present in most inputs.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRef {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    enforce_consumer_deletion: Option<bool>,
}

pub fn delete_stream(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: DeleteStreamInput = decode("DeleteStream", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    super::queues::refuse_if_queued(context, &region, &name)?;
    super::channels::refuse_if_channeled(context, &region, &name)?;
    context.engine.delete_stream(
        &region,
        &name,
        input.enforce_consumer_deletion.unwrap_or(false),
    )?;
    Ok(Vec::new())
}

fn shard_json(shard: &ShardView) -> Value {
    let mut range = json!({ "StartingSequenceNumber": shard.starting_sequence_number });
    if let Some(ending) = &shard.ending_sequence_number {
        range["EndingSequenceNumber"] = json!(ending);
    }
    let mut value = json!({
        "ShardId": shard.shard_id,
        "HashKeyRange": {
            "StartingHashKey": shard.starting_hash_key,
            "EndingHashKey": shard.ending_hash_key,
        },
        "SequenceNumberRange": range,
    });
    if let Some(parent) = &shard.parent_shard_id {
        value["ParentShardId"] = json!(parent);
    }
    if let Some(adjacent) = &shard.adjacent_parent_shard_id {
        value["AdjacentParentShardId"] = json!(adjacent);
    }
    value
}

fn common_description(view: &StreamView) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("StreamName".into(), json!(view.name));
    map.insert("StreamARN".into(), json!(view.arn));
    map.insert("StreamStatus".into(), json!(view.status));
    map.insert(
        "StreamModeDetails".into(),
        json!({ "StreamMode": view.mode }),
    );
    map.insert("RetentionPeriodHours".into(), json!(view.retention_hours));
    map.insert(
        "StreamCreationTimestamp".into(),
        json!(seconds(view.created_ms)),
    );
    map.insert(
        "EnhancedMonitoring".into(),
        json!([{ "ShardLevelMetrics": view.shard_level_metrics }]),
    );
    map.insert("EncryptionType".into(), json!(view.encryption_type));
    if let Some(key) = &view.key_id {
        map.insert("KeyId".into(), json!(key));
    }
    map
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

pub fn describe_stream(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: DescribeStreamInput = decode("DescribeStream", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    let view = context.engine.describe_stream(
        &region,
        &name,
        input.limit,
        input.exclusive_start_shard_id.as_deref(),
    )?;
    let mut description = common_description(&view);
    description.insert(
        "Shards".into(),
        Value::Array(view.shards.iter().map(shard_json).collect()),
    );
    description.insert("HasMoreShards".into(), json!(view.has_more_shards));
    Ok(encode(&json!({ "StreamDescription": description })))
}

pub fn describe_stream_summary(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: StreamRef = decode("DescribeStreamSummary", body)?;
    let (region, name) = stream_target(
        context,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let view = context.engine.describe_stream_summary(&region, &name)?;
    let mut summary = common_description(&view);
    summary.insert("OpenShardCount".into(), json!(view.open_shard_count));
    summary.insert(
        "ConsumerCount".into(),
        json!(context.engine.consumer_count(&region, &name)),
    );
    summary.insert("MaxRecordSizeInKiB".into(), json!(view.max_record_size_kib));
    if let Some(warm) = view.warm_throughput_mibps {
        summary.insert(
            "WarmThroughput".into(),
            json!({ "TargetMiBps": warm, "CurrentMiBps": warm }),
        );
    }
    if let Some(strategy) = &view.record_distribution_strategy {
        summary.insert("RecordDistributionStrategy".into(), json!(strategy));
    }
    Ok(encode(&json!({ "StreamDescriptionSummary": summary })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

pub fn list_streams(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: ListStreamsInput = decode("ListStreams", body)?;
    let page = context.engine.list_streams(
        &context.region,
        input.limit,
        input.exclusive_start_stream_name.as_deref(),
        input.next_token.as_deref(),
    )?;
    let names: Vec<&str> = page.streams.iter().map(|s| s.name.as_str()).collect();
    let summaries: Vec<Value> = page
        .streams
        .iter()
        .map(|s| {
            json!({
                "StreamName": s.name,
                "StreamARN": s.arn,
                "StreamStatus": s.status,
                "StreamModeDetails": { "StreamMode": s.mode },
                "StreamCreationTimestamp": seconds(s.created_ms),
            })
        })
        .collect();
    let mut output = json!({
        "StreamNames": names,
        "HasMoreStreams": page.has_more,
        "StreamSummaries": summaries,
    });
    if let Some(token) = page.next_token {
        output["NextToken"] = json!(token);
    }
    Ok(encode(&output))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardFilterInput {
    #[serde(rename = "Type")]
    filter_type: String,
    shard_id: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsInput {
    #[serde(flatten)]
    stream: StreamRef,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<f64>,
    shard_filter: Option<ShardFilterInput>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsOutput {
    shards: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub fn list_shards(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: ListShardsInput = decode("ListShards", body)?;
    let (region, stream_name) = match (&input.stream.stream_name, &input.stream.stream_arn) {
        (None, None) => {
            // Paging by NextToken alone: the token names the stream.
            let token_stream = input
                .next_token
                .as_deref()
                .and_then(|t| context.engine.list_shards_token_stream(t));
            match token_stream {
                Some((region, name)) => {
                    let arn = context.engine.stream_arn(&region, &name);
                    context
                        .authz
                        .check(context.engine, &arn, Some((&region, &name)))?;
                }
                None => {
                    let arn = context.engine.stream_arn(&context.region, "*");
                    context.authz.check(context.engine, &arn, None)?;
                }
            }
            (context.region.clone(), None)
        }
        (name, arn) => {
            let (region, name) = stream_target(context, name.as_deref(), arn.as_deref())?;
            (region, Some(name))
        }
    };
    let filter = match input.shard_filter {
        Some(filter) => Some(ShardFilter {
            filter_type: ShardFilterType::parse(&filter.filter_type).ok_or_else(|| {
                ApiError::new("InvalidArgumentException", "Invalid ShardFilter type.")
            })?,
            shard_id: filter.shard_id,
            timestamp_ms: filter.timestamp.map(millis),
        }),
        None => None,
    };
    let request = ListShardsRequest {
        stream_name,
        next_token: input.next_token,
        exclusive_start_shard_id: input.exclusive_start_shard_id,
        max_results: input.max_results,
        stream_creation_timestamp_ms: input.stream_creation_timestamp.map(millis),
        filter,
    };
    let (shards, next_token) = context.engine.list_shards(&region, &request)?;
    Ok(encode(&ListShardsOutput {
        shards: shards.iter().map(shard_json).collect(),
        next_token,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionInput {
    #[serde(flatten)]
    stream: StreamRef,
    retention_period_hours: i64,
}

pub fn increase_retention(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: RetentionInput = decode("IncreaseStreamRetentionPeriod", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context
        .engine
        .increase_retention(&region, &name, input.retention_period_hours)?;
    Ok(Vec::new())
}

pub fn decrease_retention(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: RetentionInput = decode("DecreaseStreamRetentionPeriod", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context
        .engine
        .decrease_retention(&region, &name, input.retention_period_hours)?;
    Ok(Vec::new())
}

pub fn describe_limits(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let _: Value = decode("DescribeLimits", body)?;
    let limits = context.engine.describe_limits(&context.region);
    Ok(encode(&json!({
        "ShardLimit": limits.shard_limit,
        "OpenShardCount": limits.open_shard_count,
        "OnDemandStreamCount": limits.on_demand_stream_count,
        "OnDemandStreamCountLimit": limits.on_demand_stream_count_limit,
    })))
}
