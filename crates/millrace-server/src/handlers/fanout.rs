//! Enhanced fan-out: RegisterStreamConsumer, DeregisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers and SubscribeToShard (an event stream fed by a task per subscription).

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use millrace_engine::{
    ConsumerTarget, ConsumerView, IteratorRequest, IteratorType, SubscriptionEvent,
};
use millrace_wire::event_stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::records::{child_shards_json, write_records};
use super::{authorize_consumer, parse_stream_arn, resource_target, Context};
use crate::error::ApiError;
use crate::json::{decode, encode, millis, seconds};

/// An idle subscription sends an event at least this often.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Events buffered per subscription before its reader must catch up.
const EVENTS_IN_FLIGHT: usize = 2;
const JSON_CONTENT_TYPE: &str = "application/json";

fn consumer_json(view: &ConsumerView) -> serde_json::Value {
    json!({
        "ConsumerName": view.name,
        "ConsumerARN": view.arn,
        "ConsumerStatus": view.status,
        "ConsumerCreationTimestamp": seconds(view.created_ms),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    consumer_name: String,
}

pub fn register_stream_consumer(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: RegisterInput = decode("RegisterStreamConsumer", body)?;
    let (region, stream) = resource_target(context, &input.stream_arn)?;
    // Queues on the stream count against its registered consumers.
    let queues = context
        .queues
        .count_on_stream(context.engine, &region, &stream)? as u32;
    if queues > 0 && context.engine.consumer_count(&region, &stream) + queues >= 20 {
        return Err(ApiError::new(
            "LimitExceededException",
            format!(
                "Stream {stream} under account {} already has 20 registered consumers.",
                context.engine.account_id()
            ),
        ));
    }
    let view = context
        .engine
        .register_consumer(&region, &stream, &input.consumer_name)?;
    Ok(encode(&json!({ "Consumer": consumer_json(&view) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsumerInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

/// Consumers are named by ARN alone, or by stream ARN and name.
fn with_target<T>(
    context: &Context<'_>,
    input: &ConsumerInput,
    action: impl FnOnce(ConsumerTarget<'_>) -> Result<T, millrace_engine::Error>,
) -> Result<T, ApiError> {
    match (&input.consumer_arn, &input.stream_arn, &input.consumer_name) {
        (Some(arn), _, _) => {
            authorize_consumer(context, arn)?;
            Ok(action(ConsumerTarget::Arn(arn))?)
        }
        (None, Some(stream_arn), Some(consumer)) => {
            let (region, stream) = parse_stream_arn(context, stream_arn)?;
            // The consumer's own ARN is the resource; an unknown consumer is checked on its stream.
            let found = context.engine.describe_consumer(ConsumerTarget::Name {
                region: &region,
                stream: &stream,
                consumer,
            });
            match found {
                Ok(view) => authorize_consumer(context, &view.arn)?,
                Err(_) => {
                    resource_target(context, stream_arn)?;
                }
            }
            Ok(action(ConsumerTarget::Name {
                region: &region,
                stream: &stream,
                consumer,
            })?)
        }
        _ => Err(ApiError::new(
            "InvalidArgumentException",
            "Either ConsumerARN or both StreamARN and ConsumerName must be provided.",
        )),
    }
}

pub fn deregister_stream_consumer(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: ConsumerInput = decode("DeregisterStreamConsumer", body)?;
    with_target(context, &input, |target| {
        context.engine.deregister_consumer(target)
    })?;
    Ok(Vec::new())
}

pub fn describe_stream_consumer(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: ConsumerInput = decode("DescribeStreamConsumer", body)?;
    let view = with_target(context, &input, |target| {
        context.engine.describe_consumer(target)
    })?;
    let mut description = consumer_json(&view);
    description["StreamARN"] = json!(view.stream_arn);
    Ok(encode(&json!({ "ConsumerDescription": description })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListConsumersInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub fn list_stream_consumers(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: ListConsumersInput = decode("ListStreamConsumers", body)?;
    let (region, stream) = resource_target(context, &input.stream_arn)?;
    let (consumers, next_token) = context.engine.list_consumers(
        &region,
        &stream,
        input.max_results,
        input.next_token.as_deref(),
    )?;
    let mut output =
        json!({ "Consumers": consumers.iter().map(consumer_json).collect::<Vec<_>>() });
    if let Some(token) = next_token {
        output["NextToken"] = json!(token);
    }
    Ok(encode(&output))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartingPosition {
    #[serde(rename = "Type")]
    position_type: String,
    sequence_number: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    shard_id: String,
    starting_position: StartingPosition,
}

/// The JSON payload of one SubscribeToShardEvent.
fn event_json(event: &SubscriptionEvent) -> String {
    let mut payload = String::from(r#"{"Records":"#);
    write_records(&mut payload, &event.records);
    if let Some(continuation) = &event.continuation_sequence_number {
        let _ = write!(payload, r#","ContinuationSequenceNumber":"{continuation}""#);
    }
    let _ = write!(
        payload,
        r#","MillisBehindLatest":{}"#,
        event.millis_behind_latest
    );
    if !event.child_shards.is_empty() {
        let _ = write!(
            payload,
            r#","ChildShards":{}"#,
            child_shards_json(&event.child_shards)
        );
    }
    payload.push('}');
    payload
}

/// Starts a subscription; errors found before streaming are ordinary HTTP errors, later ones
/// are exception events in the stream.
/// The region and stream name of a consumer ARN.
fn consumer_stream(consumer_arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = consumer_arn.splitn(6, ':').collect();
    let name = parts.get(5)?.strip_prefix("stream/")?.split('/').next()?;
    Some((parts.get(3)?, name))
}

pub async fn subscribe_to_shard(
    context: &Context<'_>,
    body: &[u8],
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let input: SubscribeInput = decode("SubscribeToShard", body)?;
    let iterator_type =
        IteratorType::parse(&input.starting_position.position_type).ok_or_else(|| {
            ApiError::new("InvalidArgumentException", "Invalid StartingPosition type.")
        })?;
    let request = IteratorRequest {
        shard_id: &input.shard_id,
        iterator_type,
        starting_sequence_number: input.starting_position.sequence_number.as_deref(),
        timestamp_ms: input.starting_position.timestamp.map(millis),
    };
    authorize_consumer(context, &input.consumer_arn)?;
    if let Some((region, name)) = consumer_stream(&input.consumer_arn) {
        super::authorize_stream_key(context, region, name, false)?;
    }
    let result = context.engine.subscribe(&input.consumer_arn, request).await;
    // The consumer's metrics carry StreamName and ConsumerName, from the consumer ARN
    // (`…:stream/<stream>/consumer/<consumer>:<created>`).
    let names = input
        .consumer_arn
        .split_once(":stream/")
        .and_then(|(_, rest)| rest.split_once("/consumer/"))
        .map(|(stream, consumer)| {
            (
                stream,
                consumer.rsplit_once(':').map_or(consumer, |(c, _)| c),
            )
        });
    let counted = match (&result, names) {
        (Err(millrace_engine::Error::ResourceNotFound(_)), _) | (_, None) => None,
        (result, Some((stream, consumer))) => {
            let outcome = match result {
                Ok(_) => Ok(()),
                Err(error) => Err(matches!(error, millrace_engine::Error::LimitExceeded(_))),
            };
            super::metrics::subscribe(context, &context.region, stream, consumer, outcome)
        }
    };
    let mut subscription = result?;
    let cbor = context.format == crate::dispatch::Format::Cbor;
    // Event payloads use the request's format, and say so in `:content-type`.
    let content_type = if cbor {
        millrace_wire::cbor::CONTENT_TYPE
    } else {
        JSON_CONTENT_TYPE
    };
    let encode_payload = move |shape: &str, json: String| -> Vec<u8> {
        if !cbor {
            return json.into_bytes();
        }
        let value: serde_json::Value =
            serde_json::from_str(&json).expect("payloads are valid JSON");
        millrace_wire::cbor::event_payload_to_cbor(shape, &value).unwrap_or_else(|failure| {
            tracing::error!(%failure, "failed to encode a CBOR event payload");
            Vec::new()
        })
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(EVENTS_IN_FLIGHT);
    tokio::spawn(async move {
        let initial = event_stream::event(
            "initial-response",
            content_type,
            &encode_payload("SubscribeToShardOutput", "{}".to_owned()),
        );
        if sender.send(Bytes::from(initial)).await.is_err() {
            return;
        }
        loop {
            let message = match subscription.next_event(HEARTBEAT).await {
                Ok(Some(event)) => {
                    if let Some(handle) = &counted {
                        super::metrics::subscription_event(
                            handle,
                            &event.records,
                            event.millis_behind_latest,
                        );
                    }
                    event_stream::event(
                        "SubscribeToShardEvent",
                        content_type,
                        &encode_payload("SubscribeToShardEvent", event_json(&event)),
                    )
                }
                Ok(None) => return,
                Err(error) => {
                    let api_error = ApiError::from(error);
                    let payload = json!({ "message": api_error.message.unwrap_or_default() });
                    let message = event_stream::exception(
                        api_error.code,
                        content_type,
                        &encode_payload(api_error.code, payload.to_string()),
                    );
                    let _ = sender.send(Bytes::from(message)).await;
                    return;
                }
            };
            if sender.send(Bytes::from(message)).await.is_err() {
                tracing::debug!("subscriber went away");
                return;
            }
        }
    });
    Ok(receiver)
}
