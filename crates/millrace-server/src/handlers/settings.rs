//! Stream settings and account-level operations: enhanced monitoring, encryption, resource
//! policies and account settings.

use serde::Deserialize;
use serde_json::{json, Value};

use super::streams::StreamRef;
use super::{resource_target, stream_target, Context};
use crate::error::ApiError;
use crate::json::{decode, encode, seconds};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MonitoringInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_level_metrics: Vec<String>,
}

pub fn enhanced_monitoring(
    context: &Context<'_>,
    body: &[u8],
    enable: bool,
) -> Result<Vec<u8>, ApiError> {
    let operation = if enable {
        "EnableEnhancedMonitoring"
    } else {
        "DisableEnhancedMonitoring"
    };
    let input: MonitoringInput = decode(operation, body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    let (current, desired) = context.engine.set_enhanced_monitoring(
        &region,
        &name,
        &input.shard_level_metrics,
        enable,
    )?;
    super::metrics::shard_level_changed(context, &region, &name, &desired);
    Ok(encode(&json!({
        "StreamName": name,
        "StreamARN": context.engine.stream_arn(&region, &name),
        "CurrentShardLevelMetrics": current,
        "DesiredShardLevelMetrics": desired,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptionInput {
    #[serde(flatten)]
    stream: StreamRef,
    encryption_type: String,
    key_id: String,
}

pub fn stream_encryption(
    context: &Context<'_>,
    body: &[u8],
    start: bool,
) -> Result<Vec<u8>, ApiError> {
    let operation = if start {
        "StartStreamEncryption"
    } else {
        "StopStreamEncryption"
    };
    let input: EncryptionInput = decode(operation, body)?;
    let (region, name) = stream_target(
        context,
        input.stream.stream_name.as_deref(),
        input.stream.stream_arn.as_deref(),
    )?;
    context
        .engine
        .set_encryption(&region, &name, &input.encryption_type, &input.key_id, start)?;
    Ok(Vec::new())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    policy: Option<String>,
}

pub fn put_resource_policy(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: PolicyInput = decode("PutResourcePolicy", body)?;
    let (region, name) = policy_target(context, &input.resource_arn)?;
    context.engine.put_resource_policy(
        &region,
        &name,
        &input.resource_arn,
        input.policy.as_deref().unwrap_or_default(),
    )?;
    Ok(Vec::new())
}

pub fn get_resource_policy(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: PolicyInput = decode("GetResourcePolicy", body)?;
    let (region, name) = policy_target(context, &input.resource_arn)?;
    let policy = context
        .engine
        .get_resource_policy(&region, &name, &input.resource_arn)?;
    Ok(encode(&json!({ "Policy": policy })))
}

pub fn delete_resource_policy(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: PolicyInput = decode("DeleteResourcePolicy", body)?;
    let (region, name) = policy_target(context, &input.resource_arn)?;
    context
        .engine
        .delete_resource_policy(&region, &name, &input.resource_arn)?;
    Ok(Vec::new())
}

/// The stream a resource policy belongs to: the ARN's own stream (or consumer's), or, for a
/// queue ARN, the stream the queue reads (authorized on the queue ARN).
fn policy_target(context: &Context<'_>, arn: &str) -> Result<(String, String), ApiError> {
    match super::queues::queue_stream(context, arn)? {
        Some(target) => Ok(target),
        None => resource_target(context, arn),
    }
}

fn settings_json(view: &millrace_engine::AccountSettingsView) -> Value {
    let mut commitment = json!({ "Status": view.status });
    if let Some(at) = view.started_at_ms {
        commitment["StartedAt"] = json!(seconds(at));
    }
    if let Some(at) = view.ended_at_ms {
        commitment["EndedAt"] = json!(seconds(at));
    }
    if let Some(at) = view.earliest_allowed_end_at_ms {
        commitment["EarliestAllowedEndAt"] = json!(seconds(at));
    }
    json!({ "MinimumThroughputBillingCommitment": commitment })
}

pub fn describe_account_settings(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let _: Value = decode("DescribeAccountSettings", body)?;
    Ok(encode(&settings_json(&context.engine.account_settings()?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Commitment {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateAccountSettingsInput {
    minimum_throughput_billing_commitment: Commitment,
}

pub fn update_account_settings(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: UpdateAccountSettingsInput = decode("UpdateAccountSettings", body)?;
    let view = context
        .engine
        .update_account_settings(&input.minimum_throughput_billing_commitment.status)?;
    Ok(encode(&settings_json(&view)))
}
