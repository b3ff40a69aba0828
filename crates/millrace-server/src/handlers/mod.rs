//! Operation handlers and the dispatch table keyed by operation name.

mod channels;
pub mod fanout;
mod metrics;
pub(crate) mod queues;
mod records;
mod reshard;
mod settings;
mod streams;
mod tags;

use std::sync::Arc;

use millrace_engine::Engine;

use crate::error::ApiError;

/// What every handler gets: the engine of the addressed account, the request's region, its
/// body format and its authorization.
pub struct Context<'a> {
    pub engine: &'a Arc<Engine>,
    pub region: String,
    pub format: crate::dispatch::Format,
    pub authz: &'a crate::authz::Authz<'a>,
    /// Where the Kinesis metrics are counted (`None`: metrics off).
    pub metrics: Option<&'a millrace_cloudwatch::Metrics>,
    /// Kinesis Queues (`handlers/queues.rs`).
    pub queues: &'a millrace_queues::Queues,
    /// Kinesis Channels (`handlers/channels.rs`); `None` when not served.
    pub channels: Option<&'a dyn crate::channels_route::ChannelsFront>,
}

/// Operations of the model that later work will serve.
const NOT_YET_SERVED: &[&str] = &[];

/// Calls the handler of `operation` (already known to exist in the model).
pub async fn call(
    context: &Context<'_>,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    match operation {
        "CreateStream" => streams::create_stream(context, body),
        "DeleteStream" => streams::delete_stream(context, body),
        "DescribeStream" => streams::describe_stream(context, body),
        "DescribeStreamSummary" => streams::describe_stream_summary(context, body),
        "ListStreams" => streams::list_streams(context, body),
        "ListShards" => streams::list_shards(context, body),
        "IncreaseStreamRetentionPeriod" => streams::increase_retention(context, body),
        "DecreaseStreamRetentionPeriod" => streams::decrease_retention(context, body),
        "DescribeLimits" => streams::describe_limits(context, body),
        "SplitShard" => reshard::split_shard(context, body),
        "MergeShards" => reshard::merge_shards(context, body),
        "UpdateShardCount" => reshard::update_shard_count(context, body),
        "UpdateStreamMode" => reshard::update_stream_mode(context, body),
        "UpdateMaxRecordSize" => reshard::update_max_record_size(context, body),
        "UpdateStreamWarmThroughput" => reshard::update_warm_throughput(context, body),
        "UpdateStreamRecordDistributionStrategy" => {
            reshard::update_record_distribution(context, body)
        }
        "RegisterStreamConsumer" => fanout::register_stream_consumer(context, body),
        "DeregisterStreamConsumer" => fanout::deregister_stream_consumer(context, body),
        "DescribeStreamConsumer" => fanout::describe_stream_consumer(context, body),
        "ListStreamConsumers" => fanout::list_stream_consumers(context, body),
        "PutRecord" => records::put_record(context, body).await,
        "PutRecords" => records::put_records(context, body).await,
        "GetShardIterator" => records::get_shard_iterator(context, body).await,
        "GetRecords" => records::get_records(context, body).await,
        "AddTagsToStream" => tags::add_tags_to_stream(context, body),
        "RemoveTagsFromStream" => tags::remove_tags_from_stream(context, body),
        "ListTagsForStream" => tags::list_tags_for_stream(context, body),
        "TagResource" => tags::tag_resource(context, body).await,
        "UntagResource" => tags::untag_resource(context, body).await,
        "ListTagsForResource" => tags::list_tags_for_resource(context, body).await,
        "EnableEnhancedMonitoring" => settings::enhanced_monitoring(context, body, true),
        "DisableEnhancedMonitoring" => settings::enhanced_monitoring(context, body, false),
        "StartStreamEncryption" => settings::stream_encryption(context, body, true),
        "StopStreamEncryption" => settings::stream_encryption(context, body, false),
        "PutResourcePolicy" => settings::put_resource_policy(context, body),
        "GetResourcePolicy" => settings::get_resource_policy(context, body),
        "DeleteResourcePolicy" => settings::delete_resource_policy(context, body),
        "DescribeAccountSettings" => settings::describe_account_settings(context, body),
        "UpdateAccountSettings" => settings::update_account_settings(context, body),
        operation if queues::OPERATIONS.contains(&operation) => {
            queues::call(context, operation, body).await
        }
        operation if channels::OPERATIONS.contains(&operation) => {
            channels::call(context, operation, body).await
        }
        other => {
            let message = if NOT_YET_SERVED.contains(&other) {
                format!("{other} is not supported by this server yet.")
            } else {
                format!("{other} is not supported by this server.")
            };
            Err(ApiError::new("InvalidArgumentException", message))
        }
    }
}

/// The (region, stream name) a request addresses: `StreamARN` wins over `StreamName`.
pub fn stream_target(
    context: &Context<'_>,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<(String, String), ApiError> {
    if let Some(arn) = arn {
        return resource_target(context, arn);
    }
    match name {
        Some(name) => {
            let arn = context.engine.stream_arn(&context.region, name);
            context
                .authz
                .check(context.engine, &arn, Some((&context.region, name)))?;
            Ok((context.region.clone(), name.to_owned()))
        }
        None => Err(ApiError::new(
            "ValidationException",
            "1 validation error detected: Value null at 'streamName' failed to satisfy \
             constraint: Member must not be null",
        )),
    }
}

/// The (region, stream name) of a stream ARN `arn:<partition>:kinesis:<region>:<account>:stream/<name>`,
/// once the request is authorized on it.
pub fn resource_target(context: &Context<'_>, arn: &str) -> Result<(String, String), ApiError> {
    let (region, name) = parse_stream_arn(context, arn)?;
    context
        .authz
        .check(context.engine, arn, Some((&region, &name)))?;
    Ok((region, name))
}

/// When authorization is enforced and the stream is encrypted, the caller must also be allowed
/// `kms:GenerateDataKey` (writes) or `kms:Decrypt` (reads) on the stream's KMS key.
pub fn authorize_stream_key(
    context: &Context<'_>,
    region: &str,
    name: &str,
    write: bool,
) -> Result<(), ApiError> {
    if context.authz.mode != crate::auth::AuthMode::Enforce {
        return Ok(());
    }
    let Some(key_arn) = context.engine.encryption_key_arn(region, name)? else {
        return Ok(());
    };
    let action = if write {
        "kms:GenerateDataKey"
    } else {
        "kms:Decrypt"
    };
    if context.authz.check_action(action, &key_arn, None).is_ok() {
        return Ok(());
    }
    let caller = &context.authz.caller.arn;
    let message = if write {
        format!("User: {caller} is not authorized to perform: {action} on resource: {key_arn}")
    } else {
        format!("User {caller} is not authorized to decrypt records in stream {name}.")
    };
    Err(ApiError::new("KMSAccessDeniedException", message))
}

/// Authorizes the request on a consumer ARN (`…:stream/<name>/consumer/<consumer>:<seconds>`).
pub fn authorize_consumer(context: &Context<'_>, consumer_arn: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = consumer_arn.splitn(6, ':').collect();
    let stream = parts
        .get(5)
        .and_then(|rest| rest.strip_prefix("stream/"))
        .and_then(|rest| rest.split('/').next());
    let region = parts.get(3).copied().unwrap_or("");
    context.authz.check(
        context.engine,
        consumer_arn,
        stream.map(|name| (region, name)),
    )
}

/// The (region, stream name) of a stream ARN, without authorization.
pub fn parse_stream_arn(context: &Context<'_>, arn: &str) -> Result<(String, String), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let invalid = || {
        ApiError::new(
            "InvalidArgumentException",
            format!("Invalid ARN {arn}: expected a Kinesis stream ARN."),
        )
    };
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "kinesis" {
        return Err(invalid());
    }
    let name = parts[5]
        .strip_prefix("stream/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(invalid)?;
    if parts[4] != context.engine.account_id() {
        return Err(ApiError::new(
            "ResourceNotFoundException",
            format!("Stream {name} under account {} not found.", parts[4]),
        ));
    }
    Ok((parts[3].to_owned(), name.to_owned()))
}
