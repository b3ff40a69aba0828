//! Resharding and capacity: SplitShard, MergeShards, UpdateShardCount, UpdateStreamMode,
//! UpdateMaxRecordSize, UpdateStreamWarmThroughput and UpdateStreamRecordDistributionStrategy.

use serde::Deserialize;
use serde_json::json;

use super::streams::StreamRef;
use super::{resource_target, stream_target, Context};
use crate::error::ApiError;
use crate::json::{decode, encode};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SplitShardInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_to_split: String,
    new_starting_hash_key: String,
}

pub fn split_shard(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: SplitShardInput = decode("SplitShard", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context.engine.split_shard(
        &region,
        &name,
        &input.shard_to_split,
        &input.new_starting_hash_key,
    )?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MergeShardsInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_to_merge: String,
    adjacent_shard_to_merge: String,
}

pub fn merge_shards(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: MergeShardsInput = decode("MergeShards", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context.engine.merge_shards(
        &region,
        &name,
        &input.shard_to_merge,
        &input.adjacent_shard_to_merge,
    )?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateShardCountInput {
    #[serde(flatten)]
    stream: StreamRef,
    target_shard_count: i64,
}

pub fn update_shard_count(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: UpdateShardCountInput = decode("UpdateShardCount", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    let outcome = context
        .engine
        .update_shard_count(&region, &name, input.target_shard_count)?;
    Ok(encode(&json!({
        "StreamName": name,
        "StreamARN": context.engine.stream_arn(&region, &name),
        "CurrentShardCount": outcome.current_shard_count,
        "TargetShardCount": outcome.target_shard_count,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ModeDetails {
    stream_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_mode_details: ModeDetails,
}

pub fn update_stream_mode(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: UpdateStreamModeInput = decode("UpdateStreamMode", body)?;
    let (region, name) = resource_target(context, &input.stream_arn)?;
    if input.stream_mode_details.stream_mode == "PROVISIONED" {
        super::queues::refuse_if_queued(context, &region, &name)?;
    }
    context
        .engine
        .update_stream_mode(&region, &name, &input.stream_mode_details.stream_mode)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MaxRecordSizeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    max_record_size_in_ki_b: i64,
}

pub fn update_max_record_size(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: MaxRecordSizeInput = decode("UpdateMaxRecordSize", body)?;
    let (region, name) = stream_target(context, None, input.stream_arn.as_deref())?;
    context
        .engine
        .update_max_record_size(&region, &name, input.max_record_size_in_ki_b)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WarmThroughputInput {
    #[serde(flatten)]
    stream: StreamRef,
    warm_throughput_mi_bps: i64,
}

pub fn update_warm_throughput(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: WarmThroughputInput = decode("UpdateStreamWarmThroughput", body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    let target =
        context
            .engine
            .update_warm_throughput(&region, &name, input.warm_throughput_mi_bps)?;
    Ok(encode(&json!({
        "StreamName": name,
        "StreamARN": context.engine.stream_arn(&region, &name),
        "WarmThroughput": { "TargetMiBps": target, "CurrentMiBps": target },
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DistributionInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    record_distribution_strategy: String,
}

pub fn update_record_distribution(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: DistributionInput = decode("UpdateStreamRecordDistributionStrategy", body)?;
    let (region, name) = resource_target(context, &input.stream_arn)?;
    context.engine.update_record_distribution(
        &region,
        &name,
        &input.record_distribution_strategy,
    )?;
    Ok(Vec::new())
}
