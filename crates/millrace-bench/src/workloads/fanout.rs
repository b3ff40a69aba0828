//! `fanout`: latency from the start of a put to the moment a registered consumer receives the
//! record through SubscribeToShard (enhanced fan-out push), for one or many consumers.
//!
//! Each consumer holds one subscription per shard (from LATEST) and parses the event stream as
//! it arrives. The partition key starts with the send time (microseconds since the run began),
//! so every delivery's latency is measured without shared state; with N consumers each record
//! is counted N times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use http_body_util::BodyExt as _;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::MissedTickBehavior;

use crate::bodies;
use crate::client::{Connection, Endpoint, PreparedBody};
use crate::report::{progress, throughput_result, Latencies, ProgressTicker, RunMeters, Totals};
use crate::workloads::{unique_stream_name, Common, RecordOut};

/// Options of the `fanout` workload.
#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    /// Registered consumers, each subscribed to every shard.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Shards of the benchmark stream.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Records per second put (one PutRecords request of `--batch` records per tick).
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// Records per PutRecords request.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// How long the producer sends, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

#[derive(Deserialize)]
struct SubscribeToShardEvent<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<RecordOut<'a>>,
}

fn micros_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// One event-stream message: the `:event-type` (or `:exception-type`) header and the payload.
struct Message {
    kind: String,
    payload: Vec<u8>,
}

/// Takes complete messages off the front of `buffer` (prelude lengths; CRCs not re-checked).
fn take_messages(buffer: &mut Vec<u8>) -> anyhow::Result<Vec<Message>> {
    let mut messages = Vec::new();
    let mut offset = 0;
    while buffer.len() - offset >= 12 {
        let total = u32::from_be_bytes(buffer[offset..offset + 4].try_into()?) as usize;
        let headers_length =
            u32::from_be_bytes(buffer[offset + 4..offset + 8].try_into()?) as usize;
        if total < 16 + headers_length {
            bail!("malformed event-stream prelude");
        }
        if buffer.len() - offset < total {
            break;
        }
        let headers = &buffer[offset + 12..offset + 12 + headers_length];
        let payload = buffer[offset + 12 + headers_length..offset + total - 4].to_vec();
        let mut kind = String::new();
        let mut position = 0;
        while position < headers.len() {
            let name_length = usize::from(headers[position]);
            let name = &headers[position + 1..position + 1 + name_length];
            position += 1 + name_length;
            if headers.get(position) != Some(&7) {
                bail!("unexpected event-stream header type");
            }
            let value_length = usize::from(u16::from_be_bytes([
                headers[position + 1],
                headers[position + 2],
            ]));
            let value = &headers[position + 3..position + 3 + value_length];
            position += 3 + value_length;
            if name == b":event-type" || name == b":exception-type" {
                kind = String::from_utf8_lossy(value).into_owned();
            }
        }
        messages.push(Message { kind, payload });
        offset += total;
    }
    buffer.drain(..offset);
    Ok(messages)
}

/// Reads one subscription until `stop` and returns the push latencies it saw.
async fn subscribe(
    endpoint: Arc<Endpoint>,
    consumer_arn: String,
    shard: String,
    origin: Instant,
    totals: Arc<Totals>,
    ready: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Latencies> {
    let mut connection = Connection::new(endpoint);
    let body = PreparedBody::new(serde_json::to_vec(&json!({
        "ConsumerARN": consumer_arn,
        "ShardId": shard,
        "StartingPosition": {"Type": "LATEST"},
    }))?);
    let response = connection.open("SubscribeToShard", &body).await?;
    if response.status() != 200 {
        let text = response.into_body().collect().await?.to_bytes();
        bail!(
            "SubscribeToShard failed: {}",
            String::from_utf8_lossy(&text)
        );
    }
    let mut ready = Some(ready);
    let mut incoming = response.into_body();
    let mut buffer = Vec::new();
    let mut latencies = Latencies::default();
    loop {
        let frame = tokio::select! {
            frame = incoming.frame() => frame,
            _ = stop.changed() => return Ok(latencies),
        };
        let Some(frame) = frame else {
            return Ok(latencies);
        };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        for message in take_messages(&mut buffer)? {
            match message.kind.as_str() {
                "initial-response" => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                "SubscribeToShardEvent" => {
                    let event: SubscribeToShardEvent<'_> =
                        serde_json::from_slice(&message.payload)?;
                    let now = micros_since(origin);
                    for record in &event.records {
                        if let Some(sent) = record
                            .partition_key
                            .split('-')
                            .next()
                            .and_then(|t| t.parse::<u64>().ok())
                        {
                            latencies.record(Duration::from_micros(now.saturating_sub(sent)));
                        }
                    }
                    Totals::add(&totals.records, event.records.len() as u64);
                }
                other => bail!(
                    "subscription ended with {other}: {}",
                    String::from_utf8_lossy(&message.payload)
                ),
            }
        }
    }
}

/// Runs `fanout`.
pub async fn run(common: &Common, args: &FanoutArgs) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let mut control = Connection::new(Arc::clone(&endpoint));
    let stream = unique_stream_name("bench-fanout");
    control
        .create_stream(&stream, args.shards)
        .await
        .context("create the benchmark stream")?;
    let summary = control
        .call_json("DescribeStreamSummary", &json!({"StreamName": stream}))
        .await?;
    let stream_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .context("StreamARN in DescribeStreamSummary")?
        .to_owned();
    let mut consumer_arns = Vec::new();
    for index in 0..args.consumers.max(1) {
        let reply = control
            .call_json(
                "RegisterStreamConsumer",
                &json!({"StreamARN": stream_arn, "ConsumerName": format!("bench-{index}")}),
            )
            .await?;
        let arn = reply["Consumer"]["ConsumerARN"]
            .as_str()
            .context("ConsumerARN")?
            .to_owned();
        for _ in 0..600 {
            let described = control
                .call_json("DescribeStreamConsumer", &json!({"ConsumerARN": arn}))
                .await?;
            if described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        consumer_arns.push(arn);
    }
    let shards = control.list_shards(&stream).await?;
    let origin = Instant::now();
    let delivered = Arc::new(Totals::default());
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let mut subscriptions = Vec::new();
    let mut readiness = Vec::new();
    for consumer_arn in &consumer_arns {
        for shard in &shards {
            let (ready, is_ready) = tokio::sync::oneshot::channel();
            readiness.push(is_ready);
            subscriptions.push(tokio::spawn(subscribe(
                Arc::clone(&endpoint),
                consumer_arn.clone(),
                shard.clone(),
                origin,
                Arc::clone(&delivered),
                ready,
                stop_receiver.clone(),
            )));
        }
    }
    for is_ready in readiness {
        tokio::time::timeout(Duration::from_secs(10), is_ready)
            .await
            .context("a subscription did not start within 10 s")?
            .context("a subscription failed to start")?;
    }

    let produced = Arc::new(Totals::default());
    let meters = RunMeters::start(common.server_pid)?;
    let ticker = ProgressTicker::start("fanout (put)", Arc::clone(&produced));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let batch = args.batch.max(1);
    let mut connection = Connection::new(Arc::clone(&endpoint));
    let data = bodies::random_data_base64(&mut rand::thread_rng(), args.record_size);
    let mut pacing = tokio::time::interval(Duration::from_secs_f64(
        batch as f64 / args.rate.max(1) as f64,
    ));
    pacing.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut put_latencies = Latencies::default();
    while Instant::now() < deadline {
        pacing.tick().await;
        let sent_at = micros_since(origin);
        let salt: u32 = rand::thread_rng().gen();
        let raw = bodies::put_records(&stream, batch, &data, |i| {
            format!("{sent_at}-{salt:08x}-{i}")
        });
        let sent = Instant::now();
        let reply = connection.call("PutRecords", &PreparedBody::new(raw)).await;
        put_latencies.record(sent.elapsed());
        Totals::add(&produced.requests, 1);
        match reply {
            Ok(reply) if reply.status == 200 => {
                Totals::add(&produced.records, batch as u64);
                Totals::add(&produced.bytes, (batch * args.record_size) as u64);
            }
            _ => Totals::add(&produced.errors, 1),
        }
    }
    let elapsed = started.elapsed();
    let expected = Totals::get(&produced.records) * consumer_arns.len() as u64;
    let catch_up_deadline = Instant::now() + Duration::from_secs(10);
    while Totals::get(&delivered.records) < expected && Instant::now() < catch_up_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_sender.send(true);
    drop(ticker);
    let mut push_latencies = Latencies::default();
    for subscription in subscriptions {
        push_latencies.merge(subscription.await.context("subscription task")??);
    }
    progress(&format!(
        "fanout: produced {}, delivered {} of {expected}",
        Totals::get(&produced.records),
        Totals::get(&delivered.records)
    ));
    let parameters = json!({
        "consumers": consumer_arns.len(),
        "shards": shards.len(),
        "rate": args.rate,
        "records_per_request": batch,
        "record_size": args.record_size,
        "duration_s": args.duration,
        "stream": stream,
    });
    let mut result = throughput_result(
        "fanout",
        &endpoint.url,
        parameters,
        elapsed,
        &produced,
        push_latencies,
        meters,
    );
    result.insert("latency_kind".into(), "put_to_push".into());
    result.insert("put_latency".into(), put_latencies.summary());
    result.insert(
        "delivered_records".into(),
        Totals::get(&delivered.records).into(),
    );
    result.insert("expected_deliveries".into(), expected.into());
    let _ = control
        .call_json(
            "DeleteStream",
            &json!({"StreamName": stream, "EnforceConsumerDeletion": true}),
        )
        .await;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event_type: &str, payload: &[u8]) -> Vec<u8> {
        let header_name = b":event-type";
        let mut headers = vec![header_name.len() as u8];
        headers.extend_from_slice(header_name);
        headers.push(7);
        headers.extend_from_slice(&(event_type.len() as u16).to_be_bytes());
        headers.extend_from_slice(event_type.as_bytes());
        let total = 12 + headers.len() + payload.len() + 4;
        let mut message = Vec::new();
        message.extend_from_slice(&(total as u32).to_be_bytes());
        message.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        message.extend_from_slice(&[0; 4]);
        message.extend_from_slice(&headers);
        message.extend_from_slice(payload);
        message.extend_from_slice(&[0; 4]);
        message
    }

    #[test]
    fn messages_are_split_across_reads() {
        let mut stream = frame("initial-response", b"{}");
        stream.extend(frame("SubscribeToShardEvent", br#"{"Records":[]}"#));
        let mut buffer = stream[..20].to_vec();
        assert!(take_messages(&mut buffer).expect("partial").is_empty());
        buffer.extend_from_slice(&stream[20..]);
        let messages = take_messages(&mut buffer).expect("complete");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].kind, "initial-response");
        assert_eq!(messages[1].payload, br#"{"Records":[]}"#);
        assert!(buffer.is_empty());
    }
}
