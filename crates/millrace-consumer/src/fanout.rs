//! Enhanced fan-out retrieval: registering the application's stream consumer, and reading a
//! shard through SubscribeToShard's event stream (prelude, headers, JSON payload per event),
//! resubscribing from the continuation sequence number when a subscription ends.

use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::aws::{AwsClient, AwsError};

/// Registers (or finds) the consumer `name` on `stream` and waits until it is ACTIVE; returns
/// its ARN.
pub async fn register_consumer(
    client: &AwsClient,
    stream: &str,
    name: &str,
) -> Result<String, AwsError> {
    let summary = client
        .kinesis("DescribeStreamSummary", &json!({"StreamName": stream}))
        .await?;
    let stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match client
        .kinesis(
            "RegisterStreamConsumer",
            &json!({"StreamARN": stream_arn, "ConsumerName": name}),
        )
        .await
    {
        Ok(_) => {}
        Err(error) if error.is("ResourceInUseException") => {}
        Err(error) => return Err(error),
    }
    for _ in 0..120 {
        let described = client
            .kinesis(
                "DescribeStreamConsumer",
                &json!({"StreamARN": stream_arn, "ConsumerName": name}),
            )
            .await?;
        let consumer = &described["ConsumerDescription"];
        if consumer["ConsumerStatus"] == "ACTIVE" {
            return Ok(consumer["ConsumerARN"]
                .as_str()
                .unwrap_or_default()
                .to_owned());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(AwsError {
        code: "ResourceNotReady".into(),
        message: format!("consumer {name} did not become ACTIVE"),
        status: 0,
    })
}

/// One message of an event stream.
#[derive(Debug)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Splits one complete message off the front of `buffer`, if it holds one.
pub fn next_message(buffer: &mut Vec<u8>) -> Result<Option<Message>, String> {
    let Some(total) = be_u32(buffer, 0) else {
        return Ok(None);
    };
    let total = total as usize;
    if total < 16 {
        return Err(format!("event-stream message of {total} bytes"));
    }
    if buffer.len() < total {
        return Ok(None);
    }
    let headers_length = be_u32(buffer, 4).ok_or("short prelude")? as usize;
    let headers_end = 12 + headers_length;
    if headers_end > total - 4 {
        return Err("event-stream headers overrun the message".into());
    }
    let mut headers = Vec::new();
    let mut at = 12;
    while at < headers_end {
        let name_length = buffer[at] as usize;
        at += 1;
        let name = String::from_utf8_lossy(buffer.get(at..at + name_length).ok_or("short header")?)
            .into_owned();
        at += name_length;
        let kind = *buffer.get(at).ok_or("short header")?;
        at += 1;
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            other => return Err(format!("unknown header type {other}")),
        };
        let value = match fixed {
            Some(width) => {
                at += width;
                String::new()
            }
            None => {
                let length = u16::from_be_bytes(
                    buffer
                        .get(at..at + 2)
                        .ok_or("short header")?
                        .try_into()
                        .map_err(|_| "short header")?,
                ) as usize;
                at += 2;
                let text =
                    String::from_utf8_lossy(buffer.get(at..at + length).ok_or("short header")?)
                        .into_owned();
                at += length;
                text
            }
        };
        headers.push((name, value));
    }
    let payload = buffer[headers_end..total - 4].to_vec();
    buffer.drain(..total);
    Ok(Some(Message { headers, payload }))
}

/// An open subscription's body and the bytes read but not yet parsed.
pub struct Subscription {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
}

/// What the next read of a subscription gave.
pub enum Event {
    /// A SubscribeToShardEvent's JSON.
    Records(Value),
    /// The subscription ended (after about five minutes): subscribe again.
    Ended,
}

pub async fn subscribe(
    client: &AwsClient,
    consumer_arn: &str,
    shard: &str,
    position: Value,
) -> Result<Subscription, AwsError> {
    let body = client
        .kinesis_stream(
            "SubscribeToShard",
            &json!({"ConsumerARN": consumer_arn, "ShardId": shard, "StartingPosition": position}),
        )
        .await?;
    Ok(Subscription {
        body,
        buffer: Vec::new(),
    })
}

impl Subscription {
    /// The next event (cancellation-safe only between calls: the buffer keeps partial reads).
    pub async fn next(&mut self) -> Result<Event, AwsError> {
        loop {
            let message = next_message(&mut self.buffer).map_err(|message| AwsError {
                code: String::new(),
                message,
                status: 0,
            })?;
            if let Some(message) = message {
                match message.header(":message-type") {
                    Some("exception") | Some("error") => {
                        return Err(AwsError {
                            code: message
                                .header(":exception-type")
                                .or_else(|| message.header(":error-code"))
                                .unwrap_or("")
                                .to_owned(),
                            message: String::from_utf8_lossy(&message.payload).into_owned(),
                            status: 0,
                        })
                    }
                    _ => {}
                }
                if message.header(":event-type") == Some("SubscribeToShardEvent") {
                    let json: Value =
                        serde_json::from_slice(&message.payload).map_err(|e| AwsError {
                            code: String::new(),
                            message: format!("decode SubscribeToShardEvent: {e}"),
                            status: 0,
                        })?;
                    return Ok(Event::Records(json));
                }
                continue;
            }
            match self.body.frame().await {
                None => return Ok(Event::Ended),
                Some(Err(error)) => {
                    return Err(AwsError {
                        code: String::new(),
                        message: error.to_string(),
                        status: 0,
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut encoded = Vec::new();
        for (name, value) in headers {
            encoded.push(name.len() as u8);
            encoded.extend_from_slice(name.as_bytes());
            encoded.push(7);
            encoded.extend_from_slice(&(value.len() as u16).to_be_bytes());
            encoded.extend_from_slice(value.as_bytes());
        }
        let total = 12 + encoded.len() + payload.len() + 4;
        let mut out = Vec::new();
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&encoded);
        out.extend_from_slice(payload);
        out.extend_from_slice(&[0; 4]);
        out
    }

    #[test]
    fn messages_split_at_their_lengths() {
        let mut buffer = frame(&[(":event-type", "SubscribeToShardEvent")], b"{}");
        let second = frame(&[(":message-type", "event")], b"x");
        buffer.extend_from_slice(&second[..5]);
        let first = next_message(&mut buffer).expect("valid").expect("complete");
        assert_eq!(first.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(first.payload, b"{}");
        assert!(next_message(&mut buffer).expect("valid").is_none());
        buffer.extend_from_slice(&second[5..]);
        let second = next_message(&mut buffer).expect("valid").expect("complete");
        assert_eq!(second.payload, b"x");
        assert!(buffer.is_empty());
    }
}
