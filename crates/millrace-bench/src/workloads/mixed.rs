//! `mixed`: producers and consumers at once; end-to-end latency from the start of a put to the GetRecords reply
//! that first shows the record.
//!
//! Each partition key starts with the send time (microseconds since the run began), so a consumer computes the
//! latency of every record it sees without any shared state. Consumers poll again at once after a non-empty reply
//! and wait `--poll-ms` after an empty one, so the figure includes up to that much polling delay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::MissedTickBehavior;

use crate::bodies;
use crate::client::{Connection, Endpoint, PreparedBody};
use crate::report::{progress, throughput_result, Latencies, ProgressTicker, RunMeters, Totals};
use crate::workloads::{unique_stream_name, Common, GetRecordsReply};

/// Options of the `mixed` workload.
#[derive(Args, Clone, Debug)]
pub struct MixedArgs {
    /// Producer connections.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Records per PutRecords request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Payload bytes per record.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Target total put rate in records/s (0: as fast as the server takes them).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Shards; one consumer connection per shard.
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// How long producers send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Pause after an empty GetRecords reply, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub poll_ms: u64,
}

#[derive(Deserialize)]
struct PutRecordsReply {
    #[serde(rename = "FailedRecordCount", default)]
    failed_record_count: u64,
}

fn micros_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Latency of one record from its partition key `MICROS-...`, if the key has that shape.
fn end_to_end(origin: Instant, partition_key: &str) -> Option<Duration> {
    let sent: u64 = partition_key.split('-').next()?.parse().ok()?;
    Some(Duration::from_micros(
        micros_since(origin).saturating_sub(sent),
    ))
}

struct Producer {
    endpoint: Arc<Endpoint>,
    stream: String,
    args: MixedArgs,
    origin: Instant,
    deadline: Instant,
    totals: Arc<Totals>,
}

impl Producer {
    async fn run(self) -> Latencies {
        let mut connection = Connection::new(Arc::clone(&self.endpoint));
        let mut latencies = Latencies::default();
        let data = bodies::random_data_base64(&mut rand::thread_rng(), self.args.record_size);
        let batch = self.args.batch.max(1);
        let mut pacing = (self.args.rate > 0).then(|| {
            let per_producer = (self.args.rate as f64 / self.args.producers.max(1) as f64).max(1.0);
            let mut interval =
                tokio::time::interval(Duration::from_secs_f64(batch as f64 / per_producer));
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        while Instant::now() < self.deadline {
            if let Some(interval) = pacing.as_mut() {
                interval.tick().await;
            }
            let sent_at = micros_since(self.origin);
            let salt: u32 = rand::thread_rng().gen();
            let raw = bodies::put_records(&self.stream, batch, &data, |i| {
                format!("{sent_at}-{salt:08x}-{i}")
            });
            let body = PreparedBody::new(raw);
            let sent = Instant::now();
            let reply = connection.call("PutRecords", &body).await;
            latencies.record(sent.elapsed());
            Totals::add(&self.totals.requests, 1);
            let failed = match reply {
                Ok(reply) if reply.status == 200 => {
                    serde_json::from_slice::<PutRecordsReply>(&reply.body)
                        .map(|r| r.failed_record_count.min(batch as u64))
                        .unwrap_or(batch as u64)
                }
                _ => {
                    Totals::add(&self.totals.errors, 1);
                    batch as u64
                }
            };
            Totals::add(&self.totals.records, batch as u64 - failed);
            Totals::add(
                &self.totals.bytes,
                (batch as u64 - failed) * self.args.record_size as u64,
            );
            Totals::add(&self.totals.failed_records, failed);
        }
        latencies
    }
}

async fn consume(
    mut connection: Connection,
    mut iterator: String,
    origin: Instant,
    stop: Arc<tokio::sync::watch::Receiver<bool>>,
    poll: Duration,
    totals: Arc<Totals>,
) -> Latencies {
    let mut end_to_end_latencies = Latencies::default();
    loop {
        let body = PreparedBody::new(
            serde_json::to_vec(&json!({"ShardIterator": iterator, "Limit": 10_000}))
                .expect("JSON values serialize"),
        );
        let reply = match connection.call("GetRecords", &body).await {
            Ok(reply) if reply.status == 200 => reply,
            _ => {
                Totals::add(&totals.errors, 1);
                tokio::time::sleep(poll.max(Duration::from_millis(20))).await;
                continue;
            }
        };
        let Ok(parsed) = serde_json::from_slice::<GetRecordsReply<'_>>(&reply.body) else {
            Totals::add(&totals.errors, 1);
            continue;
        };
        for record in &parsed.records {
            if let Some(latency) = end_to_end(origin, &record.partition_key) {
                end_to_end_latencies.record(latency);
            }
        }
        Totals::add(&totals.records, parsed.records.len() as u64);
        let Some(next) = parsed.next_shard_iterator else {
            break;
        };
        iterator = next;
        if parsed.records.is_empty() {
            if *stop.borrow() {
                break;
            }
            tokio::time::sleep(poll).await;
        }
    }
    end_to_end_latencies
}

/// Runs `mixed`.
pub async fn run(common: &Common, args: &MixedArgs) -> anyhow::Result<Map<String, Value>> {
    let endpoint = Endpoint::resolve(&common.endpoint, &common.region).await?;
    let mut control = Connection::new(Arc::clone(&endpoint));
    let stream = unique_stream_name("bench-mixed");
    control
        .create_stream(&stream, args.shards)
        .await
        .context("create the benchmark stream")?;
    let shards = control.list_shards(&stream).await?;
    let origin = Instant::now();
    let consumed = Arc::new(Totals::default());
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let stop_receiver = Arc::new(stop_receiver);
    let mut consumers = Vec::new();
    for shard in &shards {
        let mut connection = Connection::new(Arc::clone(&endpoint));
        let iterator = connection.shard_iterator(&stream, shard, "LATEST").await?;
        consumers.push(tokio::spawn(consume(
            connection,
            iterator,
            origin,
            Arc::clone(&stop_receiver),
            Duration::from_millis(args.poll_ms),
            Arc::clone(&consumed),
        )));
    }

    let produced = Arc::new(Totals::default());
    let meters = RunMeters::start(common.server_pid)?;
    let ticker = ProgressTicker::start("mixed (put)", Arc::clone(&produced));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let mut producers = Vec::new();
    for _ in 0..args.producers.max(1) {
        let producer = Producer {
            endpoint: Arc::clone(&endpoint),
            stream: stream.clone(),
            args: args.clone(),
            origin,
            deadline,
            totals: Arc::clone(&produced),
        };
        producers.push(tokio::spawn(producer.run()));
    }
    let mut put_latencies = Latencies::default();
    for producer in producers {
        put_latencies.merge(producer.await.context("producer task")?);
    }
    let elapsed = started.elapsed();
    // Let consumers catch up with everything acknowledged, then stop them at their next empty reply.
    let catch_up_deadline = Instant::now() + Duration::from_secs(10);
    while Totals::get(&consumed.records) < Totals::get(&produced.records)
        && Instant::now() < catch_up_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_sender.send(true);
    drop(ticker);
    let mut end_to_end_latencies = Latencies::default();
    for consumer in consumers {
        end_to_end_latencies.merge(consumer.await.context("consumer task")?);
    }
    progress(&format!(
        "mixed: produced {}, consumed {}",
        Totals::get(&produced.records),
        Totals::get(&consumed.records)
    ));
    let parameters = json!({
        "producers": args.producers,
        "records_per_request": args.batch,
        "record_size": args.record_size,
        "target_rate": args.rate,
        "shards": shards.len(),
        "duration_s": args.duration,
        "poll_ms": args.poll_ms,
        "stream": stream,
    });
    let mut result = throughput_result(
        "mixed",
        &endpoint.url,
        parameters,
        elapsed,
        &produced,
        end_to_end_latencies,
        meters,
    );
    result.insert("latency_kind".into(), "end_to_end_put_to_get".into());
    result.insert("put_latency".into(), put_latencies.summary());
    result.insert(
        "consumed_records".into(),
        Totals::get(&consumed.records).into(),
    );
    result.insert(
        "consumer_errors".into(),
        Totals::get(&consumed.errors).into(),
    );
    control.delete_stream(&stream).await;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_comes_from_the_key_prefix() {
        let origin = Instant::now() - Duration::from_secs(2);
        let latency = end_to_end(origin, "1000000-abcd-3").expect("numeric prefix");
        assert!(latency >= Duration::from_millis(999) && latency < Duration::from_secs(2));
        assert!(end_to_end(origin, "not-a-time").is_none());
    }
}
