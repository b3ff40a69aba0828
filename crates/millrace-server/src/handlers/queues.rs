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
    let output = queues
        .call(context.engine, &context.region, operation, &input)
        .await?;
    Ok(output
        .map(|value| crate::json::encode(&value))
        .unwrap_or_default())
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
