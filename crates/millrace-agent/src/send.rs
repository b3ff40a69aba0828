//! Delivering a batch: Kinesis streams through the producer library (each record a Kinesis
//! record, no aggregation, as the Java agent sends them), Firehose delivery streams with
//! `PutRecordBatch` through the shared client. A batch is delivered completely before its
//! checkpoint is stored: failed records are sent again, with backoff, until they are accepted or
//! the agent stops.

use std::time::Duration;

use base64::Engine as _;
use millrace_client::{AwsClient, FIREHOSE};
use millrace_producer::Producer;
use serde_json::{json, Value};
use tokio::sync::watch;

/// A record ready to send.
pub struct OutRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
}

/// The agent stopped before the batch was delivered.
#[derive(Debug)]
pub struct Stopped;

fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(7));
    let capped = base.min(Duration::from_secs(10));
    let jitter = rand::random::<f64>();
    capped.mul_f64(0.5 + jitter / 2.0)
}

async fn pause(attempt: u32, stop: &mut watch::Receiver<bool>) -> Result<(), Stopped> {
    if *stop.borrow() {
        return Err(Stopped);
    }
    tokio::select! {
        _ = tokio::time::sleep(backoff(attempt)) => Ok(()),
        _ = stop.changed() => Err(Stopped),
    }
}

/// Puts every record into the stream through the producer; returns when all are in.
pub async fn to_kinesis(
    producer: &Producer,
    stream: &str,
    records: Vec<OutRecord>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Stopped> {
    let mut waiting = records;
    let mut attempt = 0;
    while !waiting.is_empty() {
        let mut receivers = Vec::with_capacity(waiting.len());
        for record in &waiting {
            match producer
                .submit(stream, &record.partition_key, &record.data, None)
                .await
            {
                Ok(receiver) => receivers.push(Some(receiver)),
                Err(error) => {
                    tracing::warn!(stream, %error, "record not accepted by the producer");
                    receivers.push(None);
                }
            }
        }
        producer.flush().await;
        let mut failed = Vec::new();
        for (record, receiver) in waiting.into_iter().zip(receivers) {
            let outcome = match receiver {
                Some(receiver) => receiver.await.ok(),
                None => None,
            };
            match outcome {
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(stream, %error, "record not delivered; sending it again");
                    failed.push(record);
                }
                None => failed.push(record),
            }
        }
        waiting = failed;
        if !waiting.is_empty() {
            pause(attempt, stop).await?;
            attempt += 1;
        }
    }
    Ok(())
}

/// Firehose's PutRecordBatch limits.
const FIREHOSE_MAX_RECORDS: usize = 500;
const FIREHOSE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Puts every record into the delivery stream with PutRecordBatch; returns when all are in.
pub async fn to_firehose(
    client: &AwsClient,
    delivery_stream: &str,
    records: Vec<OutRecord>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Stopped> {
    let mut waiting: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
    let mut attempt = 0;
    while !waiting.is_empty() {
        let mut failed = Vec::new();
        let mut rest = waiting.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(next) = rest.peek() {
                if chunk.len() == FIREHOSE_MAX_RECORDS
                    || (!chunk.is_empty() && bytes + next.len() > FIREHOSE_MAX_BYTES)
                {
                    break;
                }
                bytes += next.len();
                chunk.extend(rest.next());
            }
            let engine = base64::engine::general_purpose::STANDARD;
            let entries: Vec<Value> = chunk
                .iter()
                .map(|d| json!({"Data": engine.encode(d)}))
                .collect();
            let reply = client
                .call(
                    &FIREHOSE,
                    "PutRecordBatch",
                    &json!({"DeliveryStreamName": delivery_stream, "Records": entries}),
                )
                .await;
            match reply {
                Ok(reply) => {
                    let answers = reply["RequestResponses"].as_array();
                    for (i, data) in chunk.into_iter().enumerate() {
                        let answer = answers.and_then(|a| a.get(i));
                        let refused = match answer {
                            Some(a) => a.get("ErrorCode").is_some_and(|c| !c.is_null()),
                            None => true,
                        };
                        if refused {
                            failed.push(data);
                        }
                    }
                    if !failed.is_empty() {
                        tracing::warn!(
                            delivery_stream,
                            failed = failed.len(),
                            "records refused by PutRecordBatch; sending them again"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(delivery_stream, %error, "PutRecordBatch failed; sending again");
                    failed.extend(chunk);
                }
            }
        }
        waiting = failed;
        if !waiting.is_empty() {
            pause(attempt, stop).await?;
            attempt += 1;
        }
    }
    Ok(())
}
