//! Kinesis Queues: the twelve queue operations, validated against the model, authorized on the
//! queue ARN (CreateQueue on its stream, ListQueues on `*`), then run by `millrace-queues`.

use super::{resource_target, Context};
use crate::error::ApiError;

/// The queue operations of the Kinesis model.
pub const OPERATIONS: &[&str] = &[
    "CreateQueue",
    "DescribeQueue",
    "ListQueues",
    "UpdateQueue",
    "DeleteQueue",
    "ReceiveQueueRecords",
    "AcknowledgeQueueRecords",
    "UpdateQueueRecordsVisibility",
    "ReceiveDeadLetterQueueRecords",
    "AcknowledgeDeadLetterQueueRecords",
    "UpdateDeadLetterQueueRecordsVisibility",
    "RestoreDeadLetterQueueRecords",
];

pub async fn call(
    context: &Context<'_>,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let input = crate::json::validate(operation, body)?;
    match operation {
        "CreateQueue" => {
            // The queue does not exist yet: the caller must be allowed it on the stream. The
            // stream ARN of the one allowed configuration is checked; more are refused later.
            let stream_arn = input["StreamConfigurationList"][0]["StreamARN"]
                .as_str()
                .unwrap_or_default();
            resource_target(context, stream_arn)?;
        }
        "ListQueues" => context.authz.check(context.engine, "*", None)?,
        _ => {
            let queue_arn = input["QueueARN"].as_str().unwrap_or_default();
            context.authz.check(context.engine, queue_arn, None)?;
        }
    }
    let queues = context.queues.of(context.engine)?;
    if matches!(
        operation,
        "ReceiveQueueRecords" | "ReceiveDeadLetterQueueRecords"
    ) {
        // Receiving from an encrypted stream also needs kms:Decrypt on the stream's key.
        if let Some((region, stream)) =
            queues.stream_of(input["QueueARN"].as_str().unwrap_or_default())
        {
            super::authorize_stream_key(context, &region, &stream, false)?;
        }
    }
    let deleted = (operation == "DeleteQueue")
        .then(|| queues.stream_of(input["QueueARN"].as_str().unwrap_or_default()))
        .flatten();
    let output = queues
        .call(context.engine, &context.region, operation, &input)
        .await?;
    if let Some((region, stream)) = deleted {
        // A deleted queue's resource policy goes with it (there may be none).
        let arn = input["QueueARN"].as_str().unwrap_or_default();
        let _ = context.engine.delete_resource_policy(&region, &stream, arn);
    }
    if let (Some(metrics), Some(value)) = (context.metrics, &output) {
        record_metrics(context, metrics, &queues, operation, &input, value);
    }
    Ok(output
        .map(|value| crate::json::encode(&value))
        .unwrap_or_default())
}

/// ReceivedQueueRecords, EmptyReceives and AcknowledgedQueueRecords, by QueueId and QueueName.
fn record_metrics(
    context: &Context<'_>,
    metrics: &millrace_cloudwatch::Metrics,
    queues: &millrace_queues::AccountQueues,
    operation: &str,
    input: &serde_json::Value,
    output: &serde_json::Value,
) {
    use millrace_cloudwatch::KinesisMetric as M;
    let (metric, value) = match operation {
        "ReceiveQueueRecords" => match output["QueueRecords"].as_array().map_or(0, Vec::len) {
            0 => (M::EmptyReceives, 1),
            n => (M::ReceivedQueueRecords, n as u64),
        },
        "AcknowledgeQueueRecords" => (
            M::AcknowledgedQueueRecords,
            output["Successful"].as_array().map_or(0, Vec::len) as u64,
        ),
        _ => return,
    };
    let arn = input["QueueARN"].as_str().unwrap_or_default();
    let Some((id, name)) = queues.identity(arn) else {
        return;
    };
    let region = arn.split(':').nth(3).unwrap_or(&context.region);
    let handle = metrics
        .recorder()
        .queue(context.engine.account_id(), region, &id, &name);
    handle.record(metric, value);
    // The gauges, sampled by receives (at most once a second per queue).
    if operation == "ReceiveQueueRecords" {
        if let Some(gauges) = queues.sample_gauges(arn) {
            handle.record(M::VisibleQueueRecords, gauges.visible);
            handle.record(M::InFlightQueueRecords, gauges.in_flight);
            handle.record(M::VisibleDeadLetterQueueRecords, gauges.visible_dead_letter);
        }
    }
}

/// DeleteStream, and a switch to provisioned mode, are refused while a queue reads the stream.
pub fn refuse_if_queued(context: &Context<'_>, region: &str, stream: &str) -> Result<(), ApiError> {
    if context
        .queues
        .stream_has_queues(context.engine, region, stream)?
    {
        return Err(ApiError::new(
            "ResourceInUseException",
            format!(
                "Stream {stream} under account {} has queues; delete every queue on the stream \
                 first.",
                context.engine.account_id()
            ),
        ));
    }
    Ok(())
}

/// For a queue ARN, the (region, stream) of the queue once the call is authorized on the queue;
/// `None` for any other ARN.
pub fn queue_stream(
    context: &Context<'_>,
    arn: &str,
) -> Result<Option<(String, String)>, ApiError> {
    if !arn
        .splitn(6, ':')
        .nth(5)
        .is_some_and(|resource| resource.starts_with("queue/"))
    {
        return Ok(None);
    }
    context.authz.check(context.engine, arn, None)?;
    let queues = context.queues.of(context.engine)?;
    match queues.stream_of(arn) {
        Some(target) => Ok(Some(target)),
        None => Err(ApiError::new(
            "ResourceNotFoundException",
            format!("Queue {arn} not found."),
        )),
    }
}
